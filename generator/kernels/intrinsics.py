"""The LLVM operations numba has no Python spelling for: the only module that imports llvmlite.

A bit cast (for exp32), atomics (for the barrier), a prefetch, and the vector
loops of the sparse products (`dot1`..`dot4`, `axpy1`..`axpy4`). Each is an `@intrinsic`: callable from
numba-compiled code only. Arrays are C-contiguous and indexed flat.
"""

from __future__ import annotations

from llvmlite import ir as llvm_ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

VECTOR_BYTES = 32  # an AVX2 register: 8 float32 or 4 float64
BLOCK_VECTORS = 4  # vectors of hidden units per register block of `sparse_dot` and `sparse_axpy`


@intrinsic
def float32_from_bits(typingctx, bits):
    """The float32 whose IEEE 754 bits are the int32 `bits` (a reinterpretation, not a conversion)."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], llvm_ir.FloatType())
    return types.float32(types.int32), codegen


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
