"""The numba kernels of the atlas, a module per job; this package keeps the names callers use.

    intrinsics  LLVM operations numba cannot spell (the only importer of llvmlite): atomics, a cycle
                counter, a prefetch, a bit cast, the vector loops of the sparse products
    numerics    exp32, sigmoid, softplus, the loss's sum
    layout      the images as nonzero pixels (`sparse_inputs`) and `EpochState`, the padded working copies
    step        one SGD step on a range of hidden units, and the output layer's step: the maths
    threads     the barrier, the parallel regions, the split of units between threads, the scheduler
    epoch       `sgd_epoch`, the entry point
    ablation    the analysis stage's kernel
    reference   the NumPy references the tests hold the kernels to

Notation: N examples, D inputs (784), H hidden units, K outputs (10), B mini-batch size.
Kernels are pure functions of their arguments (in-place updates say so); no I/O, no classes.
`fastmath` is limited to {'reassoc', 'contract'}: dot products vectorise, NaN and Inf still propagate.
Every loop has a fixed order, so the same inputs give the same bits on every run and on any number of
threads. Every kernel compiles lazily, for the dtypes it is called with: `make site` compiles float32
only, the tests add float64.
"""

from .ablation import ablation_correct
from .epoch import sgd_epoch
from .layout import EpochState, aligned_zeros, epoch_result, epoch_state, slot_units, sparse_inputs
from .numerics import FAST, ONE, PRANGE_ONLY, cross_entropy_sum, exp32, sigmoid, softplus
from .reference import ablation_correct_numpy, cross_entropy, sgd_epoch_numpy, sigmoid_numpy
from .step import RESCALE_BELOW
from .threads import WARM_STEPS, balanced, barrier, schedule, thread_steps

__all__ = ["EpochState", "FAST", "ONE", "PRANGE_ONLY", "RESCALE_BELOW", "WARM_STEPS", "ablation_correct",
           "ablation_correct_numpy", "aligned_zeros", "balanced", "barrier",
           "cross_entropy", "cross_entropy_sum", "epoch_result", "epoch_state", "exp32", "schedule",
           "sgd_epoch", "sgd_epoch_numpy", "sigmoid", "sigmoid_numpy", "slot_units", "softplus",
           "sparse_inputs", "thread_steps"]
