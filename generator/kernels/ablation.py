"""The analysis stage's kernel: per-class accuracy with each hidden neuron pinned to a value."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import get_num_threads, njit


@njit(cache=True, nogil=True)
def ablation_rows(Z2, A1, W2, fill, y, correct, j0, j1):
    """Rows j0 <= j < j1 of `ablation_correct`'s result, written into correct (H, n_classes) int64."""
    N, K = Z2.shape
    for j in range(j0, j1):
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


def ablation_correct(Z2, A1, W2, fill, y, n_classes):
    """(H, K) correct test predictions per class when hidden neuron j's activation is replaced by fill[j].

    Z2 (N, K) output pre-activations of the intact network, A1 (N, H) hidden activations, W2 (K, H),
    fill (H,), y (N,) labels. Replacing a_j changes only Z2 by W2[:, j] * (fill[j] - a_j); ties in the
    argmax go to the lower class, as np.argmax does. The neurons are split between up to
    numba.get_num_threads() threads (a nogil kernel each; a prange loop took 3 s to compile); each j
    writes its own row, so thread order is irrelevant.
    """
    H = A1.shape[1]
    correct = np.zeros((H, n_classes), np.int64)
    n = max(1, min(get_num_threads(), H))
    bounds = [c * H // n for c in range(n + 1)]
    with ThreadPoolExecutor(n) as pool:
        parts = [pool.submit(ablation_rows, Z2, A1, W2, fill, y, correct, bounds[c], bounds[c + 1]) for c in range(n)]
        for part in parts:
            part.result()
    return correct
