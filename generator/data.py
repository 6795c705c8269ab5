"""The only reader of datasets: IDX files (gzip or plain), checksums, float32 images and integer labels;
and the images as their nonzero pixels, the form the training kernels read (`sparse_inputs`).

Datasets in other containers (EMNIST's and QMNIST's names, Keras's mnist.npz, CSV, Nielsen's pickle) are
read by generator.dataset_files, on this module's behalf, and checked here like IDX files.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import dataset_files
from .config import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS  # the four standard names
from .errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


@dataclass(frozen=True)
class Dataset:
    train_images: np.ndarray  # (N, rows*cols) float32 in [0, 1]; (0, rows*cols) when read without them or as pixels
    train_labels: np.ndarray  # (N,) int64
    test_images: np.ndarray  # (M, rows*cols) float32 in [0, 1]
    test_labels: np.ndarray  # (M,) int64
    image_shape: tuple[int, int]  # (rows, cols)
    n_classes: int
    sha256: dict[str, str]  # decompressed SHA-256 of each file, by standard name
    class_names: tuple[str, ...] = ()  # display name of each class; the label itself unless renamed
    test_ids: np.ndarray | None = None  # (M,) index of each test image in the source files (default: 0..M-1)
    # The training images as stored, when read that way (load_dataset's train_pixels): (N, rows, cols) integers
    # 0..pixel_max, or floats in [0, 1] with pixel_max 1; to_float(train_pixels, pixel_max) are their train_images.
    train_pixels: np.ndarray | None = None
    pixel_max: int = 1

    def __post_init__(self):
        if not self.class_names:
            object.__setattr__(self, "class_names", tuple(str(k) for k in range(self.n_classes)))
        if self.test_ids is None:
            object.__setattr__(self, "test_ids", np.arange(len(self.test_labels)))

    @property
    def n_inputs(self) -> int:
        return self.image_shape[0] * self.image_shape[1]


def _named(directory: Path, name: str) -> list[Path]:
    """The files of `name`, gzip'd or plain, with '-idx' or '.idx' (as some copies spell it)."""
    dotted = name.replace("-idx", ".idx")
    return [p for n in (name, dotted) for p in (directory / f"{n}.gz", directory / n) if p.is_file()]


def _find(directory: Path, name: str) -> Path:
    for candidate in _named(directory, name):
        return candidate
    raise DataError(f"{directory / name}(.gz): file not found; put the four MNIST-format IDX files in {directory}")


# One IDX file's data may not claim more than this (MNIST's largest holds 47 MB, EMNIST's 550 MB): a
# header whose sizes multiply to gigabytes is rejected before anything is allocated or decompressed.
MAX_IDX_BYTES = 1 << 30
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_KIND = {IMAGES_MAGIC: ("an image file", 3), LABELS_MAGIC: ("a label file", 1),
         0x00000C02: ("a QMNIST label file (int32)", 2)}
# IDX data type codes (third byte of the magic); this reader takes unsigned bytes only.
_IDX_TYPES = {0x08: "unsigned bytes", 0x09: "signed bytes", 0x0B: "16-bit integers", 0x0C: "32-bit integers",
              0x0D: "32-bit floats", 0x0E: "64-bit floats"}


def read_idx(path: Path, magic: int) -> tuple[np.ndarray, str]:
    """An IDX file (gzip or plain) -> (uint8 array of the shape its header declares, SHA-256 of its bytes).

    The file is read as a stream: the header is checked first, and at most the declared size plus one
    byte is ever decompressed, so a lying header or a gzip bomb cannot make it allocate more than the
    file really holds, nor more than MAX_IDX_BYTES. Every problem is a one-line DataError naming the file.
    """
    try:
        with open(path, "rb") as f:
            if f.read(2) == _GZIP_MAGIC:
                f.seek(0)
                with gzip.GzipFile(fileobj=f, mode="rb") as stream:
                    return _read_idx(stream, path, magic, size=None)
            f.seek(0)
            return _read_idx(f, path, magic, size=os.fstat(f.fileno()).st_size)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip stream ({e}); restore the file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def _read_upto(stream, n: int) -> bytes:
    """Up to `n` bytes from `stream`, fewer only at its end; never asks for more than _CHUNK at once."""
    parts, got = [], 0
    while got < n:
        part = stream.read(min(_CHUNK, n - got))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _magic_problem(found: int, magic: int) -> str:
    kind, ndim = _KIND[magic]
    if found in _KIND:
        return (f"IDX magic 0x{found:08x} marks {_KIND[found][0]}, expected 0x{magic:08x} ({kind}); "
                "are two files swapped?")
    if found >> 16 == 0 and (found >> 8) & 0xFF in _IDX_TYPES:
        dtype, dims = _IDX_TYPES[(found >> 8) & 0xFF], found & 0xFF
        if dtype != "unsigned bytes":
            return f"IDX magic 0x{found:08x} declares {dtype}, expected unsigned bytes (magic 0x{magic:08x}, {kind})"
        return (f"IDX magic 0x{found:08x} declares {dims} dimension{'s' * (dims != 1)}, expected {ndim} "
                f"(magic 0x{magic:08x}, {kind}); is this the right file?")
    return f"bad IDX magic 0x{found:08x}, expected 0x{magic:08x} ({kind}); is this an IDX file?"


