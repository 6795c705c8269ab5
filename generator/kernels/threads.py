"""The threading around the step: parallel regions with a spin barrier between steps, the split of the
hidden units between threads, and the choice of one or two threads as the epoch runs.

An epoch runs in a few parallel regions (chunks of about CHUNK_SECONDS), not one per step: launching a
region costs more than a barrier between two threads that are already running. A region is a nogil
numba function (`thread_steps`) called at once from the caller's thread and from a pool's: numba's
parallel loops (prange) did the same, but compiling one doubled the cold start's compile. Each thread owns a
contiguous run of slots, groups of hidden units (`sgd_epoch` gives each thread the same number; moving
the boundaries towards the faster thread as the epoch ran showed no gain, quiet or with another process on
one core: bench/README.md, "seventh round"). At step t a
thread applies step t-1 to its units (their columns of W1 and W2 and their biases), then computes their
activations for step t and their share of the output pre-activations. After a barrier, every thread
runs the output layer's small step (the shares' sum, the output deltas, b2) on its own copy of it, the
same numbers in the same order; thread 0 also keeps the pre-activations for the loss. One barrier per
step suffices: a thread that has passed step t's barrier may start step t+1 while the other still reads
step t's shares, so the shares alternate between two buffers (P[t % 2]).

Which thread owns a unit never changes a number, so none of this changes a result: only how long it takes.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from .intrinsics import atomic_add, atomic_load, atomic_store
from .layout import LANES
from .numerics import FAST, ONE, SIGMOID, activate, slope
from .step import RESCALE_BELOW, forward_products, output_step, prefetch_images, update_rows

CHUNK_SECONDS = 0.005  # steps run in parallel regions of about this long, each on the thread count that is faster
PROBE_EVERY = 16  # chunks between two short trials of the other thread count
WARM_STEPS = 8  # steps run untimed after each change of thread count (see `schedule`)
FIRST_STEPS = 64  # steps of the epoch's first timed chunk, before any count is measured (see `schedule`)
SWITCH_MARGIN = 0.95  # the other thread count must take at most this share of the time per step to switch


@njit(cache=True, inline="always")
def barrier(sync, n):
    """Wait until all n threads have called barrier(sync, n); every write before it is then visible to all.

    sync (16,) int64, zero before the first call: sync[0] counts the arrivals, sync[8] (another cache
    line) the barriers passed. The last to arrive resets the count, then releases the others, who spin.
    Requires the n threads to run at once: they are threads of their own (see `sgd_regions`)."""
    passed = atomic_load(sync, 8)
    if atomic_add(sync, 0, 1) == n - 1:
        atomic_store(sync, 0, 0)
        atomic_add(sync, 8, 1)
    else:
        while atomic_load(sync, 8) == passed:
            pass


# A thread's share of the step is written out here rather than called: numba compiles every jitted callee
# on its own (typed, lowered, optimised by LLVM, emitted as machine code), then LLVM optimises and emits
# it again inside its caller's module, and the step (then `step.region`) was a third of the cold compile.
# numba's `inline='always'` avoids the second build but copies the callee's IR once per block, each copy
# with all its variables: for the step, as much again as it saved (the small helpers it calls are inlined).
# `step.output_step` stays a function of its own: written out here, LLVM vectorised its sums another way
# and the weights came out different in the last bits.
# No row views (A[b]): each view counts a reference to its array, an atomic operation on a counter both
# threads share. Unsigned unit indices (j): numba tests a signed index for < 0 (to count from the end),
# which keeps those loops scalar; an unsigned one it takes as it is.

@njit(cache=True, nogil=True, fastmath=FAST, error_model="numpy", no_cfunc_wrapper=True)
def thread_steps(c, n_chunks, u0, u1, t0, t1, s, upper, shift, inputs, y, order, eta, decay, rate, decay64, act,
                 out):
    """Thread c's part of steps t0 <= t < t1 (of n_chunks threads running it at once, without the GIL):
    first-layer hidden units u0 <= j < u1 (whole slots of s.slot units) of the `EpochState` s, and its own
    copy of the layers above (s.b2c[c], s.Z[c], s.D2[c], and with two hidden layers or more upper =
    s.upper's Wu[c], bu[c], ...; None for one, which compiles none of their code); thread 0 also keeps the
    output pre-activations in s.Zall. shift = s.shift (None for inputs as they are, see step.py on
    normalised inputs; `shift is None` is pruned while compiling, so each case is a kernel of its own).
    act and out are the hidden activation and the output's kind (numerics.HIDDEN, OUTPUT): each
    combination compiles its own kernel. inputs = (ptr, idx, val) from `sparse_inputs`; eta and decay in
    the weights' dtype, rate and decay64 the same in float64. Returns W's
    scale after the last step (float64, see step.py; every thread computes the same).

    At step t a thread applies step t-1 to its units (images order[plo:lo]; deltas D2 of the second
    layer's pre-activations, the outputs' for one hidden layer), then runs step t's forward pass on them
    (images order[lo:hi]): their activations into s.A, their share of A @ W2.T into s.P[t % 2]. After the
    barrier it runs `step.output_step` on its own copy of the layers above. Backpropagation (Nielsen, ch. 2,
    BP2): Dh = (D2 @ W2) * act'(z), act' written with the activation (`numerics.slope`)."""
    W, bias, W2, A, Dh, G, P, b2c, Zall = s.W, s.bias, s.W2, s.A, s.Dh, s.G, s.P, s.b2c, s.Zall
    B, H = s.B, s.H
    ptr, idx, val = inputs
    N = order.shape[0]
    K = W2.shape[0]  # the second layer's units (the outputs' for one hidden layer)
    b2, Z, D2 = b2c[c, :K], s.Z[c], s.D2[c]
    if upper is None:  # pruned while compiling: a separate kernel for each case
        up = None
    else:
        up = (upper.dims, upper.Wu[c], upper.bu[c], upper.U[c], upper.E[c], upper.Gu[c])
    zero = ONE - ONE
    top = u1 if u1 < H else H  # max(u0, min(H, u1)) (numerics.MIN_MAX)
    j_lo, j_hi, j_pad, width = np.uint64(u0), np.uint64(u1), np.uint64(top if top > u0 else u0), np.uint64(s.slot)
    scale = s.scale[0]
    for t in range(t0, t1):
        # min(N, t B), min(N, t B + B), max(0, t B - B) and min(N, hi + B) below, written out (numerics.MIN_MAX)
        lo, hi = t * B if t * B < N else N, t * B + B if t * B + B < N else N  # this step's images: order[lo:hi]
        plo = t * B - B if t * B - B > 0 else 0  # the previous step's: order[plo:lo]
        mp, m, par = lo - plo, hi - lo, t % 2
        if mp > 0:  # the previous step (none at the first)
            step, rate_m = eta / W.dtype.type(mp), rate / mp
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
                cs, n_in, u, S, sv = shift
                coef = W.dtype.type(-rate_m / (scale * decay64))  # update_rows' coefficient below
                for j in range(j_lo, j_hi):
                    u[j] -= coef * cs * G[j]
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
            update_rows(W, u0, u1, Dh, W.dtype.type(-rate_m / scale), ptr, idx, val, order, plo, lo)
            if scale < RESCALE_BELOW:
                f = W.dtype.type(scale)
                for i in range(W.shape[0]):
                    for j in range(j_lo, j_hi):
                        W[i, j] *= f
                if shift is None:
                    pass
                else:
                    u, S = shift[2], shift[3]
                    for j in range(j_lo, j_hi):
                        u[j] *= f
                        S[j] *= f
                scale = 1.0
        if m > 0:  # this step's forward pass (none after the last)
            forward_products(A, W, u0, u1, ptr, idx, val, order, lo, hi)
            f = W.dtype.type(scale)
            if shift is None:
                for b in range(m):
                    for j in range(j_lo, j_hi):  # whole vectors (the padding too): the loop vectorises without a remainder
                        A[b, j] = activate(act, f * A[b, j] + bias[j])
                    for j in range(j_pad, j_hi):
                        A[b, j] = zero
            else:  # z = scale (x/std . W + u sum(x/std) - c (S + D u)) + b
                cs, n_in, u, S, sv = shift
                for b in range(m):
                    v = sv[order[lo + b]]
                    for j in range(j_lo, j_hi):
                        A[b, j] = activate(act, f * (A[b, j] + u[j] * v - cs * (S[j] + n_in * u[j])) + bias[j])
                    for j in range(j_pad, j_hi):
                        A[b, j] = zero
            for j0 in range(j_lo, j_hi, width):  # the slot's units add up in order, on one thread
                p, j1 = j0 // width, j_hi if j_hi < j0 + width else j0 + width  # min (numerics.MIN_MAX)
                for b in range(m):
                    for k in range(K):
                        acc = zero
                        for j in range(j0, j1):
                            acc += W2[k, j] * A[b, j]
                        P[par, p, b, k] = acc
        prefetch_images(ptr, idx, val, order, hi, hi + B if hi + B < N else N)  # the next step's images
        if n_chunks > 1:
            barrier(s.sync, n_chunks)
        if m > 0:  # the layers above, on this thread's copy: every thread computes the same numbers
            output_step(P, par, b2, y, order, lo, hi, Z, D2, eta / W.dtype.type(m), decay, up, act, out)
            if c == 0:
                if upper is None:
                    for b in range(m):
                        for k in range(K):
                            Zall[lo + b, k] = Z[b, k]
                else:
                    keep_outputs(Zall, lo, hi, upper.U[c])
    return scale


@njit(cache=True)
def keep_outputs(Zall, lo, hi, U):
    """Zall[lo:hi] = the output pre-activations of the step's images, the last block of U (see
    `step.upper_step`)."""
    K = Zall.shape[1]
    at = U.shape[1] - K
    for b in range(hi - lo):
        for k in range(K):
            Zall[lo + b, k] = U[b, at + k]


def sgd_regions(t0, t1, threads, bounds, s, inputs, y, order, eta, decay, rate, decay64, pool=None,
                act=SIGMOID, out=SIGMOID):
    """Steps t0 <= t < t1 of an epoch on `threads` threads at once (step t: step t-1's update, step t's
    forward pass and output layer): the calling thread runs thread 0's part, `pool` (a
    concurrent.futures executor with threads - 1 workers or more; needed for threads > 1) the others.

    Works on the `EpochState` s made by `epoch_state`; t = steps = ceil(N / B) only applies the last step.
    inputs = (ptr, idx, val) from `sparse_inputs`; y (N,) labels; order (N,) the epoch's shuffle.
    Thread c owns slots bounds[c] <= slot < bounds[c + 1] (on one thread, all); which thread owns a slot
    never changes a result. Each thread c has its
    own copy of the output layer's state (b2c[c], Z[c], D2[c]); they start as copies of thread 0's, which
    the previous call may have advanced alone. scale[0] (float64) is W's scale, carried from call to call.
    eta and decay are in the weights' dtype, rate and decay64 the same numbers in float64; act and out
    the hidden activation and the output's kind (numerics.HIDDEN, numerics.OUTPUT).

    Returns when the last of the pool's threads began its part (time.perf_counter; None on one thread):
    a pool's thread sleeps between calls, and waking it took 25-750 us on these virtual machines (more
    than 4 steps' work), which thread 0 spends waiting at the first barrier (see `schedule`).
    """
    Hp = (s.H + LANES - 1) // LANES * LANES  # the units the loops run over (W.shape[1] may be longer)
    n_slots = s.P.shape[1]
    n_chunks = min(n_slots, threads, s.b2c.shape[0])
    s.b2c[1:n_chunks] = s.b2c[0]
    s.Z[1:n_chunks] = s.Z[0]
    s.D2[1:n_chunks] = s.D2[0]
    if s.upper is not None:
        s.upper.Wu[1:n_chunks] = s.upper.Wu[0]
        s.upper.bu[1:n_chunks] = s.upper.bu[0]
    s.sync[:] = 0  # the barrier's counters

    def part(c):
        s0, s1 = (0, n_slots) if n_chunks == 1 else (bounds[c], bounds[c + 1])
        return thread_steps(c, n_chunks, min(Hp, s.slot * s0), min(Hp, s.slot * s1), t0, t1, s, s.upper,
                            s.shift, inputs, y, order, eta, decay, rate, decay64, act, out)

    def timed_part(c):  # a pool's thread: when it began its part (time.perf_counter), then that part
        return time.perf_counter(), part(c)

    others = [pool.submit(timed_part, c) for c in range(1, n_chunks)]
    try:
        s.scale[0] = part(0)
    finally:
        began = [f.result()[0] for f in others]
    return max(began) if began else None


def schedule(run, t0, t1, most, clock=time.perf_counter):
    """Call run(t, u, threads) over t0 <= t < t1 in chunks of about CHUNK_SECONDS, each on 1 or `most`
    threads, whichever took less time per step when last measured (the other count must be faster by
    1 - SWITCH_MARGIN to switch); every PROBE_EVERY chunks, a chunk measures the other count again.
    After each change of count WARM_STEPS steps run untimed: they pay for waking the other thread, which
    can take milliseconds on a virtual machine (the host deschedules an idle virtual CPU), and for moving
    its share of the weights into its core's caches; timing them made two threads look slow for good.
    A pool's thread sleeps again after each call, though, so every call on `most` threads waits for one
    to wake: run returns when its last thread began (`sgd_regions`; None: at once), and the counts are
    compared as chunks of CHUNK_SECONDS, each paying that wait once, not as the chunk that measured it.
    Timed into a 4-step first chunk, the wait made two threads look 65 us a step against 18 on one (12
    when two really ran), and the epoch stayed on one thread for 97% of its steps; the first steps after
    a wake are slow too (40 us a step over 4 steps with the wait left out), so the epoch's first timed
    chunk is FIRST_STEPS long (bench/README.md, "Ninth round").
    clock() gives seconds (time.perf_counter, as `sgd_regions` reports; the tests pass a simulated one)."""
    cost = {most: None, 1: None}  # seconds per step (a running mean of the last measurements)
    wake = {most: 0.0, 1: 0.0}  # seconds a call waited for its last thread to begin (likewise)

    def chunk_cost(k):  # per step, with the wait of a chunk of about CHUNK_SECONDS's steps spread over them
        return cost[k] * (1 + wake[k] / CHUNK_SECONDS)

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
        length = FIRST_STEPS if guess is None else max(1, int(CHUNK_SECONDS / max(guess, 1e-9)))
        u = min(t1, t + length)
        started = clock()
        began = run(t, u, n)  # when its last thread began: the wait before it is counted once per chunk
        waited = 0.0 if began is None else max(0.0, began - started)
        per_step = (clock() - started - waited) / (u - t)
        first = cost[n] is None
        cost[n] = per_step if first else (cost[n] + per_step) / 2
        wake[n] = waited if first else (wake[n] + waited) / 2
        if cost[other] is not None and chunk_cost(other) < SWITCH_MARGIN * chunk_cost(threads):
            threads = other
        t, chunk = u, chunk + 1
