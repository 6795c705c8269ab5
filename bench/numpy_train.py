"""An independent NumPy script of the atlas's training, the baseline of `make bench-warm` (bench/warm_start.py).

    python bench/numpy_train.py --epochs 3 --out model.npz [--data data/mnist]

What a user would write to train the default network without the atlas: NumPy and the standard library only
(nothing from generator/), the whole training set every epoch. 784-100-10, sigmoid hidden and output units,
Nielsen's cross-entropy and L2 decay (network2.py, ch. 3), mini-batches of 10, the default config's cosine
learning rate (0.5 down to 2% of it) and L2 λ = 5, weights N(0, 1/n_in) and biases N(0, 1); each epoch
prints the test set's loss and accuracy, as the train stage does; the weights are saved to --out. It does the
same work as `python -m generator train --set train.epochs=N`, from the same random stream (the initial
weights, then each epoch's shuffle, from numpy.random.default_rng(seed 1)), so the losses and accuracies it
prints match the train stage's to the digits shown; not the same bits (NumPy's BLAS sums in another order).
"""

from __future__ import annotations

import argparse
import gzip
import math
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def read_idx(path: Path) -> np.ndarray:
    """A gzip IDX file -> its uint8 array, shaped by its header."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "mnist")
    args = parser.parse_args()
    X = read_idx(args.data / "train-images-idx3-ubyte.gz").reshape(60000, -1).astype(np.float32) / 255
    y = read_idx(args.data / "train-labels-idx1-ubyte.gz").astype(np.int64)
    Xt = read_idx(args.data / "t10k-images-idx3-ubyte.gz").reshape(10000, -1).astype(np.float32) / 255
    yt = read_idx(args.data / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    rng = np.random.default_rng(1)
    W1 = (rng.standard_normal((100, 784)) / math.sqrt(784)).astype(np.float32)
    b1 = rng.standard_normal(100).astype(np.float32)
    W2 = (rng.standard_normal((10, 100)) / math.sqrt(100)).astype(np.float32)
    b2 = rng.standard_normal(10).astype(np.float32)
    onehot = np.eye(10, dtype=np.float32)
    n, batch, l2 = len(y), 10, 5.0
    for e in range(args.epochs):
        started = time.perf_counter()
        eta = 0.5 * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * e / args.epochs)))
        decay = np.float32(1 - eta * l2 / n)
        order = rng.permutation(n)
        for lo in range(0, n, batch):
            b = order[lo:lo + batch]
            xb = X[b]
            a1 = sigmoid(xb @ W1.T + b1)
            a2 = sigmoid(a1 @ W2.T + b2)
            d2 = a2 - onehot[y[b]]  # cross-entropy on sigmoid outputs (Nielsen, ch. 3)
            d1 = (d2 @ W2) * a1 * (1 - a1)
            step = np.float32(eta / len(b))
            W2 = decay * W2 - step * (d2.T @ a1)
            b2 = b2 - step * d2.sum(axis=0)
            W1 = decay * W1 - step * (d1.T @ xb)
            b1 = b1 - step * d1.sum(axis=0)
        out = sigmoid(sigmoid(Xt @ W1.T + b1) @ W2.T + b2)
        t = onehot[yt]
        with np.errstate(divide="ignore", invalid="ignore"):
            loss = -np.nan_to_num(t * np.log(out) + (1 - t) * np.log(1 - out)).sum(axis=1).mean()
        print(f"  epoch {e + 1:3d}/{args.epochs}  test loss {loss:.4f}  test accuracy {(out.argmax(1) == yt).mean():.2%}"
              f"  {time.perf_counter() - started:.2f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, W1=W1, b1=b1, W2=W2, b2=b2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
