"""The numba kernels against the NumPy reference, finite differences and themselves."""

import re
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import pytest

from generator import kernels
from generator.kernels import threads
from generator.train import init_params


def problem(dtype, n=37, d=12, h=7, k=4, seed=0, zeros=0.0):
    """Parameters, images, labels and a shuffle; `zeros` of the pixels are 0, more of them at higher
    indices (like a digit's border), so images have different numbers of nonzero pixels. h is an int
    (one hidden layer) or a tuple of layer sizes."""
    rng = np.random.default_rng(seed)
    params = {name: p.astype(dtype) for name, p in init_params(d, h, k, rng).items()}
    X = rng.random((n, d)).astype(dtype)
    if zeros:
        X[rng.random((n, d)) < zeros * 2 * np.linspace(0.2, 1, d)] = 0
    y = rng.integers(0, k, n)
    return params, X, y, rng.permutation(n)


def run(fn, params, X, y, order, batch, eta, decay, **choices):
    p = {k: v.copy() for k, v in params.items()}
    dtype = X.dtype.type
    loss = fn(p, X, y, order, batch, dtype(eta), dtype(decay), **choices)
    return p, loss


# Every variant the kernels compile: hidden activation x output x inputs (pixels, mostly 0, or normalised:
# (x - mean) / std, nonzero almost everywhere) x one or two hidden layers (and three, once).
@pytest.mark.parametrize("hidden", [7, (7, 5)])
@pytest.mark.parametrize("normalised", [False, True])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_every_variant_matches_numpy_reference_float64(activation, output, normalised, hidden):
    params, X, y, order = problem(np.float64, h=hidden, zeros=0.6, seed=11)
    choices = {"activation": activation, "output": output}
    if normalised:
        choices.update(mean=0.1307, std=0.3081)
    got, loss = run(kernels.sgd_epoch, params, X, y, order, 5, 0.7, 0.999, **choices)
    want, want_loss = run(kernels.sgd_epoch_numpy, params, X, y, order, 5, 0.7, 0.999, **choices)
    assert sorted(got) == sorted(params)
    for name in params:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12)
        assert not np.array_equal(got[name], params[name])
    assert loss == pytest.approx(want_loss, rel=1e-12)


def test_three_hidden_layers_match_numpy_reference_float64():
    params, X, y, order = problem(np.float64, h=(9, 6, 5), zeros=0.5, seed=12)
    got, loss = run(kernels.sgd_epoch, params, X, y, order, 4, 0.5, 0.99, activation="tanh", output="softmax")
    want, want_loss = run(kernels.sgd_epoch_numpy, params, X, y, order, 4, 0.5, 0.99, activation="tanh",
                          output="softmax")
    for name in params:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12)
    assert loss == pytest.approx(want_loss, rel=1e-12)


@pytest.mark.parametrize("hidden", [(30, 20), 30])
def test_other_variants_match_the_reference_in_float32(hidden):
    params, X, y, order = problem(np.float32, n=200, d=784, h=hidden, k=10, seed=3, zeros=0.8)
    choices = {"activation": "relu", "output": "softmax", "mean": 0.1307, "std": 0.3081}
    got, loss = run(kernels.sgd_epoch, params, X, y, order, 10, 0.1, 0.999, **choices)
    want, want_loss = run(kernels.sgd_epoch_numpy, params, X, y, order, 10, 0.1, 0.999, **choices)
    for name in params:
        assert got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=2e-5)
    assert loss == pytest.approx(want_loss, rel=1e-5)


def assert_step_is_minus_eta_times_gradient(params, stepped, eta, loss_of, per_param, eps=1e-6):
    """(params - stepped) / eta equals the central finite difference of loss_of(params dict) at per_param
    random entries of each parameter."""
    rng = np.random.default_rng(1)
    for name, p in params.items():
        for flat in rng.choice(p.size, size=min(p.size, per_param), replace=False):
            idx = np.unravel_index(flat, p.shape)
            up = {k: v.copy() for k, v in params.items()}
            down = {k: v.copy() for k, v in params.items()}
            up[name][idx] += eps
            down[name][idx] -= eps
            numeric = (loss_of(up) - loss_of(down)) / (2 * eps)
            analytic = (params[name][idx] - stepped[name][idx]) / eta
            assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-8), (name, idx)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_one_step_of_every_variant_is_minus_eta_times_the_finite_difference_gradient(activation, output):
    params, X, y, order = problem(np.float64, n=6, h=(5, 4), seed=13, zeros=0.5)
    eta = 0.01
    stepped, _ = run(kernels.sgd_epoch, params, X, y, order, 6, eta, 1.0, activation=activation, output=output,
                     mean=0.3, std=0.5)

    def mean_loss_of(p):
        Z = kernels.forward_numpy(p, (X - 0.3) / 0.5, activation)[-1]
        return (kernels.log_likelihood(Z, y) if output == "softmax" else kernels.cross_entropy(Z, y)).mean()

    assert_step_is_minus_eta_times_gradient(params, stepped, eta, mean_loss_of, per_param=4)


