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


def sgd_epoch_numpy(W1, b1, W2, b2, X, y, order, batch_size, eta, decay):
    """Reference for `sgd_epoch`: same arguments, same in-place effect, same return value."""
    K = W2.shape[0]
    loss = 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        Xb, m = X[idx], len(idx)  # (m, D)
        T = np.eye(K, dtype=W1.dtype)[y[idx]]  # (m, K) one-hot targets
        A1 = sigmoid_numpy(Xb @ W1.T + b1)  # (m, H)
        Z2 = A1 @ W2.T + b2  # (m, K)
        loss += cross_entropy(Z2, y[idx]).sum()
        D2 = sigmoid_numpy(Z2) - T  # (m, K)
        D1 = (D2 @ W2) * A1 * (1 - A1)  # (m, H)
        step = eta / m
        W2 *= decay
        W2 -= step * (D2.T @ A1)
        b2 -= step * D2.sum(axis=0)
        W1 *= decay
        W1 -= step * (D1.T @ Xb)
        b1 -= step * D1.sum(axis=0)
    return loss


def ablation_correct_numpy(Z2, A1, W2, fill, y, n_classes):
    """Reference for `ablation_correct`, one neuron at a time."""
    H = A1.shape[1]
    correct = np.zeros((H, n_classes), np.int64)
    for j in range(H):
        Z = Z2 + np.outer(fill[j] - A1[:, j], W2[:, j])  # (N, K)
        hit = Z.argmax(axis=1) == y
        correct[j] = np.bincount(y[hit], minlength=n_classes)
    return correct
