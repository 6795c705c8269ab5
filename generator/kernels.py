"""Every numba kernel of the atlas, beside the plain NumPy reference it is tested against.

Notation: N examples, D inputs (784), H hidden units, K outputs (10), B mini-batch size.
Kernels are pure functions of their arguments (in-place updates say so); no I/O, no classes.
`fastmath` is limited to {'reassoc', 'contract'}: dot products vectorise, NaN and Inf still propagate.
Every loop has a fixed order, so the same inputs give the same bits on every run and on any number of
threads. `sgd_epoch` is plain Python around the kernels: it times chunks of steps to choose between one
and two threads and how to split the hidden units between them, which changes how long an epoch takes,
never its result. The few `@intrinsic`s (atomics for the barrier, a cycle counter, a prefetch, a bit
cast for exp32) are LLVM operations numba has no Python spelling for.
"""

from __future__ import annotations

import time

import numpy as np
from llvmlite import ir as llvm_ir
from numba import get_num_threads, njit, prange, set_num_threads, types, threading_layer
from numba.core import cgutils
from numba.extending import intrinsic, overload

FAST = {"reassoc", "contract"}
# Only explicit prange loops run in parallel (numba would otherwise turn every array expression into a
# parallel loop of its own, each compiled separately, for no gain at these sizes).
PRANGE_ONLY = {"prange": True, "comprehension": False, "setitem": False, "reduction": False,
               "numpy": False, "stencil": False, "fusion": False}
# A float32 constant keeps float32 arithmetic in float32 and float64 in float64. A Python int does not:
# numba types float32 - 1 as float64, and a float64 scale in the update's inner loop converted every
# weight to double and back (half the speed, found with inspect_asm). Counts become floats by the
# arrays' dtype: W.dtype.type(m).
ONE = np.float32(1)


# ---------------------------------------------------------------------------------------------
# Numba kernels

@intrinsic
def float32_from_bits(typingctx, bits):
    """The float32 whose IEEE 754 bits are the int32 `bits` (a reinterpretation, not a conversion)."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], llvm_ir.FloatType())
    return types.float32(types.int32), codegen


# exp in float32 as Cephes' expf computes it: x = n ln 2 + r with |r| <= ln 2 / 2, exp(r) by a polynomial,
# 2^n from its bits. Within 1 ulp of the exact value on [-87.3, 88.7] (tests/test_kernels.py measures it),
# inf above, 0 below, NaN stays NaN. Unlike np.exp (a call to the C library's expf for each element)
# LLVM vectorises it: the sigmoids of a step took as long as the forward pass. Its own fastmath flags
# leave out 'reassoc', which would merge the two parts of ln 2 below and lose the reduction's precision.
F32 = np.float32
EXP_HI, EXP_LO = F32(88.72283905206835), F32(-87.33654475)  # exp overflows above, is subnormal below
LOG2E, LN2_HI, LN2_LO = F32(1.44269504088896341), F32(0.693359375), F32(-2.12194440e-4)  # LN2_HI + LN2_LO = ln 2
EXP_POLY = (F32(1.9875691500e-4), F32(1.3981999507e-3), F32(8.3334519073e-3), F32(4.1665795894e-2),
            F32(1.6666665459e-1), F32(5.0000001201e-1))


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def exp32(x):
    """exp(x) for a float32 x, vectorisable (see above)."""
    c = min(max(x, EXP_LO), EXP_HI)
    n = np.floor(c * LOG2E + F32(0.5))
    r = c - n * LN2_HI - n * LN2_LO
    p0, p1, p2, p3, p4, p5 = EXP_POLY
    p = ((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5
    p = p * r * r + r + ONE
    i = np.int32(n)  # -126 <= n <= 128: 2^n as two factors, each a normal float32
    h = i >> np.int32(1)
    e = p * float32_from_bits((h + np.int32(127)) << np.int32(23)) * float32_from_bits((i - h + np.int32(127)) << np.int32(23))
    e = F32(np.inf) if x > EXP_HI else e
    e = F32(0) if x < EXP_LO else e
    return e if x == x else x


def logistic(z):
    """1 / (1 + exp(-z)) in z's precision: with `exp32` for float32, np.exp otherwise (numba only)."""
    raise NotImplementedError("logistic is compiled by numba; call sigmoid")


