"""Reading networks trained elsewhere: Nielsen's network2 JSON, network1-style .npz arrays, our model.npz.

Never unpickles (np.load with allow_pickle=False, plain JSON). Every problem is a one-line
WeightsError naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import WeightsError

COSTS = ("CrossEntropyCost", "QuadraticCost")  # the cost classes of Nielsen's network2.py


@dataclass(frozen=True)
class Imported:
    params: dict[str, np.ndarray]  # W1 (H, D), b1 (H,), W2 (K, H), b2 (K,), float32
    source: str  # what the home page says about where the weights came from
    sha256: str  # of the file's bytes


def _array(path: Path, field: str, value, ndim: int) -> np.ndarray:
    """A finite float array of `ndim` dimensions from JSON lists or an npz member."""
    try:
        array = np.array(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise WeightsError(f"{path}: '{field}' is not a rectangular array of numbers") from None
    if ndim == 1 and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]  # Nielsen stores biases as column vectors (n, 1)
    if array.ndim != ndim:
        raise WeightsError(f"{path}: '{field}' has shape {array.shape}, expected {ndim} dimension(s)")
    if not np.isfinite(array).all():
        raise WeightsError(f"{path}: '{field}' holds NaN or Inf values; export the network again")
    return array.astype(np.float32)


def _params(path: Path, weights: list, biases: list, names: tuple[str, str],
            sizes: list[int] | None = None) -> dict[str, np.ndarray]:
    """Check a one-hidden-layer network's arrays (against `sizes` when the file declares them) and name
    them W1, b1, W2, b2."""
    wname, bname = names
    if len(weights) != 2 or len(biases) != 2:
        raise WeightsError(f"{path}: '{wname}' has {len(weights)} layer(s) and '{bname}' {len(biases)}; "
                           "the atlas explains networks with exactly one hidden layer (2 of each)")
    W1 = _array(path, f"{wname}[0]", weights[0], 2)
    W2 = _array(path, f"{wname}[1]", weights[1], 2)
    if sizes is not None:
        for i, W in enumerate((W1, W2)):
            if W.shape != (sizes[i + 1], sizes[i]):
                raise WeightsError(f"{path}: '{wname}[{i}]' has shape {W.shape}, but 'sizes' {sizes} needs "
                                   f"({sizes[i + 1]}, {sizes[i]})")
    b1 = _array(path, f"{bname}[0]", biases[0], 1)
    b2 = _array(path, f"{bname}[1]", biases[1], 1)
    if W2.shape[1] != W1.shape[0]:
        raise WeightsError(f"{path}: '{wname}[1]' has shape {W2.shape} but '{wname}[0]' has {W1.shape[0]} rows "
                           f"(hidden units); expected ({W2.shape[0]}, {W1.shape[0]})")
    for field, b, n in ((f"{bname}[0]", b1, W1.shape[0]), (f"{bname}[1]", b2, W2.shape[0])):
        if len(b) != n:
            raise WeightsError(f"{path}: '{field}' has {len(b)} values, expected {n} (one per unit)")
    return {"W1": W1, "b1": b1, "W2": W2, "b2": b2}


def _network2_json(path: Path, raw: bytes) -> tuple[dict, str]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path}: not valid JSON ({e.msg if hasattr(e, 'msg') else e})") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a JSON object with 'sizes', 'weights', 'biases' and 'cost'")
    for key in ("sizes", "weights", "biases"):
        if key not in data:
            raise WeightsError(f"{path}: missing field '{key}' (Nielsen's network2.save writes sizes, weights, "
                               "biases, cost)")
    sizes = data["sizes"]
    if not (isinstance(sizes, list) and all(isinstance(n, int) and n > 0 for n in sizes)):
        raise WeightsError(f"{path}: 'sizes' must be a list of positive integers, got {sizes!r}")
    if len(sizes) != 3:
        raise WeightsError(f"{path}: 'sizes' is {sizes}: {len(sizes) - 2} hidden layers; the atlas explains "
                           "networks with exactly one hidden layer")
    cost = data.get("cost", "CrossEntropyCost")
    if cost not in COSTS:
        raise WeightsError(f"{path}: unknown 'cost' {cost!r}; expected one of {', '.join(COSTS)}")
    if not isinstance(data["weights"], list) or not isinstance(data["biases"], list):
        raise WeightsError(f"{path}: 'weights' and 'biases' must be lists of layers")
    params = _params(path, data["weights"], data["biases"], ("weights", "biases"), sizes)
    return params, f"Nielsen network2 JSON ({cost})"


def _npz(path: Path) -> tuple[dict, str]:
    try:
        with np.load(path, allow_pickle=False) as f:
            members = {k: f[k] for k in f.files}
    except ValueError as e:
        raise WeightsError(f"{path}: an array needs pickle, which is never loaded ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise WeightsError(f"{path}: not a readable .npz archive ({e})") from None
    if {"W1", "b1", "W2", "b2"} <= members.keys():
        return _params(path, [members["W1"], members["W2"]], [members["b1"], members["b2"]], ("W", "b")), \
            "an atlas model.npz"
    layers = sorted(int(k.split("_")[1]) for k in members if k.startswith("weights_") and k[8:].isdigit())
    if not layers:
        raise WeightsError(f"{path}: no arrays named W1, b1, W2, b2 (model.npz) or weights_0, biases_0, ... "
                           f"(network1 style); found {sorted(members)[:6]}")
    if layers != list(range(len(layers))):
        raise WeightsError(f"{path}: weight arrays {['weights_%d' % i for i in layers]} are not numbered 0, 1, ...")
    try:
        biases = [members[f"biases_{i}"] for i in layers]
    except KeyError as e:
        raise WeightsError(f"{path}: missing array {e.args[0]!r} beside weights_{e.args[0].split('_')[1]}") from None
    return _params(path, [members[f"weights_{i}"] for i in layers], biases, ("weights_*", "biases_*")), \
        "network1-style arrays (weights_0, biases_0, ...)"


def import_network(path: Path) -> Imported:
    """Read a trained one-hidden-layer network from a file in any of the supported formats."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(f"{path}: weights file not found") from None
    except OSError as e:
        raise WeightsError(f"{path}: cannot read ({e.strerror})") from None
    if raw[:2] == b"PK":
        params, kind = _npz(path)
    else:
        params, kind = _network2_json(path, raw)
    return Imported(params, f"{kind} from {path.name}", hashlib.sha256(raw).hexdigest())


def check_shapes(imported: Imported, path: Path, n_inputs: int, n_classes: int) -> None:
    """The imported network must read this dataset's images and name its classes."""
    W1, W2 = imported.params["W1"], imported.params["W2"]
    if W1.shape[1] != n_inputs:
        side = math.isqrt(W1.shape[1])
        raise WeightsError(f"{path}: the network takes {W1.shape[1]} inputs"
                           f"{f' ({side}x{side} images)' if side * side == W1.shape[1] else ''}, "
                           f"the data has {n_inputs} pixels per image")
    if W2.shape[0] != n_classes:
        raise WeightsError(f"{path}: the network has {W2.shape[0]} outputs, the data has {n_classes} classes")