def _read_idx(stream, path: Path, magic: int, size: int | None) -> tuple[np.ndarray, str]:
    """The parser behind read_idx; `size` is the file's length when known (plain files), None for gzip."""
    digest = hashlib.sha256()
    _, ndim = _KIND[magic]
    header = 4 + 4 * ndim
    head = _read_upto(stream, header)
    digest.update(head)
    if len(head) < header:
        raise DataError(f"{path}: {len(head)} bytes is too short for an IDX header of {header} bytes; "
                        "the file is truncated")
    found = int.from_bytes(head[:4], "big")
    if found != magic:
        raise DataError(f"{path}: {_magic_problem(found, magic)}")
    dims = tuple(int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(">i4") if (magic >> 8) & 0xFF == 0x0C else np.dtype(np.uint8)
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow, whatever the header says
    size_text = "x".join(map(str, dims + ((dtype.itemsize,) if dtype.itemsize > 1 else ())))
    declared = f"header declares {size_text} = {expected} bytes of data"
    if expected > MAX_IDX_BYTES:
        raise DataError(f"{path}: {declared}, more than the limit of {MAX_IDX_BYTES} for one IDX file; "
                        "the header is corrupt or the dataset too large")
    if size is not None and size - header != expected:  # a plain file: its length is known before reading
        what = "is truncated" if size - header < expected else "has trailing bytes"
        raise DataError(f"{path}: {declared}, file holds {size - header}; the file {what}")
    body = bytearray()
    while len(body) <= expected:  # one byte past the declared size: enough to see trailing data
        part = stream.read(min(_CHUNK, expected + 1 - len(body)))
        if not part:
            break
        body += part
    digest.update(body)
    if len(body) != expected:
        found_size = f"{len(body)}" if len(body) < expected else f"more than {expected}"
        what = "is truncated" if len(body) < expected else "has trailing bytes"
        raise DataError(f"{path}: {declared}, file holds {found_size}; the file {what}")
    return np.frombuffer(body, dtype=dtype).reshape(dims), digest.hexdigest()


def _load(path: Path, name: str, magic: int, sha256: dict[str, str], seen: dict[str, str]) -> np.ndarray:
    array, digest = read_idx(path, magic)
    seen[name] = digest
    want = sha256.get(name)
    if want is not None and digest != want:
        raise DataError(f"{path}: SHA-256 of the decompressed bytes is {digest[:16]}..., expected {want[:16]}...; "
                        "the file was altered or replaced: restore it (git checkout -- data/)")
    return array


def _check_labels(path: Path, labels: np.ndarray, n_classes: int | None) -> int:
    """The number of classes: training labels must run 0..K-1 with every class present; test labels within them."""
    if n_classes is None:
        counts = np.bincount(labels, minlength=1)
        missing = np.flatnonzero(counts == 0)
        if missing.size == 0:
            return len(counts)
        gap = int(missing[0])
        i = int(np.flatnonzero(labels > gap)[0])
        raise DataError(f"{path}: label {int(labels[i])} (item {i}) is out of range: labels must run 0..K-1 with "
                        f"every class present, but none is {gap}; is this the label file of this dataset?")
    bad = np.flatnonzero(labels >= n_classes)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}: label {int(labels[i])} (item {i}) is out of range: expected 0..{n_classes - 1}, "
                        "the classes of the training labels")
    return n_classes