@pytest.mark.parametrize("zeros", [0.0, 0.6])  # dense inputs; inputs mostly 0, as in MNIST
@pytest.mark.parametrize("batch", [1, 5, 10, 37, 50])  # 37 = all at once, 50 > n; 5 and 10 leave a short last batch
def test_epoch_matches_numpy_reference_float64(batch, zeros):
    params, X, y, order = problem(np.float64, zeros=zeros)
    got, loss = run(kernels.sgd_epoch, params, X, y, order, batch, 0.7, 0.999)
    want, want_loss = run(kernels.sgd_epoch_numpy, params, X, y, order, batch, 0.7, 0.999)
    for name in params:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12)
        assert not np.array_equal(got[name], params[name])  # the epoch really moved every parameter
    assert loss == pytest.approx(want_loss, rel=1e-12)


@pytest.mark.parametrize("zeros", [0.0, 0.8])
def test_epoch_matches_numpy_reference_float32_on_mnist_shapes(zeros):
    params, X, y, order = problem(np.float32, n=200, d=784, h=100, k=10, seed=3, zeros=zeros)
    got, loss = run(kernels.sgd_epoch, params, X, y, order, 10, 0.5, 1 - 0.5 * 5 / 200)
    want, want_loss = run(kernels.sgd_epoch_numpy, params, X, y, order, 10, 0.5, 1 - 0.5 * 5 / 200)
    for name in params:
        assert got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=2e-5)
    assert loss == pytest.approx(want_loss, rel=1e-5)


def mean_loss(p, X, y):
    A1 = kernels.sigmoid_numpy(X @ p["W1"].T + p["b1"])
    return kernels.cross_entropy(A1 @ p["W2"].T + p["b2"], y).mean()


def test_one_step_is_minus_eta_times_the_finite_difference_gradient():
    params, X, y, order = problem(np.float64, n=6)
    eta = 0.01
    stepped, _ = run(kernels.sgd_epoch, params, X, y, order, 6, eta, 1.0)  # one batch, no decay
    assert_step_is_minus_eta_times_gradient(params, stepped, eta, lambda p: mean_loss(p, X, y), per_param=8)


def test_weight_decay_scales_weights_not_biases():
    params, X, y, order = problem(np.float64, n=4)
    zero_lr_decay, _ = run(kernels.sgd_epoch, params, X, y, order, 4, 1e-300, 0.5)
    np.testing.assert_allclose(zero_lr_decay["W1"], 0.5 * params["W1"])
    np.testing.assert_allclose(zero_lr_decay["b1"], params["b1"])


def test_loss_is_the_cross_entropy_before_each_step():
    params, X, y, order = problem(np.float64)
    _, loss = run(kernels.sgd_epoch, params, X, y, order, len(y), 0.5, 1.0)  # one step: loss of the start
    assert loss == pytest.approx(mean_loss(params, X, y) * len(y), rel=1e-12)


def test_same_inputs_same_bits():
    params, X, y, order = problem(np.float32, n=100, d=50, h=20, k=10)
    a, la = run(kernels.sgd_epoch, params, X, y, order, 10, 0.5, 0.99)
    b, lb = run(kernels.sgd_epoch, params, X, y, order, 10, 0.5, 0.99)
    assert la == lb
    for name in params:
        assert a[name].tobytes() == b[name].tobytes()


def test_sigmoid_saturates_without_nan():
    assert kernels.sigmoid(np.float32(-200.0)) == 0.0
    assert kernels.sigmoid(np.float32(200.0)) == 1.0
    assert kernels.softplus(-800.0) == 0.0 and kernels.softplus(800.0) == 800.0


