"""The kernels' layers one by one: each intrinsic against NumPy, the memory layout, the slots, the barrier.

tests/test_kernels.py holds whole epochs to the reference; these find which layer broke.
"""

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
import pytest

from generator import kernels
from generator.errors import BuildError
from generator.kernels import intrinsics, layout

DOTS = (intrinsics.dot1, intrinsics.dot2, intrinsics.dot3, intrinsics.dot4)
AXPYS = (intrinsics.axpy1, intrinsics.axpy2, intrinsics.axpy3, intrinsics.axpy4)


# numba compiles one function per intrinsic: an intrinsic is callable from compiled code only.
@numba.njit
def _dot1(out, o, W, Hs, u, idx, val, k0, k1):
    intrinsics.dot1(out, o, W, Hs, u, idx, val, k0, k1)


@numba.njit
def _dot2(out, o, W, Hs, u, idx, val, k0, k1):
    intrinsics.dot2(out, o, W, Hs, u, idx, val, k0, k1)


@numba.njit
def _dot3(out, o, W, Hs, u, idx, val, k0, k1):
    intrinsics.dot3(out, o, W, Hs, u, idx, val, k0, k1)


@numba.njit
def _dot4(out, o, W, Hs, u, idx, val, k0, k1):
    intrinsics.dot4(out, o, W, Hs, u, idx, val, k0, k1)


@numba.njit
def _axpy1(W, Hs, u, d, o, c, idx, val, k0, k1):
    intrinsics.axpy1(W, Hs, u, d, o, c, idx, val, k0, k1)


@numba.njit
def _axpy2(W, Hs, u, d, o, c, idx, val, k0, k1):
    intrinsics.axpy2(W, Hs, u, d, o, c, idx, val, k0, k1)


@numba.njit
def _axpy3(W, Hs, u, d, o, c, idx, val, k0, k1):
    intrinsics.axpy3(W, Hs, u, d, o, c, idx, val, k0, k1)


@numba.njit
def _axpy4(W, Hs, u, d, o, c, idx, val, k0, k1):
    intrinsics.axpy4(W, Hs, u, d, o, c, idx, val, k0, k1)


def lanes(dtype):
    return intrinsics.VECTOR_BYTES // np.dtype(dtype).itemsize


def sparse_problem(dtype, n_vectors, seed=0):
    """W (D, Hs) with rows longer than the block (a padded stride), a block starting at unit u, and an
    image's nonzero pixels (idx, val) of which the call uses k0 <= k < k1."""
    rng = np.random.default_rng(seed)
    width = n_vectors * lanes(dtype)
    D, u = 30, lanes(dtype)  # the block starts one vector into each row
    Hs = u + width + 3 * lanes(dtype)  # and the rows go on past it
    W = rng.standard_normal((D, Hs)).astype(dtype)
    idx = np.sort(rng.choice(D, size=12, replace=False)).astype(np.int32)
    val = rng.random(12).astype(dtype)
    return W, Hs, u, width, idx, val, 2, 10


def tolerance(dtype):
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-13, "atol": 1e-13}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_vectors", [1, 2, 3, 4])
def test_sparse_dot_against_numpy(dtype, n_vectors):
    W, Hs, u, width, idx, val, k0, k1 = sparse_problem(dtype, n_vectors)
    out = np.full((3, Hs), -7, dtype)  # (rows, Hs): the call writes row 1 from unit u on
    o = 1 * Hs + u
    (_dot1, _dot2, _dot3, _dot4)[n_vectors - 1](out, o, W, Hs, u, idx, val, k0, k1)
    want = val[k0:k1].astype(np.float64) @ W[idx[k0:k1], u:u + width].astype(np.float64)  # (width,)
    np.testing.assert_allclose(out[1, u:u + width], want, **tolerance(dtype))
    assert out.dtype == dtype
    untouched = np.ones(out.shape, bool)
    untouched[1, u:u + width] = False
    assert np.all(out[untouched] == -7)  # nothing outside the block is written


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_vectors", [1, 2, 3, 4])
def test_sparse_axpy_against_numpy(dtype, n_vectors):
    W, Hs, u, width, idx, val, k0, k1 = sparse_problem(dtype, n_vectors, seed=1)
    d = np.random.default_rng(2).standard_normal((2, Hs)).astype(dtype)  # row 1 holds the deltas
    c = dtype(-0.25)
    got = W.copy()
    (_axpy1, _axpy2, _axpy3, _axpy4)[n_vectors - 1](got, Hs, u, d, 1 * Hs + u, c, idx, val, k0, k1)
    want = W.astype(np.float64)
    for k in range(k0, k1):  # pixels are distinct: each row changes once
        want[idx[k], u:u + width] += float(c * val[k]) * d[1, u:u + width].astype(np.float64)
    np.testing.assert_allclose(got, want, **tolerance(dtype))
    outside = np.ones(W.shape, bool)
    outside[idx[k0:k1], u:u + width] = False
    assert got[outside].tobytes() == W[outside].tobytes()  # other rows and units are left as they were


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocks_of_any_size_give_the_same_bits(dtype):
    # The kernels split a thread's units into blocks of 1 to 4 vectors in different ways for each split of
    # units between threads: each unit must get the same sequence of operations whatever its block.
    W, Hs, u, width, idx, val, k0, k1 = sparse_problem(dtype, 4, seed=3)
    L = lanes(dtype)
    whole = np.zeros((1, Hs), dtype)
    _dot4(whole, u, W, Hs, u, idx, val, k0, k1)
    parts = np.zeros((1, Hs), dtype)
    _dot1(parts, u, W, Hs, u, idx, val, k0, k1)
    _dot3(parts, u + L, W, Hs, u + L, idx, val, k0, k1)
    assert parts.tobytes() == whole.tobytes()


