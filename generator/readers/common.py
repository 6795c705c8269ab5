"""What every reader shares: the `Layers` a reader returns, and turning them into W1, b1, W2, b2, ... (any depth)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from ..network import param_names

# What the "anything else" messages list: every format import_network reads.
FORMATS = ("Nielsen network2 JSON, .npz (weights_0, biases_0, ... or W1, b1, W2, b2), .safetensors, "
           "Keras .keras or .weights.h5, ONNX (.onnx) and PyTorch .pt/.pth state_dicts")


@dataclass
class Layers:
    """A network of linear layers as a file stores it.

    weights: [(name, array)] of the linear layers in order (two for one hidden layer), each (out, in), or (in, out) when
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
    # The model's own input normalisation (x - mean) / std of x = pixel / pixel_max, and where the file keeps it
    # (npz 'mean' and 'std' arrays, a state_dict's mean/std buffers, ONNX Sub and Div before the first layer).
    input_norm: tuple[float, float] | None = None
    input_norm_source: str = ""


def hidden_activation(path: Path, found: list[str | None], what: str) -> str:
    """The one activation of every hidden layer, from what the file records after each hidden `what` in
    order; refuses a linear hidden layer, a softmax one, and layers that differ (network.activation is one)."""
    if None in found:
        i = found.index(None) + 1
        raise WeightsError(f"{path}: no activation between {what}s {i} and {i + 1} (linear); the atlas explains "
                           "sigmoid, relu or tanh hidden units")
    if "softmax" in found:
        raise WeightsError(f"{path}: a Softmax after " + ("the hidden layer" if len(found) == 1 else
                           f"hidden layer {found.index('softmax') + 1}") + "; the atlas explains sigmoid, relu or "
                           "tanh hidden units")
    if len(set(found)) > 1:
        raise WeightsError(f"{path}: the hidden layers use {', '.join(found)}; the atlas explains networks whose "
                           "hidden layers share one activation (network.activation)")
    return found[0]


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


def scalar_norm(path: Path, mean, std, where: str) -> tuple[float, float]:
    """(mean, std) from arrays holding one number each (a per-pixel normalisation is refused in one line)."""
    m, s = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if m.size != 1 or s.size != 1:
        raise WeightsError(f"{path}: {where} hold {m.size} and {s.size} values, a per-pixel normalisation; the atlas "
                           "folds one mean and std for all pixels: export the network without it and pass "
                           "--set data.mean=... --set data.std=...")
    m, s = float(m.reshape(-1)[0]), float(s.reshape(-1)[0])
    if not (math.isfinite(m) and math.isfinite(s) and s > 0):
        raise WeightsError(f"{path}: {where} are mean {m} and std {s}; a std must be a positive number")
    return m, s


