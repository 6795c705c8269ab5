"""Every numba kernel of the atlas, beside the plain NumPy reference it is tested against.

Notation: N examples, D inputs (784), H hidden units, K outputs (10), B mini-batch size.
Kernels are pure functions of their arguments (in-place updates say so); no I/O, no classes.
`fastmath` is limited to {'reassoc', 'contract'}: dot products vectorise, NaN and Inf still propagate.
Every loop has a fixed order, so the same inputs give the same bits on every run and on any number of
threads. `sgd_epoch` is plain Python around the kernels: it times chunks of steps to choose between one
and two threads and how to split the hidden units between them, which changes how long an epoch takes,
never its result. The few `@intrinsic`s (atomics for the barrier, a cycle counter, a prefetch, a bit
cast for exp32, the vector loops of the sparse products) are LLVM operations numba has no Python
spelling for.
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
# Each thread owns a contiguous run of slots, groups of hidden units; between two regions the boundaries
# move so that a slower thread (another virtual machine on its core) gets fewer slots (see `balanced`).
# At step t a thread applies step t-1 to its units (their columns of W1 and W2 and their biases), then
# computes their activations for step t and their share of the output pre-activations. After a barrier,
# every thread runs the output layer's small step (the shares' sum, the output deltas, b2) on its own
# copy of it, the same numbers in the same order; thread 0 also keeps the pre-activations for the loss.
# One barrier per step suffices: a thread that has passed step t's barrier may start step t+1 while the
# other still reads step t's shares, so the shares alternate between two buffers (P[t % 2]).
#
# Most pixels of a digit are exactly 0 (on MNIST 150 of 784 are not), and a zero input adds exactly
# nothing to a pre-activation or to a weight gradient. So the images are kept as their nonzero pixels
# (`sparse_inputs`), and W1 as its transpose W (D, Hs): pixel i's weights to every hidden unit are one
# contiguous row. The forward pass adds, for each nonzero pixel of an image, its value times the
# pixel's row; the update adds to each such row its value times the image's hidden deltas. Both are
# `sparse_dot` / `sparse_axpy`, which keep a block of hidden units in vector registers (numba has no
# vector type, so they are LLVM intrinsics below); on MNIST a step does a fifth of the dense products'
# multiply-adds. Every hidden unit's number is computed by the same operations in the same order
# whichever block, slot or thread it falls in, so any split gives the same bits.
#
# Weight decay without touching every weight each step: W1 = scale * W, with `scale` a float64 that the
# decay multiplies at each step, and the gradient step divided by it before it is added to W
# (W1' = decay W1 - step G  <=>  W' = W - (step / scale') G with scale' = decay scale). A pixel that is
# 0 in every image of a step is not touched at all. W is multiplied out whenever scale falls below
# RESCALE_BELOW and at the end of the epoch. The result is the reference's up to rounding (tests hold
# it to 1e-12 in float64); a weight no image uses ends exactly as scale * W (one rounding instead of
# one per step). A NaN weight on a pixel that is 0 in every image of a step does not reach the outputs
# of that step; it stays in W1, where train.py's finite check stops the run. A NaN pixel is nonzero.
#
# The working copies are padded so inner loops run over whole vectors: hidden units to LANES (Hp),
# images (Bv) and outputs (Kv) to vectors. Padding entries are zero and stay zero (a padding hidden
# unit has activation 0). Rows of hidden units are Hs >= Hp long, whole cache lines, and start on one:
# the threads own whole lines of every row (see `slot_units`), so no line is written by both.

VECTOR_BYTES = 32  # an AVX2 register: 8 float32 or 4 float64
LANES = 8  # hidden units are padded to a multiple of 8: whole vectors in float32 and in float64
BLOCK_VECTORS = 4  # vectors of hidden units per register block of `sparse_dot` and `sparse_axpy`
LINE_BYTES = 64  # a cache line: what two threads must not both write, or the line goes back and forth
MAX_SLOTS = 32  # slots of hidden units whose share of the output pre-activations is summed in the output step
SLOT_BYTES = 1 << 16  # and at most this many bytes of such shares per step (see `slot_units`)
RESCALE_BELOW = 2.0 ** -60  # W is multiplied out when the decay's running scale falls below this


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


# Vectors in LLVM IR: `sparse_dot` and `sparse_axpy` for a fixed number of vectors (1 to BLOCK_VECTORS),
# of the arrays' dtype (float32: 8 lanes, float64: 4). Arrays are C-contiguous and indexed flat. Each
# multiply-add is one llvm.fma (rounded once, as numba's contracted loops round), no fast-math flags.

def _vector_setup(context, builder, dtype):
    vty = llvm_ir.VectorType(context.get_value_type(dtype), VECTOR_BYTES // (dtype.bitwidth // 8))
    fma = cgutils.get_or_insert_function(builder.module, llvm_ir.FunctionType(vty, [vty, vty, vty]),
                                         f"llvm.fma.v{vty.count}f{dtype.bitwidth}")
    return vty, fma


def _as_int64(context, builder, sig, args, which):
    """args, with those at the positions `which` (integers of any width) as int64."""
    return [context.cast(builder, a, t, types.int64) if i in which else a for i, (a, t) in enumerate(zip(args, sig.args))]


def _vector_at(builder, vty, data, index):
    """Pointer to the vector that starts at data[index]."""
    return builder.bitcast(builder.gep(data, [index]), vty.as_pointer())


def _row_start(builder, idx_p, k, Hp, u):
    """idx[k] * Hp + u as int64: where the nonzero pixel k's row of hidden units starts, at unit u."""
    i64 = llvm_ir.IntType(64)
    return builder.add(builder.mul(builder.sext(builder.load(builder.gep(idx_p, [k])), i64), Hp), u)


