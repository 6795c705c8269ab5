"""`sgd_epoch`: one epoch of mini-batch SGD, the kernels' entry point for train.py and the benchmark."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import get_num_threads

from . import threads as th
from .layout import epoch_result, epoch_state, sparse_inputs
from .numerics import HIDDEN, OUTPUT, cross_entropy_sum, log_likelihood_sum


def sgd_epoch(params, X, y, order, batch_size, eta, decay, inputs=None, activation="sigmoid", output="sigmoid",
              mean=0.0, std=1.0):
    """One epoch of mini-batch SGD over X[order], in place on the arrays of params: {"W1": (H1, D),
    "b1": (H1,), "W2": (H2, H1), "b2": (H2,), ..., "W{L+1}": (K, HL), "b{L+1}": (K,)} for L >= 1 hidden layers.

    X (N, D) float, y (N,) int labels, order (N,) a permutation; eta and decay (every weight, no bias, is
    multiplied by decay at each step: L2 regularisation) in the weights' dtype; inputs = sparse_inputs(X),
    computed here when not given (when given, only X's dtype is read: X may be (0, D), as in the train stage,
    which makes them of the stored pixels). The last mini-batch may be smaller. activation: the hidden units'
    ("sigmoid", "relu", "tanh"); output: "sigmoid" (Nielsen's cross-entropy, a sum of binary
    cross-entropies) or "softmax" (the log-likelihood -log p[y]). The network sees (X - mean) / std, kept
    sparse (inputs stays sparse_inputs(X); see step.py). Returns the summed loss of each example (float),
    measured just before the step that uses it.

    Runs on up to numba.get_num_threads() threads (NUMBA_NUM_THREADS, or numba.set_num_threads). The result does not depend on the thread count, so
    the epoch switches to one thread while two are slower (another process holds a core: every step
    would wait for it) and back when two are faster again.
    """
    N = order.shape[0]
    B = min(batch_size, N)
    steps = (N + B - 1) // B
    inputs = sparse_inputs(X) if inputs is None else inputs
    configured = get_num_threads()
    c = sv = None
    if (mean, std) != (0.0, 1.0):
        ptr, idx, val = inputs
        inputs = ptr, idx, val / X.dtype.type(std)  # v = x / std; x' = v - c
        sums = np.concatenate([[0.0], np.cumsum(inputs[2], dtype=np.float64)])
        c, sv = mean / std, (sums[ptr[1:]] - sums[ptr[:-1]]).astype(X.dtype)
    state = epoch_state(params, B, N, configured, c, sv)
    act, out = HIDDEN[activation], OUTPUT[output]
    rate, decay64 = float(eta), float(decay)
    n_slots = state.P.shape[1]
    most = min(configured, n_slots)
    bounds = np.array([c * n_slots // most for c in range(most + 1)])  # the threads' slots: as many each
    with ThreadPoolExecutor(max_workers=max(1, most - 1), thread_name_prefix="sgd") as pool:

        def run(t0, t1, threads):
            return th.sgd_regions(t0, t1, threads, bounds, state, inputs, y, order, eta, decay, rate, decay64,
                                  pool, act, out)

        run(0, 1, 1)
        if most == 1:
            run(1, steps + 1, 1)
        else:
            th.schedule(run, 1, steps + 1, most)
    epoch_result(params, state)
    return (log_likelihood_sum if output == "softmax" else cross_entropy_sum)(state.Zall, y, order)
