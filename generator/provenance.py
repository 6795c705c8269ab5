"""The run id: a short name for one trained network, so a pasted link can say which network it shows."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from .network import depth, param_names

RUN_ID_HEX = 12  # 48 bits: collisions need ~16 million runs; short enough to read out and paste
# Settings that say where files live or what the site is called, not which network was trained: leaving them
# out keeps the id of a network the same wherever it is built (a test config may hold absolute paths). An
# imported network's file path goes too: its weights themselves are hashed.
NOT_THE_RUN = {"data": ("dir",), "network": ("weights",), "site": None}


def run_config(config: dict) -> dict:
    """The settings that define a run: `config` (Config.to_dict()) without the paths and the site's title."""
    kept = {}
    for section, values in config.items():
        dropped = NOT_THE_RUN.get(section, ())
        if dropped is None:
            continue
        kept[section] = {k: v for k, v in values.items() if k not in dropped}
    return kept


def run_id(data_sha256: dict[str, str], config: dict, params: dict[str, np.ndarray]) -> str:
    """12 hex digits of SHA-256 over the data checksums, the run's settings (canonical JSON) and the weights.

    The weights enter as their exact bytes (little-endian, C order) with dtype and shape, so the same
    data, settings and trained bits give the same id on any machine, and any retrained bit changes it.
    """
    h = hashlib.sha256(b"mnist-neuron-atlas run id 1\n")
    for part in (dict(sorted(data_sha256.items())), run_config(config)):
        h.update(json.dumps(part, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode() + b"\n")
    for name in param_names(depth(params)):  # W1, b1, W2, b2 for one hidden layer, as ever
        array = np.ascontiguousarray(params[name])
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        h.update(f"{name} {array.dtype.str} {list(array.shape)}\n".encode())
        h.update(array.tobytes())
    return h.hexdigest()[:RUN_ID_HEX]