def _splat(builder, vty, x):
    lanes = llvm_ir.Constant(llvm_ir.VectorType(llvm_ir.IntType(32), vty.count), [0] * vty.count)
    one = builder.insert_element(llvm_ir.Constant(vty, llvm_ir.Undefined), x, llvm_ir.Constant(llvm_ir.IntType(32), 0))
    return builder.shuffle_vector(one, llvm_ir.Constant(vty, llvm_ir.Undefined), lanes)


def _sparse_dot(n_vectors):
    @intrinsic
    def sparse_dot(typingctx, out, o, W, Hp, u, idx, val, k0, k1):
        """out[o + i] = sum over k0 <= k < k1, in order, of val[k] * W[idx[k] * Hp + u + i], for i < n_vectors
        vectors: the pre-activations of a block of hidden units for one image's nonzero pixels."""
        def codegen(context, builder, sig, args):
            out_, o_, W_, Hp_, u_, idx_, val_, k0_, k1_ = _as_int64(context, builder, sig, args, (1, 3, 4, 7, 8))
            vty, fma = _vector_setup(context, builder, sig.args[2].dtype)
            i64 = llvm_ir.IntType(64)
            data = [context.make_array(t)(context, builder, value=a).data
                    for t, a in zip((sig.args[0], sig.args[2], sig.args[5], sig.args[6]), (out_, W_, idx_, val_))]
            out_p, W_p, idx_p, val_p = data
            sums = [cgutils.alloca_once_value(builder, llvm_ir.Constant(vty, [0.0] * vty.count)) for _ in range(n_vectors)]
            with cgutils.for_range_slice(builder, k0_, k1_, llvm_ir.Constant(i64, 1)) as (k, _):
                start = _row_start(builder, idx_p, k, Hp_, u_)
                x = _splat(builder, vty, builder.load(builder.gep(val_p, [k])))
                for v in range(n_vectors):
                    w = builder.load(_vector_at(builder, vty, W_p, builder.add(start, llvm_ir.Constant(i64, v * vty.count))), align=1)
                    builder.store(builder.call(fma, [x, w, builder.load(sums[v])]), sums[v])
            for v in range(n_vectors):
                at = _vector_at(builder, vty, out_p, builder.add(o_, llvm_ir.Constant(i64, v * vty.count)))
                builder.store(builder.load(sums[v]), at, align=1)
            return context.get_dummy_value()
        return types.none(out, o, W, Hp, u, idx, val, k0, k1), codegen
    return sparse_dot