@overload(logistic)
def _logistic(z):
    if z == types.float32:
        return lambda z: ONE / (ONE + exp32(-z))
    return lambda z: ONE / (ONE + np.exp(-z))


@njit(cache=True, error_model="numpy")
def sigmoid(z):
    """Logistic function of a scalar, in the scalar's own precision (float32 stays float32)."""
    return logistic(z)


@njit(cache=True)
def softplus(z):
    """log(1 + exp(z)) without overflow."""
    return max(z, 0.0) + np.log1p(np.exp(-abs(z)))


# Mini-batch SGD. An epoch runs in a few parallel regions (chunks of about CHUNK_SECONDS), not one per
# step: launching a region costs more than a barrier between two threads that are already running.
# Each thread owns a contiguous run of slots, groups of pairs of hidden units; between two regions the
# boundaries move so that a slower thread (another virtual machine on its core) gets fewer slots (see
# `balanced`). At step t a thread applies step t-1 to its units (their rows of W1, columns of W2 and
# biases), then computes their activations for step t and their share of the output pre-activations,
# while their rows of W1 are still in cache, and gathers its share of the next mini-batch. After a barrier, every thread runs the output layer's small step (the shares'
# sum, the output deltas, b2) on its own copy of it, the same numbers in the same order; thread 0 also
# keeps the pre-activations for the loss. Every number is computed by the same code, in the same order,
# whichever thread owns it: any thread count gives the same bits.
#
# One barrier per step suffices: a thread that has passed step t's barrier may start step t+1 while the
# other still reads step t's shares, so the shares alternate between two buffers (P[t % 2]), and the
# gathered mini-batches rotate through three (the previous step's, the current one's, the next one's).
#
# The working copies are padded so inner loops run over whole vectors and whole register blocks: hidden
# units to pairs (Hp), images to blocks of BLOCK (Bp) and to vectors (Bv), inputs (Dp) and outputs (Kv)
# to vectors. Padding entries are zero and stay zero (a padding hidden unit has activation 0).
#
# Most pixels of a digit are exactly 0, and a zero input adds exactly nothing to a pre-activation or to
# a weight gradient. So the working copy of W1 holds the inputs in `input_order`: the pixels most images
# use come first, and each image's nonzero pixels lie in a prefix of that order (on MNIST 411 of 784 on
# average; 542 for the longest of 10). The forward pass and the update of W1 run over the longest prefix
# of their block of images only; past it, the update applies the weight decay alone, which is what the
# full loop would compute there, bit for bit. Inside the prefix the sums run in another order than over
# 0..D-1, so the result is the reference's up to rounding. (A NaN weight on a pixel that is 0 in every
# image of a block no longer reaches the outputs; it stays in W1, where train.py's finite check stops
# the run. A NaN pixel counts as nonzero.)

ROWS = 2  # hidden units per parallel work item; each image load of the forward pass serves both
COLS = 5  # images per register block of the forward pass; each load of W1 serves 5 images
BLOCK = 10  # images per register block of the update; each load and store of W1 serves 10 images
LANES = 8  # float32 lanes of an AVX2 register
MAX_SLOTS = 32  # slots of pairs whose share of the output pre-activations is summed before the output step
SLOT_BYTES = 1 << 16  # and at most this many bytes of such shares per step (see `slot_pairs`)
GROUP_BYTES = 1 << 17  # rows of W1 handled together: they stay in L2 while a block of images passes


def _item_pointer(context, builder, aryty, ary, idx):
    return cgutils.get_item_pointer(context, builder, aryty, context.make_array(aryty)(context, builder, value=ary),
                                    [idx], wraparound=False)


@intrinsic
def atomic_add(typingctx, ary, idx, val):
    """ary[idx] += val as one atomic operation (sequentially consistent); returns the old value."""
    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        value = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        return builder.atomic_rmw("add", ptr, value, "seq_cst")
    return ary.dtype(ary, idx, val), codegen


@intrinsic
def atomic_load(typingctx, ary, idx):
    """ary[idx], read atomically with acquire ordering: later reads are not moved before it."""
    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", sig.args[0].dtype.bitwidth // 8)
    return ary.dtype(ary, idx), codegen


