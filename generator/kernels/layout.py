"""Where an epoch's numbers live: the images as their nonzero pixels, and `EpochState`, the padded,
cache-line-aligned working copies of the weights and the buffers of a step.

Notation: N examples, D inputs (784), H hidden units of the first layer, K outputs (10), B mini-batch
size; L hidden layers of H1 = H, H2, ..., HL units. "Kv" is the padded width of the second layer (the
outputs for one hidden layer), which the threads' shares feed.

Most pixels of a digit are exactly 0 (on MNIST 150 of 784 are not), and a zero input adds exactly
nothing to a pre-activation or to a weight gradient. So the images are kept as their nonzero pixels
(`sparse_inputs`, in data.py so that the training computes them without this package, while numba
compiles or loads it), and W1 as its transpose W (D, Hs): pixel i's weights to every hidden unit are one
contiguous row (see step.py).

The working copies are padded so inner loops run over whole vectors: hidden units to LANES (Hp),
images (Bv) and outputs (Kv) to vectors. Padding entries are zero and stay zero (a padding hidden
unit has activation 0). Rows of hidden units are Hs >= Hp long, whole cache lines, and start on one:
the threads own whole lines of every row (see `slot_units`), so no line is written by both.

Plain NumPy, no numba: this runs once per epoch (`sparse_inputs` once per training), and compiling
it cost more than half of a cold start's compile (numba's array-shape error messages alone took 25 s).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..data import sparse_inputs  # noqa: F401 (kept here for the package's callers)

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
    "W2",  # (K, Hs) W2 (K = H2 with two hidden layers or more): column j belongs to whoever owns unit j
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
    "upper",  # None with one hidden layer, else the `Upper` layers above the second
    "shift",  # None for inputs as they are, else the `Shift` of normalised inputs
])

# The layers above the second, dense and small, a copy per thread (see step.upper_step). A separate
# argument of the kernels, None for one hidden layer: numba prunes `upper is None` while compiling, so the
# default network compiles none of their code.
Upper = namedtuple("Upper", [
    "dims",  # (L + 2,) int64: the layer widths D, H1, ..., HL, K
    "Wu",  # (threads, sum of H_l H_{l-1} for l >= 3) W3, ..., W_{L+1} one after the other, row-major
    "bu",  # (threads, H3 + ... + HL + K) b3, ..., b_{L+1}
    "U",  # (threads, Bv, H2 + ... + HL + K) activations of layers 2..L, then the outputs' pre-activations
    "E",  # (threads, 2, Bv, widest) the deltas of a layer and the one below it
    "Gu",  # (threads, widest) scratch
])

# Normalised inputs (see step.py): W1 = scale * (W.T + u 1^T); a separate argument of the kernels, None
# for inputs as they are (pruned while compiling).
Shift = namedtuple("Shift", [
    "c",  # mean / std, in the weights' dtype
    "n_in",  # D, in the weights' dtype
    "u",  # (Hs,) each unit's share of W1 common to every pixel, over scale
    "S",  # (Hs,) sum_i W[i, j], W's column sums
    "sv",  # (N,) sum_i x_i / std of each image
])


def slot_units(Hp: int, Bv: int, Kv: int, itemsize: int) -> int:
    """Hidden units per slot, whole cache lines of them: at most MAX_SLOTS slots, whose shares take at most
    SLOT_BYTES (two slots at least). Slots are the unit of work a thread owns: more of them split the
    units between the threads more evenly, but each adds a term to the output step's sums. Depends on the shapes only, never on
    thread counts."""
    n_slots = max(2, min(MAX_SLOTS, SLOT_BYTES // (Bv * Kv * itemsize)))
    per_line = LINE_BYTES // itemsize
    lines = (Hp + per_line - 1) // per_line
    return (lines + n_slots - 1) // n_slots * per_line


def aligned_zeros(shape: tuple[int, ...], dtype) -> np.ndarray:
    """np.zeros(shape, dtype), C-contiguous, starting on a cache line, so that whole lines of it belong to
    one thread (with `slot_units`)."""
    itemsize = np.dtype(dtype).itemsize
    size = int(np.prod(shape))
    buf = np.zeros(size + LINE_BYTES // itemsize, dtype)
    skip = (-buf.ctypes.data) % LINE_BYTES // itemsize
    return buf[skip:skip + size].reshape(shape)


def padded(n: int) -> int:
    """n rounded up to whole vectors of LANES."""
    return (n + LANES - 1) // LANES * LANES


def depth(params: dict) -> int:
    """L, the hidden layers of a params dict {"W1": (H1, D), "b1": (H1,), ..., "W{L+1}": (K, HL), "b{L+1}"}."""
    return len(params) // 2 - 1


def epoch_state(params: dict, batch_size: int, N: int, threads: int, c=None, sv=None) -> EpochState:
    """The `EpochState` of an epoch over N images on up to `threads` threads: the params dict's W1 (H, D),
    b1 (H,), W2 (K, H), b2 (K,) (K = H2 with more hidden layers), and W3, b3, ... above, copied into
    padded, aligned working arrays (see `EpochState` for the shapes). For normalised inputs, c = mean / std
    and sv (N,) each image's sum of x / std, in the weights' dtype (see `Shift`)."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    L = depth(params)
    upper = [(params[f"W{l}"], params[f"b{l}"]) for l in range(3, L + 2)]
    H, D = W1.shape
    K = W2.shape[0]
    dtype = W1.dtype
    B = min(batch_size, N)
    Hp, Bv, Kv = padded(H), padded(B), padded(K)
    per_line = LINE_BYTES // W1.itemsize
    Hs = (Hp + per_line - 1) // per_line * per_line  # row length: every row starts on a cache line
    W = aligned_zeros((D, Hs), dtype)
    W[:, :H] = W1.T
    W2p = aligned_zeros((K, Hs), dtype)
    W2p[:, :H] = W2
    bias = aligned_zeros((Hs,), dtype)
    bias[:H] = b1
    slot = slot_units(Hp, Bv, Kv, W.itemsize)
    n_slots = (Hp + slot - 1) // slot
    Kl = (K * W.itemsize + LINE_BYTES - 1) // LINE_BYTES * LINE_BYTES // W.itemsize
    b2c = aligned_zeros((threads, Kl), dtype)
    b2c[:, :K] = b2
    dims = np.array([D, H, K, *(W.shape[0] for W, _ in upper)], np.int64)
    above = None
    if upper:
        Wu = np.zeros((threads, sum(W.size for W, _ in upper)), dtype)
        Wu[:] = np.concatenate([W.ravel() for W, _ in upper])
        bu = np.zeros((threads, sum(b.size for _, b in upper)), dtype)
        bu[:] = np.concatenate([b for _, b in upper])
        widest = int(dims[2:].max())
        above = Upper(dims, Wu, bu, np.zeros((threads, Bv, int(dims[2:].sum())), dtype),
                      np.zeros((threads, 2, Bv, widest), dtype), np.zeros((threads, widest), dtype))
    return EpochState(H, B, slot, W, bias, W2p, b2c, aligned_zeros((Bv, Hs), dtype), aligned_zeros((Bv, Hs), dtype),
                      aligned_zeros((Hs,), dtype), aligned_zeros((2, n_slots, Bv, Kv), dtype),
                      aligned_zeros((threads, Bv, Kv), dtype), aligned_zeros((threads, Bv, Kv), dtype),
                      np.empty((N, dims[-1]), dtype), np.ones(1), np.zeros(16, np.int64), above,
                      None if c is None else Shift(dtype.type(c), dtype.type(D), aligned_zeros((Hs,), dtype),
                                                   W.sum(axis=0, dtype=np.float64).astype(dtype), sv))


def epoch_result(params: dict, s: EpochState) -> None:
    """Copy the working copies of the `EpochState` s back into the params dict's arrays, in place: W1
    (scale[0] * W.T, plus u for normalised inputs, each computed in float64 and rounded once), b1, W2, and
    thread 0's copies of b2 and the layers above."""
    W1, W2 = params["W1"], params["W2"]
    H = W1.shape[0]
    K = W2.shape[0]
    Wt = s.W[:, :H].T.astype(np.float64)
    if s.shift is not None:
        Wt = Wt + s.shift.u[:H, None].astype(np.float64)
    W1[...] = (s.scale[0] * Wt).astype(W1.dtype)
    W2[...] = s.W2[:, :H]
    params["b1"][...] = s.bias[:H]
    params["b2"][...] = s.b2c[0, :K]
    w = b = 0
    for l in range(3, depth(params) + 2):
        W, bias = params[f"W{l}"], params[f"b{l}"]
        W[...] = s.upper.Wu[0, w:w + W.size].reshape(W.shape)
        bias[...] = s.upper.bu[0, b:b + bias.size]
        w, b = w + W.size, b + bias.size
