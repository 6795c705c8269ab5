"""The only reader of datasets: IDX files (gzip or plain), checksums, float32 images and integer labels."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

# The four standard names, with or without .gz.
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


@dataclass(frozen=True)
class Dataset:
    train_images: np.ndarray  # (N, rows*cols) float32 in [0, 1]
    train_labels: np.ndarray  # (N,) int64
    test_images: np.ndarray  # (M, rows*cols) float32 in [0, 1]
    test_labels: np.ndarray  # (M,) int64
    image_shape: tuple[int, int]  # (rows, cols)
    n_classes: int
    sha256: dict[str, str]  # decompressed SHA-256 of each file, by standard name

    @property
    def n_inputs(self) -> int:
        return self.image_shape[0] * self.image_shape[1]


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    raise DataError(f"{directory / name}(.gz): file not found; put the four MNIST-format IDX files in {directory}")


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when it is gzip."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            return gzip.decompress(raw)
        return raw
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip stream ({e}); restore the file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def parse_idx(raw: bytes, path: Path, magic: int) -> np.ndarray:
    """IDX bytes -> uint8 array of the shape its header declares; `path` only names the file in errors."""
    ndim = 3 if magic == IMAGES_MAGIC else 1
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header of {header} bytes; the file is truncated")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: bad IDX magic 0x{found:08x}, expected 0x{magic:08x}; is this the right file?")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    body = len(raw) - header
    if body != expected:
        what = "truncated" if body < expected else "has trailing bytes"
        raise DataError(f"{path}: header declares {'x'.join(map(str, dims))} = {expected} bytes of data, "
                        f"file holds {body}; the file {what}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _load(directory: Path, name: str, magic: int, sha256: dict[str, str], seen: dict[str, str]) -> np.ndarray:
    path = _find(directory, name)
    raw = read_bytes(path)
    digest = hashlib.sha256(raw).hexdigest()
    seen[name] = digest
    want = sha256.get(name)
    if want is not None and digest != want:
        raise DataError(f"{path}: SHA-256 of the decompressed bytes is {digest[:16]}..., expected {want[:16]}...; "
                        "the file was altered or replaced: restore it (git checkout -- data/)")
    return parse_idx(raw, path, magic)


def load_dataset(directory: Path, sha256: dict[str, str] | None = None,
                 train_limit: int = 0, test_limit: int = 0) -> Dataset:
    """Read the four IDX files in `directory`, check them, and return float32 images and int64 labels."""
    sha256 = sha256 or {}
    unknown = set(sha256) - {TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS}
    if unknown:
        raise DataError(f"data.sha256 names unknown file(s) {sorted(unknown)}; use the four standard IDX names")
    seen: dict[str, str] = {}
    parts = {}
    for name, magic in ((TRAIN_IMAGES, IMAGES_MAGIC), (TRAIN_LABELS, LABELS_MAGIC),
                        (TEST_IMAGES, IMAGES_MAGIC), (TEST_LABELS, LABELS_MAGIC)):
        parts[name] = _load(directory, name, magic, sha256, seen)
    train_x, train_y = parts[TRAIN_IMAGES], parts[TRAIN_LABELS]
    test_x, test_y = parts[TEST_IMAGES], parts[TEST_LABELS]
    for images, labels, iname, lname in ((train_x, train_y, TRAIN_IMAGES, TRAIN_LABELS),
                                         (test_x, test_y, TEST_IMAGES, TEST_LABELS)):
        if len(images) != len(labels):
            raise DataError(f"{directory / iname}: {len(images)} images but {lname} has {len(labels)} labels; "
                            "the two files must come from the same dataset")
        if len(images) == 0:
            raise DataError(f"{directory / iname}: holds no images")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{directory / TEST_IMAGES}: images are {test_x.shape[1]}x{test_x.shape[2]}, "
                        f"training images are {train_x.shape[1]}x{train_x.shape[2]}")
    n_classes = int(train_y.max()) + 1
    if test_y.max() >= n_classes:
        raise DataError(f"{directory / TEST_LABELS}: label {int(test_y.max())} does not occur in the training labels "
                        f"(classes 0..{n_classes - 1})")
    if train_limit:
        train_x, train_y = train_x[:train_limit], train_y[:train_limit]
    if test_limit:
        test_x, test_y = test_x[:test_limit], test_y[:test_limit]
    rows, cols = train_x.shape[1:]
    return Dataset(
        train_images=to_float(train_x), train_labels=train_y.astype(np.int64),
        test_images=to_float(test_x), test_labels=test_y.astype(np.int64),
        image_shape=(rows, cols), n_classes=n_classes, sha256=seen)


def to_float(images: np.ndarray) -> np.ndarray:
    """(N, rows, cols) uint8 -> (N, rows*cols) float32 in [0, 1], C-contiguous."""
    return np.ascontiguousarray(images.reshape(len(images), -1), dtype=np.float32) / np.float32(255.0)
