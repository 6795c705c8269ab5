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

Normalised inputs x' = (x - mean) / std = v - c with v = x / std and c = mean / std are nonzero almost
everywhere (the background is -c), which would make every step dense. They stay sparse by writing
W1 = scale * (W.T + u 1^T), with u (Hs,) one number per unit: the step's part along (1, ..., 1),
step * c * sum_b d_bj for unit j, goes into u_j (divided by scale); the rest into the rows of the
nonzero pixels as before. A pre-activation is then scale * (v . W_j + u_j sum_i v_i - c (S_j + D u_j)) + b_j,
with S_j = sum_i W[i, j] kept up to date by each step (sum_b coef d_bj sum_i v_bi) and recomputed
at each epoch's start. The same numbers as the dense reference up to rounding (tests: 1e-12 in float64).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .intrinsics import BLOCK_VECTORS, VECTOR_BYTES, axpy1, axpy2, axpy3, axpy4, dot1, dot2, dot3, dot4, prefetch
from .numerics import FAST, ONE, activate, output_delta, slope

RESCALE_BELOW = 2.0 ** -60  # W is multiplied out when the decay's running scale falls below this


@njit(cache=True, inline="always")
def forward_products(A, W, u0, u1, ptr, idx, val, order, lo, hi):
    """A[b, j] = sum over image order[lo + b]'s nonzero pixels i of x_i * W[i, j], for lo <= lo + b < hi and
    u0 <= j < u1 (whole vectors). A (Bv, Hs), W (D, Hs); (ptr, idx, val) from `sparse_inputs`. Block by
    block, each over every image: the block's part of the rows stays in cache from one image to the next."""
    Hs = W.shape[1]
    lanes = VECTOR_BYTES // W.itemsize
    for u in range(u0, u1, BLOCK_VECTORS * lanes):
        n = (u1 - u if u1 - u < BLOCK_VECTORS * lanes else BLOCK_VECTORS * lanes) // lanes  # see numerics.MIN_MAX
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


@njit(cache=True, inline="always")
def update_rows(W, u0, u1, Dh, c, ptr, idx, val, order, lo, hi):
    """W[i, j] += (c * x_i) * Dh[b, j] for each image order[lo + b], lo <= lo + b < hi, in order, and its
    nonzero pixels i (values x_i), for u0 <= j < u1 (whole vectors). W (D, Hs), Dh (Bv, Hs)."""
    Hs = W.shape[1]
    lanes = VECTOR_BYTES // W.itemsize
    for u in range(u0, u1, BLOCK_VECTORS * lanes):
        n = (u1 - u if u1 - u < BLOCK_VECTORS * lanes else BLOCK_VECTORS * lanes) // lanes  # see numerics.MIN_MAX
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

