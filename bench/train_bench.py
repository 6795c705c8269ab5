"""Training speed: the project's numba epoch against the NumPy reference and PyTorch, in one run.

    make bench                (make bench TORCH=1 installs PyTorch CPU 2.13.0 into .venv first)

Same data (the 60,000 MNIST training images), same maths (mini-batch SGD on a 784-H-10 sigmoid
network, cross-entropy, L2 decay), float32, for mini-batches of 10 and 100 and hidden sizes 100 and
1,000. Times are median seconds per epoch of 60,000 images; slow baselines run on a slice of the
images and are scaled to a full epoch (the "images" column says how many). Numba's compile time
is reported apart and excluded. The FLOP limit is the epoch's floating-point work divided by the
rate of a large float32 matrix product measured here. Ends with one line for scripts:
    ratio batch10 h100 numba/numpy=<x> numba/torch=<y> numba/limit=<z>
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator import kernels  # noqa: E402
from generator.config import REPO, load_config  # noqa: E402
from generator.data import load_dataset  # noqa: E402
from generator.train import init_params  # noqa: E402

CASES = [(10, 100), (100, 100), (10, 1000), (100, 1000)]  # (batch, hidden)
ETA, L2 = 0.1, 5.0


def flops_per_epoch(n: int, d: int, h: int, k: int) -> float:
    """Multiply-adds x 2 of one epoch: forward pass, weight gradients, and the hidden deltas."""
    forward = n * (d * h + h * k)
    gradients = n * (d * h + h * k)
    deltas = n * h * k
    return 2.0 * (forward + gradients + deltas)


def matmul_rate() -> float:
    """Best float32 GFLOP/s of a 2048 x 2048 matrix product on this machine, all threads."""
    rng = np.random.default_rng(0)
    a, b = rng.random((2048, 2048), np.float32), rng.random((2048, 2048), np.float32)
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(5))
    return 2 * 2048 ** 3 / best / 1e9


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def numpy_like(X, y, hidden, batch, epoch_fn, images, repeats):
    """Median seconds per full epoch of `epoch_fn` (numba or NumPy), run on the first `images` images."""
    rng = np.random.default_rng(1)
    p = init_params(X.shape[1], hidden, 10, rng)
    order = rng.permutation(len(y))[:images]
    decay = np.float32(1 - ETA * L2 / len(y))
    times = [timed(lambda: epoch_fn(p["W1"], p["b1"], p["W2"], p["b2"], X, y, order, batch, np.float32(ETA), decay))
             for _ in range(repeats)]
    return statistics.median(times) * len(y) / images


def torch_epoch(X, y, hidden, batch, images, repeats):
    """The same maths written with PyTorch tensors on the CPU (explicit gradients, no autograd)."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(1)
    p = {k: torch.from_numpy(v.copy()) for k, v in init_params(X.shape[1], hidden, 10, rng).items()}
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    eye = torch.eye(10)
    order = torch.from_numpy(rng.permutation(len(y))[:images])
    decay = 1 - ETA * L2 / len(y)

    def epoch():
        with torch.no_grad():
            for start in range(0, images, batch):
                idx = order[start:start + batch]
                xb, t = Xt[idx], eye[yt[idx]]
                a1 = torch.sigmoid(xb @ p["W1"].T + p["b1"])
                d2 = torch.sigmoid(a1 @ p["W2"].T + p["b2"]) - t
                d1 = (d2 @ p["W2"]) * a1 * (1 - a1)
                step = ETA / len(idx)
                p["W2"].mul_(decay).sub_(step * (d2.T @ a1))
                p["b2"].sub_(step * d2.sum(0))
                p["W1"].mul_(decay).sub_(step * (d1.T @ xb))
                p["b1"].sub_(step * d1.sum(0))

    epoch()  # warm-up
    return statistics.median(timed(epoch) for _ in range(repeats)) * len(y) / images


def peak_memory_of_default_training() -> float:
    """MiB of peak resident memory of `python -m generator train` (1 epoch, default network) in a child."""
    code = ("import sys; from generator.__main__ import main; "
            "sys.exit(main(['train', '--set', 'train.epochs=1', '--set', \"site.build_dir='/tmp/atlas-bench-build'\"]))")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> int:
    config = load_config(REPO / "atlas.toml")
    data = load_dataset(config.path(config.data.dir), config.data.sha256)
    X, y = data.train_images, data.train_labels
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"numba {kernels.__name__}.sgd_epoch vs NumPy reference vs "
          f"{'PyTorch ' + __import__('torch').__version__ if have_torch else 'PyTorch (not installed, skipped: make bench TORCH=1)'}")
    started = time.perf_counter()
    p = init_params(784, 100, 10, np.random.default_rng(0))
    kernels.sgd_epoch(p["W1"], p["b1"], p["W2"], p["b2"], X[:20], y[:20], np.arange(20), 10, np.float32(ETA),
                      np.float32(1.0))
    print(f"numba compile (or cache load) and first call: {time.perf_counter() - started:.2f} s (not in the epoch times)")
    rate = matmul_rate()
    print(f"float32 matrix product: {rate:.0f} GFLOP/s measured ({os.cpu_count()} cores)")
    print(f"\n{'batch':>5} {'hidden':>6} {'GFLOP':>6} {'limit s':>8} {'numba s':>8} {'numpy s':>8} {'torch s':>8} "
          f"{'images':>7}  numba/numpy numba/torch numba/limit")
    ratios = {}
    for batch, hidden in CASES:
        work = flops_per_epoch(len(y), 784, hidden, 10)
        limit = work / (rate * 1e9)
        small = 60000 if hidden == 100 else 12000
        t_numba = numpy_like(X, y, hidden, batch, kernels.sgd_epoch, small, 3)
        t_numpy = numpy_like(X, y, hidden, batch, kernels.sgd_epoch_numpy, small // 2, 2)
        t_torch = torch_epoch(X, y, hidden, batch, small // 10, 2) if have_torch else float("nan")
        r = (t_numba / t_numpy, t_numba / t_torch, t_numba / limit)
        ratios[batch, hidden] = r
        torch_s = f"{t_torch:8.2f}" if have_torch else f"{'n/a':>8}"
        print(f"{batch:5d} {hidden:6d} {work / 1e9:6.1f} {limit:8.3f} {t_numba:8.3f} {t_numpy:8.3f} {torch_s} "
              f"{small:7d}  {r[0]:11.2f} {r[1]:11.3f} {r[2]:11.2f}")
    print(f"\npeak memory of a default training (1 epoch, child process): {peak_memory_of_default_training():.0f} MiB")
    r = ratios[10, 100]
    torch_ratio = f"{r[1]:.3f}" if have_torch else "n/a"
    print(f"ratio batch10 h100 numba/numpy={r[0]:.2f} numba/torch={torch_ratio} numba/limit={r[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
