"""A network of any depth as the atlas reads it: its parameter names, and one float64 forward pass.

params: {"W1": (H1, D), "b1": (H1,), "W2": (H2, H1), "b2", ..., "W{L+1}": (K, HL), "b{L+1}": (K,)} for L
hidden layers; one hidden layer is W1, b1, W2, b2. Every hidden layer applies the same activation
(network.activation), the output layer network.output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activations


def param_names(depth: int) -> tuple[str, ...]:
    """("W1", "b1", ..., "W{depth+1}", "b{depth+1}") for `depth` hidden layers, in layer order."""
    return tuple(f"{kind}{i}" for i in range(1, depth + 2) for kind in ("W", "b"))


def depth(params: dict) -> int:
    """The number of hidden layers: one less than the number of weight matrices W1, W2, ..."""
    n = 0
    while f"W{n + 1}" in params:
        n += 1
    return n - 1


def hidden_sizes(params: dict) -> list[int]:
    """Units of each hidden layer, first first."""
    return [int(params[f"W{i}"].shape[0]) for i in range(1, depth(params) + 1)]


def sizes(params: dict) -> list[int]:
    """[inputs, hidden..., outputs]."""
    return [int(params["W1"].shape[1]), *hidden_sizes(params), int(params[f"W{depth(params) + 1}"].shape[0])]


@dataclass(frozen=True)
class Forward:
    """The intact network on a batch, in float64. zs[l], acts[l] are hidden layer l+1's pre-activations and
    activations, each (N, H_{l+1}); logits (N, K) the output pre-activations, outputs (N, K) after the
    output activation."""
    zs: list[np.ndarray]
    acts: list[np.ndarray]
    logits: np.ndarray
    outputs: np.ndarray
    predicted: np.ndarray  # (N,) argmax of the logits


def as64(params: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float64) for k, v in params.items()}


def from_layer(p: dict, a: np.ndarray, layer: int, hidden: str) -> tuple[list, list, np.ndarray]:
    """Run the float64 params p on from hidden layer `layer`'s activations a (N, H_layer) (layer 0: the
    inputs): (pre-activations and activations of layers layer+1 .. L, logits)."""
    L = depth(p)
    zs, acts = [], []
    for i in range(layer + 1, L + 1):
        z = a @ p[f"W{i}"].T + p[f"b{i}"]
        a = activations.apply(hidden, z)
        zs.append(z)
        acts.append(a)
    return zs, acts, a @ p[f"W{L + 1}"].T + p[f"b{L + 1}"]


def forward(params: dict, X: np.ndarray, hidden: str = "sigmoid", output: str = "sigmoid") -> Forward:
    """The whole network on (N, D) inputs, in float64; every hidden layer applies `hidden`."""
    zs, acts, logits = from_layer(as64(params), np.asarray(X, np.float64), 0, hidden)
    return Forward(zs, acts, logits, activations.apply(output, logits), logits.argmax(axis=1))


def unit_input_gradients(p: dict, X: np.ndarray, layer: int, hidden: str, chunk: int = 500) -> np.ndarray:
    """(H_layer, D): the gradient of each unit's pre-activation in hidden layer `layer` (1-based) with
    respect to the input, summed over the N images of X (divide by N for the mean). For layer 1 every
    image's gradient is W1[j] itself. p in float64.

    Backpropagates one row per unit, `chunk` images at a time: g (n, H_layer, H_i) = d z_layer / d a_i;
    the sum over images is taken before the last product with W1 (which all images share).
    """
    X = np.asarray(X, np.float64)
    if layer == 1:
        return p["W1"] * len(X)
    below = {k: v for k, v in p.items() if int(k[1:]) <= layer}  # hidden layer `layer` as if it were the output
    total = np.zeros((p[f"W{layer}"].shape[0], p["W1"].shape[0]))  # (H_layer, H1)
    for start in range(0, len(X), chunk):
        zs, _, _ = from_layer(below, X[start:start + chunk], 0, hidden)  # pre-activations of layers 1 .. layer-1
        g = p[f"W{layer}"][None, :, :]  # (1, H_layer, H_{layer-1})
        for i in range(layer - 1, 1, -1):
            g = (g * activations.derivative(hidden, zs[i - 1])[:, None, :]) @ p[f"W{i}"]  # (n, H_layer, H_{i-1})
        total += (g * activations.derivative(hidden, zs[0])[:, None, :]).sum(axis=0)
    return total @ p["W1"]


def input_gradient(p: dict, X: np.ndarray, direction: np.ndarray, hidden: str) -> np.ndarray:
    """(N, D) gradient of direction . logits with respect to each input of (N, D) X; direction (K,) for all
    images or (N, K) one per image. p in float64."""
    L = depth(p)
    zs, _, _ = from_layer(p, np.asarray(X, np.float64), 0, hidden)
    g = np.atleast_2d(direction) @ p[f"W{L + 1}"]  # (N or 1, H_L): d s / d a_L
    for i in range(L, 0, -1):
        g = (g * activations.derivative(hidden, zs[i - 1])) @ p[f"W{i}"]  # d s / d a_{i-1} (a_0 = x)
    return np.broadcast_to(g, (len(X), g.shape[1]))


def unit_gradients(p: dict, X: np.ndarray, layer: int, hidden: str) -> np.ndarray:
    """(U, D): row u is the gradient of unit u's pre-activation in hidden layer `layer` with respect to
    the input, at the input X[u] (X is (U, D), one image per unit of the layer). p in float64."""
    below = {k: v for k, v in p.items() if int(k[1:]) <= layer}
    zs, _, _ = from_layer(below, np.asarray(X, np.float64), 0, hidden)  # layers 1 .. layer-1
    g = p[f"W{layer}"]  # (U, H_{layer-1}): d z_u / d a_{layer-1}
    for i in range(layer - 1, 0, -1):
        g = (g * activations.derivative(hidden, zs[i - 1])) @ p[f"W{i}"]
    return g


def jacobian_sums(p: dict, X: np.ndarray, y: np.ndarray, n_classes: int, hidden: str,
                  chunk: int = 500) -> np.ndarray:
    """(C, K, H1): for each class c, the sum over its images x of d logits / d z1 (x), the Jacobian of the
    logits with respect to the first hidden layer's pre-activations. Times W1 it is the sum of the input
    Jacobians d logits / dx, which all images share the last factor of: so a class's mean input gradient
    of any direction costs one product with W1. p in float64."""
    L = depth(p)
    out = np.zeros((n_classes, p[f"W{L + 1}"].shape[0], p["W1"].shape[0]))
    for start in range(0, len(X), chunk):
        zs, _, _ = from_layer(p, np.asarray(X[start:start + chunk], np.float64), 0, hidden)
        g = p[f"W{L + 1}"][None, :, :]  # (1, K, H_L)
        for i in range(L, 1, -1):
            g = (g * activations.derivative(hidden, zs[i - 1])[:, None, :]) @ p[f"W{i}"]  # (n, K, H_{i-1})
        g = g * activations.derivative(hidden, zs[0])[:, None, :]  # (n, K, H1)
        np.add.at(out, y[start:start + chunk], g)
    return out
