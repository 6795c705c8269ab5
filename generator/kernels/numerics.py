"""Scalar numerics the kernels share: a vectorisable float32 exp, the activations, softplus and the losses.

The hidden activation and the output's loss are chosen at compile time: each is an instance of its own
namedtuple class (`SIGMOID`, `RELU`, `TANH`; `SOFTMAX` for the output), a type of its own to numba, and
`activate` / `slope` / `output_delta` pick their code by that type while typing. A run compiles only
the variants it uses, and numba's cache keeps each (a value chosen at run time would compile every
variant into the default kernel; `numba.literally` re-entered the compiler on every call from Python,
15 ms a call).

Compiled lazily, like every kernel: a float64 specialisation is built only when something calls it
with float64 (the tests), never by `make site`, which trains in float32.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, types
from numba.extending import overload

from .intrinsics import float32_from_bits

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
# MIN_MAX: on the default network's path, min(a, b) is written `b if b < a else a` and max(a, b)
# `b if b > a else a`, which is what numba's builtins compute (the same value, NaN and signed zeros
# included) and the same LLVM `select`; the builtins compile a function of their own for each pair of
# types, eight of them and 0.35-0.5 s of a cold start.


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
    c = EXP_LO if EXP_LO > x else x  # min(max(x, EXP_LO), EXP_HI), as numba's builtins compute it (see MIN_MAX)
    c = EXP_HI if EXP_HI < c else c
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


# The choices, one class (one numba type) each; the field only keeps the tuple non-empty.
Sigmoid = namedtuple("Sigmoid", ["kind"])
Relu = namedtuple("Relu", ["kind"])
Tanh = namedtuple("Tanh", ["kind"])
Softmax = namedtuple("Softmax", ["kind"])
SIGMOID, RELU, TANH, SOFTMAX = Sigmoid(0), Relu(1), Tanh(2), Softmax(3)
HIDDEN = {"sigmoid": SIGMOID, "relu": RELU, "tanh": TANH}  # network.activation
OUTPUT = {"sigmoid": SIGMOID, "softmax": SOFTMAX}  # network.output


def activate(kind, z):
    """The hidden activation `kind` of a scalar pre-activation z, in z's precision (numba only):
    sigmoid 1 / (1 + e^-z), relu max(z, 0), tanh."""
    raise NotImplementedError("activate is compiled by numba")


@overload(activate)
def _activate(kind, z):
    if kind.instance_class is Relu:
        return lambda kind, z: ONE - ONE if z < ONE - ONE else z  # NaN stays NaN
    if kind.instance_class is Tanh:
        return lambda kind, z: np.tanh(z)
    return lambda kind, z: logistic(z)


def slope(kind, a):
    """d activation / dz written with the activation a itself (numba only): sigmoid a (1 - a), tanh
    1 - a^2, relu 1 where a > 0 else 0."""
    raise NotImplementedError("slope is compiled by numba")


@overload(slope)
def _slope(kind, a):
    if kind.instance_class is Relu:
        return lambda kind, a: ONE if a > ONE - ONE else ONE - ONE
    if kind.instance_class is Tanh:
        return lambda kind, a: ONE - a * a
    return lambda kind, a: a * (ONE - a)


def exp_of(z):
    """exp(z) in z's precision: `exp32` for float32, np.exp otherwise (numba only)."""
    raise NotImplementedError("exp_of is compiled by numba")


@overload(exp_of)
def _exp_of(z):
    if z == types.float32:
        return lambda z: exp32(z)
    return lambda z: np.exp(z)


def output_delta(kind, Z, D, b, K, label):
    """Row b of the output deltas dLoss/dz, D[b, :] (Kv,), from the output pre-activations Z[b, :] (numba
    only). Sigmoid outputs with Nielsen's cross-entropy: sigmoid(z) - onehot(label) (Nielsen,
    Neural Networks and Deep Learning, ch. 3, eq. 66); softmax with the log-likelihood -log p[label]:
    softmax(z) - onehot(label) (ch. 3, eq. 81-84). Padding outputs K <= k get 0."""
    raise NotImplementedError("output_delta is compiled by numba")


@overload(output_delta)
def _output_delta(kind, Z, D, b, K, label):
    if kind.instance_class is Softmax:
        def softmax_delta(kind, Z, D, b, K, label):
            zero = ONE - ONE
            top = Z[b, 0]
            for k in range(1, K):
                top = max(top, Z[b, k])
            total = zero
            for k in range(K):
                D[b, k] = exp_of(Z[b, k] - top)
                total += D[b, k]
            for k in range(K):
                D[b, k] /= total
            D[b, label] -= ONE
            for k in range(K, D.shape[1]):
                D[b, k] = zero
        return softmax_delta

    def sigmoid_delta(kind, Z, D, b, K, label):
        for k in range(D.shape[1]):  # whole rows: the loop vectorises
            D[b, k] = logistic(Z[b, k])
        D[b, label] -= ONE
        for k in range(K, D.shape[1]):
            D[b, k] = ONE - ONE
    return sigmoid_delta


@njit(cache=True)
def softplus(z):
    """log(1 + exp(z)) without overflow."""
    return (0.0 if z < 0.0 else z) + np.log1p(np.exp(-abs(z)))  # max(z, 0.0) (MIN_MAX)


# One thread: it takes a few milliseconds an epoch, and a parallel loop took a second to compile.
@njit(cache=True)
def cross_entropy_sum(Z, y, order):
    """sum_n cross-entropy(Z[n], y[order[n]]) for Z (N, K) output pre-activations, y labels and order (N,)
    the shuffle: each term in float64, summed in a fixed order (float)."""
    N, K = Z.shape
    loss = 0.0
    for n in range(N):
        s = 0.0
        for k in range(K):
            z = np.float64(Z[n, k])
            s += softplus(z) - (z if y[order[n]] == k else 0.0)
        loss += s
    return loss


@njit(cache=True)
def log_likelihood_sum(Z, y, order):
    """sum_n -log softmax(Z[n])[y[order[n]]] (log-sum-exp minus the label's z) for Z (N, K) output
    pre-activations: each term in float64, summed in a fixed order (float)."""
    N, K = Z.shape
    loss = 0.0
    for n in range(N):
        top = np.float64(Z[n, 0])
        for k in range(1, K):
            top = max(top, np.float64(Z[n, k]))
        s = 0.0
        for k in range(K):
            s += np.exp(np.float64(Z[n, k]) - top)
        loss += np.log(s) + top - np.float64(Z[n, y[order[n]]])
    return loss
