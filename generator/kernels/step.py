"""One step of mini-batch SGD on a thread's share of the hidden units, and the output layer's step.

Notation: N examples, D inputs, H hidden units, K outputs; Hs, Bv, Kv the padded sizes (layout.py).
This is the module to edit to change the maths (an activation, a loss): nothing here knows about
threads, except that each function works on the hidden units [u0, u1) it is given.

The forward pass adds, for each nonzero pixel of an image, its value times the pixel's row of W (D, Hs)
(W1 transposed); the update adds to each such row its value times the image's hidden deltas. Both are
the intrinsics `dot*` / `axpy*`, which keep a block of hidden units in vector registers; on MNIST a step
does a fifth of the dense products' multiply-adds. Every hidden unit's number is computed by the same
operations in the same order whichever block, slot or thread it falls in, so any split gives the same bits.

Weight decay without touching every weight each step: W1 = scale * W, with `scale` a float64 that the
decay multiplies at each step, and the gradient step divided by it before it is added to W
(W1' = decay W1 - step G  <=>  W' = W - (step / scale') G with scale' = decay scale). A pixel that is
0 in every image of a step is not touched at all. W is multiplied out whenever scale falls below
RESCALE_BELOW and at the end of the epoch. The result is the reference's up to rounding (tests hold
it to 1e-12 in float64); a weight no image uses ends exactly as scale * W (one rounding instead of
one per step). A NaN weight on a pixel that is 0 in every image of a step does not reach the outputs
of that step; it stays in W1, where train.py's finite check stops the run. A NaN pixel is nonzero.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .intrinsics import BLOCK_VECTORS, VECTOR_BYTES, axpy1, axpy2, axpy3, axpy4, dot1, dot2, dot3, dot4, prefetch
from .numerics import FAST, ONE, sigmoid

RESCALE_BELOW = 2.0 ** -60  # W is multiplied out when the decay's running scale falls below this


@njit(cache=True)
def forward_products(A, W, u0, u1, ptr, idx, val, order, lo, hi):
    """A[b, j] = sum over image order[lo + b]'s nonzero pixels i of x_i * W[i, j], for lo <= lo + b < hi and
    u0 <= j < u1 (whole vectors). A (Bv, Hs), W (D, Hs); (ptr, idx, val) from `sparse_inputs`. Block by
    block, each over every image: the block's part of the rows stays in cache from one image to the next."""
    Hs = W.shape[1]
    lanes = VECTOR_BYTES // W.itemsize
    for u in range(u0, u1, BLOCK_VECTORS * lanes):
        n = min(BLOCK_VECTORS * lanes, u1 - u) // lanes
        for b in range(hi - lo):
            k0, k1, o = ptr[order[lo + b]], ptr[order[lo + b] + 1], b * Hs + u
            if n == 4:
                dot4(A, o, W, Hs, u, idx, val, k0, k1)
            elif n == 3:
                dot3(A, o, W, Hs, u, idx, val, k0, k1)
            elif n == 2:
                dot2(A, o, W, Hs, u, idx, val, k0, k1)
            else:
                dot1(A, o, W, Hs, u, idx, val, k0, k1)


@njit(cache=True)
def update_rows(W, u0, u1, Dh, c, ptr, idx, val, order, lo, hi):
    """W[i, j] += (c * x_i) * Dh[b, j] for each image order[lo + b], lo <= lo + b < hi, in order, and its
    nonzero pixels i (values x_i), for u0 <= j < u1 (whole vectors). W (D, Hs), Dh (Bv, Hs)."""
    Hs = W.shape[1]
    lanes = VECTOR_BYTES // W.itemsize
    for u in range(u0, u1, BLOCK_VECTORS * lanes):
        n = min(BLOCK_VECTORS * lanes, u1 - u) // lanes
        for b in range(hi - lo):
            k0, k1, o = ptr[order[lo + b]], ptr[order[lo + b] + 1], b * Hs + u
            if n == 4:
                axpy4(W, Hs, u, Dh, o, c, idx, val, k0, k1)
            elif n == 3:
                axpy3(W, Hs, u, Dh, o, c, idx, val, k0, k1)
            elif n == 2:
                axpy2(W, Hs, u, Dh, o, c, idx, val, k0, k1)
            else:
                axpy1(W, Hs, u, Dh, o, c, idx, val, k0, k1)


# No row views (A[b]) inside `region`: each view counts a reference to its array, an atomic operation on
# a counter both threads share. (Its cost was not measurable on its own; it is simply not needed.)

# No row views (A[b]) inside `region`: each view counts a reference to its array, an atomic operation on
# a counter both threads share. (Its cost was not measurable on its own; it is simply not needed.)