@njit(cache=True, fastmath=FAST, error_model="numpy", no_cpython_wrapper=True, no_cfunc_wrapper=True)
def region(s, u0, u1, inputs, order, plo, lo, hi, D2, par, step, decay, rate, decay64, scale, act, shift):
    """One thread's share of a step: first-layer hidden units u0 <= j < u1 (whole slots of s.slot units)
    of the `EpochState` s, with the hidden activation act (numerics.SIGMOID, RELU or TANH).

    Applies the previous step (images order[plo:lo], deltas D2 (Bv, Kv) of the second layer's
    pre-activations, the outputs' for one hidden layer; none at the first step), then runs the current
    one (images order[lo:hi]; none after the last step): this step's activations into s.A, their share
    of A @ W2.T into s.P[par]. inputs = (ptr, idx, val) from `sparse_inputs`. step = eta / (lo - plo)
    and decay in the weights' dtype, rate and decay64 the same in float64. Returns the scale of W after
    the previous step (see the note above), given the one before it. Backpropagation (Nielsen, ch. 2,
    BP2): Dh = (D2 @ W2) * act'(z), act' written with the activation (`numerics.slope`). shift: None for
    inputs x as they are, else s.shift (normalised inputs x / std - c, see the note above; `shift is None`
    is pruned while compiling, so each case is a kernel of its own).
    """
    W, bias, W2, A, Dh, G, P = s.W, s.bias, s.W2, s.A, s.Dh, s.G, s.P
    ptr, idx, val = inputs
    H, slot = s.H, s.slot
    K = W2.shape[0]
    mp, mc = lo - plo, hi - lo
    zero = ONE - ONE
    # Unsigned unit indices: numba tests a signed index for < 0 (to count from the end), which keeps these
    # loops scalar; an unsigned one it takes as it is.
    top = u1 if u1 < H else H  # max(u0, min(H, u1)) (numerics.MIN_MAX)
    j_lo, j_hi, j_pad, width = np.uint64(u0), np.uint64(u1), np.uint64(top if top > u0 else u0), np.uint64(slot)
    if mp > 0:
        for b in range(mp):  # the deltas, with W2 before its update
            for j in range(j_lo, j_hi):
                Dh[b, j] = zero
            for k in range(K):
                e = D2[b, k]
                for j in range(j_lo, j_hi):
                    Dh[b, j] += e * W2[k, j]
            for j in range(j_lo, j_hi):
                Dh[b, j] *= slope(act, A[b, j])
        for j in range(j_lo, j_hi):
            G[j] = Dh[0, j]
        for b in range(1, mp):
            for j in range(j_lo, j_hi):
                G[j] += Dh[b, j]
        for j in range(j_lo, j_hi):
            bias[j] -= step * G[j]
        if shift is None:
            pass
        else:  # the step's part along (1, ..., 1) into u, and W's new column sums
            c, n_in, u, S, sv = shift
            coef = W.dtype.type(-rate / (scale * decay64))  # update_rows' coefficient below
            for j in range(j_lo, j_hi):
                u[j] -= coef * c * G[j]
            for b in range(mp):
                v = coef * sv[order[plo + b]]
                for j in range(j_lo, j_hi):
                    S[j] += v * Dh[b, j]
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
            if shift is None:
                pass
            else:
                u, S = shift[2], shift[3]
                for j in range(j_lo, j_hi):
                    u[j] *= s
                    S[j] *= s
            scale = 1.0
    if mc > 0:
        forward_products(A, W, u0, u1, ptr, idx, val, order, lo, hi)
        s = W.dtype.type(scale)
        if shift is None:
            for b in range(mc):
                for j in range(j_lo, j_hi):  # whole vectors (the padding too): the loop vectorises without a remainder
                    A[b, j] = activate(act, s * A[b, j] + bias[j])
                for j in range(j_pad, j_hi):
                    A[b, j] = zero
        else:  # z = scale (x/std . W + u sum(x/std) - c (S + D u)) + b
            c, n_in, u, S, sv = shift
            for b in range(mc):
                v = sv[order[lo + b]]
                for j in range(j_lo, j_hi):
                    A[b, j] = activate(act, s * (A[b, j] + u[j] * v - c * (S[j] + n_in * u[j])) + bias[j])
                for j in range(j_pad, j_hi):
                    A[b, j] = zero
        for j0 in range(j_lo, j_hi, width):  # the slot's units add up in order, on one thread
            p, j1 = j0 // width, j_hi if j_hi < j0 + width else j0 + width  # min (numerics.MIN_MAX)
            for b in range(mc):
                for k in range(K):
                    acc = zero
                    for j in range(j0, j1):
                        acc += W2[k, j] * A[b, j]
                    P[par, p, b, k] = acc
    return scale


@njit(cache=True, inline="always")
def prefetch_images(ptr, idx, val, order, lo, hi):
    """Start loading the nonzero pixels of the images order[lo:hi] (see `sparse_inputs`); no effect on results."""
    for b in range(lo, hi):
        n = order[b]
        for k in range(ptr[n], ptr[n + 1], 16):
            prefetch(idx, k)
            prefetch(val, k)


