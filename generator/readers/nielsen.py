"""Nielsen's network2 JSON and .npz archives of arrays (network1-style names, or an atlas model.npz)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from ..network import depth
from .common import Layers, as_array, scalar_norm, state_dict_layers

COSTS = ("CrossEntropyCost", "QuadraticCost")  # the cost classes of Nielsen's network2.py


def network2_json(path: Path, raw: bytes) -> Layers:
    """Nielsen's network2.save: {"sizes": [D, H, K], "weights": [(H, D), (K, H)], "biases": [(H, 1), (K, 1)],
    "cost": ...}, or deeper ([D, H1, H2, K] and a matrix per layer). Sigmoid units throughout, though the
    file does not say so."""
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
    if len(sizes) < 3:
        raise WeightsError(f"{path}: 'sizes' is {sizes}: no hidden layer; the atlas explains networks with at "
                           "least one hidden layer")
    cost = data.get("cost", "CrossEntropyCost")
    if cost not in COSTS:
        raise WeightsError(f"{path}: unknown 'cost' {cost!r}; expected one of {', '.join(COSTS)}")
    weights, biases = data["weights"], data["biases"]
    if not isinstance(weights, list) or not isinstance(biases, list):
        raise WeightsError(f"{path}: 'weights' and 'biases' must be lists of layers")
    n = len(sizes) - 1
    if len(weights) != n or len(biases) != n:
        raise WeightsError(f"{path}: 'weights' has {len(weights)} layer(s) and 'biases' {len(biases)}; "
                           f"'sizes' {sizes} needs {n} of each")
    for i in range(n):
        W = as_array(path, f"weights[{i}]", weights[i], 2)
        if W.shape != (sizes[i + 1], sizes[i]):
            raise WeightsError(f"{path}: 'weights[{i}]' has shape {W.shape}, but 'sizes' {sizes} needs "
                               f"({sizes[i + 1]}, {sizes[i]})")
    return Layers(f"Nielsen network2 JSON ({cost})", [(f"weights[{i}]", weights[i]) for i in range(n)],
                  [(f"biases[{i}]", biases[i]) for i in range(n)], layout="out_in")


def npz(path: Path) -> Layers:
    """np.savez of weights_0, biases_0, weights_1, biases_1 (biases optional), or an atlas model.npz."""
    try:
        with np.load(path, allow_pickle=False) as f:
            members = {k: f[k] for k in f.files}
    except ValueError as e:
        raise WeightsError(f"{path}: an array needs pickle, which is never loaded ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise WeightsError(f"{path}: not a readable .npz archive ({e})") from None
    norm = None
    if "mean" in members or "std" in members:  # np.savez(f, W1=..., mean=0.1307, std=0.3081): the inputs' Normalize
        if not {"mean", "std"} <= members.keys():
            raise WeightsError(f"{path}: holds '{'mean' if 'mean' in members else 'std'}' without "
                               f"'{'std' if 'mean' in members else 'mean'}'; save both, or neither and pass "
                               "--set data.mean=... --set data.std=...")
        norm = scalar_norm(path, members.pop("mean"), members.pop("std"), "its 'mean' and 'std' arrays")
    layers = _npz_layers(path, members)
    if norm is not None:
        layers.input_norm, layers.input_norm_source = norm, "the file's 'mean' and 'std' arrays"
    return layers


def _npz_layers(path: Path, members: dict[str, np.ndarray]) -> Layers:
    if {"w1", "w2"} <= members.keys() and not {"W1", "W2"} & members.keys():  # np.savez(f, w1=..., b1=..., ...)
        members = {(k.upper() if re.fullmatch(r"w\d+", k) else k): v for k, v in members.items()}
    if {"W1", "W2"} <= members.keys():
        n = depth(members) + 1  # W1, W2, ... W{n}: any depth
        atlas = "meta_json" in members  # the atlas's own model.npz stores (out, in); others may be either
        return Layers("an atlas model.npz" if atlas else "arrays W1, b1, W2, b2, ...",
                      [(f"W{i}", members[f"W{i}"]) for i in range(1, n + 1)],
                      [(f"b{i}", members.get(f"b{i}")) for i in range(1, n + 1)], layout="out_in" if atlas else "either")
    if any(k.endswith(".weight") for k in members):  # np.savez(f, **{k: v.numpy() for k, v in sd.items()})
        return state_dict_layers(path, members, "a PyTorch state_dict in .npz")
    positional = sorted((int(k[4:]), v) for k, v in members.items() if k.startswith("arr_") and k[4:].isdigit())
    if positional and len(positional) == len(members):  # np.savez(f, *model.get_weights()): Keras's order
        return _positional(path, [(f"arr_{i}", v) for i, v in positional])
    layers = sorted(int(k.split("_")[1]) for k in members if k.startswith("weights_") and k[8:].isdigit())
    if not layers:
        raise WeightsError(f"{path}: no arrays named W1, b1, W2, b2 (model.npz) or weights_0, biases_0, ... "
                           f"(network1 style); found {sorted(members)[:6]}: save them under those names in layer order, "
                           "np.savez('net.npz', W1=W1, b1=b1, W2=W2, b2=b2)")
    if layers != list(range(len(layers))):
        raise WeightsError(f"{path}: weight arrays {['weights_%d' % i for i in layers]} are not numbered 0, 1, ...")
    return Layers("network1-style arrays (weights_0, biases_0, ...)",
                  [(f"weights_{i}", members[f"weights_{i}"]) for i in layers],
                  [(f"biases_{i}", members.get(f"biases_{i}")) for i in layers])


def _positional(path: Path, arrays: list[tuple[str, np.ndarray]]) -> Layers:
    """Unnamed arrays in layer order (Keras's get_weights(): kernel, bias, kernel, bias): each matrix with the
    vector that follows it, if any, as its bias."""
    weights, biases = [], []
    for name, value in arrays:
        if np.ndim(value) == 2:
            weights.append((name, value))
            biases.append((f"bias after {name}", None))
        elif np.ndim(value) == 1 and weights and biases[-1][1] is None:
            biases[-1] = (name, value)
        else:
            raise WeightsError(f"{path}: '{name}' has shape {np.shape(value)}; expected matrices, each followed by "
                               "its bias vector (np.savez(f, *model.get_weights()))")
    return Layers("unnamed arrays (arr_0, arr_1, ...)", weights, biases)
