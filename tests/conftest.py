"""Shared fixtures: small IDX datasets written on the fly, and one tiny end-to-end build of real MNIST."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

# As the CLI runs (generator/__main__.py): NumPy without huge pages, which cost these machines seconds a test run.
# Set before NumPy's first import, which reads it.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import numpy as np  # noqa: E402
import pytest

from generator import data
from generator.config import REPO

MNIST = REPO / "data" / "mnist"


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array with 1 (labels) or 3 (images) dimensions."""
    magic = data.IMAGES_MAGIC if array.ndim == 3 else data.LABELS_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_dataset(directory: Path, n_train=60, n_test=20, shape=(6, 5), n_classes=3, seed=0, gz=True) -> Path:
    """Four IDX files of random images whose labels cover 0..n_classes-1."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    parts = {
        data.TRAIN_IMAGES: rng.integers(0, 256, (n_train, *shape)),
        data.TRAIN_LABELS: np.arange(n_train) % n_classes,
        data.TEST_IMAGES: rng.integers(0, 256, (n_test, *shape)),
        data.TEST_LABELS: np.arange(n_test) % n_classes,
    }
    for name, array in parts.items():
        raw = idx_bytes(array)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(raw, mtime=0))
        else:
            (directory / name).write_bytes(raw)
    return directory


TINY = [  # a real-MNIST atlas small enough for tests: 16 hidden neurons, 2 epochs on 3,000 images
    "data.train_limit=3000", "data.test_limit=600", "network.hidden=16", "train.epochs=2", "analysis.top_k=3",
]


def tiny_overrides(root: Path) -> list[str]:
    return [*TINY, f"site.build_dir='{root / 'build'}'", f"site.site_dir='{root / 'site'}'", "site.sections=[]"]


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory):
    """Build a tiny atlas end to end through the CLI, once per test session; returns its root directory."""
    from generator.__main__ import main

    root = tmp_path_factory.mktemp("tiny")
    args = []
    for o in tiny_overrides(root):
        args += ["--set", o]
    assert main(["build", *args]) == 0
    return root