@njit(cache=True, fastmath=FAST, error_model="numpy", no_cpython_wrapper=True, no_cfunc_wrapper=True)
def output_step(P, par, b2, y, order, lo, hi, Z, D2, step, decay, up, act, out):
    """The layers above the first hidden one, for a step of the m = hi - lo images order[lo:hi] (each
    thread runs it on its own copy): Z = b2 + sum_p P[par, p] (m, Kv), the second layer's pre-activations;
    then D2, dLoss/dZ (zero past m and K = b2's length), and b2 -= step * D2.sum(0).

    With one hidden layer (up None: numba compiles only that branch) Z are the outputs and D2 =
    `numerics.output_delta` (sigmoid(Z) - onehot(y) for the default). With more, up = (dims, Wu, bu, U,
    E, Gu), this thread's copies of the layers above the second (see layout.Upper): `upper_step` runs
    them forward and back and steps their weights (act the hidden activation, out the output's kind:
    numerics.SIGMOID or SOFTMAX).
    """
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
    if up is None:  # one hidden layer (pruned while compiling)
        for b in range(Bv):
            if b < m:
                output_delta(out, Z, D2, b, K, y[order[lo + b]])
            else:
                for k in range(Kv):
                    D2[b, k] = zero
    else:
        upper_step(Z, D2, m, y, order, lo, step, decay, up, act, out)
    for k in range(K):
        g = D2[0, k]
        for b in range(1, m):
            g += D2[b, k]
        b2[k] -= step * g


@njit(cache=True, fastmath=FAST, error_model="numpy")
def upper_step(Z, D2, m, y, order, lo, step, decay, up, act, out):
    """Layers 3 to L + 1 (dense, small) of a step of m images, from the second layer's pre-activations
    Z (Bv, Kv); writes the second layer's deltas into D2 (Bv, Kv), zero past m and the layer's width.

    up = (dims, Wu, bu, U, E, Gu): dims (L + 2,) the layer widths [D, H1, ..., HL, K]; Wu the weights
    W3 (H3, H2), ..., W_{L+1} (K, HL) one after the other, row-major; bu the biases b3, ..., b_{L+1};
    U (Bv, H2 + ... + HL + K) the activations of layers 2..L and the outputs' pre-activations; E (2, Bv,
    widest) the deltas, layer by layer; Gu (widest,) scratch. Forward a_l = act(W_l a_{l-1} + b_l),
    backward d_{l-1} = (W_l^T d_l) * act'(z_{l-1}) with W_l before its step, then W_l = decay W_l -
    step d_l a_{l-1}^T and b_l -= step d_l (Nielsen, ch. 2, BP1-BP4; summed over the images).
    """
    dims, Wu, bu, U, E, Gu = up
    L = dims.shape[0] - 2
    zero = ONE - ONE
    H2 = dims[2]
    for b in range(m):
        for i in range(H2):
            U[b, i] = activate(act, Z[b, i])
    ain, wo, bo = 0, 0, 0  # where layer l - 1's activations, W_l and b_l start
    for l in range(3, L + 2):
        n_in, n_out = dims[l - 1], dims[l]
        aout = ain + n_in
        for b in range(m):
            for k in range(n_out):
                acc = zero
                for i in range(n_in):
                    acc += Wu[wo + k * n_in + i] * U[b, ain + i]
                acc += bu[bo + k]
                U[b, aout + k] = activate(act, acc) if l <= L else acc
        ain, wo, bo = aout, wo + n_in * n_out, bo + n_out
    K = dims[L + 1]
    Zo, Do = U[:, ain:ain + K], E[0, :, :K]
    for b in range(m):
        output_delta(out, Zo, Do, b, K, y[order[lo + b]])
    cur = 0
    for l in range(L + 1, 2, -1):
        n_in, n_out = dims[l - 1], dims[l]
        ain, wo, bo = ain - n_in, wo - n_in * n_out, bo - n_out
        Dl, Dp = E[cur], E[1 - cur]
        for b in range(m):
            for i in range(n_in):
                Dp[b, i] = zero
            for k in range(n_out):
                e = Dl[b, k]
                for i in range(n_in):
                    Dp[b, i] += e * Wu[wo + k * n_in + i]
            for i in range(n_in):
                Dp[b, i] *= slope(act, U[b, ain + i])
        for k in range(n_out):
            g = Dl[0, k]
            for b in range(1, m):
                g += Dl[b, k]
            bu[bo + k] -= step * g
            e = Dl[0, k]
            for i in range(n_in):
                Gu[i] = e * U[0, ain + i]
            for b in range(1, m):
                e = Dl[b, k]
                for i in range(n_in):
                    Gu[i] += e * U[b, ain + i]
            for i in range(n_in):
                Wu[wo + k * n_in + i] = decay * Wu[wo + k * n_in + i] - step * Gu[i]
        cur = 1 - cur
    Bv, Kv = D2.shape
    for b in range(Bv):
        for i in range(Kv):
            D2[b, i] = E[cur, b, i] if b < m and i < H2 else zero
