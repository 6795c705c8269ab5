"""The numba kernels of the atlas, a module per job; this package keeps the names callers use.

    intrinsics  LLVM operations numba cannot spell (the only importer of llvmlite): atomics, a prefetch,
                a bit cast, the vector loops of the sparse products
    numerics    exp32, the activations and the output's deltas (chosen at compile time), softplus, the losses' sums
    layout      the images as nonzero pixels (`sparse_inputs`) and `EpochState`, the padded working copies
    step        one SGD step on a range of first-layer hidden units, and the layers above: the maths
    threads     the barrier, the parallel regions, the split of units between threads, the scheduler
    epoch       `sgd_epoch`, the entry point
    reference   the NumPy references the tests hold the kernels to
    cache       drops numba's cached kernels when any module of the package changed (numba checks only
                a function's own file)

Notation: N examples, D inputs (784), H hidden units (H1, ..., HL for L hidden layers), K outputs (10),
B mini-batch size. Parameters are a dict {"W1": (H1, D), "b1": (H1,), ..., "W{L+1}": (K, HL), "b{L+1}": (K,)}.
The first hidden layer runs sparse and threaded; the layers above it are dense and small, and each
thread runs them on its own copy (step.upper_step). Hidden activation sigmoid, relu or tanh; sigmoid
outputs with Nielsen's cross-entropy or softmax with the log-likelihood: each combination compiles its
own kernel, only when used (numerics.py). Normalised inputs ((x - mean) / std, nonzero almost everywhere)
stay sparse through an exact reparametrisation of W1 (step.py), also compiled only when used.
Kernels are pure functions of their arguments (in-place updates say so); no I/O, no classes.
`fastmath` is limited to {'reassoc', 'contract'}: dot products vectorise, NaN and Inf still propagate.
Every loop has a fixed order, so the same inputs give the same bits on every run and on any number of
threads. Every kernel compiles lazily, for the dtypes it is called with: `make site` compiles float32
only, the tests add float64.

The cold compile (issue 17; bench/compile_times.py shows it per function): numba compiles every jitted
callee on its own (optimised, emitted as machine code, cached) and again inside its caller's module.
So the step is written out in `thread_steps` (a separate `region` was built twice), helpers called from
one place are `inline='always'` (numba inlines their IR; `forward_products`, `update_rows`,
`prefetch_images`, `barrier`), min and max are written out on the default path (numba's builtins compile
a function per pair of types; numerics.MIN_MAX), and `output_step`, called only from `thread_steps`, has
no Python or C wrapper. Neither the step nor `output_step` is `inline='always'`: numba's inliner copies a
large function's IR once per block and cost as much as it saved; `output_step` written out gave other
bits. The losses' sums stay compiled: in NumPy they took 26-32 ms an epoch against 13 ms, more over 30
epochs than their 0.25 s of compile (`softplus` inlined into them saved 0.08 s of compile and cost 10-30 ms
an epoch). The default network compiles nine functions: thread_steps, output_step, the loss, and the
activation's and the output's small pieces.
"""

from .cache import invalidate_if_changed

invalidate_if_changed()  # before any kernel loads from numba's cache: see cache.py

from .epoch import sgd_epoch
from .layout import EpochState, aligned_zeros, epoch_result, epoch_state, slot_units, sparse_inputs
from .numerics import (FAST, HIDDEN, ONE, OUTPUT, PRANGE_ONLY, cross_entropy_sum, exp32, log_likelihood_sum, sigmoid,
                       softplus)
from .reference import (activate_numpy, cross_entropy, forward_numpy, log_likelihood,
                        sgd_epoch_numpy, sigmoid_numpy)
from .step import RESCALE_BELOW
from .threads import WARM_STEPS, barrier, schedule, sgd_regions, thread_steps

__all__ = ["EpochState", "FAST", "HIDDEN", "ONE", "OUTPUT", "PRANGE_ONLY", "RESCALE_BELOW", "WARM_STEPS",
           "activate_numpy", "aligned_zeros", "barrier",
           "cross_entropy", "cross_entropy_sum", "epoch_result", "epoch_state", "exp32", "forward_numpy",
           "log_likelihood", "log_likelihood_sum", "schedule",
           "sgd_epoch", "sgd_epoch_numpy", "sgd_regions", "sigmoid", "sigmoid_numpy", "slot_units", "softplus",
           "sparse_inputs", "thread_steps"]
