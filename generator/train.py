"""Training: seeding, the epoch loop over the kernels, divergence checks, and the model file."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import kernels
from .config import Config
from .data import Dataset
from .errors import TrainingError
from .output import npz_bytes, write_atomic

PARAMS = ("W1", "b1", "W2", "b2")


@dataclass(frozen=True)
class Epoch:
    epoch: int  # 1-based
    learning_rate: float
    train_loss: float  # mean cross-entropy per training example, measured during the epoch
    test_loss: float  # mean cross-entropy per test example after the epoch
    test_accuracy: float
    seconds: float


def init_params(n_in: int, n_hidden: int, n_out: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Nielsen's default initialiser: weights N(0, 1/n_in), biases N(0, 1), as float32."""
    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)
    return {"W1": normal(n_hidden, n_in, scale=1 / math.sqrt(n_in)), "b1": normal(n_hidden),
            "W2": normal(n_out, n_hidden, scale=1 / math.sqrt(n_hidden)), "b2": normal(n_out)}


def learning_rate(config: Config, epoch: int) -> float:
    """The learning rate of 0-based `epoch` under the configured schedule."""
    t = config.train
    if t.schedule == "constant":
        return t.learning_rate
    f = t.final_lr_fraction
    return t.learning_rate * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * epoch / t.epochs)))


def evaluate(params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of the network on (X, y)."""
    A1 = kernels.sigmoid_numpy(X @ params["W1"].T + params["b1"])
    Z2 = A1 @ params["W2"].T + params["b2"]
    return float(kernels.cross_entropy(Z2, y).mean()), float((Z2.argmax(axis=1) == y).mean())


def train(config: Config, data: Dataset, on_epoch: Callable[[Epoch], None] = lambda e: None):
    """Train the configured network on `data`; returns (params, history, snapshots). Same config, same bits.

    snapshots maps an epoch (0 = before training) to a copy of W1 after it.
    """
    t = config.train
    rng = np.random.default_rng(t.seed)
    params = init_params(data.n_inputs, config.network.hidden, data.n_classes, rng)
    n = len(data.train_labels)
    history: list[Epoch] = []
    keep = {e for e in t.snapshot_epochs if e <= t.epochs} | {t.epochs}
    snapshots = {0: params["W1"].copy()}
    for e in range(t.epochs):
        started = time.perf_counter()
        lr = learning_rate(config, e)
        order = rng.permutation(n)
        loss = kernels.sgd_epoch(params["W1"], params["b1"], params["W2"], params["b2"],
                                 data.train_images, data.train_labels, order, t.batch_size,
                                 np.float32(lr), np.float32(1 - lr * t.l2 / n))
        if not math.isfinite(loss) or not all(np.isfinite(p).all() for p in params.values()):
            raise TrainingError(f"training diverged in epoch {e + 1} (loss {loss}) with train.learning_rate="
                                f"{t.learning_rate}; try a smaller one, e.g. --set train.learning_rate="
                                f"{t.learning_rate / 10:g}")
        test_loss, test_acc = evaluate(params, data.test_images, data.test_labels)
        epoch = Epoch(e + 1, lr, loss / n, test_loss, test_acc, time.perf_counter() - started)
        history.append(epoch)
        if e + 1 in keep:
            snapshots[e + 1] = params["W1"].copy()
        on_epoch(epoch)
    return params, history, snapshots


def model_bytes(params: dict[str, np.ndarray], history: list[Epoch], snapshots: dict[int, np.ndarray],
                meta: dict) -> bytes:
    """An .npz archive of the weights, history, W1 snapshots and `meta` (as JSON), byte-identical for equal inputs."""
    arrays = dict(params)
    arrays["history_epoch"] = np.array([h.epoch for h in history], np.int64)
    for name in ("learning_rate", "train_loss", "test_loss", "test_accuracy", "seconds"):
        arrays[f"history_{name}"] = np.array([getattr(h, name) for h in history], np.float64)
    arrays["snapshot_epochs"] = np.array(sorted(snapshots), np.int64)  # (S,)
    arrays["snapshot_W1"] = np.stack([snapshots[e] for e in sorted(snapshots)])  # (S, H, D)
    arrays["meta_json"] = np.array(json.dumps(meta, sort_keys=True))
    return npz_bytes(arrays)


def save_model(path: Path, params, history, snapshots, meta) -> None:
    write_atomic(path, model_bytes(params, history, snapshots, meta))


@dataclass(frozen=True)
class Model:
    params: dict[str, np.ndarray]  # W1 (H, D), b1 (H,), W2 (K, H), b2 (K,), float32
    history: list[Epoch]
    snapshots: dict[int, np.ndarray]  # epoch (0 = initial) -> W1 (H, D)
    meta: dict


def load_model(path: Path) -> Model:
    """Read a model.npz written by `save_model` (never unpickles)."""
    with np.load(path, allow_pickle=False) as f:
        params = {k: f[k] for k in PARAMS}
        cols = {k[len("history_"):]: f[k].tolist() for k in f.files if k.startswith("history_")}
        meta = json.loads(str(f["meta_json"]))
        snapshots = dict(zip(f["snapshot_epochs"].tolist(), f["snapshot_W1"]))
    history = [Epoch(*row) for row in zip(cols["epoch"], cols["learning_rate"], cols["train_loss"],
                                          cols["test_loss"], cols["test_accuracy"], cols["seconds"])]
    return Model(params, history, snapshots, meta)
