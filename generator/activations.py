"""The activation functions a network may use, by name, in NumPy (float64 in, float64 out).

HIDDEN names the hidden layer's choices (`network.activation`), OUTPUT the output layer's
(`network.output`). Each hidden activation comes with its derivative and the range the atlas draws
its values on (histograms, saturation): sigmoid and tanh are bounded, ReLU is not, so its range is
[0, the largest activation seen].
"""

from __future__ import annotations

import numpy as np

from .config import HIDDEN, OUTPUT  # noqa: F401 (the names, which the config checks without NumPy)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z), without overflow warnings for large |z|."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def tanh(z: np.ndarray) -> np.ndarray:
    return np.tanh(z)


def softmax(z: np.ndarray) -> np.ndarray:
    """(N, K) -> (N, K) rows summing to 1, shifted by the row maximum so nothing overflows."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


FUNCTIONS = {"sigmoid": sigmoid, "relu": relu, "tanh": tanh, "softmax": softmax}


def apply(name: str, z: np.ndarray) -> np.ndarray:
    """The activation `name` (HIDDEN or OUTPUT) of pre-activations z, same shape."""
    return FUNCTIONS[name](z)


def derivative(name: str, z: np.ndarray) -> np.ndarray:
    """Element-wise d activation / dz of a hidden activation at z, same shape."""
    if name == "sigmoid":
        a = sigmoid(z)
        return a * (1 - a)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(np.float64)
    raise ValueError(f"no derivative for activation {name!r}")


def value_range(name: str, activations: np.ndarray) -> tuple[float, float]:
    """(low, high) that the hidden activations of `name` are drawn on: (0, 1) for sigmoid, (-1, 1) for
    tanh, (0, max activation) for ReLU (1 when every activation is 0)."""
    if name == "tanh":
        return -1.0, 1.0
    if name == "relu":
        top = float(activations.max()) if activations.size else 0.0
        return 0.0, top if top > 0 else 1.0
    return 0.0, 1.0


def loss(output: str, Z2: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N,) cross-entropy of each example with integer label y under the output activation:
    sigmoid units -> sum of binary cross-entropies (Nielsen's CrossEntropyCost), softmax -> -log p[y]."""
    Z2 = np.asarray(Z2, np.float64)
    if output == "softmax":
        shifted = Z2 - Z2.max(axis=1, keepdims=True)
        return np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(y)), y]
    target = np.eye(Z2.shape[1])[y]
    # -t log s(z) - (1 - t) log(1 - s(z)) = softplus(z) - t z, computed stably as kernels.cross_entropy does
    return (np.maximum(Z2, 0) + np.log1p(np.exp(-np.abs(Z2))) - target * Z2).sum(axis=1)
