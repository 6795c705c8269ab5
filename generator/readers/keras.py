"""Keras: a Keras 3 .keras archive (config.json + model.weights.h5) and bare HDF5 weights (.weights.h5, .h5)."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from .common import Layers, hidden_activation, natural_key

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# Keras activation names -> the atlas's; "linear" is no activation (logits).
ACTIVATIONS = {"sigmoid": "sigmoid", "relu": "relu", "tanh": "tanh", "softmax": "softmax", "linear": None}


def _dense_groups(path: Path, h5) -> list[tuple[str, dict[str, np.ndarray]]]:
    """[(layer path, {dataset name: array})] of every HDF5 group holding datasets, in layer order.

    Keras 3 keeps a layer's variables as layers/<name>/vars/0 (kernel (in, out)), /1 (bias); Keras 2 as
    <name>/<name>/kernel:0 and bias:0, with the order in the root's 'layer_names'. Optimizer state is skipped.
    """
    import h5py
    groups: dict[str, dict[str, np.ndarray]] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and not name.startswith(("optimizer", "model_weights/optimizer")):
            parent, _, leaf = name.rpartition("/")
            if obj.size > 50_000_000:
                raise WeightsError(f"{path}: dataset '{name}' holds {obj.size:,} values, too many for one layer")
            groups.setdefault(parent, {})[leaf] = np.asarray(obj[()])

    h5.visititems(visit)
    order = [n.decode() if isinstance(n, bytes) else str(n) for n in h5.attrs.get("layer_names", [])]
    if not order and "model_weights" in h5:
        order = [n.decode() if isinstance(n, bytes) else str(n) for n in h5["model_weights"].attrs.get("layer_names", [])]

    def key(parent: str):
        layer = _layer_name(parent)
        return (order.index(layer) if layer in order else len(order), natural_key(parent))

    return sorted(groups.items(), key=lambda item: key(item[0]))


def _layer_name(parent: str) -> str:
    """'layers/dense/vars' (Keras 3) or 'model_weights/dense/dense' (Keras 2) -> 'dense'."""
    return parent.removeprefix("model_weights/").removeprefix("layers/").split("/")[0]


def _normalization(path: Path, name: str, arrays: dict[str, np.ndarray]) -> tuple[float, float]:
    """A Keras Normalization layer's (mean, std) when it holds one mean and variance for every pixel (axis=None);
    a per-pixel one (the default axis=-1) is refused in one line. Keras divides by max(sqrt(variance), 1e-7)."""
    keys = sorted(arrays, key=natural_key)
    named = {k.split(":")[0]: arrays[k] for k in keys}
    mean, var = (named["mean"], named["variance"]) if {"mean", "variance"} <= named.keys() else (
        arrays[keys[0]], arrays[keys[1]]) if len(keys) >= 2 else (None, None)
    if mean is None or np.size(mean) != 1 or np.size(var) != 1:
        raise WeightsError(f"{path}: layer '{name}' is a Normalization layer with a mean and variance per pixel "
                           f"({np.size(mean)} values); the atlas folds one mean and std for all pixels: export the "
                           "model without it and normalise the images before, or adapt Normalization(axis=None) "
                           "and save again")
    return float(np.reshape(mean, -1)[0]), max(math.sqrt(float(np.reshape(var, -1)[0])), 1e-7)


def _layers(path: Path, h5, kind: str, normalizations: tuple[str, ...] = ()) -> Layers:
    weights, biases, norm = [], [], None
    for parent, arrays in _dense_groups(path, h5):
        if _layer_name(parent) in normalizations:
            norm = _normalization(path, _layer_name(parent), arrays)
            continue
        matrices = {k: v for k, v in arrays.items() if v.ndim == 2}
        vectors = {k: v for k, v in arrays.items() if v.ndim == 1}
        if len(matrices) != 1 or len(vectors) > 1 or len(arrays) != len(matrices) + len(vectors):
            shapes = ", ".join(f"{k} {v.shape}" for k, v in sorted(arrays.items()))
            raise WeightsError(f"{path}: layer '{parent}' holds {shapes}, not a Dense layer's kernel and bias; the "
                               "atlas explains chains of Dense layers (with Flatten, Dropout and activations between them), so "
                               "this network cannot be explained")
        (wname, w), = matrices.items()
        weights.append((f"{parent}/{wname}", w))
        biases.append(next(((f"{parent}/{k}", v) for k, v in vectors.items()), (f"{parent}/bias", None)))
    if not weights:
        raise WeightsError(f"{path}: an HDF5 file without layer weights; save the model with Keras's "
                           "model.save('net.keras') or model.save_weights('net.weights.h5')")
    layers = Layers(kind, weights, biases, layout="in_out")
    if norm is not None:
        layers.input_norm, layers.input_norm_source = norm, f"the file's Normalization layer '{normalizations[0]}'"
    return layers


def weights_h5(path: Path, raw: bytes, kind: str = "Keras HDF5 weights", config: dict | None = None) -> Layers:
    """Keras weights: Dense kernels (in, out) and biases. Bare weights (.weights.h5) hold no activations; a
    legacy model.save('net.h5') keeps its model config in the 'model_config' attribute, and `config` is a
    .keras archive's: from either, the activations (and a Rescaling or Normalization layer) are read."""
    import h5py
    try:
        with h5py.File(io.BytesIO(raw), "r") as h5:
            if config is None and "model_config" in h5.attrs:  # Keras's legacy HDF5 model.save('net.h5')
                try:
                    value = h5.attrs["model_config"]
                    config = json.loads(value.decode() if isinstance(value, bytes) else value)
                except ValueError:
                    raise WeightsError(f"{path}: its 'model_config' attribute is not valid JSON; save the model "
                                       "again with model.save('net.keras')") from None
                kind = "a Keras model (legacy HDF5 model.save)"
            layers = _layers(path, h5, kind, _normalization_names(config) if config else ())
    except OSError as e:
        raise WeightsError(f"{path}: not a readable HDF5 file ({e})") from None
    if config is not None:
        acts = _activations(path, config, layers)
        if len(acts) >= 2:
            layers.hidden, layers.output = hidden_activation(path, acts[:-1], "Dense layer"), acts[-1]
    return layers