@numba.njit
def _exp_bits(i):
    return intrinsics.float32_from_bits(i)


def test_float32_from_bits_reinterprets():
    for x in (1.0, -2.5, 3.4e38, 1e-40):
        bits = np.float32(x).view(np.int32)
        assert _exp_bits(bits) == np.float32(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 5), (7, 112), (784, 104)])
def test_aligned_zeros_start_on_a_cache_line(dtype, rows, cols):
    a = layout.aligned_zeros((rows, cols), dtype)
    assert a.shape == (rows, cols) and a.dtype == dtype and a.flags.c_contiguous
    assert a.ctypes.data % layout.LINE_BYTES == 0
    assert not a.any()


@pytest.mark.parametrize("H, B, K, itemsize", [(100, 10, 10, 4), (7, 10, 4, 4), (1000, 100, 10, 4),
                                               (100, 10, 10, 8), (1, 1, 2, 4), (10000, 60000, 10, 4)])
def test_slot_units_are_whole_lines_that_cover_the_units(H, B, K, itemsize):
    vec = layout.LANES
    Hp, Bv, Kv = -(-H // vec) * vec, -(-B // vec) * vec, -(-K // vec) * vec
    slot = layout.slot_units(Hp, Bv, Kv, itemsize)
    per_line = layout.LINE_BYTES // itemsize
    n_slots = -(-Hp // slot)
    assert slot % per_line == 0 and slot >= per_line
    assert n_slots <= layout.MAX_SLOTS and n_slots * slot >= Hp
    assert n_slots <= max(2, layout.SLOT_BYTES // (Bv * Kv * itemsize))  # the shares stay small


def test_epoch_state_pads_and_copies():
    rng = np.random.default_rng(0)
    H, D, K = 13, 9, 3
    W1, b1 = rng.random((H, D), np.float32), rng.random(H, np.float32)
    W2, b2 = rng.random((K, H), np.float32), rng.random(K, np.float32)
    s = kernels.epoch_state({"W1": W1, "b1": b1, "W2": W2, "b2": b2}, 10, 25, 2)
    assert isinstance(s, kernels.EpochState) and s.H == H and s.B == 10
    assert s.W.shape[0] == D and s.W.shape[1] % (layout.LINE_BYTES // 4) == 0
    np.testing.assert_array_equal(s.W[:, :H], W1.T)
    assert not s.W[:, H:].any() and not s.W2[:, H:].any() and not s.bias[H:].any()  # padding is zero
    for a in (s.W, s.W2, s.A, s.Dh, s.P, s.b2c):
        assert a.ctypes.data % layout.LINE_BYTES == 0
    assert s.upper is None  # one hidden layer: no layers above the second
    out = {name: np.zeros_like(a) for name, a in (("W1", W1), ("b1", b1), ("W2", W2), ("b2", b2))}
    kernels.epoch_result(out, s)
    for got, want in zip(out.values(), (W1, b1, W2, b2)):
        assert got.tobytes() == want.tobytes()


def test_epoch_state_keeps_the_layers_above_the_second_per_thread():
    rng = np.random.default_rng(1)
    sizes = (9, 13, 6, 5, 3)  # D, H1, H2, H3, K
    params = {}
    for l in range(1, len(sizes)):
        params[f"W{l}"] = rng.random((sizes[l], sizes[l - 1]), np.float32)
        params[f"b{l}"] = rng.random(sizes[l], np.float32)
    s = kernels.epoch_state(params, 10, 25, 2)
    assert list(s.upper.dims) == list(sizes) and s.W2.shape[0] == 6
    assert s.upper.Wu.shape == (2, 5 * 6 + 3 * 5) and s.upper.bu.shape == (2, 5 + 3)
    out = {name: np.zeros_like(a) for name, a in params.items()}
    kernels.epoch_result(out, s)
    for name in params:
        assert out[name].tobytes() == params[name].tobytes()


@numba.njit(nogil=True)
def _phases(c, sync, seen, rounds):
    """Thread c of two, `rounds` barriers: before barrier r it marks round r; after it, it reads the
    other's mark. A barrier that let one through early shows as an unmarked round."""
    for r in range(rounds):
        seen[c, r, 0] = 1
        kernels.barrier(sync, 2)
        seen[c, r, 1] = seen[1 - c, r, 0]
        kernels.barrier(sync, 2)


def test_barrier_lets_no_thread_through_before_the_other_arrives():
    sync, seen = np.zeros(16, np.int64), np.zeros((2, 2000, 2), np.int64)
    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(_phases, 1, sync, seen, 2000)
        _phases(0, sync, seen, 2000)
        other.result()
    assert seen[:, :, 1].all() and sync[0] == 0 and sync[8] == 2 * 2000


def test_the_kernel_cache_is_dropped_when_any_kernel_module_changes(tmp_path, monkeypatch):
    """numba checks only a function's own file; cache.py drops every cached kernel when any module changed."""
    from generator.kernels import cache

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    package, pycache = tmp_path / "kernels", tmp_path / "kernels" / "__pycache__"
    package.mkdir()
    (package / "step.py").write_text("x = 1\n")
    (package / "threads.py").write_text("y = 2\n")
    pycache.mkdir()
    compiled = [pycache / "threads.thread_steps-1.py311.nbi", pycache / "threads.thread_steps-1.py311.1.nbc"]
    for f in compiled:
        f.write_bytes(b"old")
    (pycache / "threads.cpython-311.pyc").write_bytes(b"python's own")
    assert cache.invalidate_if_changed(package, pycache)  # no stamp: written for an unknown source
    assert not any(f.exists() for f in compiled) and (pycache / "threads.cpython-311.pyc").exists()
    for f in compiled:
        f.write_bytes(b"new")
    assert not cache.invalidate_if_changed(package, pycache)  # same source: kept
    assert all(f.exists() for f in compiled)
    (package / "step.py").write_text("x = 2\n")  # another module than the cached function's
    assert cache.invalidate_if_changed(package, pycache)
    assert not any(f.exists() for f in compiled)
    assert len(list(pycache.glob(cache.STAMP_PREFIX + "*"))) == 1
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))
    (package / "step.py").write_text("x = 3\n")
    assert not cache.invalidate_if_changed(package, pycache)  # numba's own cache directory: left to numba


def test_a_warmers_mark_holds_until_a_kernel_module_changes(tmp_path, monkeypatch):
    """warm.already_compiled: a KernelWarmer's mark (left once it compiled a network's kernels) spares the next
    training its second process, until any kernels/*.py is newer than the mark, numba's own rule; the cache's
    own check (cache.py, on a changed source) removes the marks with the kernels. Other networks, another numba,
    or numba's index files gone: not compiled."""
    import os
    import sys

    from generator import warm
    from generator.kernels import cache

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    package, pycache = tmp_path / "kernels", tmp_path / "kernels" / "__pycache__"
    package.mkdir()
    (package / "step.py").write_text("x = 1\n")
    pycache.mkdir()
    index = pycache / f"threads.thread_steps-1.py{sys.version_info[0]}{sys.version_info[1]}.nbi"  # numba's
    index.write_bytes(b"an index")
    args, other = [1, "sigmoid", "sigmoid", False], [2, "relu", "softmax", True]
    assert not warm.already_compiled(args, package)
    old = package.stat().st_mtime - 10
    os.utime(package / "step.py", (old, old))
    warm.mark_compiled(args, package)
    assert warm.already_compiled(args, package) and not warm.already_compiled(other, package)
    index.unlink()  # numba's cache gone, the mark left: not compiled
    assert not warm.already_compiled(args, package)
    index.write_bytes(b"an index")
    monkeypatch.setattr(warm, "numba_release", lambda: "0.1.0")  # another numba drops the cache: a mark of its own
    assert not warm.already_compiled(args, package)
    monkeypatch.undo()
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert warm.already_compiled(args, package)
    (package / "step.py").write_text("x = 2\n")  # now newer than the mark
    assert not warm.already_compiled(args, package)
    os.utime(package / "step.py", (old, old))
    assert warm.already_compiled(args, package)
    assert cache.invalidate_if_changed(package, pycache)  # a source the cache was not written for: all dropped
    assert not warm.already_compiled(args, package) and not list(pycache.glob(warm.WARMED_PREFIX + "*"))
    index.write_bytes(b"an index")
    warm.mark_compiled(args, package)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))  # numba's cache is elsewhere: no marks
    assert not warm.already_compiled(args, package)