def _sparse_axpy(n_vectors):
    @intrinsic
    def sparse_axpy(typingctx, W, Hp, u, d, o, c, idx, val, k0, k1):
        """W[idx[k] * Hp + u + i] += (c * val[k]) * d[o + i] for k0 <= k < k1 in order, i < n_vectors vectors:
        one image's step on the rows of its nonzero pixels, for a block of hidden units (deltas d)."""
        def codegen(context, builder, sig, args):
            W_, Hp_, u_, d_, o_, c_, idx_, val_, k0_, k1_ = _as_int64(context, builder, sig, args, (1, 2, 4, 8, 9))
            c_ = context.cast(builder, c_, sig.args[5], sig.args[0].dtype)
            vty, fma = _vector_setup(context, builder, sig.args[0].dtype)
            i64 = llvm_ir.IntType(64)
            data = [context.make_array(t)(context, builder, value=a).data
                    for t, a in zip((sig.args[0], sig.args[3], sig.args[6], sig.args[7]), (W_, d_, idx_, val_))]
            W_p, d_p, idx_p, val_p = data
            deltas = [builder.load(_vector_at(builder, vty, d_p, builder.add(o_, llvm_ir.Constant(i64, v * vty.count))), align=1)
                      for v in range(n_vectors)]
            with cgutils.for_range_slice(builder, k0_, k1_, llvm_ir.Constant(i64, 1)) as (k, _):
                start = _row_start(builder, idx_p, k, Hp_, u_)
                a = _splat(builder, vty, builder.fmul(c_, builder.load(builder.gep(val_p, [k]))))
                for v in range(n_vectors):
                    at = _vector_at(builder, vty, W_p, builder.add(start, llvm_ir.Constant(i64, v * vty.count)))
                    builder.store(builder.call(fma, [a, deltas[v], builder.load(at, align=1)]), at, align=1)
            return context.get_dummy_value()
        return types.none(W, Hp, u, d, o, c, idx, val, k0, k1), codegen
    return sparse_axpy


dot1, dot2, dot3, dot4 = (_sparse_dot(n) for n in range(1, BLOCK_VECTORS + 1))
axpy1, axpy2, axpy3, axpy4 = (_sparse_axpy(n) for n in range(1, BLOCK_VECTORS + 1))


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

@njit(cache=True, fastmath=FAST, error_model="numpy")
def region(u0, u1, slot, W, bias, W2, A, Dh, G, P, par, H, ptr, idx, val, order, plo, lo, hi, D2, step, decay,
           rate, decay64, scale):
    """One thread's share of a step: hidden units u0 <= j < u1 (whole slots of `slot` units).

    Applies the previous step (images order[plo:lo], output deltas D2 (Bv, Kv); none at the first step),
    then runs the current one (images order[lo:hi]; none after the last step). W (D, Hs) W1.T / scale;
    bias (Hs,) b1; W2 (K, Hs); A, Dh (Bv, Hs) activations and deltas; G (Hs,) scratch; P (2, slots, Bv, Kv)
    each slot's share of A @ W2.T, P[par] this step's. step = eta / (lo - plo) and decay in the
    weights' dtype, rate and decay64 the same in float64. Returns the scale of W after the previous step
    (see the note above).
    """
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


