"""Where an epoch's numbers live: the images as their nonzero pixels, and `EpochState`, the padded,
cache-line-aligned working copies of the weights and the buffers of a step.

Notation: N examples, D inputs (784), H hidden units, K outputs (10), B mini-batch size.

Most pixels of a digit are exactly 0 (on MNIST 150 of 784 are not), and a zero input adds exactly
nothing to a pre-activation or to a weight gradient. So the images are kept as their nonzero pixels
(`sparse_inputs`), and W1 as its transpose W (D, Hs): pixel i's weights to every hidden unit are one
contiguous row (see step.py).

The working copies are padded so inner loops run over whole vectors: hidden units to LANES (Hp),
images (Bv) and outputs (Kv) to vectors. Padding entries are zero and stay zero (a padding hidden
unit has activation 0). Rows of hidden units are Hs >= Hp long, whole cache lines, and start on one:
the threads own whole lines of every row (see `slot_units`), so no line is written by both.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, prange

from .numerics import PRANGE_ONLY

LANES = 8  # hidden units are padded to a multiple of 8: whole vectors in float32 and in float64
LINE_BYTES = 64  # a cache line: what two threads must not both write, or the line goes back and forth
MAX_SLOTS = 32  # slots of hidden units whose share of the output pre-activations is summed in the output step
SLOT_BYTES = 1 << 16  # and at most this many bytes of such shares per step (see `slot_units`)

# An epoch's working state (numba passes it to the kernels as one tuple). Arrays in the weights' dtype
# unless said otherwise; Hs the padded row length, Bv and Kv the padded batch and output counts.
EpochState = namedtuple("EpochState", [
    "H",  # int: hidden units (the rest of each row of Hs is padding)
    "B",  # int: images per step, min(batch_size, N)
    "slot",  # int: hidden units per slot (`slot_units`)
    "W",  # (D, Hs) W1.T / scale[0]
    "bias",  # (Hs,) b1
    "W2",  # (K, Hs) W2: column j belongs to whoever owns hidden unit j
    "b2c",  # (threads, Kl) each thread's copy of b2 in b2c[c, :K], a cache line of its own
    "A",  # (Bv, Hs) hidden activations
    "Dh",  # (Bv, Hs) hidden deltas
    "G",  # (Hs,) scratch for sums over the images
    "P",  # (2, slots, Bv, Kv) each slot's share of A @ W2.T, by step parity
    "Z",  # (threads, Bv, Kv) each thread's output pre-activations
    "D2",  # (threads, Bv, Kv) each thread's output deltas
    "Zall",  # (N, K) every image's output pre-activations, for the loss
    "scale",  # (1,) float64: W1 = scale[0] * W.T
    "sync",  # (16,) int64: the barrier's counters
])


@njit(cache=True)
def slot_units(Hp, Bv, Kv, itemsize):
    """Hidden units per slot, whole cache lines of them: at most MAX_SLOTS slots, whose shares take at most
    SLOT_BYTES (two slots at least). Slots are the unit of work a thread owns: more of them balance the
    threads better, but each adds a term to the output step's sums. Depends on the shapes only, never on
    thread counts."""
    n_slots = max(2, min(MAX_SLOTS, SLOT_BYTES // (Bv * Kv * itemsize)))
    per_line = LINE_BYTES // itemsize
    lines = (Hp + per_line - 1) // per_line
    return (lines + n_slots - 1) // n_slots * per_line


@njit(cache=True)
def aligned_zeros(rows, cols, like):
    """np.zeros((rows, cols), like.dtype) starting on a cache line, so that whole lines of it belong to one
    thread (with `slot_units`)."""
    per_line = LINE_BYTES // like.itemsize
    buf = np.zeros(rows * cols + per_line, like.dtype)
    skip = (LINE_BYTES - buf.ctypes.data % LINE_BYTES) % LINE_BYTES // like.itemsize
    return buf[skip:skip + rows * cols].reshape((rows, cols))


@njit(cache=True)
def epoch_state(W1, b1, W2, b2, batch_size, N, threads):
    """The `EpochState` of an epoch over N images on up to `threads` threads: W1 (H, D), b1 (H,), W2 (K, H),
    b2 (K,) copied into padded, aligned working arrays (see `EpochState` for the shapes)."""
    H, D = W1.shape
    K = W2.shape[0]
    dtype = W1.dtype
    B = min(batch_size, N)
    Hp = (H + LANES - 1) // LANES * LANES
    per_line = LINE_BYTES // W1.itemsize
    Hs = (Hp + per_line - 1) // per_line * per_line  # row length: every row starts on a cache line
    Bv = (B + LANES - 1) // LANES * LANES
    Kv = (K + LANES - 1) // LANES * LANES
    W = aligned_zeros(D, Hs, W1)
    W2p = aligned_zeros(K, Hs, W1)
    bias = aligned_zeros(1, Hs, W1)[0]
    for j in range(H):
        for i in range(D):
            W[i, j] = W1[j, i]
        for k in range(K):
            W2p[k, j] = W2[k, j]
        bias[j] = b1[j]
    slot = slot_units(Hp, Bv, Kv, W.itemsize)
    n_slots = (Hp + slot - 1) // slot
    Kl = (K * W.itemsize + LINE_BYTES - 1) // LINE_BYTES * LINE_BYTES // W.itemsize
    b2c = aligned_zeros(threads, Kl, W1)
    for c in range(threads):
        b2c[c, :K] = b2
    return EpochState(H, B, slot, W, bias, W2p, b2c,
                      aligned_zeros(Bv, Hs, W1), aligned_zeros(Bv, Hs, W1), aligned_zeros(1, Hs, W1)[0],
                      aligned_zeros(2 * n_slots, Bv * Kv, W1).reshape((2, n_slots, Bv, Kv)),
                      aligned_zeros(threads * Bv, Kv, W1).reshape((threads, Bv, Kv)),
                      aligned_zeros(threads * Bv, Kv, W1).reshape((threads, Bv, Kv)),
                      np.empty((N, K), dtype), np.ones(1), np.zeros(16, np.int64))


@njit(cache=True)
def epoch_result(W1, b1, W2, b2, s):
    """Copy the working copies of the `EpochState` s back into W1 (scale[0] * W.T, each product rounded
    once), b1, W2 and b2 (thread 0's copy)."""
    H, D = W1.shape
    K = W2.shape[0]
    scale = s.scale[0]
    for j in range(H):
        for i in range(D):
            W1[j, i] = scale * s.W[i, j]
        for k in range(K):
            W2[k, j] = s.W2[k, j]
        b1[j] = s.bias[j]
    for k in range(K):
        b2[k] = s.b2c[0, k]


@njit(cache=True, parallel=PRANGE_ONLY)
def sparse_inputs(X):
    """(ptr, idx, val): the nonzero pixels of the images X (N, D), image by image. Image n's are
    idx[ptr[n]:ptr[n + 1]] (int32 pixel indices, increasing) with values val[ptr[n]:ptr[n + 1]]
    (X's dtype). NaN counts as nonzero. Depends on X only: train.py computes it once per training
    and passes it to every `sgd_epoch` (72 MB for MNIST in float32). Each image in parallel."""
    N, D = X.shape
    counts = np.zeros(N, np.int64)
    for n in prange(N):
        for i in range(D):
            counts[n] += X[n, i] != 0
    ptr = np.zeros(N + 1, np.int64)
    for n in range(N):
        ptr[n + 1] = ptr[n] + counts[n]
    idx = np.empty(ptr[N], np.int32)
    val = np.empty(ptr[N], X.dtype)
    for n in prange(N):
        k = ptr[n]
        for i in range(D):
            if X[n, i] != 0:
                idx[k] = i
                val[k] = X[n, i]
                k += 1
    return ptr, idx, val