def natural_key(name: str) -> list:
    """'fc10.weight' sorts after 'fc2.weight': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def chain_orders(names: list[str], shapes: dict[str, tuple[int, int]]) -> list[list[str]]:
    """The orders of the (out, in) matrices `names` whose shapes chain (each layer's inputs are the previous
    layer's outputs): [names] when the given order chains, else every order that does (at most two are looked
    for: two mean the shapes cannot settle it)."""
    if all(shapes[b][1] == shapes[a][0] for a, b in zip(names, names[1:])):
        return [names]
    found = []

    def extend(order: list[str], rest: list[str]) -> None:  # depth-first over the orders that chain so far
        if len(found) > 1:
            return
        if not rest:
            found.append(order)
        for n in rest:
            if not order or shapes[n][1] == shapes[order[-1]][0]:
                extend(order + [n], [r for r in rest if r != n])

    extend([], list(names))
    return found


def state_dict_layers(path: Path, tensors: dict[str, np.ndarray], kind: str) -> Layers:
    """The Linear layers of a PyTorch state_dict ({'0.weight': (out, in), '0.bias': (out,), ...}), ordered by
    their names ('0' < '2', 'fc1' < 'fc2') when their shapes chain that way, else in the one order their shapes
    chain ('features' before 'classifier'). Scalar 'mean' and 'std' buffers are the inputs' normalisation;
    anything else but Linear weights and biases is refused."""
    tensors = dict(tensors)
    norm_keys = [k for k in tensors if k.rpartition(".")[2] in ("mean", "std") and not k.endswith((".weight", ".bias"))]
    norm = None
    if norm_keys:  # register_buffer('mean', ...), register_buffer('std', ...): Normalize inside the model
        means = [k for k in norm_keys if k.endswith("mean")]
        stds = [k for k in norm_keys if k.endswith("std")]
        if len(means) != 1 or len(stds) != 1:
            raise WeightsError(f"{path}: tensors {', '.join(sorted(norm_keys))} look like an input normalisation, "
                               "but not one mean and one std; export the Linear layers only and pass "
                               "--set data.mean=... --set data.std=...")
        norm = scalar_norm(path, tensors.pop(means[0]), tensors.pop(stds[0]), f"its '{means[0]}' and '{stds[0]}' "
                                                                               "tensors")
    prefixes = sorted((k[: -len(".weight")] for k in tensors if k.endswith(".weight")), key=natural_key)
    if not prefixes:
        raise WeightsError(f"{path}: no tensors named '<layer>.weight' (a PyTorch state_dict of Linear layers); "
                           f"found {sorted(tensors)[:6]}")
    known = {f"{p}.{s}" for p in prefixes for s in ("weight", "bias")}
    other = sorted(set(tensors) - known)
    if other:
        raise WeightsError(f"{path}: tensor '{other[0]}' is not the weight or bias of a Linear layer; the atlas "
                           "explains chains of Linear layers (784 -> hidden ... -> classes): save the state_dict "
                           "of those only")
    for p in prefixes:
        if np.ndim(tensors[f"{p}.weight"]) != 2:
            raise WeightsError(f"{path}: '{p}.weight' has shape {np.shape(tensors[p + '.weight'])}; only Linear "
                               "layers (2-D weights) are explained: a convolution or normalisation layer has no place in the "
                               "atlas's picture of a unit's weights per pixel, so this network cannot be explained")
    notes, order = [], prefixes
    shapes = {p: np.shape(tensors[f"{p}.weight"]) for p in prefixes}
    orders = chain_orders(prefixes, shapes)
    if not orders:  # matrices stored (in, out): assemble transposes them
        orders = chain_orders(prefixes, {p: s[::-1] for p, s in shapes.items()})
    if len(orders) > 1:
        raise WeightsError(f"{path}: the layers {', '.join(prefixes)} do not chain in the order of their names, and "
                           f"their shapes chain in more than one order ({', '.join(orders[0])} or "
                           f"{', '.join(orders[1])}); rename them so they sort in layer order (fc1, fc2, ...)")
    if orders and orders[0] != prefixes:
        order = orders[0]
        notes.append(f"layers ordered by their shapes ({', '.join(order)}), not by their names")
    return Layers(kind, [(f"{p}.weight", tensors[f"{p}.weight"]) for p in order],
                  [(f"{p}.bias", tensors.get(f"{p}.bias")) for p in order], layout="either", notes=notes,
                  input_norm=norm, input_norm_source=f"the file's '{means[0]}' and '{stds[0]}' tensors" if norm else "")


def assemble(path: Path, layers: Layers, n_inputs: int | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Layers -> ({W1 (H1, D), b1 (H1,), ..., W{L+1} (K, HL), b{L+1} (K,)} float32, notes for the home page).

    (in, out) matrices are recognised when the shapes chain only that way (or the biases or `n_inputs`
    settle a tie) and transposed, with a note saying so; absent biases become zeros, with a note.
    Raises WeightsError naming the layer when there are fewer than two layers or they do not chain.
    """
    (n_w, n_b) = (len(layers.weights), len(layers.biases))
    if n_w < 2:
        raise WeightsError(f"{path}: {n_w} weight matrix ({', '.join(n for n, _ in layers.weights[:4]) or 'none'}); "
                           "the atlas explains networks with at least one hidden layer (2 or more matrices)")
    if n_b != n_w:
        raise WeightsError(f"{path}: {n_b} bias vectors for {n_w} weight matrices; expected one per layer (or none)")
    ws = [(name, as_array(path, name, v, 2)) for name, v in layers.weights]
    biases = [(name, None if v is None else as_array(path, name, v, 1)) for name, v in layers.biases]

    def oriented(transposed: bool) -> list[np.ndarray]:
        return [w.T if transposed else w for _, w in ws]

    def fits(transposed: bool) -> bool:
        m = oriented(transposed)
        return all(b.shape[1] == a.shape[0] for a, b in zip(m, m[1:]))

    def biases_fit(transposed: bool) -> bool:
        return all(v is None or len(v) == w.shape[0] for (_, v), w in zip(biases, oriented(transposed)))

    options = [t for t in (False, True) if fits(t) and layers.layout != ("in_out" if not t else "out_in")]
    if len(options) == 2:  # square-ish shapes chain both ways: let the biases, then the data, decide
        options = [t for t in options if biases_fit(t)] or options
    if len(options) == 2 and n_inputs is not None:
        options = [t for t in options if oriented(t)[0].shape[1] == n_inputs] or options
    if not options:
        if fits(True) or fits(False):  # they chain, but not in the layout this format always stores
            stored, chain = ("(in, out)", "(out, in)") if layers.layout == "in_out" else ("(out, in)", "(in, out)")
            raise WeightsError(f"{path}: {layers.kind} stores {stored} matrices, but these chain only as {chain} "
                               f"ones ({', '.join(f'{n} {w.shape}' for n, w in ws)}); is this the file it claims to "
                               "be? Save it again with the framework's own export")
        pairs = list(zip(ws, ws[1:]))  # name the first pair that does not chain as (out, in)
        (n0, w0), (n1, w1) = next((q for q in pairs if q[1][1].shape[1] != q[0][1].shape[0]), pairs[0])
        raise WeightsError(f"{path}: '{n0}' is {w0.shape} and '{n1}' is {w1.shape}: they chain neither as (out, in) "
                           f"matrices ('{n1}' having {w0.shape[0]} columns) nor transposed as (in, out) ones "
                           f"('{n1}' having {w0.shape[1]} rows); the atlas reads a chain of linear layers, each "
                           "matrix taking the previous one's outputs: check the file holds only those, in order")
    transposed = options[0]
    notes = []
    matrices = [np.ascontiguousarray(w) for w in oriented(transposed)]
    if transposed:
        notes.append("matrices stored as (in, out), transposed")
    params, missing = {}, []
    for i, ((name, b), w) in enumerate(zip(biases, matrices), start=1):
        if b is None:
            missing.append(i)
            b = np.zeros(w.shape[0], np.float32)
        elif len(b) != w.shape[0]:
            raise WeightsError(f"{path}: '{name}' has {len(b)} values, expected {w.shape[0]} (one per unit of the "
                               f"layer whose weights are {w.shape}); check that each bias is saved beside its own "
                               "layer's weights")
        params[f"W{i}"], params[f"b{i}"] = w, b
    if len(missing) == n_w:
        notes.append("no biases in the file, taken as 0")
    elif missing and n_w == 2:
        notes.append(f"no {'hidden' if missing == [1] else 'output'} biases in the file, taken as 0")
    elif missing:
        notes.append(f"no biases for layer{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} in the "
                     "file (1 = first hidden), taken as 0")
    return {k: params[k] for k in param_names(n_w - 1)}, notes