@njit(cache=True, parallel=PRANGE_ONLY, fastmath=FAST)
def sgd_regions(t0, t1, threads, bounds, busy, W, bias, W2, b2c, H, ptr, idx, val, y, order, B, eta, decay,
                rate, decay64, slot, A, Dh, G, P, Z, D2, Zall, scale, sync):
    """Steps t0 <= t < t1 of an epoch in one parallel region on `threads` threads (step t: step t-1's
    update, step t's forward pass and output layer); the caller has set numba's thread count to `threads`.

    Works on the copies made by `epoch_state`; t = steps = ceil(N / B) only applies the last step.
    Thread c owns slots bounds[c] <= s < bounds[c + 1] (on one thread, all) and adds the cycles it spends
    on them to busy[c, 0]; which thread owns a slot never changes a result. Each thread c has its own copy
    of the output layer's state (b2c[c], Z[c], D2[c]); they start as copies of thread 0's, which the
    previous call may have advanced alone. scale[0] (float64) is W's scale, carried from call to call.
    eta and decay are in the weights' dtype, rate and decay64 the same numbers in float64.
    """
    N = order.shape[0]
    K = Zall.shape[1]
    Hp = (H + LANES - 1) // LANES * LANES  # the units the loops run over (W.shape[1] may be longer)
    n_slots = P.shape[1]
    n_chunks = min(n_slots, threads, b2c.shape[0])
    for c in range(1, n_chunks):
        b2c[c] = b2c[0]
        Z[c] = Z[0]
        D2[c] = D2[0]
    start_scale = scale[0]
    sync[:] = 0  # the barrier's counters
    busy[:] = 0
    for c in prange(n_chunks):
        s0, s1 = (0, n_slots) if n_chunks == 1 else (bounds[c], bounds[c + 1])
        u0, u1 = min(Hp, slot * s0), min(Hp, slot * s1)
        b2, Zc, D2c = b2c[c, :K], Z[c], D2[c]
        w_scale = start_scale
        for t in range(t0, t1):
            lo, hi = min(N, t * B), min(N, t * B + B)  # this step's images: order[lo:hi] (none after the last)
            plo = max(0, t * B - B)  # the previous step's: order[plo:lo]
            mp = max(lo - plo, 1)
            started = cycles()
            w_scale = region(u0, u1, slot, W, bias, W2, A, Dh, G, P, t % 2, H, ptr, idx, val, order, plo, lo, hi, D2c,
                             eta / W.dtype.type(mp), decay, rate / mp, decay64, w_scale)
            prefetch_images(ptr, idx, val, order, hi, min(N, hi + B))  # the next step's images
            busy[c, 0] += cycles() - started
            if n_chunks > 1:
                barrier(sync, n_chunks)
            if hi > lo:
                output_step(P, t % 2, b2, y, order, lo, hi, Zc, D2c, eta / W.dtype.type(hi - lo))
                if c == 0:
                    for b in range(hi - lo):
                        for k in range(K):
                            Zall[lo + b, k] = Zc[b, k]
        if c == 0:
            scale[0] = w_scale


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
    """The padded working copies of W1 (transposed), b1, W2 and b2 and the buffers of an epoch on up to
    `threads` threads (see `sgd_regions`)."""
    H, D = W1.shape
    K = W2.shape[0]
    dtype = W1.dtype
    B = min(batch_size, N)
    Hp = (H + LANES - 1) // LANES * LANES
    per_line = LINE_BYTES // W1.itemsize
    Hs = (Hp + per_line - 1) // per_line * per_line  # row length: every row starts on a cache line
    Bv = (B + LANES - 1) // LANES * LANES
    Kv = (K + LANES - 1) // LANES * LANES
    W = aligned_zeros(D, Hs, W1)  # (D, Hs) W1.T, times 1 / scale
    W2p = aligned_zeros(K, Hs, W1)  # (K, Hs) W2: column j belongs to whoever owns hidden unit j
    bias = aligned_zeros(1, Hs, W1)[0]  # (Hs,) b1
    for j in range(H):
        for i in range(D):
            W[i, j] = W1[j, i]
        for k in range(K):
            W2p[k, j] = W2[k, j]
        bias[j] = b1[j]
    A = aligned_zeros(Bv, Hs, W1)  # (Bv, Hs) hidden activations
    Dh = aligned_zeros(Bv, Hs, W1)  # (Bv, Hs) hidden deltas
    G = aligned_zeros(1, Hs, W1)[0]  # (Hs,) scratch for sums over the images
    slot = slot_units(Hp, Bv, Kv, W.itemsize)
    n_slots = (Hp + slot - 1) // slot
    P = aligned_zeros(2 * n_slots, Bv * Kv, W1).reshape((2, n_slots, Bv, Kv))  # each slot's share of A @ W2.T, by step parity
    Kl = (K * W.itemsize + LINE_BYTES - 1) // LINE_BYTES * LINE_BYTES // W.itemsize
    b2c = aligned_zeros(threads, Kl, W1)  # each thread's copy of b2 (b2c[c, :K]), a cache line of its own
    for c in range(threads):
        b2c[c, :K] = b2
    Z = aligned_zeros(threads * Bv, Kv, W1).reshape((threads, Bv, Kv))  # each thread's (Bv, Kv) output pre-activations
    D2 = aligned_zeros(threads * Bv, Kv, W1).reshape((threads, Bv, Kv))  # each thread's (Bv, Kv) output deltas
    Zall = np.empty((N, K), dtype)  # (N, K) every image's output pre-activations, for the loss
    scale = np.ones(1)  # W1 = scale[0] * W.T
    sync = np.zeros(16, np.int64)  # the barrier's counters
    return W, bias, W2p, b2c, slot, A, Dh, G, P, Z, D2, Zall, scale, sync


