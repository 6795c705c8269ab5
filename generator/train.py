"""Training: seeding, the epoch loop over the kernels, divergence checks, and the model file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from .network import depth, param_names
from .config import Config
from .data import Dataset, sparse_inputs
from .errors import TrainingError
from .output import npz_bytes, write_atomic
from .warm import CachedKernels, KernelWarmer
from .weights import files_sha256, fold_inputs

PARAMS = param_names(1)  # one hidden layer's; a deeper network's are network.param_names(depth)
# Training has diverged when an epoch's mean loss exceeds this many times K*ln 2, the loss of a network
# that knows nothing and outputs 0.5 for each of K classes. On MNIST (K*ln 2 = 6.9) the default rate's
# first epoch has 1.7 and a rate of 10 has 7.2, then learns; rates of 100 and 1000 give 630 and 14,000
# with chance accuracy, and never reach Inf.
DIVERGED_LOSS = 10


@dataclass(frozen=True)
class Epoch:
    epoch: int  # 1-based
    learning_rate: float
    train_loss: float  # mean cross-entropy per training example, measured during the epoch
    test_loss: float  # mean cross-entropy per test example after the epoch
    test_accuracy: float
    seconds: float


def init_params(n_in: int, hidden: int | tuple[int, ...], n_out: int,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Nielsen's default initialiser (network2.py's default_weight_initializer): weights N(0, 1/n_in),
    biases N(0, 1), as float32, drawn layer by layer (W1, b1, W2, b2, ...) from rng. hidden is the units
    of each hidden layer, first first (an int for one): {"W1": (H1, n_in), "b1": (H1,), ..., "W{L+1}":
    (n_out, HL), "b{L+1}": (n_out,)}."""
    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)
    sizes = [n_in, *((hidden,) if isinstance(hidden, int) else hidden), n_out]
    params = {}
    for l in range(1, len(sizes)):
        params[f"W{l}"] = normal(sizes[l], sizes[l - 1], scale=1 / math.sqrt(sizes[l - 1]))
        params[f"b{l}"] = normal(sizes[l])
    return params


def learning_rate(config: Config, epoch: int) -> float:
    """The learning rate of 0-based `epoch` under the configured schedule."""
    t = config.train
    if t.schedule == "constant":
        return t.learning_rate
    f = t.final_lr_fraction
    return t.learning_rate * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * epoch / t.epochs)))


# The per-epoch evaluation runs NumPy's BLAS on one thread: OpenBLAS's threads keep spinning for a while
# after each call and took a core from the next epoch's numba threads (0.53 -> 0.43 s an epoch measured
# with OPENBLAS_NUM_THREADS=1). One thread also makes the reported test loss independent of the core count.
def evaluate(params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray, activation: str = "sigmoid",
             output: str = "sigmoid") -> tuple[float, float]:
    """Mean loss (the training's: cross-entropy for sigmoid outputs, log-likelihood for softmax) and accuracy
    of the network on (X, y), in the weights' dtype."""
    from . import kernels  # numba, imported here: loading a model (the render and site stages) does not need it
    with np.errstate(over="ignore"):  # exp overflows to inf for saturated units: sigmoid is then exactly 0
        Z = kernels.forward_numpy(params, X, activation)[-1]  # (N, K)
    loss = kernels.log_likelihood(Z, y) if output == "softmax" else kernels.cross_entropy(Z, y)
    return float(loss.mean()), float((Z.argmax(axis=1) == y).mean())


