"""Seconds per training epoch on MNIST: the numba kernel, the NumPy reference and PyTorch (CPU), in one run.

Run by `make bench` (see bench/README.md). Every implementation trains the same 784-H-10 network with the
same maths (mini-batch SGD, L2 decay on the weights, cross-entropy on sigmoid outputs) from the same
initial weights on the same shuffled images; the slower baselines run on a prefix of the shuffle, and
every figure is scaled to seconds per epoch of 60,000 images. The machine may be shared: each figure is
the median of several runs, and the FLOP limit is measured in the same run so that both see the same machine.

Each implementation runs in a process of its own (`--worker`), so that the thread pools of numba, OpenBLAS
and PyTorch, which keep spinning for a while after each parallel call, never compete with each other.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import functools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generator import kernels  # noqa: E402
from generator.config import load_config  # noqa: E402
from generator.data import load_dataset  # noqa: E402
from generator.train import init_params  # noqa: E402

CONFIGS = [(10, 100), (100, 100), (10, 1000), (100, 1000)]  # (batch size, hidden units)
ETA, L2 = 0.5, 5.0  # the default config's first-epoch learning rate and L2 decay
REPEATS = 5  # timed runs per implementation and config; the median is reported (this machine is noisy)
SECONDS_PER_RUN = 1.5  # the slow baselines train on a prefix of the shuffle that takes about this long


def flops_per_epoch(n: int, d: int, h: int, k: int) -> float:
    """Forward pass (2ndh + 2nhk), hidden and output deltas (2nhk), weight gradients (2ndh + 2nhk)."""
    return 4.0 * n * d * h + 6.0 * n * h * k


def matmul_gflops(size: int = 2048, repeats: int = 7) -> tuple[float, float]:
    """(best, median) GFLOP/s of a float32 size x size matrix product in NumPy (its BLAS, all its threads)."""
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * size**3 / min(times) / 1e9, 2 * size**3 / statistics.median(times) / 1e9


def openblas_core() -> str:
    """The kernel OpenBLAS chose for this CPU (OPENBLAS_CORETYPE can force an older, slower one)."""
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "openblas" in line.lower() and line.strip().endswith(".so")}
    for path in sorted(libs):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename64_",
                     "openblas_get_corename"):
            if hasattr(lib, name):
                fn = getattr(lib, name)
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return "unknown"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def torch_epoch(torch):
    """sgd_epoch with the same arguments, in PyTorch on the CPU (same maths as kernels.sgd_epoch_numpy)."""
    F = torch.nn.functional

    def epoch(params, X, y, order, batch_size, eta, decay):
        W1, b1, W2, b2 = (torch.from_numpy(params[k]) for k in ("W1", "b1", "W2", "b2"))  # shares memory: in place
        X, y, order = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(order)
        eta, decay = float(eta), float(decay)
        K = W2.shape[0]
        loss = 0.0
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                Xb, yb, m = X[idx], y[idx], len(idx)
                A1 = torch.sigmoid(torch.addmm(b1, Xb, W1.T))
                Z2 = torch.addmm(b2, A1, W2.T)
                loss += float(F.binary_cross_entropy_with_logits(
                    Z2.double(), F.one_hot(yb, K).double(), reduction="sum"))
                D2 = torch.sigmoid(Z2)
                D2[torch.arange(m), yb] -= 1
                D1 = (D2 @ W2) * A1 * (1 - A1)
                step = eta / m
                W2.mul_(decay).sub_(D2.T @ A1, alpha=step)
                b2.sub_(D2.sum(0), alpha=step)
                W1.mul_(decay).sub_(D1.T @ Xb, alpha=step)
                b1.sub_(D1.sum(0), alpha=step)
        return loss

    return epoch


def seconds_per_epoch(fn, X, y, order, batch, hidden, n_images: int, repeats: int) -> list[float]:
    """Time `repeats` runs of fn over order[:n_images] from the same initial weights; seconds per 60k images."""
    times = []
    for _ in range(repeats):
        p = init_params(X.shape[1], hidden, 10, np.random.default_rng(1))
        decay = np.float32(1 - ETA * L2 / len(order))
        started = time.perf_counter()
        fn(p, X, y, order[:n_images], batch, np.float32(ETA), decay)
        times.append((time.perf_counter() - started) * len(order) / n_images)
    return times


def subset_for(fn, X, y, order, batch, hidden) -> int:
    """Images for a run of about SECONDS_PER_RUN, from a short trial (at least 10 mini-batches)."""
    trial = min(len(order), max(10 * batch, 2000))
    (t,) = seconds_per_epoch(fn, X, y, order, batch, hidden, trial, 1)
    per_image = t / len(order)
    return int(min(len(order), max(trial, SECONDS_PER_RUN / per_image)) // batch * batch)


def default_training_peak_rss() -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of `python -m generator train` with the default config, one epoch."""
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "generator", "train", "--set", "train.epochs=1",
                        "--set", f"site.build_dir='{tmp}'"], cwd=REPO, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux; max over children
    return max(peak, before) / 1024, seconds


def mnist():
    """The training images and labels, and the one shuffle every implementation uses."""
    config = load_config()
    data = load_dataset(config.path(config.data.dir), config.data.sha256)
    return data.train_images, data.train_labels, np.random.default_rng(0).permutation(len(data.train_labels))