@njit(cache=True)
def epoch_result(W1, b1, W2, b2, W, bias, W2p, b2c, scale):
    """Copy the working copies back into W1 (scale[0] * W.T, each product rounded once), b1, W2 and b2
    (thread 0's copy)."""
    H, D = W1.shape
    K = W2.shape[0]
    s = scale[0]
    for j in range(H):
        for i in range(D):
            W1[j, i] = s * W[i, j]
        for k in range(K):
            W2[k, j] = W2p[k, j]
        b1[j] = bias[j]
    for k in range(K):
        b2[k] = b2c[0, k]


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


CHUNK_SECONDS = 0.005  # steps run in parallel regions of about this long, each on the thread count that is faster
PROBE_EVERY = 16  # chunks between two short trials of the other thread count
BALANCE_STEPS = 16  # a call of at least this many steps measures the threads' speeds (see `balanced`)
WARM_STEPS = 8  # steps run untimed after each change of thread count (see `schedule`)
SWITCH_MARGIN = 0.95  # the other thread count must take at most this share of the time per step to switch


def sgd_epoch(W1, b1, W2, b2, X, y, order, batch_size, eta, decay, inputs=None):
    """One epoch of mini-batch SGD over X[order], in place on W1, b1, W2, b2.

    X (N, D) float, y (N,) int labels, order (N,) a permutation; eta and decay in the weights' dtype;
    inputs = sparse_inputs(X), computed here when not given. The last mini-batch may be smaller.
    Returns the summed cross-entropy of each example, measured just before the step that uses it.

    Runs on up to numba.get_num_threads() threads. The result does not depend on the thread count, so
    the epoch switches to one thread while two are slower (another process holds a core: every step
    would wait for it) and back when two are faster again.
    """
    N = order.shape[0]
    B = min(batch_size, N)
    steps = (N + B - 1) // B
    ptr, idx, val = sparse_inputs(X) if inputs is None else inputs
    configured = get_num_threads()
    state = epoch_state(W1, b1, W2, b2, B, N, configured)
    W, bias, W2p, b2c, slot, A, Dh, G, P, Z, D2, Zall, scale, sync = state
    rate, decay64 = float(eta), float(decay)
    H = W1.shape[0]
    n_slots = P.shape[1]
    most = min(configured, n_slots)
    bounds = np.array([c * n_slots // most for c in range(most + 1)])  # the threads' slots, balanced as it runs
    busy = np.zeros((most, 8), np.int64)  # each thread's cycles in a call (a cache line each)

    def run(t0, t1, threads):
        set_num_threads(threads)
        sgd_regions(t0, t1, threads, bounds, busy, W, bias, W2p, b2c, H, ptr, idx, val, y, order, B, eta, decay,
                    rate, decay64, slot, A, Dh, G, P, Z, D2, Zall, scale, sync)
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
    epoch_result(W1, b1, W2, b2, W, bias, W2p, b2c, scale)
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
    threads, whichever took less time per step when last measured (the other count must be faster by
    1 - SWITCH_MARGIN to switch); every PROBE_EVERY chunks, a chunk measures the other count again.
    After each change of count WARM_STEPS steps run untimed: they pay for waking the other thread, which
    can take milliseconds on a virtual machine (the host deschedules an idle virtual CPU), and for moving
    its share of the weights into its core's caches; timing them made two threads look slow for good."""
    cost = {most: None, 1: None}  # seconds per step (a running mean of the last measurements)
    threads, t, chunk, running = most, t0, 0, None
    while t < t1:
        other = 1 if threads == most else most
        probe = chunk > 0 and (cost[other] is None or chunk % PROBE_EVERY == 0)
        n = other if probe else threads
        if n != running:
            u = min(t1, t + WARM_STEPS)
            run(t, u, n)
            t, running = u, n
            if t == t1:
                break
        guess = cost[n] if cost[n] is not None else cost[threads]
        length = 4 if guess is None else max(1, int(CHUNK_SECONDS / max(guess, 1e-9)))
        u = min(t1, t + length)
        started = time.perf_counter()
        run(t, u, n)
        per_step = (time.perf_counter() - started) / (u - t)
        cost[n] = per_step if cost[n] is None else (cost[n] + per_step) / 2
        if cost[other] is not None and cost[other] < SWITCH_MARGIN * cost[threads]:
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
