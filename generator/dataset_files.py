"""Datasets as people have them, beside MNIST's own IDX names (generator.data): EMNIST's and QMNIST's IDX
files, Keras's mnist.npz, CSV files with the label first, and Nielsen's mnist.pkl.gz.

Used only by generator.data.load_dataset, which checks what these return. Each reader checks sizes before
it allocates (the IDX reader's header check, a zip member's declared size, a file's length), and nothing
is unpickled but NumPy arrays (RestrictedUnpickler).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

MAX_BYTES = 1 << 30  # one file's data, as for IDX (data.MAX_IDX_BYTES)
FORMATS = ("the four MNIST-format IDX files (train-images-idx3-ubyte[.gz], ...), an EMNIST or QMNIST split under "
           "its own names, Keras's mnist.npz, mnist_train.csv and mnist_test.csv, or Nielsen's mnist.pkl.gz")
QMNIST_LABELS_MAGIC = 0x00000C02  # int32, 2 dimensions: (N, 8), column 0 the digit
LETTERS = tuple("abcdefghijklmnopqrstuvwxyz")


@dataclass
class Parts:
    """A dataset's four arrays as read, before generator.data checks them."""
    train_x: np.ndarray  # (N, rows, cols) integer pixels, or floats in [0, 1] when `floats`
    train_y: np.ndarray  # (N,) integer labels 0..K-1
    test_x: np.ndarray
    test_y: np.ndarray
    paths: dict[str, Path]  # "train images", "train labels", "test images", "test labels" -> file, for messages
    sha256: dict[str, str]  # of each file read, by its name
    kind: str  # "EMNIST letters", "CSV", ...
    transposed: bool = False  # the files store each image transposed (EMNIST): undo it
    floats: bool = False  # pixels are already floats in [0, 1] (Nielsen's pickle): data.pixel_max does not apply
    class_names: tuple[str, ...] = ()


def _read_limited(path: Path) -> tuple[bytes, str]:
    """A file's bytes (gunzipped when it is gzip), refusing more than MAX_BYTES; and their SHA-256."""
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            stream = gzip.GzipFile(fileobj=f) if gz else f
            raw = stream.read(MAX_BYTES + 1)
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e}); restore the file") from None
    if len(raw) > MAX_BYTES:
        raise DataError(f"{path}: more than {MAX_BYTES} bytes of data; the file is corrupt or the dataset too large")
    return raw, hashlib.sha256(raw).hexdigest()


def _named(directory: Path, pattern: str) -> list[Path]:
    return sorted(p for p in directory.iterdir() if re.fullmatch(pattern, p.name))


def emnist(directory: Path, read_idx) -> Parts | None:
    """emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte[.gz]: images stored transposed; the
    letters split's labels 1..26 become a..z (0..25); other splits are named by emnist-<split>-mapping.txt."""
    splits = sorted({m.group(1) for p in directory.iterdir()
                     if (m := re.fullmatch(r"emnist-([a-z]+)-train-images-idx3-ubyte(\.gz)?", p.name))})
    if not splits:
        return None
    if len(splits) > 1:
        raise DataError(f"{directory}: holds the EMNIST splits {', '.join(splits)}; put one split's four files in a "
                        "directory of their own and pass that with --data")
    split = splits[0]
    arrays, paths, seen = {}, {}, {}
    for part, kind, magic in (("train images", "train-images-idx3", 0x803), ("train labels", "train-labels-idx1", 0x801),
                              ("test images", "test-images-idx3", 0x803), ("test labels", "test-labels-idx1", 0x801)):
        found = _named(directory, rf"emnist-{split}-{kind}-ubyte(\.gz)?")
        if not found:
            raise DataError(f"{directory / f'emnist-{split}-{kind}-ubyte'}(.gz): file not found beside the other "
                            f"EMNIST {split} files")
        arrays[part], seen[found[0].name] = read_idx(found[0], magic)
        paths[part] = found[0]
    names: tuple[str, ...] = ()
    mapping = directory / f"emnist-{split}-mapping.txt"
    if split == "letters":
        arrays["train labels"] = arrays["train labels"].astype(np.int64) - 1
        arrays["test labels"] = arrays["test labels"].astype(np.int64) - 1
        for part in ("train labels", "test labels"):
            if (arrays[part] < 0).any():
                raise DataError(f"{paths[part]}: a label 0; EMNIST letters are labelled 1..26 (a..z)")
        names = LETTERS
    elif mapping.is_file():
        rows = [line.split() for line in mapping.read_text().splitlines() if line.strip()]
        names = tuple(chr(int(r[1])) for r in sorted(rows, key=lambda r: int(r[0])))
    return Parts(arrays["train images"], arrays["train labels"], arrays["test images"], arrays["test labels"],
                 paths, seen, f"EMNIST {split}", transposed=True, class_names=names)