def warm_kernels(hidden_layers: int, activation: str, output: str, normalised: bool) -> None:
    """Compile (or load from numba's cache) the kernels `train` calls for a network of this shape, by training
    one epoch of 200 random sparse float32 images with the same argument types (numba compiles per type, not
    per size): 784 inputs, `hidden_layers` hidden layers of 30 units, 10 classes."""
    from . import kernels
    rng = np.random.default_rng(0)
    n = 200
    X = np.where(rng.random((n, 784)) < 0.2, rng.random((n, 784)), 0).astype(np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    params = init_params(784, (30,) * hidden_layers, 10, rng)
    mean, std = (0.1307, 0.3081) if normalised else (0.0, 1.0)
    kernels.sgd_epoch(params, X, y, rng.permutation(n), 10, np.float32(0.1), np.float32(1.0), sparse_inputs(X),
                      activation, output, mean, std)


def train(config: Config, data: Dataset, on_epoch: Callable[[Epoch], None] = lambda e: None,
          warmer: KernelWarmer | CachedKernels | None = None, say: Callable[[str], None] = lambda message: None):
    """Train the configured network on `data`; returns (params, history, snapshots). Same config, same bits.

    Trains on the inputs the network is configured to see, (pixel / pixel_max - data.mean) / data.std,
    and returns weights that act on pixel / pixel_max: the normalisation folded into W1 and b1
    (`weights.fold_inputs`; normalised inputs change SGD's steps, not what the network computes).
    The training images are `data`'s train_pixels where it holds them (the train stage reads them so: the kernels'
    sparse inputs are made of them without a float copy of them all), else its train_images.
    snapshots maps an epoch (0 = before training) to a copy of W1 after it, folded alike. `warmer`, if given,
    is waited for before the first epoch (and `say` told how long it took; BuildError from it: see
    warm.repaired). Stops with a TrainingError
    in the first epoch whose loss or weights are not finite, or whose mean loss is so large
    (DIVERGED_LOSS) that the weights have blown up even though float32 still holds them.
    """
    t = config.train

    def diverged(e: int, why: str):
        raise TrainingError(f"training diverged in epoch {e + 1} ({why}) with train.learning_rate="
                            f"{t.learning_rate:g}; try a smaller one, e.g. --set train.learning_rate="
                            f"{t.learning_rate / 10:g}")

    net, d = config.network, config.data
    rng = np.random.default_rng(t.seed)
    params = init_params(data.n_inputs, net.hidden_sizes, data.n_classes, rng)
    n = len(data.train_labels)
    history: list[Epoch] = []
    keep = {e for e in t.snapshot_epochs if e <= t.epochs} | {t.epochs}
    X_test = data.test_images
    if (d.mean, d.std) != (0.0, 1.0):  # the kernel normalises the training images itself, keeping them sparse
        X_test = (X_test - np.float32(d.mean)) / np.float32(d.std)

    def folded_W1():
        return fold_inputs(params, d.mean, d.std)["W1"].copy()

    snapshots = {0: folded_W1()}
    # The sparse inputs (the same for every epoch) in a thread of their own, NumPy's loops, which release Python's
    # lock, while this one waits for the kernels' compile (KernelWarmer) or loads them (CachedKernels).
    with ThreadPoolExecutor(1, thread_name_prefix="sparse-inputs") as pool:
        making = pool.submit(sparse_inputs, data.train_images) if data.train_pixels is None else \
            pool.submit(sparse_inputs, data.train_pixels, data.pixel_max)
        if warmer is not None:  # returns with the kernels loaded in this process, unless it failed (see its `failed`)
            seconds, waited = warmer.wait()
            say(f"train: numba's kernels {warmer.done.format(seconds, waited)}" if seconds is not None
                else f"train: {warmer.failed}; the first epoch compiles them")
        inputs = making.result()
    from . import kernels  # after the second process: see KernelWarmer
    with threadpool_limits(limits=1, user_api="blas"):  # one BLAS thread: see the note above evaluate()
        for e in range(t.epochs):
            started = time.perf_counter()
            lr = learning_rate(config, e)
            order = rng.permutation(n)
            loss = kernels.sgd_epoch(params, data.train_images, data.train_labels, order, t.batch_size,
                                     np.float32(lr), np.float32(1 - lr * t.l2 / n), inputs, net.activation,
                                     net.output, d.mean, d.std)
            if not math.isfinite(loss) or not all(np.isfinite(p).all() for p in params.values()):
                diverged(e, f"loss {loss / n}" if not math.isfinite(loss) else "weights became NaN or Inf")
            if loss / n > DIVERGED_LOSS * data.n_classes * math.log(2):  # (softmax's know-nothing loss is ln K: looser)
                diverged(e, f"mean training loss {loss / n:.4g}, over {DIVERGED_LOSS}x the "
                            f"{data.n_classes * math.log(2):.3g} of a network that outputs 0.5 for every class")
            test_loss, test_acc = evaluate(params, X_test, data.test_labels, net.activation, net.output)
            epoch = Epoch(e + 1, lr, loss / n, test_loss, test_acc, time.perf_counter() - started)
            history.append(epoch)
            if e + 1 in keep:
                snapshots[e + 1] = folded_W1()
            on_epoch(epoch)
    return fold_inputs(params, d.mean, d.std), history, snapshots


def model_bytes(params: dict[str, np.ndarray], history: list[Epoch], snapshots: dict[int, np.ndarray],
                meta: dict) -> bytes:
    """An .npz archive of the weights (W1, b1, ... W{L+1}, b{L+1} in layer order: any depth), history, W1
    snapshots and `meta` (as JSON), byte-identical for equal inputs."""
    arrays = {k: params[k] for k in param_names(depth(params))}
    arrays["history_epoch"] = np.array([h.epoch for h in history], np.int64)
    for name in ("learning_rate", "train_loss", "test_loss", "test_accuracy", "seconds"):
        arrays[f"history_{name}"] = np.array([getattr(h, name) for h in history], np.float64)
    arrays["snapshot_epochs"] = np.array(sorted(snapshots), np.int64)  # (S,)
    arrays["snapshot_W1"] = np.array([snapshots[e] for e in sorted(snapshots)], np.float32).reshape(
        len(snapshots), *params["W1"].shape)  # (S, H, D); S = 0 for an imported network
    arrays["meta_json"] = np.array(json.dumps(meta, sort_keys=True))
    return npz_bytes(arrays)


# The code whose change may change the weights (or how an imported file is read): every module of the
# kernels package and of the readers, and these.
TRAINING_CODE = ("data.py", "dataset_files.py",
                 *sorted(f"kernels/{p.name}" for p in (Path(__file__).parent / "kernels").glob("*.py")),
                 *sorted(f"readers/{p.name}" for p in (Path(__file__).parent / "readers").glob("*.py")),
                 "network.py", "train.py", "weights.py")


def fingerprint(config: Config, data_sha256: dict[str, str]) -> str:
    """A hash of everything the weights depend on: data, network and training settings, the data files,
    the imported weights file if any, and the training code. Equal fingerprints, equal model.npz."""
    data = {k: v for k, v in dataclasses.asdict(config.data).items() if k not in ("class_names", "noun")}
    parts = {"data": data, "network": dataclasses.asdict(config.network), "train": dataclasses.asdict(config.train),
             "data_sha256": dict(sorted(data_sha256.items())),
             "code": {name: hashlib.sha256((Path(__file__).parent / name).read_bytes()).hexdigest()
                      for name in TRAINING_CODE}}
    if config.network.weights:
        weights = config.path(config.network.weights)
        parts["weights_sha256"] = files_sha256(weights) if weights.is_file() else ""  # with an ONNX file's .data
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def save_model(path: Path, params, history, snapshots, meta) -> None:
    write_atomic(path, model_bytes(params, history, snapshots, meta))


@dataclass(frozen=True)
class Model:
    params: dict[str, np.ndarray]  # W1 (H1, D), b1 (H1,), ..., W{L+1} (K, HL), b{L+1} (K,), float32
    history: list[Epoch]
    snapshots: dict[int, np.ndarray]  # epoch (0 = initial) -> W1 (H, D)
    meta: dict


def load_model(path: Path) -> Model:
    """Read a model.npz written by `save_model` (never unpickles)."""
    with np.load(path, allow_pickle=False) as f:
        params = {k: f[k] for k in param_names(depth(f.files))}
        cols = {k[len("history_"):]: f[k].tolist() for k in f.files if k.startswith("history_")}
        meta = json.loads(str(f["meta_json"]))
        snapshots = dict(zip(f["snapshot_epochs"].tolist(), f["snapshot_W1"]))
    history = [Epoch(*row) for row in zip(cols["epoch"], cols["learning_rate"], cols["train_loss"],
                                          cols["test_loss"], cols["test_accuracy"], cols["seconds"])]
    return Model(params, history, snapshots, meta)