def test_nan_propagates():
    params, X, y, order = problem(np.float32)
    params["W1"][0, 0] = np.nan
    p, loss = run(kernels.sgd_epoch, params, X, y, order, 5, 0.5, 1.0)
    assert np.isnan(loss) and np.isnan(p["W2"]).any()


# 7: an odd number of hidden units leaves a padding unit; (20, 12): two hidden layers; the last: relu,
# softmax and normalised inputs
@pytest.mark.parametrize("h, choices", [(100, {}), (7, {}), ((20, 12), {}),
                                        (40, {"activation": "relu", "output": "softmax", "mean": 0.1, "std": 0.3})])
def test_same_bits_on_one_thread_and_on_two(h, choices):
    params, X, y, order = problem(np.float32, n=120, d=50, h=h, k=10, seed=4, zeros=0.5)
    configured = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(run(kernels.sgd_epoch, params, X, y, order, 10, 0.5, 0.99, **choices))
    finally:
        numba.set_num_threads(configured)
    (a, la), (b, lb) = results
    assert la == lb
    for name in params:
        assert a[name].tobytes() == b[name].tobytes()


def regions_in_chunks(params, X, y, order, B, chunks):
    """An epoch by kernels.sgd_regions called directly, over chunks [(t0, t1, threads, bounds), ...]."""
    p = {k: v.copy() for k, v in params.items()}
    f = np.float32
    inputs = kernels.sparse_inputs(X)
    state = kernels.epoch_state(p, B, len(order), 2)
    with ThreadPoolExecutor(1) as pool:
        for t0, t1, threads, bounds in chunks:
            kernels.sgd_regions(t0, t1, threads, np.array(bounds), state, inputs, y, order,
                                f(0.5), f(0.99), 0.5, float(f(0.99)), pool)
    kernels.epoch_result(p, state)
    return p, kernels.cross_entropy_sum(state.Zall, y, order), state.P.shape[1]


