"""Every numba kernel of the atlas, beside the plain NumPy reference it is tested against.

Notation: N examples, D inputs (784), H hidden units, K outputs (10), B mini-batch size.
Kernels are pure functions of their arguments (in-place updates say so); no I/O, no classes.
`fastmath` is limited to {'reassoc', 'contract'}: dot products vectorise, NaN and Inf still propagate.
Every loop has a fixed order, so the same inputs give the same bits on every run.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

FAST = {"reassoc", "contract"}
ONE = np.float32(1)  # a float32 constant keeps float32 arithmetic in float32 and float64 in float64


# ---------------------------------------------------------------------------------------------
# Numba kernels

@njit(cache=True)
def sigmoid(z):
    """Logistic function of a scalar, in the scalar's own precision (float32 stays float32)."""
    return ONE / (ONE + np.exp(-z))


@njit(cache=True)
def softplus(z):
    """log(1 + exp(z)) without overflow."""
    return max(z, 0.0) + np.log1p(np.exp(-abs(z)))


@njit(cache=True, fastmath=FAST)
def hidden_forward(W1, b1, Xb, m, A1):
    """A1[b, j] = sigmoid(b1[j] + W1[j] . Xb[b]) for b < m.  W1 (H, D), Xb (B, D), A1 (B, H)."""
    H, D = W1.shape
    for b in range(m):
        for j in range(H):
            s = b1[j]
            for i in range(D):
                s += W1[j, i] * Xb[b, i]
            A1[b, j] = sigmoid(s)


@njit(cache=True, fastmath=FAST)
def output_backward(W2, b2, A1, yb, m, D2, D1):
    """Output layer forward and both layers' deltas for cross-entropy on sigmoid outputs.

    D2[b, k] = a2 - onehot(yb[b]);  D1[b, j] = (W2[:, j] . D2[b]) * a1 (1 - a1).
    W2 (K, H), A1 (B, H), yb (B,) int labels, D2 (B, K), D1 (B, H).  Returns the summed cross-entropy.
    """
    K, H = W2.shape
    loss = 0.0
    for b in range(m):
        for k in range(K):
            z = b2[k]
            for j in range(H):
                z += W2[k, j] * A1[b, j]
            t = 1.0 if yb[b] == k else 0.0
            loss += softplus(np.float64(z)) - t * z
            D2[b, k] = sigmoid(z) - t
        for j in range(H):
            s = D2[b, 0] * W2[0, j]
            for k in range(1, K):
                s += D2[b, k] * W2[k, j]
            D1[b, j] = s * A1[b, j] * (1 - A1[b, j])
    return loss


@njit(cache=True, fastmath=FAST)
def sgd_update(W, bias, Delta, Inp, m, step, decay):
    """In place: W = decay * W - step * Delta[:m].T @ Inp[:m];  bias -= step * Delta[:m].sum(0).

    W (R, C), bias (R,), Delta (B, R), Inp (B, C); step = eta / m, decay = 1 - eta * l2 / n.
    """
    R, C = W.shape
    for r in range(R):
        for c in range(C):
            W[r, c] *= decay
        g = Delta[0, r] * 0
        for b in range(m):
            d = step * Delta[b, r]
            g += Delta[b, r]
            for c in range(C):
                W[r, c] -= d * Inp[b, c]
        bias[r] -= step * g


@njit(cache=True)
def sgd_epoch(W1, b1, W2, b2, X, y, order, batch_size, eta, decay):
    """One epoch of mini-batch SGD over X[order], in place on W1, b1, W2, b2.

    X (N, D) float, y (N,) int labels, order (N,) a permutation; eta and decay in the weights' dtype.
    The last mini-batch may be smaller. Returns the summed cross-entropy of each example, measured
    just before the step that uses it.
    """
    H, D = W1.shape
    K = W2.shape[0]
    N = order.shape[0]
    B = batch_size
    Xb = np.empty((B, D), W1.dtype)  # (B, D) this mini-batch's images
    yb = np.empty(B, np.int64)
    A1 = np.empty((B, H), W1.dtype)  # (B, H) hidden activations
    D1 = np.empty((B, H), W1.dtype)  # (B, H) hidden deltas
    D2 = np.empty((B, K), W1.dtype)  # (B, K) output deltas
    loss = 0.0
    for start in range(0, N, B):
        m = min(B, N - start)
        for b in range(m):
            Xb[b] = X[order[start + b]]
            yb[b] = y[order[start + b]]
        hidden_forward(W1, b1, Xb, m, A1)
        loss += output_backward(W2, b2, A1, yb, m, D2, D1)
        step = eta / m
        sgd_update(W2, b2, D2, A1, m, step, decay)
        sgd_update(W1, b1, D1, Xb, m, step, decay)
    return loss


# ---------------------------------------------------------------------------------------------
# NumPy references: the same maths, vectorised, written for clarity.

def sigmoid_numpy(z: np.ndarray) -> np.ndarray:
    one = z.dtype.type(1)
    return one / (one + np.exp(-z))


def forward(W1, b1, W2, b2, X):
    """Hidden and output activations of every row of X: (N, H), (N, K)."""
    A1 = sigmoid_numpy(X @ W1.T + b1)
    A2 = sigmoid_numpy(A1 @ W2.T + b2)
    return A1, A2


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


# ---------------------------------------------------------------------------------------------
# Analysis kernels

@njit(cache=True, parallel=True)
def ablation_correct(Z2, A1, W2, fill, y, n_classes):
    """(H, K) correct test predictions per class when hidden neuron j's activation is replaced by fill[j].

    Z2 (N, K) output pre-activations of the intact network, A1 (N, H) hidden activations, W2 (K, H),
    fill (H,), y (N,) labels. Replacing a_j changes only Z2 by W2[:, j] * (fill[j] - a_j); ties in the
    argmax go to the lower class, as np.argmax does. Each j writes its own row: thread order is irrelevant.
    """
    N, K = Z2.shape
    H = A1.shape[1]
    correct = np.zeros((H, n_classes), np.int64)
    for j in prange(H):
        for n in range(N):
            shift = fill[j] - A1[n, j]
            best = Z2[n, 0] + W2[0, j] * shift
            arg = 0
            for k in range(1, K):
                z = Z2[n, k] + W2[k, j] * shift
                if z > best:
                    best = z
                    arg = k
            if arg == y[n]:
                correct[j, y[n]] += 1
    return correct


def ablation_correct_numpy(Z2, A1, W2, fill, y, n_classes):
    """Reference for `ablation_correct`, one neuron at a time."""
    H = A1.shape[1]
    correct = np.zeros((H, n_classes), np.int64)
    for j in range(H):
        Z = Z2 + np.outer(fill[j] - A1[:, j], W2[:, j])  # (N, K)
        hit = Z.argmax(axis=1) == y
        correct[j] = np.bincount(y[hit], minlength=n_classes)
    return correct