def load_dataset(directory: Path, sha256: dict[str, str] | None = None, train_limit: int = 0, test_limit: int = 0,
                 pixel_max: int = 255, transpose: bool = False, train_images: bool = True,
                 train_classes: list[int] | None = None, train_pixels: bool = False) -> Dataset:
    """Read the four IDX files in `directory`, check them, and return float32 images and int64 labels.

    Images become pixel / pixel_max in [0, 1]; pixels above pixel_max, or all at most pixel_max / 4 (the
    data is in another range, e.g. scikit-learn's 0-16 digits), are a DataError naming data.pixel_max.
    `transpose` swaps each image's rows and columns. With `train_images` False the training images are
    read and checked but not converted (Dataset.train_images is then (0, rows*cols); their labels, count
    and checksums are all there): for stages that look at the test images only, as analyze does (the
    conversion of MNIST's 60,000 is 188 MB and 0.3-0.5 s). With `train_classes`, only the training images
    labelled with one of them are kept (in their order, with their labels; after every check, which sees them
    all), so a class subset (select_classes) converts only its own. With `train_pixels` the training images are
    kept as stored instead (Dataset.train_pixels and pixel_max; train_images is then (0, rows*cols)): the
    training reads them as sparse_inputs(train_pixels, pixel_max), which never holds MNIST's 188 MB of floats.
    """
    sha256 = sha256 or {}
    unknown = set(sha256) - {TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS}
    if unknown:
        raise DataError(f"data.sha256 names unknown file(s) {sorted(unknown)}; use the four standard IDX names")
    if directory.is_dir() and any(_named(directory, name) for name in (TRAIN_IMAGES, TEST_IMAGES)):
        seen: dict[str, str] = {}
        paths = {name: _find(directory, name) for name in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)}
        parts = {}
        for name, magic in ((TRAIN_IMAGES, IMAGES_MAGIC), (TRAIN_LABELS, LABELS_MAGIC),
                            (TEST_IMAGES, IMAGES_MAGIC), (TEST_LABELS, LABELS_MAGIC)):
            parts[name] = _load(paths[name], name, magic, sha256, seen)
        names: tuple[str, ...] = ()
        floats = False
    else:  # EMNIST, QMNIST, CSV, Keras npz, Nielsen's pickle: checksums are for the MNIST-named IDX files only
        if sha256:
            raise DataError(f"{directory}: data.sha256 checks the four MNIST-named IDX files, which are not here; "
                            "set data.sha256 = {} for other datasets")
        other = dataset_files.read_other(directory, read_idx)
        keys = ("train images", "train labels", "test images", "test labels")
        paths = dict(zip((TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS), (other.paths[k] for k in keys)))
        parts = dict(zip(paths, (other.train_x, other.train_y, other.test_x, other.test_y)))
        seen, names, floats = other.sha256, other.class_names, other.floats
        transpose = transpose != other.transposed  # EMNIST stores images transposed: undo it (data.transpose flips)
    train_x, train_y = parts[TRAIN_IMAGES], parts[TRAIN_LABELS]
    test_x, test_y = parts[TEST_IMAGES], parts[TEST_LABELS]
    for labels, name in ((train_y, TRAIN_LABELS), (test_y, TEST_LABELS)):
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or (labels.size and labels.min() < 0):
            raise DataError(f"{paths[name]}: labels must be integers 0..K-1, one per image; got {labels.dtype} "
                            f"{labels.shape}{' with negative values' if labels.ndim == 1 and labels.size else ''}")
    for images, labels, iname, lname in ((train_x, train_y, TRAIN_IMAGES, TRAIN_LABELS),
                                         (test_x, test_y, TEST_IMAGES, TEST_LABELS)):
        if len(images) != len(labels):
            raise DataError(f"{paths[iname]}: {len(images)} images but {paths[lname].name} has {len(labels)} labels; "
                            "the two files must come from the same dataset")
        if len(images) == 0:
            raise DataError(f"{paths[iname]}: holds no images")
    if 0 in train_x.shape[1:]:
        raise DataError(f"{paths[TRAIN_IMAGES]}: images are {train_x.shape[1]}x{train_x.shape[2]} pixels, "
                        "expected at least 1x1")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(f"{paths[TEST_IMAGES]}: images are {test_x.shape[1]}x{test_x.shape[2]}, "
                        f"expected {train_x.shape[1]}x{train_x.shape[2]} like the training images")
    n_classes = _check_labels(paths[TRAIN_LABELS], train_y, None)
    _check_labels(paths[TEST_LABELS], test_y, n_classes)
    if train_limit:
        train_x, train_y = train_x[:train_limit], train_y[:train_limit]
    if test_limit:
        test_x, test_y = test_x[:test_limit], test_y[:test_limit]
    if floats:  # already pixel / pixel_max in [0, 1]
        pixel_max = 1
    else:
        check_pixel_range(paths[TRAIN_IMAGES], train_x, pixel_max)
        check_pixel_range(paths[TEST_IMAGES], test_x, pixel_max)
    if transpose:
        train_x, test_x = train_x.transpose(0, 2, 1), test_x.transpose(0, 2, 1)
    if train_classes is not None:
        kept = np.isin(train_y, train_classes)
        train_x, train_y = train_x[kept], train_y[kept]
    rows, cols = train_x.shape[1:]
    convert = train_images and not train_pixels
    return Dataset(
        train_images=to_float(train_x, pixel_max) if convert else np.zeros((0, rows * cols), np.float32),
        train_labels=train_y.astype(np.int64),
        test_images=to_float(test_x, pixel_max), test_labels=test_y.astype(np.int64),
        image_shape=(rows, cols), n_classes=n_classes, sha256=seen,
        class_names=names if len(names) == n_classes else (),
        train_pixels=train_x if train_pixels else None, pixel_max=pixel_max)


