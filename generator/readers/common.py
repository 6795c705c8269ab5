"""What every reader shares: the `Layers` a reader returns, and turning them into W1, b1, W2, b2."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import WeightsError

# What the "anything else" messages list: every format import_network reads.
FORMATS = ("Nielsen network2 JSON, .npz (weights_0, biases_0, ... or W1, b1, W2, b2), .safetensors, "
           "Keras .keras or .weights.h5, ONNX (.onnx) and PyTorch .pt/.pth state_dicts")


@dataclass
class Layers:
    """A one-hidden-layer network as a file stores it.

    weights: [(name, array)] of the two linear layers in order, each (out, in), or (in, out) when
    `layout` says so or when only that chains; biases: [(name, array or None)] beside them (None: the
    file has no bias for that layer). hidden / output: the activations the file records ("relu",
    "softmax", ...), None where it records none.
    """
    kind: str  # "network1-style arrays (weights_0, biases_0, ...)": what the home page calls the format
    weights: list[tuple[str, object]]
    biases: list[tuple[str, object | None]]
    layout: str = "either"  # "out_in" (PyTorch, Nielsen), "in_out" (Keras kernels), "either": by the shapes
    hidden: str | None = None
    output: str | None = None
    notes: list[str] = field(default_factory=list)
    # The model's own input scaling (Keras's Rescaling layer): it sees raw_pixel * input_scale + input_offset.
    input_scale: float = 1.0
    input_offset: float = 0.0


def as_array(path: Path, name: str, value, ndim: int) -> np.ndarray:
    """A finite float32 array of `ndim` dimensions from JSON lists or a stored array; (n, 1) biases -> (n,)."""
    try:
        array = np.array(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise WeightsError(f"{path}: '{name}' is not a rectangular array of numbers") from None
    if ndim == 1 and array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)  # Nielsen stores biases as column vectors (n, 1), ONNX sometimes as (1, n)
    if array.ndim != ndim:
        raise WeightsError(f"{path}: '{name}' has shape {array.shape}, expected {ndim} dimension(s)")
    if not np.isfinite(array).all():
        raise WeightsError(f"{path}: '{name}' holds NaN or Inf values; export the network again")
    return array.astype(np.float32)


def natural_key(name: str) -> list:
    """'fc10.weight' sorts after 'fc2.weight': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def state_dict_layers(path: Path, tensors: dict[str, np.ndarray], kind: str) -> Layers:
    """The Linear layers of a PyTorch state_dict ({'0.weight': (out, in), '0.bias': (out,), ...}),
    ordered by their names ('0' < '2', 'fc1' < 'fc2'). Anything but Linear weights and biases is refused."""
    prefixes = sorted((k[: -len(".weight")] for k in tensors if k.endswith(".weight")), key=natural_key)
    if not prefixes:
        raise WeightsError(f"{path}: no tensors named '<layer>.weight' (a PyTorch state_dict of Linear layers); "
                           f"found {sorted(tensors)[:6]}")
    known = {f"{p}.{s}" for p in prefixes for s in ("weight", "bias")}
    other = sorted(set(tensors) - known)
    if other:
        raise WeightsError(f"{path}: tensor '{other[0]}' is not the weight or bias of a Linear layer; the atlas "
                           "explains networks of two Linear layers (784 -> hidden -> classes)")
    for p in prefixes:
        if np.ndim(tensors[f"{p}.weight"]) != 2:
            raise WeightsError(f"{path}: '{p}.weight' has shape {np.shape(tensors[p + '.weight'])}; only Linear "
                               "layers (2-D weights) are explained")
    return Layers(kind, [(f"{p}.weight", tensors[f"{p}.weight"]) for p in prefixes],
                  [(f"{p}.bias", tensors.get(f"{p}.bias")) for p in prefixes], layout="either")


def assemble(path: Path, layers: Layers, n_inputs: int | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Layers -> ({W1 (H, D), b1 (H,), W2 (K, H), b2 (K,)} float32, notes for the home page).

    (in, out) matrices are recognised when the shapes chain only that way (or the biases or `n_inputs`
    settle a tie) and transposed, with a note saying so; absent biases become zeros, with a note.
    Raises WeightsError naming the layer when there are not exactly two layers or they do not chain.
    """
    (n_w, n_b) = (len(layers.weights), len(layers.biases))
    if n_w != 2:
        raise WeightsError(f"{path}: {n_w} weight matrices ({', '.join(n for n, _ in layers.weights[:4])}); the atlas "
                           "explains networks with exactly one hidden layer (2 matrices)")
    if n_b != 2:
        raise WeightsError(f"{path}: {n_b} bias vectors for 2 weight matrices; expected one per layer (or none)")
    (n0, w0), (n1, w1) = [(name, as_array(path, name, v, 2)) for name, v in layers.weights]
    biases = [(name, None if v is None else as_array(path, name, v, 1)) for name, v in layers.biases]

    def fits(transposed: bool) -> bool:
        a, b = (w0.T, w1.T) if transposed else (w0, w1)
        return b.shape[1] == a.shape[0]

    def biases_fit(transposed: bool) -> bool:
        a, b = (w0.T, w1.T) if transposed else (w0, w1)
        return all(v is None or len(v) == w.shape[0] for (_, v), w in zip(biases, (a, b)))

    options = [t for t in (False, True) if fits(t) and layers.layout != ("in_out" if not t else "out_in")]
    if len(options) == 2:  # square-ish shapes chain both ways: let the biases, then the data, decide
        options = [t for t in options if biases_fit(t)] or options
    if len(options) == 2 and n_inputs is not None:
        options = [t for t in options if (w0.T if t else w0).shape[1] == n_inputs] or options
    if not options:
        raise WeightsError(f"{path}: '{n0}' is {w0.shape} and '{n1}' is {w1.shape}: they chain neither as (out, in) "
                           f"matrices ('{n1}' having {w0.shape[0]} columns) nor transposed as (in, out) ones "
                           f"('{n1}' having {w0.shape[1]} rows); is this a one-hidden-layer network?")
    transposed = options[0]
    notes = []
    if transposed:
        w0, w1 = np.ascontiguousarray(w0.T), np.ascontiguousarray(w1.T)
        notes.append("matrices stored as (in, out), transposed")
    params = {"W1": w0, "W2": w1}
    missing = []
    for (name, b), w, key in zip(biases, (w0, w1), ("b1", "b2")):
        if b is None:
            missing.append(key)
            b = np.zeros(w.shape[0], np.float32)
        elif len(b) != w.shape[0]:
            raise WeightsError(f"{path}: '{name}' has {len(b)} values, expected {w.shape[0]} (one per unit)")
        params[key] = b
    if missing:
        notes.append("no biases in the file, taken as 0" if len(missing) == 2 else
                     f"no {'hidden' if missing == ['b1'] else 'output'} biases in the file, taken as 0")
    return {k: params[k] for k in ("W1", "b1", "W2", "b2")}, notes