@njit(cache=True, fastmath=FAST, error_model="numpy")
def region(s, u0, u1, inputs, order, plo, lo, hi, D2, par, step, decay, rate, decay64, scale):
    """One thread's share of a step: hidden units u0 <= j < u1 (whole slots of s.slot units) of the
    `EpochState` s.

    Applies the previous step (images order[plo:lo], output deltas D2 (Bv, Kv); none at the first step),
    then runs the current one (images order[lo:hi]; none after the last step): this step's activations
    into s.A, their share of A @ W2.T into s.P[par]. inputs = (ptr, idx, val) from `sparse_inputs`.
    step = eta / (lo - plo) and decay in the weights' dtype, rate and decay64 the same in float64.
    Returns the scale of W after the previous step (see the note above), given the one before it.
    """
    W, bias, W2, A, Dh, G, P = s.W, s.bias, s.W2, s.A, s.Dh, s.G, s.P
    ptr, idx, val = inputs
    H, slot = s.H, s.slot
    K = W2.shape[0]
    mp, mc = lo - plo, hi - lo
    zero = ONE - ONE
    # Unsigned unit indices: numba tests a signed index for < 0 (to count from the end), which keeps these
    # loops scalar; an unsigned one it takes as it is.
    j_lo, j_hi, j_pad, width = np.uint64(u0), np.uint64(u1), np.uint64(max(u0, min(H, u1))), np.uint64(slot)
    if mp > 0:
        for b in range(mp):  # the deltas, with W2 before its update
            for j in range(j_lo, j_hi):
                Dh[b, j] = zero
            for k in range(K):
                e = D2[b, k]
                for j in range(j_lo, j_hi):
                    Dh[b, j] += e * W2[k, j]
            for j in range(j_lo, j_hi):
                Dh[b, j] *= A[b, j] * (ONE - A[b, j])
        for j in range(j_lo, j_hi):
            G[j] = Dh[0, j]
        for b in range(1, mp):
            for j in range(j_lo, j_hi):
                G[j] += Dh[b, j]
        for j in range(j_lo, j_hi):
            bias[j] -= step * G[j]
        for k in range(K):
            e = D2[0, k]
            for j in range(j_lo, j_hi):
                G[j] = e * A[0, j]
            for b in range(1, mp):
                e = D2[b, k]
                for j in range(j_lo, j_hi):
                    G[j] += e * A[b, j]
            for j in range(j_lo, j_hi):
                W2[k, j] = decay * W2[k, j] - step * G[j]
        scale = scale * decay64
        update_rows(W, u0, u1, Dh, W.dtype.type(-rate / scale), ptr, idx, val, order, plo, lo)
        if scale < RESCALE_BELOW:
            s = W.dtype.type(scale)
            for i in range(W.shape[0]):
                for j in range(j_lo, j_hi):
                    W[i, j] *= s
            scale = 1.0
    if mc > 0:
        forward_products(A, W, u0, u1, ptr, idx, val, order, lo, hi)
        s = W.dtype.type(scale)
        for b in range(mc):
            for j in range(j_lo, j_hi):  # whole vectors (the padding too): the loop vectorises without a remainder
                A[b, j] = sigmoid(s * A[b, j] + bias[j])
            for j in range(j_pad, j_hi):
                A[b, j] = zero
        for j0 in range(j_lo, j_hi, width):  # the slot's units add up in order, on one thread
            p, j1 = j0 // width, min(j0 + width, j_hi)
            for b in range(mc):
                for k in range(K):
                    acc = zero
                    for j in range(j0, j1):
                        acc += W2[k, j] * A[b, j]
                    P[par, p, b, k] = acc
    return scale


@njit(cache=True)
def prefetch_images(ptr, idx, val, order, lo, hi):
    """Start loading the nonzero pixels of the images order[lo:hi] (see `sparse_inputs`); no effect on results."""
    for b in range(lo, hi):
        n = order[b]
        for k in range(ptr[n], ptr[n + 1], 16):
            prefetch(idx, k)
            prefetch(val, k)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def output_step(P, par, b2, y, order, lo, hi, Z, D2, step):
    """The output layer's part of a step of the m = hi - lo images order[lo:hi] (each thread runs it on its
    own copy): Z = b2 + sum_p P[par, p] (m, Kv), D2 = sigmoid(Z) - onehot(y[order[lo:hi]]) (zero past m and K),
    and b2 -= step * D2.sum(0)."""
    m = hi - lo
    K = b2.shape[0]
    Bv, Kv = D2.shape
    zero = ONE - ONE
    for b in range(m):
        for k in range(Kv):
            Z[b, k] = b2[k] if k < K else zero
    for p in range(P.shape[1]):
        for b in range(m):
            for k in range(Kv):
                Z[b, k] += P[par, p, b, k]
    for b in range(Bv):
        if b < m:
            for k in range(Kv):  # whole rows: the loop vectorises
                D2[b, k] = sigmoid(Z[b, k])
            D2[b, y[order[lo + b]]] -= ONE
            for k in range(K, Kv):
                D2[b, k] = zero
        else:
            for k in range(Kv):
                D2[b, k] = zero
    for k in range(K):
        g = D2[0, k]
        for b in range(1, m):
            g += D2[b, k]
        b2[k] -= step * g