def qmnist(directory: Path, read_idx) -> Parts | None:
    """qmnist-{train,test}-images-idx3-ubyte and qmnist-{train,test}-labels-idx2-int (int32 (N, 8): column 0)."""
    if not _named(directory, r"qmnist-train-images-idx3-ubyte(\.gz)?"):
        return None
    arrays, paths, seen = {}, {}, {}
    for part, kind, magic in (("train images", "train-images-idx3-ubyte", 0x803),
                              ("train labels", "train-labels-idx2-int", QMNIST_LABELS_MAGIC),
                              ("test images", "test-images-idx3-ubyte", 0x803),
                              ("test labels", "test-labels-idx2-int", QMNIST_LABELS_MAGIC)):
        found = _named(directory, rf"qmnist-{kind}(\.gz)?")
        if not found:
            raise DataError(f"{directory / f'qmnist-{kind}'}(.gz): file not found beside the other QMNIST files")
        arrays[part], seen[found[0].name] = read_idx(found[0], magic)
        paths[part] = found[0]
    for part in ("train labels", "test labels"):
        arrays[part] = arrays[part][:, 0].astype(np.int64)  # the digit; the other columns are NIST metadata
    return Parts(arrays["train images"], arrays["train labels"], arrays["test images"], arrays["test labels"],
                 paths, seen, "QMNIST")