def test_kernel_warmer_starts_no_process_for_marked_kernels(tmp_path, monkeypatch):
    from generator import warm
    from generator.config import REPO, load_config

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    config = load_config(REPO / "atlas.toml", [])
    started = []
    monkeypatch.setattr(warm, "already_compiled", lambda args, kernels=warm.KERNELS: args == warm.warm_args(config))
    monkeypatch.setattr(warm.KernelWarmer, "__init__", lambda self, args: started.append(args))
    assert warm.KernelWarmer.start(config) is None and not started
    relu = load_config(REPO / "atlas.toml", ["network.activation='relu'"])
    assert isinstance(warm.KernelWarmer.start(relu), warm.KernelWarmer) and started == [warm.warm_args(relu)]


def test_cached_kernels_load_in_the_training_thread_beside_the_sparse_inputs(monkeypatch):
    """warm.CachedKernels, what the train stage gives train.train when numba's cache holds the kernels: its wait
    loads them (train.warm_kernels for the config's network) in the training's own thread, where Ctrl-C stops
    it, while the sparse inputs are made in another thread; a failure to load raises, as epoch 1 would."""
    import threading

    from generator import train, warm
    from generator.config import REPO, load_config

    config = load_config(REPO / "atlas.toml", ["train.epochs=1", "network.hidden=8"])
    loads, made = [], []
    monkeypatch.setattr(train, "warm_kernels", lambda *args: loads.append((args, threading.current_thread())))
    real = train.sparse_inputs
    monkeypatch.setattr(train, "sparse_inputs", lambda X: made.append(threading.current_thread()) or real(X))
    rng = np.random.default_rng(0)
    data = train.Dataset(rng.random((30, 784), dtype=np.float32), rng.integers(0, 10, 30),
                         rng.random((10, 784), dtype=np.float32), rng.integers(0, 10, 10), (28, 28), 10, {},
                         tuple("0123456789"), np.arange(10))
    said = []
    train.train(config, data, warmer=warm.CachedKernels(config), say=said.append)
    assert loads == [(tuple(warm.warm_args(config)), threading.main_thread())]
    assert len(made) == 1 and made[0] is not threading.main_thread()
    assert said[0].startswith("train: numba's kernels ready in ") and "from its cache" in said[0]

    def broken(*args):  # a truncated .nbc: numba raises UnpicklingError at every load
        raise RuntimeError("a cache file numba cannot read\nmore of its text")

    class SecondProcess:  # warm.KernelWarmer: compiles afresh in a second process, then loads here
        made = []
        failed = "the kernels' second process failed (boom)"

        def __init__(self, args):
            self.made.append(args)

        def wait(self, repair=True):
            assert not repair  # no second repair
            return (2.5, 2.5) if works else (None, 0.1)

        def stop(self):
            pass

    dropped = []
    monkeypatch.setattr(train, "warm_kernels", broken)
    monkeypatch.setattr(warm, "drop_cached_kernels", lambda: dropped.append(1) or Path("/the/{cache}"))
    monkeypatch.setattr(warm, "KernelWarmer", SecondProcess)
    for works in (True, False):
        said.clear()
        _, history, _ = train.train(config, data, warmer=warm.CachedKernels(config), say=said.append)
        assert len(history) == 1 and SecondProcess.made[-1] == warm.warm_args(config)
        problem = "numba's cached kernels could not be loaded (RuntimeError: a cache file numba cannot read)"
        if works:
            assert re.fullmatch(r"train: numba's kernels ready in \d+\.\d s, compiled again: " + re.escape(
                problem + ", so numba's cache of them in /the/{cache} was removed"), said[0]), said
        else:
            assert said == [f"train: {problem}; numba's cache of them in /the/{{cache}} was removed; the kernels' "
                            "second process failed (boom); the first epoch compiles them"]
    assert dropped == [1, 1, 1]  # once where the repair worked, twice where it did not (its cache too)

    def cannot(*args):
        raise PermissionError(1, "Operation not permitted", "/the/cache/threads.thread_steps-66.py311.1.nbc")

    monkeypatch.setattr(warm, "drop_cached_kernels", cannot)
    with pytest.raises(BuildError) as raised:  # every run would fail on it again: exit 5, nothing written
        train.train(config, data, warmer=warm.CachedKernels(config))
    assert str(raised.value) == (problem + ", and numba's cache of them could not be removed (Operation not "
                                 "permitted: /the/cache/threads.thread_steps-66.py311.1.nbc); delete the *.nbi and "
                                 "*.nbc files there, or set NUMBA_CACHE_DIR to another directory, and run again")