def _config_layers(config: dict) -> list[dict]:
    inner = config.get("config", {}) if isinstance(config, dict) else {}
    layers = inner.get("layers", []) if isinstance(inner, dict) else []
    return [layer for layer in layers if isinstance(layer, dict)]


def _normalization_names(config: dict) -> tuple[str, ...]:
    return tuple(layer.get("config", {}).get("name", "") for layer in _config_layers(config)
                 if layer.get("class_name") == "Normalization")


def _activations(path: Path, config: dict, found: Layers) -> list[str | None]:
    """The activation after each Dense layer of a Keras model config, in order (None: linear); a Rescaling
    layer before the first Dense sets found.input_scale and input_offset. A ReLU layer with parameters (clipped,
    leaky, thresholded) and two activations in a row are refused: the atlas's relu is neither."""
    acts: list[str | None] = []
    previous = ""  # the layer that set the last activation
    for layer in _config_layers(config):
        cls, cfg = layer.get("class_name"), layer.get("config", {})
        lname = cfg.get("name")
        if cls == "Rescaling" and not acts:
            scale, offset = cfg.get("scale", 1.0), cfg.get("offset", 0.0)
            if not all(isinstance(v, (int, float)) for v in (scale, offset)):
                raise WeightsError(f"{path}: a Rescaling layer with per-channel scale {scale!r}; the atlas folds one "
                                   "scale and offset for all pixels")
            found.input_scale, found.input_offset = float(scale), float(offset)
            continue
        if cls == "Normalization":
            if acts:
                raise WeightsError(f"{path}: Normalization layer '{lname}' comes after a Dense layer; the atlas "
                                   "folds a normalisation of the input images only")
            continue  # read with the weights (_normalization)
        if cls == "ReLU":
            odd = {k: cfg[k] for k, default in (("max_value", None), ("negative_slope", 0.0), ("threshold", 0.0))
                   if cfg.get(k, default) != default}
            if odd:
                raise WeightsError(f"{path}: layer '{lname}' is ReLU({', '.join(f'{k}={v}' for k, v in odd.items())}), "
                                   "not the plain relu the atlas explains (max(z, 0)); train it with ReLU() or "
                                   "Dense(activation='relu')")
        name = cfg.get("activation") if cls in ("Dense", "Activation") else {
            "ReLU": "relu", "Softmax": "softmax"}.get(cls, "")
        if cls not in ("Dense", "Activation", "ReLU", "Softmax", "InputLayer", "Flatten", "Dropout", "Reshape"):
            raise WeightsError(f"{path}: config.json has a {cls} layer{f' ({lname!r})' if lname else ''}; the atlas "
                               "explains Dense layers (with Flatten, Dropout and activations between them)")
        if isinstance(name, dict):  # Keras 3 may serialise the activation as an object
            if name.get("config") and any(k != "name" for k in name["config"]):
                raise WeightsError(f"{path}: layer '{lname}' has the activation {name.get('class_name')} with "
                                   f"parameters {name['config']}; the atlas explains plain sigmoid, relu and tanh")
            name = name.get("config", {}).get("name") or name.get("class_name")
        if name == "log_softmax":  # z - logsumexp(z): softmax's argmax and the same differences between logits
            found.notes.append(f"layer '{lname}' applies log_softmax, read as softmax (same argmax, same logit "
                               "differences)")
            name = "softmax"
        if name not in ACTIVATIONS and name != "":
            raise WeightsError(f"{path}: activation {name!r} of layer '{lname}' is not one the atlas "
                               "explains (sigmoid, relu, tanh; softmax or sigmoid outputs)")
        if cls == "Dense":
            acts.append(ACTIVATIONS[name or "linear"])
            previous = lname if acts[-1] else ""
        elif acts and name and ACTIVATIONS[name] is not None:
            if acts[-1] is not None:
                raise WeightsError(f"{path}: layer '{lname}' applies {name} after '{previous}' already applied "
                                   f"{acts[-1]}: two activations in a row, which no one activation the atlas explains "
                                   "equals; train the network with one activation per layer")
            acts[-1], previous = ACTIVATIONS[name], lname
    return acts


def keras_archive(path: Path, archive: zipfile.ZipFile) -> Layers:
    """A Keras 3 .keras zip: the activations from config.json, the weights from model.weights.h5."""
    try:
        config = json.loads(archive.read("config.json"))
        raw = archive.read("model.weights.h5")
    except (KeyError, ValueError, zipfile.BadZipFile) as e:
        raise WeightsError(f"{path}: a .keras archive without a readable config.json and model.weights.h5 ({e})") from None
    return weights_h5(path, raw, "a Keras model (.keras)", config)