def check_pixel_range(path: Path, images: np.ndarray, pixel_max: int) -> None:
    """Pixels must lie in 0..pixel_max and reach above a quarter of it; otherwise the images would show
    blank and train to chance. Raises DataError naming data.pixel_max."""
    top = int(images.max()) if images.size else 0
    if top > pixel_max:
        raise DataError(f"{path}: pixels go up to {top}, above data.pixel_max = {pixel_max}; "
                        f"set --set data.pixel_max={top if top > 255 else 255} (the largest value the pixels can take)")
    if top <= pixel_max / 4:
        raise DataError(f"{path}: pixels go up to {top} only, far below data.pixel_max = {pixel_max}; if {top} is "
                        f"their full range (scikit-learn's 8x8 digits hold 0-16), set --set data.pixel_max={max(top, 1)}")


def to_float(images: np.ndarray, pixel_max: int = 255) -> np.ndarray:
    """(N, rows, cols) integers (or floats in [0, 1] with pixel_max 1) -> (N, rows*cols) float32 pixel / pixel_max
    in [0, 1], C-contiguous. Divides straight into the result (the same bits as casting first, then dividing):
    each fresh 188 MB array of MNIST costs about 0.3 s of page faults on these machines."""
    out = np.empty((len(images), int(np.prod(images.shape[1:], dtype=np.int64))), np.float32)
    np.divide(images.reshape(len(images), -1), np.float32(pixel_max), out=out, dtype=np.float32)
    return out


def select_classes(data: Dataset, classes: list[int]) -> Dataset:
    """Keep only the images labelled with `classes`, relabelled 0, 1, ... in that order.

    Their names stay the original labels ("3", "8"); the caller checked that every label occurs.
    """
    relabel = np.full(data.n_classes, -1, np.int64)
    relabel[classes] = np.arange(len(classes))

    def keep(images, labels):
        mask = relabel[labels] >= 0
        return images[mask] if len(images) else images, relabel[labels[mask]], mask  # (0, D): read without them

    train_x, train_y, train_kept = keep(data.train_images, data.train_labels)
    test_x, test_y, kept = keep(data.test_images, data.test_labels)
    pixels = data.train_pixels[train_kept] if data.train_pixels is not None else None
    return Dataset(train_x, train_y, test_x, test_y, data.image_shape, len(classes), data.sha256,
                   tuple(data.class_names[c] for c in classes), data.test_ids[kept], pixels, data.pixel_max)


SPARSE_ROWS = 4096  # images per block in `sparse_inputs`: bounds its temporary index arrays


def sparse_inputs(X: np.ndarray, pixel_max: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ptr, idx, val): the nonzero pixels of the images X (N, D), image by image. Image n's are
    idx[ptr[n]:ptr[n + 1]] (int32 pixel indices, increasing) with values val[ptr[n]:ptr[n + 1]]
    (X's dtype); ptr (N + 1,) int64. NaN counts as nonzero. Depends on X only: train.py computes it once
    per training, while numba compiles the kernels, and passes it to every `sgd_epoch` (72 MB for MNIST in
    float32).

    With `pixel_max`, X holds pixels as stored, (N, rows, cols) or (N, D) (Dataset.train_pixels): the result
    is sparse_inputs(to_float(X, pixel_max)), bit for bit, converted SPARSE_ROWS images at a time, so the
    float images (N, D) never exist at once (MNIST's are 188 MB)."""
    N, D = len(X), int(np.prod(X.shape[1:], dtype=np.int64))
    ptr = np.zeros(N + 1, np.int64)
    idx_parts, val_parts = [], []
    for n0 in range(0, N, SPARSE_ROWS):
        block = X[n0:n0 + SPARSE_ROWS] if pixel_max is None else to_float(X[n0:n0 + SPARSE_ROWS], pixel_max)
        nonzero = block != 0  # (n, D); True for NaN
        np.cumsum(np.count_nonzero(nonzero, axis=1), out=ptr[n0 + 1:n0 + 1 + len(block)])
        ptr[n0 + 1:n0 + 1 + len(block)] += ptr[n0]
        at = np.flatnonzero(nonzero)  # row by row, increasing within a row; half the time of np.nonzero's pairs
        idx_parts.append((at % D).astype(np.int32))
        val_parts.append(block.reshape(-1)[at])
    if not idx_parts:
        return ptr, np.zeros(0, np.int32), np.zeros(0, X.dtype if pixel_max is None else np.float32)
    return ptr, np.concatenate(idx_parts), np.concatenate(val_parts)