def keras_npz(path: Path) -> Parts:
    """Keras's mnist.npz: x_train (N, 28, 28) uint8, y_train (N,), x_test, y_test; members' sizes checked first."""
    try:
        with zipfile.ZipFile(path) as z:
            sizes = {i.filename.removesuffix(".npy"): i.file_size for i in z.infolist()}
        big = [k for k, n in sizes.items() if n > MAX_BYTES]
        if big:
            raise DataError(f"{path}: member '{big[0]}' declares {sizes[big[0]]} bytes, more than {MAX_BYTES}")
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
            if missing:
                raise DataError(f"{path}: no array '{missing[0]}'; expected Keras's x_train, y_train, x_test, y_test "
                                f"(found {sorted(f.files)[:6]})")
            x_train, y_train, x_test, y_test = (f[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz of arrays ({e})") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for name, x in (("x_train", x_train), ("x_test", x_test)):
        if x.ndim != 3 or not np.issubdtype(x.dtype, np.integer):
            raise DataError(f"{path}: '{name}' is {x.dtype} {x.shape}; expected integer images (N, rows, cols)")
    return Parts(x_train, y_train.reshape(-1), x_test, y_test.reshape(-1),
                 dict.fromkeys(("train images", "train labels", "test images", "test labels"), path),
                 {path.name: digest}, "Keras mnist.npz")


def _csv(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """label,pixel,pixel,... rows (an optional header row) -> (N, side, side) pixels, (N,) labels, SHA-256."""
    raw, digest = _read_limited(path)
    text = raw.decode("ascii", errors="replace")
    first, _, rest = text.partition("\n")
    body = rest if re.search(r"[A-Za-z]", first) else text  # a header names its columns
    try:
        table = np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.int32, ndmin=2)  # (N, 1 + pixels)
    except ValueError as e:
        raise DataError(f"{path}: not a CSV of integers with the label first ({str(e).splitlines()[0][:100]})") from None
    side = int(round((table.shape[1] - 1) ** 0.5))
    if table.shape[0] == 0 or side * side != table.shape[1] - 1:
        raise DataError(f"{path}: {table.shape[1]} columns: expected a label and the pixels of a square image "
                        "(785 for 28x28)")
    if table[:, 1:].min() < 0:
        raise DataError(f"{path}: negative pixel values; expected 0..data.pixel_max")
    return table[:, 1:].reshape(-1, side, side), table[:, 0], digest


def csv_pair(directory: Path) -> Parts | None:
    """<name>_train.csv and <name>_test.csv (gzip allowed), as Kaggle and pjreddie distribute MNIST."""
    train = _named(directory, r".*train\.csv(\.gz)?")
    test = _named(directory, r".*test\.csv(\.gz)?")
    if not train and not test:
        return None
    if len(train) != 1 or len(test) != 1:
        raise DataError(f"{directory}: expected one *train.csv and one *test.csv, found "
                        f"{[p.name for p in train + test]}")
    train_x, train_y, a = _csv(train[0])
    test_x, test_y, b = _csv(test[0])
    return Parts(train_x, train_y, test_x, test_y, {"train images": train[0], "train labels": train[0],
                                                    "test images": test[0], "test labels": test[0]},
                 {train[0].name: a, test[0].name: b}, "CSV")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and nothing else: the only callables a pickle may name are NumPy's array
    reconstructor and dtype (and _codecs.encode, which Python 3's protocol-2 pickles use to spell the arrays'
    bytes: it only turns a string into bytes); any other global (os.system, ...) is refused before it is looked up."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not a NumPy array")
        return super().find_class(module, name)


def nielsen_pickle(path: Path) -> Parts:
    """Nielsen's mnist.pkl.gz: ((train_x, train_y), (validation_x, validation_y), (test_x, test_y)), float32
    pixels in [0, 1] of (N, 784). Training uses his training and validation images together (MNIST's 60,000)."""
    raw, digest = _read_limited(path)
    try:
        data = RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise DataError(f"{path}: not Nielsen's mnist.pkl.gz of NumPy arrays ({e}); nothing else is unpickled") from None
    try:
        (tx, ty), (vx, vy), (sx, sy) = data
        arrays = [np.asarray(a) for a in (tx, ty, vx, vy, sx, sy)]
    except (TypeError, ValueError):
        raise DataError(f"{path}: expected ((train_x, train_y), (validation_x, validation_y), (test_x, test_y))") from None
    tx, ty, vx, vy, sx, sy = arrays
    side = int(round(tx.shape[-1] ** 0.5)) if tx.ndim == 2 else 0
    if side * side != (tx.shape[-1] if tx.ndim == 2 else -1) or vx.shape[1:] != tx.shape[1:] or sx.shape[1:] != tx.shape[1:]:
        raise DataError(f"{path}: images of shape {tx.shape}; expected (N, 784) rows of square images")
    if not (np.issubdtype(tx.dtype, np.floating) and 0 <= tx.min() and tx.max() <= 1):
        raise DataError(f"{path}: pixels are {tx.dtype} in [{tx.min()}, {tx.max()}]; expected floats in [0, 1]")
    train_x = np.concatenate([tx, vx]).reshape(-1, side, side)
    return Parts(train_x, np.concatenate([ty, vy]).astype(np.int64), sx.reshape(-1, side, side), sy.astype(np.int64),
                 dict.fromkeys(("train images", "train labels", "test images", "test labels"), path),
                 {path.name: digest}, "Nielsen mnist.pkl.gz", floats=True)


def read_other(where: Path, read_idx) -> Parts:
    """A dataset that is not four MNIST-named IDX files: a file (mnist.npz, mnist.pkl.gz) or a directory of
    EMNIST, QMNIST or CSV files. `read_idx(path, magic) -> (array, sha256)` is generator.data's IDX reader."""
    if where.is_file():
        head = where.read_bytes()[:2]
        if head == b"PK":
            return keras_npz(where)
        if where.name.endswith((".pkl.gz", ".pkl")) or head == b"\x1f\x8b":
            return nielsen_pickle(where)
        raise DataError(f"{where}: not a dataset the atlas reads; pass {FORMATS}")
    if not where.is_dir():
        raise DataError(f"{where}: no such file or directory; pass {FORMATS}")
    for reader in (lambda d: emnist(d, read_idx), lambda d: qmnist(d, read_idx), csv_pair):
        parts = reader(where)
        if parts is not None:
            return parts
    for name, reader in (("mnist.npz", keras_npz), ("mnist.pkl.gz", nielsen_pickle)):
        if (where / name).is_file():
            return reader(where / name)
    raise DataError(f"{where}: file not found: no dataset here; put in it {FORMATS}")
