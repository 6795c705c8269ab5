"""NumPy references: the same maths as the kernels, vectorised, written for clarity; the tests hold
each kernel to its reference. No numba here."""

from __future__ import annotations

import numpy as np


def sigmoid_numpy(z: np.ndarray) -> np.ndarray:
    one = z.dtype.type(1)
    return one / (one + np.exp(-z))


def cross_entropy(Z2: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-example cross-entropy of sigmoid outputs with pre-activations Z2 (N, K), labels y (N,)."""
    T = np.eye(Z2.shape[1], dtype=Z2.dtype)[y]
    Z = Z2.astype(np.float64)
    return (np.maximum(Z, 0) + np.log1p(np.exp(-np.abs(Z))) - T * Z).sum(axis=1)


def activate_numpy(activation: str, z: np.ndarray) -> np.ndarray:
    """The hidden activation by name, in z's dtype: sigmoid, relu max(z, 0), tanh."""
    if activation == "relu":
        return np.maximum(z, z.dtype.type(0))
    if activation == "tanh":
        return np.tanh(z)
    return sigmoid_numpy(z)


def slope_numpy(activation: str, a: np.ndarray) -> np.ndarray:
    """d activation / dz written with the activation a: a (1 - a), 1 - a^2, or 1 where a > 0."""
    if activation == "relu":
        return (a > 0).astype(a.dtype)
    if activation == "tanh":
        return 1 - a * a
    return a * (1 - a)


def log_likelihood(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-example -log softmax(Z)[y] of output pre-activations Z (N, K), in float64."""
    Z = Z.astype(np.float64)
    top = Z.max(axis=1, keepdims=True)
    return np.log(np.exp(Z - top).sum(axis=1)) + top[:, 0] - Z[np.arange(len(y)), y]


def forward_numpy(params: dict, X: np.ndarray, activation: str = "sigmoid") -> list[np.ndarray]:
    """[X, A1, ..., AL, Z]: the input, each hidden layer's activations and the output pre-activations."""
    L = len(params) // 2 - 1
    layers = [X]
    for l in range(1, L + 2):
        z = layers[-1] @ params[f"W{l}"].T + params[f"b{l}"]
        layers.append(activate_numpy(activation, z) if l <= L else z)
    return layers


def sgd_epoch_numpy(params, X, y, order, batch_size, eta, decay, activation="sigmoid", output="sigmoid", mean=0.0,
                    std=1.0):
    """Reference for `sgd_epoch`: same arguments, same in-place effect, same return value. Backpropagation
    as in Nielsen's network2.py: output delta softmax(z) - t or sigmoid(z) - t (with the log-likelihood or
    the cross-entropy cost), d_{l-1} = (d_l @ W_l) * act'(z_{l-1}); weights decay, then step."""
    L = len(params) // 2 - 1
    K = params[f"W{L + 1}"].shape[0]
    dtype = params["W1"].dtype
    if (mean, std) != (0.0, 1.0):
        X = (X - dtype.type(mean)) / dtype.type(std)  # what the network sees, dense
    loss = 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        m = len(idx)
        T = np.eye(K, dtype=dtype)[y[idx]]  # (m, K) one-hot targets
        layers = forward_numpy(params, X[idx], activation)  # [(m, D), (m, H1), ..., (m, K)]
        Z = layers[-1]
        if output == "softmax":
            loss += log_likelihood(Z, y[idx]).sum()
            e = np.exp(Z - Z.max(axis=1, keepdims=True))
            delta = e / e.sum(axis=1, keepdims=True) - T  # (m, K)
        else:
            loss += cross_entropy(Z, y[idx]).sum()
            delta = sigmoid_numpy(Z) - T
        step = eta / m
        for l in range(L + 1, 0, -1):
            W, below = params[f"W{l}"], layers[l - 1]  # (n_l, n_{l-1}), (m, n_{l-1})
            grad_W, grad_b = delta.T @ below, delta.sum(axis=0)
            if l > 1:
                delta = (delta @ W) * slope_numpy(activation, below)  # with W_l before its step
            W *= decay
            W -= step * grad_W
            params[f"b{l}"] -= step * grad_b
    return loss