def worker(what: str, batch: int, hidden: int):
    """Run `what` in a fresh process (see run_worker) and return what it printed, as JSON."""
    out = subprocess.run([sys.executable, __file__, "--worker", what, str(batch), str(hidden)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_worker(what: str, batch: int, hidden: int):
    """Seconds per epoch of `what` (numba, numpy, torch) over REPEATS runs; or, for "compile", numba's first call."""
    X, y, order = mnist()
    if what == "compile":
        started = time.perf_counter()
        tiny = init_params(X.shape[1], hidden, 10, np.random.default_rng(0))
        kernels.sgd_epoch(tiny, X[:40], y[:40], np.arange(40), batch, np.float32(ETA), np.float32(0.99))
        hits = sum(len(f.stats.cache_hits) for f in (kernels.thread_steps, kernels.cross_entropy_sum))
        compiled = time.perf_counter() - started
        started = time.perf_counter()
        kernels.sparse_inputs(X)
        return [compiled, bool(hits), time.perf_counter() - started]
    if what == "numba":  # whole epochs, after a first call that compiles or loads the kernels
        fn = functools.partial(kernels.sgd_epoch, inputs=kernels.sparse_inputs(X))  # once per training, as in train.py
        seconds_per_epoch(fn, X, y, order, batch, hidden, 10 * batch, 1)
        return seconds_per_epoch(fn, X, y, order, batch, hidden, len(order), REPEATS)
    if what == "torch":
        import torch
        fn = torch_epoch(torch)
    else:
        fn = kernels.sgd_epoch_numpy
    return seconds_per_epoch(fn, X, y, order, batch, hidden, subset_for(fn, X, y, order, batch, hidden), REPEATS)


def fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def main() -> int:
    print(f"date        {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"cpu         {cpu_model()}, {os.cpu_count()} logical CPUs; load average {os.getloadavg()[0]:.2f}")
    print(f"python      {platform.python_version()}; numpy {np.__version__} (OpenBLAS core: {openblas_core()}); "
          f"numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads)")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        if var in os.environ:
            print(f"env         {var}={os.environ[var]}")
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__, torch.get_num_threads())"],
                           capture_output=True, text=True)
    has_torch = probe.returncode == 0
    if has_torch:
        version, threads = probe.stdout.split()
        print(f"torch       {version} ({threads} threads)")
    else:
        print("torch       torch not installed, skipped (make bench TORCH=1 installs torch==2.13.0 into .venv)")

    X, y, order = mnist()
    n, d = X.shape

    best, median = matmul_gflops()
    print(f"FLOP limit  NumPy float32 2048x2048 matmul: {best:.0f} GFLOP/s best, {median:.0f} median; "
          f"limit = epoch FLOPs / best")
    compile_s, cached, order_s = worker("compile", 10, 4)
    print(f"numba       first call {compile_s:.2f} s ({'loaded from numba cache' if cached else 'compiled'}), "
          "not counted in any epoch")
    print(f"numba       sparse form of the 60,000 images {order_s:.2f} s, once per training (train.py), "
          "not counted in any epoch")
    print()
    header = (f"{'batch':>5} {'hidden':>6} {'GFLOP':>6} {'limit s':>8} {'numba s':>8} {'numpy s':>8} {'torch s':>8}"
              f"  {'numba/numpy':>11} {'numba/torch':>11} {'numba/limit':>11}  numba GFLOP/s")
    print(header)
    rows = {}
    for batch, hidden in CONFIGS:
        gflop = flops_per_epoch(n, d, hidden, 10) / 1e9
        limit = gflop / best
        numba_t = statistics.median(worker("numba", batch, hidden))
        numpy_t = statistics.median(worker("numpy", batch, hidden))
        torch_t = statistics.median(worker("torch", batch, hidden)) if has_torch else None
        rows[batch, hidden] = (numba_t, numpy_t, torch_t, limit)
        print(f"{batch:>5} {hidden:>6} {gflop:>6.1f} {limit:>8.3f} {numba_t:>8.3f} {numpy_t:>8.3f} {fmt(torch_t):>8}"
              f"  {numba_t / numpy_t:>11.2f} {fmt(torch_t and numba_t / torch_t, 2):>11} {numba_t / limit:>11.2f}"
              f"  {gflop / numba_t:>6.1f}", flush=True)

    rss, seconds = default_training_peak_rss()
    again, _ = matmul_gflops()
    print()
    print(f"FLOP limit  measured again after the epochs: {again:.0f} GFLOP/s best (the limits above used {best:.0f})")
    print(f"memory      peak RSS of `python -m generator train` (default config, 1 epoch, {seconds:.0f} s): "
          f"{rss:.0f} MiB (limit 1024)")
    print("times are median seconds per epoch of 60,000 images; numba ran whole epochs, the baselines a prefix")
    numba_t, numpy_t, torch_t, limit = rows[10, 100]
    print(f"ratio batch10 h100 numba/numpy={numba_t / numpy_t:.3f} "
          f"numba/torch={fmt(torch_t and numba_t / torch_t)} numba/limit={numba_t / limit:.3f}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("WHAT", "BATCH", "HIDDEN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    with np.errstate(over="ignore"):  # saturated sigmoids at 1000 hidden units overflow exp() to inf, harmlessly
        if args.worker:
            what, batch, hidden = args.worker
            print(json.dumps(run_worker(what, int(batch), int(hidden))))
            sys.exit(0)
        sys.exit(main())
