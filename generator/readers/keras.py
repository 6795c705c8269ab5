"""Keras: a Keras 3 .keras archive (config.json + model.weights.h5) and bare HDF5 weights (.weights.h5, .h5)."""

from __future__ import annotations

import io
import json
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
        layer = parent.removeprefix("model_weights/").removeprefix("layers/").split("/")[0]
        return (order.index(layer) if layer in order else len(order), natural_key(parent))

    return sorted(groups.items(), key=lambda item: key(item[0]))


def _layers(path: Path, h5, kind: str) -> Layers:
    weights, biases = [], []
    for parent, arrays in _dense_groups(path, h5):
        matrices = {k: v for k, v in arrays.items() if v.ndim == 2}
        vectors = {k: v for k, v in arrays.items() if v.ndim == 1}
        if len(matrices) != 1 or len(vectors) > 1 or len(arrays) != len(matrices) + len(vectors):
            shapes = ", ".join(f"{k} {v.shape}" for k, v in sorted(arrays.items()))
            raise WeightsError(f"{path}: layer '{parent}' holds {shapes}, not a Dense layer's kernel and bias; the "
                               "atlas explains chains of Dense layers")
        (wname, w), = matrices.items()
        weights.append((f"{parent}/{wname}", w))
        biases.append(next(((f"{parent}/{k}", v) for k, v in vectors.items()), (f"{parent}/bias", None)))
    if not weights:
        raise WeightsError(f"{path}: an HDF5 file without layer weights; save the model with Keras's "
                           "model.save('net.keras') or model.save_weights('net.weights.h5')")
    return Layers(kind, weights, biases, layout="in_out")


def weights_h5(path: Path, raw: bytes, kind: str = "Keras HDF5 weights") -> Layers:
    """Bare Keras weights: Dense kernels (in, out) and biases, no activations (the file does not hold them)."""
    import h5py
    try:
        with h5py.File(io.BytesIO(raw), "r") as h5:
            return _layers(path, h5, kind)
    except OSError as e:
        raise WeightsError(f"{path}: not a readable HDF5 file ({e})") from None


def _activations(path: Path, config: dict, found: Layers) -> list[str | None]:
    """The activation after each Dense layer of a Keras model config, in order (None: linear); a Rescaling
    layer before the first Dense sets found.input_scale and input_offset."""
    inner = config.get("config", {})
    layers = inner.get("layers", []) if isinstance(inner, dict) else []
    acts: list[str | None] = []
    for layer in layers:
        cls, cfg = layer.get("class_name"), layer.get("config", {})
        if cls == "Rescaling" and not acts:
            scale, offset = cfg.get("scale", 1.0), cfg.get("offset", 0.0)
            if not all(isinstance(v, (int, float)) for v in (scale, offset)):
                raise WeightsError(f"{path}: a Rescaling layer with per-channel scale {scale!r}; the atlas folds one "
                                   "scale and offset for all pixels")
            found.input_scale, found.input_offset = float(scale), float(offset)
            continue
        name = cfg.get("activation") if cls in ("Dense", "Activation") else {
            "ReLU": "relu", "Softmax": "softmax"}.get(cls, "")
        if cls not in ("Dense", "Activation", "ReLU", "Softmax", "InputLayer", "Flatten", "Dropout", "Reshape"):
            raise WeightsError(f"{path}: config.json has a {cls} layer; the atlas explains Dense layers "
                               "(with Flatten, Dropout and activations between them)")
        if isinstance(name, dict):  # Keras 3 may serialise the activation as an object
            name = name.get("config", {}).get("name") or name.get("class_name")
        if name not in ACTIVATIONS and name != "":
            raise WeightsError(f"{path}: activation {name!r} of layer '{cfg.get('name')}' is not one the atlas "
                               "explains (sigmoid, relu, tanh; softmax or sigmoid outputs)")
        if cls == "Dense":
            acts.append(ACTIVATIONS[name or "linear"])
        elif acts and name and acts[-1] is None:
            acts[-1] = ACTIVATIONS[name]
    return acts


def keras_archive(path: Path, archive: zipfile.ZipFile) -> Layers:
    """A Keras 3 .keras zip: the activations from config.json, the weights from model.weights.h5."""
    try:
        config = json.loads(archive.read("config.json"))
        raw = archive.read("model.weights.h5")
    except (KeyError, ValueError, zipfile.BadZipFile) as e:
        raise WeightsError(f"{path}: a .keras archive without a readable config.json and model.weights.h5 ({e})") from None
    layers = weights_h5(path, raw, "a Keras model (.keras)")
    acts = _activations(path, config, layers)
    if len(acts) >= 2:
        layers.hidden, layers.output = hidden_activation(path, acts[:-1], "Dense layer"), acts[-1]
    return layers