def test_a_second_process_is_read_by_its_last_line():
    from generator import warm

    assert warm.compile_seconds("[cache] data saved to /x/threads.nbc\n4.21\n") == 4.21  # NUMBA_DEBUG_CACHE=1
    assert warm.compile_seconds("") is None and warm.compile_seconds(None) is None
    assert warm.compile_seconds("Traceback") is None
    assert warm.last_line("Traceback ...\n  File x\nValueError: bad\n\n", 1) == "ValueError: bad"
    assert warm.last_line("", 3) == "exit status 3"
    assert warm.last_line("a warning\n", -9) == "killed by signal 9"  # what it printed before is not why
    assert warm.last_line("[cache] saved\n", 0) == "it printed no seconds; its stderr ended in: [cache] saved"


def test_an_interrupt_while_the_kernels_load_is_not_taken_for_an_unreadable_cache(monkeypatch):
    from generator import train, warm
    from generator.config import REPO, load_config

    def hit_by_ctrl_c(*args):  # Ctrl-C as a numba-compiled function returns (errors.caused_by_interrupt)
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemError("returned a result with an exception set")

    dropped = []
    monkeypatch.setattr(train, "warm_kernels", hit_by_ctrl_c)
    monkeypatch.setattr(warm, "drop_cached_kernels", lambda: dropped.append(1) or Path("/the/cache"))
    with pytest.raises(SystemError):
        warm.CachedKernels(load_config(REPO / "atlas.toml", [])).wait()
    assert not dropped  # no repair: the interrupt goes on up