def test_same_bits_whatever_thread_count_and_slots_each_chunk_of_steps_runs_on():
    # 40 hidden units: slots of 16, 16 and 8 (a cache line of float32 each, and the rest); a thread's
    # units then fall into register blocks of 1 to 4 vectors in different ways for each split.
    params, X, y, order = problem(np.float32, n=300, d=40, h=40, k=10, seed=5, zeros=0.5)
    B = 3
    want, want_loss = run(kernels.sgd_epoch, params, X, y, order, B, 0.5, 0.99)
    most = min(2, numba.config.NUMBA_NUM_THREADS)
    steps = (len(order) + B - 1) // B
    _, _, n_slots = regions_in_chunks(params, X, y, order, B, [])
    assert n_slots >= 3
    splits = [[0, 1, n_slots], [0, n_slots // 2, n_slots], [0, n_slots - 1, n_slots]]
    chunks = [(t0, min(steps + 1, t0 + 7), 1 if i % 2 else most, splits[i % 3])  # 1 and 2 threads, any split
              for i, t0 in enumerate(range(0, steps + 1, 7))]
    got, loss, _ = regions_in_chunks(params, X, y, order, B, chunks)
    assert loss == want_loss
    for name in params:
        assert got[name].tobytes() == want[name].tobytes()


def test_an_epoch_uses_the_configured_threads():
    params, X, y, order = problem(np.float32, n=60, d=20, h=40, k=10, seed=9, zeros=0.5)
    used = []
    regions = threads.sgd_regions

    def spy(t0, t1, n, *rest):
        used.append(n)
        regions(t0, t1, n, *rest)

    configured = numba.get_num_threads()
    try:
        for n in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(n)
            used.clear()
            with pytest.MonkeyPatch.context() as m:
                m.setattr(threads, "sgd_regions", spy)
                run(kernels.sgd_epoch, params, X, y, order, 10, 0.5, 0.99)
            assert max(used) == n
    finally:
        numba.set_num_threads(configured)


def test_exp32_is_within_one_ulp_of_exp_and_keeps_inf_zero_and_nan():
    x = np.concatenate([np.linspace(-110, 110, 400_001, dtype=np.float32),
                        np.float32([88.72, 88.7228, -87.33, -87.34, 1e-8, -1e-8])])
    got = exp32_of(x)
    exact = np.exp(x.astype(np.float64))
    normal = (exact >= np.finfo(np.float32).tiny) & (exact <= np.finfo(np.float32).max)
    ulps = np.abs(got[normal] - exact[normal]) / np.spacing(exact[normal].astype(np.float32))
    assert ulps.max() <= 1.0
    assert np.all(got[exact > np.finfo(np.float32).max] == np.inf)
    assert np.all(got[x < -87.34] == 0)  # where exp is subnormal or 0
    specials = exp32_of(np.float32([np.nan, np.inf, -np.inf, 0.0, -0.0]))
    assert np.isnan(specials[0]) and list(specials[1:]) == [np.inf, 0.0, 1.0, 1.0]


@numba.njit
def _exp32_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = kernels.exp32(x[i])


def exp32_of(x):
    out = np.empty_like(x)
    _exp32_loop(x, out)
    return out


def simulate(t0, t1, seconds_per_step, wake=0.0):
    """Run kernels.schedule over [t0, t1) with fake runs on 1 or 2 threads and a simulated clock (no
    sleeping, no noise); every run on two threads first waits `wake` seconds for the pool's thread, which
    sleeps between runs, and returns when it began, as threads.sgd_regions does. Returns the calls
    (t0, t1, threads)."""
    now, calls = [0.0], []

    def run(u0, u1, threads):
        calls.append((u0, u1, threads))
        if threads == 1:
            now[0] += seconds_per_step[1] * (u1 - u0)
            return None
        now[0] += wake
        began = now[0]
        now[0] += seconds_per_step[threads] * (u1 - u0)
        return began

    kernels.schedule(run, t0, t1, 2, clock=lambda: now[0])
    assert [c[0] for c in calls] == [t0] + [c[1] for c in calls[:-1]] and calls[-1][1] == t1  # each step once
    return calls


def test_schedule_covers_every_step_once_and_switches_to_the_faster_count():
    # two threads much slower, as when another process holds a core
    calls = simulate(1, 2000, {2: 1e-3, 1: 1e-5})
    assert sum(u1 - u0 for u0, u1, n in calls if n == 1) > 1500


def test_schedule_does_not_count_waking_the_other_thread_against_it():
    # On a virtual machine a region on two threads waits up to milliseconds for the pool's thread (the host
    # runs its idle virtual CPU again). Timing that wait made two threads look slow for the whole epoch:
    # 97% of the steps ran on one thread, 18 us a step against 12 on two (bench/README.md, ninth round).
    calls = simulate(1, 6000, {2: 30e-6, 1: 50e-6}, wake=1.5e-3)
    assert sum(u1 - u0 for u0, u1, n in calls if n == 2) > 5000
    assert calls[1][1] - calls[1][0] == threads.FIRST_STEPS  # the first timed chunk
    # but the wait is paid by every chunk on two threads: one that costs more than two threads gain loses
    calls = simulate(1, 6000, {2: 30e-6, 1: 50e-6}, wake=5e-3)
    assert sum(u1 - u0 for u0, u1, n in calls if n == 1) > 4000
    # each change of thread count starts with WARM_STEPS untimed steps of their own
    switches = [c for prev, c in zip(calls, calls[1:]) if c[2] != prev[2]]
    assert switches and kernels.WARM_STEPS >= 1
    assert all(u1 - u0 == kernels.WARM_STEPS or u1 == 6000 for u0, u1, _ in switches)


def test_a_region_on_two_threads_says_when_its_last_thread_began(monkeypatch):
    # threads.sgd_regions returns the moment the pool's thread began its part, between the call and its end;
    # on one thread, None. schedule leaves the wait before that moment out of the count's cost.
    import time

    if numba.get_num_threads() < 2:
        pytest.skip("numba has one thread here")
    seen, real = [], threads.schedule

    def spy(run, t0, t1, most, clock=time.perf_counter):
        def timed(u0, u1, n):
            before = time.perf_counter()
            began = run(u0, u1, n)
            seen.append((n, before, began, time.perf_counter()))
            return began
        return real(timed, t0, t1, most, clock)

    monkeypatch.setattr(threads, "schedule", spy)
    params, X, y, order = problem(np.float32, n=3000, d=30, h=100, k=10, seed=9, zeros=0.5)
    run(kernels.sgd_epoch, params, X, y, order, 10, 0.5, 1.0)
    assert {n for n, *_ in seen} == {1, 2}
    assert all(began is None for n, _, began, _ in seen if n == 1)
    assert all(before <= began <= after for n, before, began, after in seen if n == 2)


def test_sparse_inputs_against_a_loop():
    _, X, _, _ = problem(np.float64, n=60, d=30, seed=6, zeros=0.6)
    X[3] = 0  # a blank image
    X[4, 7] = np.nan  # NaN counts as nonzero
    ptr, idx, val = kernels.sparse_inputs(X)
    assert ptr[0] == 0 and len(ptr) == 61 and idx.dtype == np.int32 and val.dtype == X.dtype
    for n in range(60):
        want = [i for i in range(30) if X[n, i] != 0]
        assert list(idx[ptr[n]:ptr[n + 1]]) == want
        np.testing.assert_array_equal(val[ptr[n]:ptr[n + 1]], X[n, want])
    assert ptr[4] == ptr[3] and 7 in idx[ptr[4]:ptr[5]]


def test_weights_of_an_input_no_image_uses_only_decay():
    # Column 5 is 0 in every image: the kernel never touches its weights, and they must still decay as
    # the reference's do, once per step (here exactly: W1 = scale * W, one rounding, see kernels/step.py).
    params, X, y, order = problem(np.float32, n=40, d=20, h=7, k=4, seed=7, zeros=0.3)
    X[:, 5] = 0
    decay = np.float32(0.99)
    got, _ = run(kernels.sgd_epoch, params, X, y, order, 10, 0.5, decay)
    scale = 1.0
    for _ in range(4):  # 40 images, batches of 10: four steps
        scale *= float(decay)
    assert got["W1"][:, 5].tobytes() == (scale * params["W1"][:, 5].astype(np.float64)).astype(np.float32).tobytes()
    ref, _ = run(kernels.sgd_epoch_numpy, params, X, y, order, 10, 0.5, decay)
    np.testing.assert_allclose(got["W1"][:, 5], ref["W1"][:, 5], rtol=3e-7)  # the reference rounds at each step
    np.testing.assert_allclose(got["W1"], ref["W1"], rtol=1e-5, atol=1e-6)


def test_decay_that_drives_the_scale_below_its_floor_rescales_without_changing_the_result():
    # 0.5 ** 61 < RESCALE_BELOW: the kernel multiplies W out at step 61 and starts a new scale.
    params, X, y, order = problem(np.float64, n=80, d=12, h=7, k=4, seed=2, zeros=0.4)
    got, loss = run(kernels.sgd_epoch, params, X, y, order, 1, 1e-3, 0.5)
    want, want_loss = run(kernels.sgd_epoch_numpy, params, X, y, order, 1, 1e-3, 0.5)
    assert 0.5 ** 61 < kernels.RESCALE_BELOW < 0.5 ** 59
    for name in params:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-300)
    assert loss == pytest.approx(want_loss, rel=1e-12)


def test_a_nan_pixel_reaches_the_loss():
    params, X, y, order = problem(np.float32, zeros=0.6)
    X[order[-1], -1] = np.nan  # a pixel of the last image, which is 0 in most images
    _, loss = run(kernels.sgd_epoch, params, X, y, order, 5, 0.5, 1.0)
    assert np.isnan(loss)


def test_float32_training_computes_in_float32():
    # A Python int in a float32 expression (decay - decay + 1, 1 - a, eta / m) makes numba compute in
    # float64: the update's inner loop then converted every weight to double and back, at half the speed,
    # while every test of the results still passed. Compile the epoch's kernel afresh and read its LLVM IR
    # (the callees' IR is linked into it), which names no instruction set.
    params, X, y, order = problem(np.float32, n=40, d=30, h=10, k=10, seed=8, zeros=0.5)
    fresh = numba.njit(nogil=True, fastmath=kernels.FAST)(kernels.thread_steps.py_func)
    p = {k: v.copy() for k, v in params.items()}
    state = kernels.epoch_state(p, 10, len(order), 1)
    f = np.float32
    fresh(0, 1, 0, 16, 0, 2, state, state.upper, state.shift, kernels.sparse_inputs(X), y,
          order, f(0.5), f(0.99), 0.5, float(f(0.99)), kernels.HIDDEN["sigmoid"], kernels.OUTPUT["sigmoid"])
    (signature,) = fresh.signatures
    code = fresh.inspect_llvm(signature)
    assert "define" in code and "llvm.fma.v8f32" in code  # the step's own code is there: its vector products
    widened = re.findall(r"fpext [^\n]*float[^\n]* to [^\n]*double", code)
    assert widened == []  # no float32 value is widened to float64
    assert "expf" not in code and "llvm.exp." not in code  # the sigmoids use exp32, not the C library's expf
