"""The analysis stage's kernel: per-class accuracy with each hidden neuron pinned to a value."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


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