def test_dropping_numbas_cache_removes_the_kernels_and_the_marks_only(tmp_path):
    from generator.kernels import cache

    folder, marks = tmp_path / "numba", tmp_path / "pycache"
    folder.mkdir()
    marks.mkdir()
    kernels = [folder / "threads.thread_steps-66.py311.nbi", folder / "threads.thread_steps-66.py311.1.nbc"]
    kept = [folder / "threads.cpython-311.pyc", marks / f"{cache.STAMP_PREFIX}0123"]
    for f in [*kernels, *kept, marks / f"{cache.WARMED_PREFIX}cpython-311-1-sigmoid"]:
        f.write_bytes(b"x")
    assert cache.drop(folder, marks) == folder
    assert [f for f in kernels if f.exists()] == [] and all(f.exists() for f in kept)
    assert not list(marks.glob(cache.WARMED_PREFIX + "*"))
    stuck = folder / "numerics.exp32-52.py311.nbi"  # a file it cannot remove (a directory here): the rest still go
    stuck.mkdir()
    for f in [*kernels, marks / f"{cache.WARMED_PREFIX}cpython-311-1-sigmoid"]:
        f.write_bytes(b"x")
    with pytest.raises(OSError) as raised:
        cache.drop(folder, marks)
    assert raised.value.filename == str(stuck)
    assert [f for f in kernels if f.exists()] == [] and not list(marks.glob(cache.WARMED_PREFIX + "*"))
    where = cache.numba_cache_dir()  # numba's own choice (its cache under NUMBA_CACHE_DIR: tests/test_cli_errors.py)
    assert where.is_relative_to(os.environ["NUMBA_CACHE_DIR"]) if os.environ.get("NUMBA_CACHE_DIR") else \
        where == cache.CACHE


def test_a_signal_during_the_kernels_load_is_held_then_delivered(monkeypatch):
    """warm.load_kernels holds SIGINT while numba loads cached kernels: llvmlite then calls back into Python
    through ctypes, which prints and drops an exception raised in the callback, so a Ctrl-C landing there was
    lost and the run went on. The stand-in below drops it the same way; held, it is delivered afterwards."""
    import os
    import signal
    import time

    from generator import train, warm

    def load(*args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)  # the handler runs in here
        except KeyboardInterrupt:  # what ctypes does with an exception raised in a callback
            pass

    monkeypatch.setattr(train, "warm_kernels", load)
    with pytest.raises(KeyboardInterrupt):
        warm.load_kernels([1, "sigmoid", "sigmoid", False])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