@intrinsic
def atomic_store(typingctx, ary, idx, val):
    """ary[idx] = val, written atomically with release ordering: earlier writes are not moved after it."""
    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        value = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        builder.store_atomic(value, ptr, "release", sig.args[0].dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(ary, idx, val), codegen


@intrinsic
def cycles(typingctx):
    """The CPU's cycle counter (rdtsc on x86; 0 where LLVM knows none), to balance the threads' work."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, llvm_ir.FunctionType(llvm_ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


@intrinsic
def prefetch(typingctx, ary, idx):
    """Ask the CPU to start loading the cache line of ary[idx] (1-d) into its caches; no effect on results."""
    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        bytes_ptr = llvm_ir.IntType(8).as_pointer()
        i32 = llvm_ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, llvm_ir.FunctionType(llvm_ir.VoidType(), [bytes_ptr, i32, i32, i32]),
                                            "llvm.prefetch.p0i8")
        # read, keep in all cache levels, data cache
        builder.call(fn, [builder.bitcast(ptr, bytes_ptr), llvm_ir.Constant(i32, 0), llvm_ir.Constant(i32, 3), llvm_ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.none(ary, idx), codegen


@njit(cache=True)
def barrier(sync, n):
    """Wait until all n threads have called barrier(sync, n); every write before it is then visible to all.

    sync (16,) int64, zero before the first call: sync[0] counts the arrivals, sync[8] (another cache
    line) the barriers passed. The last to arrive resets the count, then releases the others, who spin.
    Requires the n threads to run at once (see `concurrent_threads`)."""
    passed = atomic_load(sync, 8)
    if atomic_add(sync, 0, 1) == n - 1:
        atomic_store(sync, 0, 0)
        atomic_add(sync, 8, 1)
    else:
        while atomic_load(sync, 8) == passed:
            pass


@njit(cache=True, fastmath=FAST)
def dot2x5(w0, w1, x0, x1, x2, x3, x4, L):
    """The ten dot products of rows w0, w1 with rows x0..x4 over their first L entries: s[5 r + c] = w_r[:L] . x_c[:L]."""
    zero = w0.dtype.type(0)
    s00 = s01 = s02 = s03 = s04 = s10 = s11 = s12 = s13 = s14 = zero
    for i in range(L):
        a0, a1, a2, a3, a4 = x0[i], x1[i], x2[i], x3[i], x4[i]
        u, v = w0[i], w1[i]
        s00 += u * a0
        s01 += u * a1
        s02 += u * a2
        s03 += u * a3
        s04 += u * a4
        s10 += v * a0
        s11 += v * a1
        s12 += v * a2
        s13 += v * a3
        s14 += v * a4
    return s00, s01, s02, s03, s04, s10, s11, s12, s13, s14


@njit(cache=True, fastmath=FAST)
def axpy10(w, scale, c, X, b, L):
    """In place, on the first L entries: w = scale * w - sum_q c[q] X[b + q] for q < 10.  w (Dp,), c a 10-tuple, X (Bp, Dp)."""
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 = c
    for i in range(L):
        w[i] = scale * w[i] - (c0 * X[b, i] + c1 * X[b + 1, i] + c2 * X[b + 2, i] + c3 * X[b + 3, i]
                               + c4 * X[b + 4, i] + c5 * X[b + 5, i] + c6 * X[b + 6, i] + c7 * X[b + 7, i]
                               + c8 * X[b + 8, i] + c9 * X[b + 9, i])


@njit(cache=True, fastmath=FAST)
def update_row(w, d, Xp, b, step, decay, L):
    """Row w of W1 (Dp,) with images [b, b + BLOCK) of the previous step: w -= step * d[b:b+10] @ Xp[b:b+10].

    d (Bv,) the unit's deltas; the block of image 0 also applies the weight decay. The images are 0 past
    their longest prefix L: the sum runs over w[:L], and past it the first block applies the decay alone."""
    c = (step * d[b], step * d[b + 1], step * d[b + 2], step * d[b + 3], step * d[b + 4],
         step * d[b + 5], step * d[b + 6], step * d[b + 7], step * d[b + 8], step * d[b + 9])
    axpy10(w, decay if b == 0 else decay - decay + ONE, c, Xp, b, L)
    if b == 0:  # past L every image of the block is 0: only the decay applies
        tail = w[L:]
        for i in range(tail.shape[0]):
            tail[i] *= decay


@njit(cache=True, fastmath=FAST)
def forward_pair(w0, w1, a0, a1, Xc, b, L):
    """a_r[b:b+5] = w_r . Xc[b:b+5] (pre-activations, bias not added) for rows w0, w1 of W1 (Dp,)."""
    s00, s01, s02, s03, s04, s10, s11, s12, s13, s14 = dot2x5(w0, w1, Xc[b], Xc[b + 1], Xc[b + 2], Xc[b + 3],
                                                              Xc[b + 4], L)
    a0[b], a0[b + 1], a0[b + 2], a0[b + 3], a0[b + 4] = s00, s01, s02, s03, s04
    a1[b], a1[b + 1], a1[b + 2], a1[b + 3], a1[b + 4] = s10, s11, s12, s13, s14


@njit(cache=True, fastmath=FAST)
def unit_update(w2, a, d, g2, D2, D2T, m, step, decay):
    """Hidden unit j's share of the output layer's step: returns the step of b1[j].

    In place: d = (D2 @ w2) * a * (1 - a) (its deltas, with W2 before the update), then
    w2 = decay * w2 - step * D2.T @ a.  w2 (Kv,) = W2[:, j]; a, d (Bv,); g2 (Kv,) scratch;
    D2 (Bv, Kv) and D2T (Kv, Bv) the output deltas, zero past the m images and the K outputs.
    """
    Bv = a.shape[0]
    Kv = w2.shape[0]
    zero = w2[0] - w2[0]
    g = zero
    for b in range(Bv):  # each a dot product of two rows: the sums stay in registers
        s = zero
        for k in range(Kv):
            s += D2[b, k] * w2[k]
        d[b] = s * a[b] * (ONE - a[b])
        g += d[b]
    for k in range(Kv):
        s = zero
        for b in range(m):
            s += D2T[k, b] * a[b]
        g2[k] = s
    for k in range(Kv):
        w2[k] = decay * w2[k] - step * g2[k]
    return step * g


@njit(cache=True, fastmath=FAST, error_model="numpy")
def region(p0, p1, slot, W, bias, W2T, A, Dh, G2, P, H, Xp, Lp, mp, Xc, Lc, mc, D2, D2T, step, decay):
    """One thread's share of a step: pairs of hidden units p0 <= p < p1 (units 2p and 2p + 1), whole slots.

    Applies the previous step (mp images Xp (Bp, Dp), output deltas D2 (Bv, Kv) and D2T (Kv, Bv); none
    at the first step), then runs the current one (mc images Xc; none after the last step).
    W (Hp, Dp) W1; bias (Hp,) b1; W2T (Hp, Kv) W2.T; A, Dh (Hp, Bv) activations and deltas; G2 (Hp, Kv)
    scratch; P (slots, Bv, Kv) each slot's (`slot` pairs') share of A.T @ W2.T.
    """
    Kv = W2T.shape[1]
    group = max(1, GROUP_BYTES // (ROWS * W.shape[1] * W.itemsize))  # pairs whose rows stay in L2
    for g0 in range(p0, p1, group):
        j0, j1 = ROWS * g0, ROWS * min(p1, g0 + group)
        if mp > 0:
            for j in range(j0, j1):
                bias[j] -= unit_update(W2T[j], A[j], Dh[j], G2[j], D2, D2T, mp, step, decay)
            for b in range(0, mp, BLOCK):
                L = Lp[b:b + BLOCK].max()
                for j in range(j0, j1):
                    update_row(W[j], Dh[j], Xp, b, step, decay, L)
        if mc > 0:
            for b in range(0, mc, COLS):
                L = Lc[b:b + COLS].max()
                for j in range(j0, j1, ROWS):
                    forward_pair(W[j], W[j + 1], A[j], A[j + 1], Xc, b, L)
            Bv = A.shape[1]
            for j in range(j0, j1):
                if j < H:
                    for b in range(Bv):  # whole rows (the padding too): the loop vectorises without a remainder
                        A[j, b] = sigmoid(A[j, b] + bias[j])
                else:
                    for b in range(Bv):
                        A[j, b] = A[j, b] - A[j, b]
            for j in range(j0, j1, ROWS):
                p = j // ROWS
                s, first = p // slot, p % slot == 0  # the slot's pairs add up in order, on one thread
                for b in range(mc):
                    a0, a1 = A[j, b], A[j + 1, b]
                    if first:
                        for k in range(Kv):
                            P[s, b, k] = W2T[j, k] * a0 + W2T[j + 1, k] * a1
                    else:
                        for k in range(Kv):
                            P[s, b, k] += W2T[j, k] * a0 + W2T[j + 1, k] * a1


@njit(cache=True, fastmath=FAST)
def gather(Xg, Lg, Xo, rows, last, first, stride):
    """Xg[b] = Xo[rows[b]] up to Lg[b] = last[rows[b]] rounded up to whole vectors, and 0 past it, for
    b = first, first + stride, ...; rows of Xg past len(rows) are zeroed, with Lg 0. Xo (N, D) the images
    with their pixels in `input_order` (see `ordered_inputs`): the copy is sequential and stops at Lg[b]."""
    Dp = Xg.shape[1]
    D = Xo.shape[1]
    for b in range(first, Xg.shape[0], stride):
        L = 0
        if b < rows.shape[0]:
            L = min(Dp, (last[rows[b]] + LANES - 1) // LANES * LANES)
            x, g = Xo[rows[b]], Xg[b]
            for k in range(min(L, D)):
                g[k] = x[k]
        Lg[b] = L
        tail = Xg[b, min(L, D):]
        for k in range(tail.shape[0]):
            tail[k] = 0


@njit(cache=True)
def prefetch_rows(Xo, rows, last, first, stride):
    """Start loading what `gather` will copy of the images Xo[rows[b]], b = first, first + stride, ..."""
    line = max(1, 64 // Xo.itemsize)
    for b in range(first, rows.shape[0], stride):
        x = Xo[rows[b]]
        L = min(x.shape[0], last[rows[b]] + LANES)
        for i in range(0, L, line):
            prefetch(x, i)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def output_step(P, b2, y, order, lo, hi, Z, D2, D2T, step):
    """The output layer's part of a step of the m = hi - lo images order[lo:hi] (each thread runs it on its
    own copy): Z = b2 + sum_p P[p] (m, Kv), D2 = sigmoid(Z) - onehot(y[order[lo:hi]]) (zero past m and K;
    D2T its transpose), and b2 -= step * D2.sum(0)."""
    m = hi - lo
    K = b2.shape[0]
    Bv, Kv = D2.shape
    zero = ONE - ONE
    for b in range(m):
        for k in range(Kv):
            Z[b, k] = b2[k] if k < K else zero
    for p in range(P.shape[0]):
        for b in range(m):
            for k in range(Kv):
                Z[b, k] += P[p, b, k]
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
        for k in range(Kv):
            D2T[k, b] = D2[b, k]
    for k in range(K):
        g = D2[0, k]
        for b in range(1, m):
            g += D2[b, k]
        b2[k] -= step * g


@njit(cache=True, parallel=PRANGE_ONLY, fastmath=FAST)
def sgd_regions(t0, t1, threads, bounds, busy, W, bias, W2T, b2c, H, Xo, last, y, order, B, eta, decay,
                slot, Xg, Lg, A, Dh, G2, P, Z, D2, D2T, Zall, sync):
    """Steps t0 <= t < t1 of an epoch in one parallel region on `threads` threads (step t: step t-1's
    update, step t's forward pass and output layer); the caller has set numba's thread count to `threads`.

    Works on the copies made by `epoch_state`; t = steps = ceil(N / B) only applies the last step.
    Thread c owns slots bounds[c] <= s < bounds[c + 1] (on one thread, all) and adds the cycles it spends
    on them and on gathering to busy[c, 0]; which thread owns a slot never changes a result. Each thread c
    has its own copy of the output layer's state (b2c[c], Z[c], D2[c], D2T[c]); they start as copies of
    thread 0's, which the previous call may have advanced alone.
    """
    N = order.shape[0]
    K = Zall.shape[1]
    n_pairs = W.shape[0] // ROWS
    n_slots = P.shape[1]
    n_chunks = min(n_slots, threads, b2c.shape[0])
    for c in range(1, n_chunks):
        b2c[c] = b2c[0]
        Z[c] = Z[0]
        D2[c] = D2[0]
        D2T[c] = D2T[0]
    if t0 == 0:
        gather(Xg[0], Lg[0], Xo, order[:B], last, 0, 1)
    sync[:] = 0  # the barrier's counters
    busy[:] = 0
    for c in prange(n_chunks):
        s0, s1 = (0, n_slots) if n_chunks == 1 else (bounds[c], bounds[c + 1])
        p0, p1 = min(n_pairs, slot * s0), min(n_pairs, slot * s1)
        b2, Zc, D2c, D2Tc = b2c[c], Z[c], D2[c], D2T[c]
        for t in range(t0, t1):
            lo, hi = min(N, t * B), min(N, t * B + B)  # this step's images: order[lo:hi] (none after the last)
            plo = max(0, t * B - B)  # the previous step's: order[plo:lo]
            nhi = min(N, hi + B)  # the next step's: order[hi:nhi]
            mp, mc = lo - plo, hi - lo
            step = eta / W.dtype.type(max(mp, 1))
            Xp, Xc, Xn = Xg[(t + 2) % 3], Xg[t % 3], Xg[(t + 1) % 3]
            Lp, Lc, Ln = Lg[(t + 2) % 3], Lg[t % 3], Lg[(t + 1) % 3]
            Pt = P[t % 2]
            started = cycles()
            region(p0, p1, slot, W, bias, W2T, A, Dh, G2, Pt, H, Xp, Lp, mp, Xc, Lc, mc, D2c, D2Tc, step, decay)
            if nhi > hi:
                gather(Xn, Ln, Xo, order[hi:nhi], last, c, n_chunks)
                prefetch_rows(Xo, order[nhi:nhi + B], last, c, n_chunks)  # the images of step t + 2
            busy[c, 0] += cycles() - started
            if n_chunks > 1:
                barrier(sync, n_chunks)
            if mc > 0:
                output_step(Pt, b2, y, order, lo, hi, Zc, D2c, D2Tc, eta / W.dtype.type(mc))
                if c == 0:
                    for b in range(mc):
                        for k in range(K):
                            Zall[lo + b, k] = Zc[b, k]


@njit(cache=True)
def slot_pairs(n_pairs, Bv, Kv, itemsize):
    """Pairs of hidden units per slot: at most MAX_SLOTS slots, whose shares take at most SLOT_BYTES (two
    slots at least). Slots are the unit of work a thread owns: more of them balance the threads better,
    but each adds a term to the output step's sums. Depends on the shapes only, never on thread counts."""
    n_slots = max(2, min(MAX_SLOTS, SLOT_BYTES // (Bv * Kv * itemsize)))
    return (n_pairs + n_slots - 1) // n_slots


@njit(cache=True)
def epoch_state(W1, b1, W2, b2, batch_size, N, perm, threads):
    """The padded working copies of W1, b1, W2.T and b2 and the buffers of an epoch on up to `threads`
    threads (see `sgd_regions`)."""
    H, D = W1.shape
    K = W2.shape[0]
    dtype = W1.dtype
    B = min(batch_size, N)
    Hp = (H + ROWS - 1) // ROWS * ROWS
    Bp = (B + BLOCK - 1) // BLOCK * BLOCK
    Bv = (Bp + LANES - 1) // LANES * LANES
    Dp = (D + LANES - 1) // LANES * LANES
    Kv = (K + LANES - 1) // LANES * LANES
    W = np.zeros((Hp, Dp), dtype)  # (Hp, Dp) W1
    W2T = np.zeros((Hp, Kv), dtype)  # (Hp, Kv) W2.T: row j belongs to whoever owns hidden unit j
    bias = np.zeros(Hp, dtype)  # (Hp,) b1
    for j in range(H):
        for i in range(D):
            W[j, i] = W1[j, perm[i]]
        for k in range(K):
            W2T[j, k] = W2[k, j]
        bias[j] = b1[j]
    Xg = np.zeros((3, Bp, Dp), dtype)  # the previous, current and next mini-batch, gathered
    A = np.zeros((Hp, Bv), dtype)  # (Hp, Bv) hidden activations
    Dh = np.zeros((Hp, Bv), dtype)  # (Hp, Bv) hidden deltas
    G2 = np.zeros((Hp, Kv), dtype)  # (Hp, Kv) scratch for the gradient of W2
    slot = slot_pairs(Hp // ROWS, Bv, Kv, W.itemsize)
    P = np.zeros((2, (Hp // ROWS + slot - 1) // slot, Bv, Kv), dtype)  # each slot's share of A.T @ W2.T, by step parity
    b2c = np.zeros((threads, K), dtype)  # each thread's copy of b2
    for c in range(threads):
        b2c[c] = b2
    Z = np.zeros((threads, Bv, Kv), dtype)  # each thread's (Bv, Kv) output pre-activations
    D2 = np.zeros((threads, Bv, Kv), dtype)  # each thread's (Bv, Kv) output deltas
    D2T = np.zeros((threads, Kv, Bv), dtype)  # and their transpose
    Zall = np.empty((N, K), dtype)  # (N, K) every image's output pre-activations, for the loss
    Lg = np.zeros((3, Bp), np.int64)  # the gathered rows' lengths (see `gather`)
    sync = np.zeros(16, np.int64)  # the barrier's counters
    return W, bias, W2T, b2c, slot, Xg, Lg, A, Dh, G2, P, Z, D2, D2T, Zall, sync


@njit(cache=True)
def epoch_result(W1, b1, W2, b2, W, bias, W2T, b2c, perm):
    """Copy the working copies back into W1, b1, W2 and b2 (thread 0's copy)."""
    H, D = W1.shape
    K = W2.shape[0]
    for j in range(H):
        for i in range(D):
            W1[j, perm[i]] = W[j, i]
        for k in range(K):
            W2[k, j] = W2T[j, k]
        b1[j] = bias[j]
    for k in range(K):
        b2[k] = b2c[0, k]


@njit(cache=True)
def input_order(X):
    """(perm, last) for the images X (N, D): perm (D,) the inputs by decreasing number of images in which
    they are nonzero (NaN counts), ties by index; last (N,) for each image the length of the prefix of
    perm that holds all its nonzero inputs (0 for a blank image)."""
    N, D = X.shape
    used = np.zeros(D, np.int64)
    for n in range(N):
        for i in range(D):
            used[i] += X[n, i] != 0
    perm = np.argsort(-used, kind="mergesort")  # stable
    rank = np.empty(D, np.int64)
    for k in range(D):
        rank[perm[k]] = k
    last = np.zeros(N, np.int64)
    for n in range(N):
        L = 0
        for i in range(D):
            if X[n, i] != 0:
                L = max(L, rank[i] + 1)
        last[n] = L
    return perm, last


@njit(cache=True, parallel=PRANGE_ONLY)
def permuted(X, perm):
    """X[:, perm], row by row in parallel."""
    N, D = X.shape
    Xo = np.empty((N, D), X.dtype)
    for n in prange(N):
        for k in range(D):
            Xo[n, k] = X[n, perm[k]]
    return Xo


def ordered_inputs(X):
    """(perm, last, Xo) = input_order(X) and the images with their pixels in that order, Xo = X[:, perm]:
    each image's nonzero pixels then come first, and a mini-batch is gathered by copying prefixes. Depends
    on X only: train.py computes it once per training (a second copy of the images: 188 MB for MNIST in
    float32) and passes it to every `sgd_epoch`."""
    perm, last = input_order(X)
    return perm, last, permuted(X, perm)


CHUNK_SECONDS = 0.005  # steps run in parallel regions of about this long, each on the thread count that is faster
PROBE_EVERY = 16  # chunks between two short trials of the other thread count
BALANCE_STEPS = 16  # a call of at least this many steps measures the threads' speeds (see `balanced`)


def sgd_epoch(W1, b1, W2, b2, X, y, order, batch_size, eta, decay, inputs=None):
    """One epoch of mini-batch SGD over X[order], in place on W1, b1, W2, b2.

    X (N, D) float, y (N,) int labels, order (N,) a permutation; eta and decay in the weights' dtype;
    inputs = ordered_inputs(X), computed here when not given. The last mini-batch may be smaller.
    Returns the summed cross-entropy of each example, measured just before the step that uses it.

    Runs on up to numba.get_num_threads() threads. The result does not depend on the thread count, so
    the epoch switches to one thread while two are slower (another process holds a core: every step
    would wait for it) and back when two are faster again.
    """
    N = order.shape[0]
    B = min(batch_size, N)
    steps = (N + B - 1) // B
    perm, last, Xo = ordered_inputs(X) if inputs is None else inputs
    configured = get_num_threads()
    state = epoch_state(W1, b1, W2, b2, B, N, perm, configured)
    W, bias, W2T, b2c, slot, Xg, Lg, A, Dh, G2, P, Z, D2, D2T, Zall, sync = state
    H = W1.shape[0]
    n_slots = P.shape[1]
    most = min(configured, n_slots)
    bounds = np.array([c * n_slots // most for c in range(most + 1)])  # the threads' slots, balanced as it runs
    busy = np.zeros((most, 8), np.int64)  # each thread's cycles in a call (a cache line each)

    def run(t0, t1, threads):
        set_num_threads(threads)
        sgd_regions(t0, t1, threads, bounds, busy, W, bias, W2T, b2c, H, Xo, last, y, order, B, eta, decay,
                    slot, Xg, Lg, A, Dh, G2, P, Z, D2, D2T, Zall, sync)
        if threads == most > 1 and t1 - t0 >= BALANCE_STEPS:
            bounds[:] = balanced(bounds, busy[:, 0])

    try:
        run(0, 1, 1)  # on one thread, which also starts numba's threading layer (`concurrent_threads` asks it)
        most = most if concurrent_threads() else 1
        if most == 1:
            run(1, steps + 1, 1)
        else:
            schedule(run, 1, steps + 1, most)
    finally:
        set_num_threads(configured)
    epoch_result(W1, b1, W2, b2, W, bias, W2T, b2c, perm)
    return cross_entropy_sum(Zall, y, order)


def balanced(bounds, busy):
    """Slot boundaries that give each thread a number of slots in proportion to its speed, measured as
    (its slots) / busy (its cycles) over the last call: one virtual CPU is often slower than the other
    for seconds, while the host runs something else on its core. At least one slot each."""
    counts = np.diff(bounds)
    if np.any(busy <= 0):  # no cycle counter here, or a thread that did nothing
        return bounds
    speed = counts / busy
    ends = np.rint(np.cumsum(speed) / speed.sum() * bounds[-1]).astype(np.int64)
    new = np.concatenate([[0], ends])
    n = len(counts)
    for c in range(1, n):
        new[c] = min(max(new[c], new[c - 1] + 1), bounds[-1] - (n - c))
    return new


def concurrent_threads() -> bool:
    """Whether numba's threading layer runs the chunks of a parallel loop on threads of their own, all at
    once, as `barrier` needs: OpenMP and workqueue do; TBB may run two chunks one after the other on one
    thread, and the first would wait for the second forever."""
    return threading_layer() in ("omp", "workqueue")


def schedule(run, t0, t1, most):
    """Call run(t, u, threads) over t0 <= t < t1 in chunks of about CHUNK_SECONDS, each on 1 or `most`
    threads, whichever took less time per step when last measured; every PROBE_EVERY chunks, a chunk a
    quarter as long measures the other count again. After each change of count one step runs untimed:
    it pays for waking the other thread, which can take milliseconds on a virtual machine (the host
    deschedules an idle virtual CPU), and timing it would make two threads look slow for good."""
    cost = {most: None, 1: None}  # seconds per step (a running mean of the last measurements)
    threads, t, chunk, running = most, t0, 0, None
    while t < t1:
        other = 1 if threads == most else most
        probe = chunk > 0 and (cost[other] is None or chunk % PROBE_EVERY == 0)
        n = other if probe else threads
        if n != running:
            run(t, t + 1, n)
            t, running = t + 1, n
            if t == t1:
                break
        guess = cost[n] if cost[n] is not None else cost[threads]
        seconds = CHUNK_SECONDS / 4 if probe else CHUNK_SECONDS
        length = 4 if guess is None else max(1, int(seconds / max(guess, 1e-9)))
        u = min(t1, t + length)
        started = time.perf_counter()
        run(t, u, n)
        per_step = (time.perf_counter() - started) / (u - t)
        cost[n] = per_step if cost[n] is None else (cost[n] + per_step) / 2
        if cost[other] is not None and cost[other] < cost[threads]:
            threads = other
        t, chunk = u, chunk + 1


@njit(cache=True, parallel=PRANGE_ONLY)
def cross_entropy_sum(Z, y, order):
    """sum_n cross-entropy(Z[n], y[order[n]]), each term in float64, summed in a fixed order."""
    N, K = Z.shape
    terms = np.empty(N)
    for n in prange(N):
        s = 0.0
        for k in range(K):
            z = np.float64(Z[n, k])
            s += softplus(z) - (z if y[order[n]] == k else 0.0)
        terms[n] = s
    loss = 0.0
    for n in range(N):
        loss += terms[n]
    return loss


# ---------------------------------------------------------------------------------------------
# NumPy references: the same maths, vectorised, written for clarity.

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
