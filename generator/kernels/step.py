"""One step of mini-batch SGD on a thread's share of the hidden units, and the output layer's step.

Notation: N examples, D inputs, H hidden units, K outputs; Hs, Bv, Kv the padded sizes (layout.py).
The step itself, a thread's share of it on the hidden units [u0, u1) it owns, is written out in
threads.thread_steps, between the threads' barriers: one compiled function, which numba and LLVM build
once (as a function of its own, `region`, it was compiled on its own and again inside its caller). This
module holds the maths it calls (the sparse products, the output layer's step, the layers above the
second) and these notes.

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
