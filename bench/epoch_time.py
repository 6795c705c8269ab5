"""Median seconds per epoch of the numba kernel, for comparing copies of the code (A/B of the kernels' machinery).

    python bench/epoch_time.py REPO BATCH HIDDEN EPOCHS

Imports `generator` from REPO (a copy of this repository with one change, its own numba cache in its own
__pycache__), loads MNIST, trains EPOCHS whole epochs from the same initial weights on the same shuffle (after
one small untimed call that compiles or loads the kernels), and prints the median and the fastest epoch's
seconds and the first 12 hex digits of the SHA-256 of the last epoch's weights: a change to the machinery
must leave it as it was. Run the copies in turn, several rounds, in varying order (bench/README.md,
"Seventh round").
"""

import hashlib
import statistics
import sys
import time

repo = sys.argv[1]
sys.path.insert(0, repo)

import numpy as np  # noqa: E402

from generator import kernels  # noqa: E402
from generator.config import load_config  # noqa: E402
from generator.data import load_dataset  # noqa: E402
from generator.train import init_params  # noqa: E402

B, H, E = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
config = load_config(repo + "/atlas.toml")
data = load_dataset(config.path(config.data.dir), config.data.sha256)
X, y = data.train_images, data.train_labels
order = np.random.default_rng(0).permutation(len(y))
inputs = kernels.sparse_inputs(X)
decay = np.float32(1 - 0.5 * 5.0 / len(order))
p = init_params(X.shape[1], (H,), 10, np.random.default_rng(1))
kernels.sgd_epoch(p, X[:2000], y[:2000], np.arange(2000), B, np.float32(0.5), decay)  # compile or load
times = []
for _ in range(E):
    p = init_params(X.shape[1], (H,), 10, np.random.default_rng(1))
    started = time.perf_counter()
    kernels.sgd_epoch(p, X, y, order, B, np.float32(0.5), decay, inputs)
    times.append(time.perf_counter() - started)
digest = hashlib.sha256(b"".join(np.ascontiguousarray(p[k]).tobytes() for k in sorted(p))).hexdigest()[:12]
print(f"{statistics.median(times):.4f} {min(times):.4f} {digest}")
