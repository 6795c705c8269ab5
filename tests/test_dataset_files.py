"""Datasets in the containers people have: EMNIST and QMNIST names, Keras npz, CSV, Nielsen's pickle; pixel_max."""

import gzip
import os
import pickle

import numpy as np
import pytest

from generator import data
from generator.errors import DataError

from .conftest import idx_bytes, write_dataset


def images(rng, n, shape=(4, 3)):
    return rng.integers(0, 256, (n, *shape)).astype(np.uint8)


def write(path, raw, gz=True):
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)


def test_emnist_letters_are_transposed_back_and_named_a_to_z(tmp_path):
    rng = np.random.default_rng(0)
    train, test = images(rng, 52), images(rng, 26)
    for split, x, y in (("train", train, np.arange(52) % 26 + 1), ("test", test, np.arange(26) + 1)):
        write(tmp_path / f"emnist-letters-{split}-images-idx3-ubyte.gz", idx_bytes(x.transpose(0, 2, 1)))
        write(tmp_path / f"emnist-letters-{split}-labels-idx1-ubyte.gz", idx_bytes(y))
    d = data.load_dataset(tmp_path)
    assert d.image_shape == (4, 3) and d.n_classes == 26 and d.class_names[:3] == ("a", "b", "c")
    np.testing.assert_array_equal(d.train_images, train.reshape(52, -1) / np.float32(255))
    assert d.train_labels.tolist() == (np.arange(52) % 26).tolist()
    again = data.load_dataset(tmp_path, transpose=True)  # data.transpose flips the orientation once more
    assert again.image_shape == (3, 4)


def test_emnist_balanced_named_by_its_mapping(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 9), ("test", 3)):
        write(tmp_path / f"emnist-balanced-{split}-images-idx3-ubyte.gz", idx_bytes(images(rng, n)))
        write(tmp_path / f"emnist-balanced-{split}-labels-idx1-ubyte.gz", idx_bytes(np.arange(n) % 3))
    (tmp_path / "emnist-balanced-mapping.txt").write_text("0 48\n1 65\n2 97\n")
    assert data.load_dataset(tmp_path).class_names == ("0", "A", "a")
    write(tmp_path / "emnist-digits-train-images-idx3-ubyte.gz", idx_bytes(images(rng, 3)))
    with pytest.raises(DataError, match="EMNIST splits balanced, digits; put one split"):
        data.load_dataset(tmp_path)


def qmnist_labels(y) -> bytes:
    table = np.zeros((len(y), 8), ">i4")
    table[:, 0], table[:, 5] = y, 123456  # column 0 the digit, the rest NIST metadata
    return (0x00000C02).to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in table.shape) + table.tobytes()


def test_qmnist_int32_labels(tmp_path):
    rng = np.random.default_rng(2)
    for split, n in (("train", 20), ("test", 10)):
        write(tmp_path / f"qmnist-{split}-images-idx3-ubyte.gz", idx_bytes(images(rng, n)))
        write(tmp_path / f"qmnist-{split}-labels-idx2-int.gz", qmnist_labels(np.arange(n) % 10))
    d = data.load_dataset(tmp_path)
    assert d.n_classes == 10 and d.test_labels.tolist() == list(range(10))
    (tmp_path / "qmnist-test-labels-idx2-int.gz").write_bytes(gzip.compress(qmnist_labels(np.arange(10))[:-4]))
    with pytest.raises(DataError, match="QMNIST|truncated"):
        data.load_dataset(tmp_path)


def test_keras_mnist_npz(tmp_path):
    rng = np.random.default_rng(3)
    x_train, x_test = images(rng, 30), images(rng, 10)
    np.savez_compressed(tmp_path / "mnist.npz", x_train=x_train, y_train=np.arange(30) % 10, x_test=x_test,
                        y_test=np.arange(10))
    for where in (tmp_path, tmp_path / "mnist.npz"):
        d = data.load_dataset(where)
        np.testing.assert_array_equal(d.test_images, x_test.reshape(10, -1) / np.float32(255))
    np.savez(tmp_path / "other.npz", x_train=x_train)
    with pytest.raises(DataError, match="no array 'y_train'"):
        data.load_dataset(tmp_path / "other.npz")


@pytest.mark.parametrize("header", [True, False])
def test_csv_label_first(tmp_path, header):
    rng = np.random.default_rng(4)
    for split, n in (("train", 20), ("test", 10)):
        x = images(rng, n, (3, 3)).reshape(n, -1)
        rows = np.column_stack([np.arange(n) % 5, x])
        text = ("label," + ",".join(f"{r}x{c}" for r in range(1, 4) for c in range(1, 4)) + "\n") if header else ""
        text += "\n".join(",".join(map(str, row)) for row in rows) + "\n"
        (tmp_path / f"mnist_{split}.csv").write_text(text)
    d = data.load_dataset(tmp_path)
    assert d.image_shape == (3, 3) and d.n_classes == 5 and len(d.train_labels) == 20
    (tmp_path / "mnist_test.csv").write_text("1,2,3\n")
    with pytest.raises(DataError, match="3 columns: expected a label and the pixels of a square image"):
        data.load_dataset(tmp_path)


def nielsen(rng, n=20):
    x = lambda k: (rng.integers(0, 256, (k, 16)) / 256).astype(np.float32)  # noqa: E731
    y = lambda k: (np.arange(k) % 4).astype(np.int64)  # noqa: E731
    return ((x(n), y(n)), (x(8), y(8)), (x(8), y(8)))


def test_nielsen_pickle_through_the_restricted_unpickler(tmp_path):
    sets = nielsen(np.random.default_rng(5))
    (tmp_path / "mnist.pkl.gz").write_bytes(gzip.compress(pickle.dumps(sets, protocol=2)))
    d = data.load_dataset(tmp_path)
    assert len(d.train_labels) == 28 and d.image_shape == (4, 4)  # training + validation images
    np.testing.assert_array_equal(d.test_images, sets[2][0])


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_pickle_that_names_code_is_refused(tmp_path):
    (tmp_path / "mnist.pkl.gz").write_bytes(gzip.compress(pickle.dumps(((Evil(), 1), 2, 3), protocol=2)))
    with pytest.raises(DataError, match="global '(posix|os).system' is not a NumPy array"):
        data.load_dataset(tmp_path)


def test_pixels_far_below_pixel_max_name_the_setting(tmp_path):
    d = write_dataset(tmp_path / "low")
    for name in (data.TRAIN_IMAGES, data.TEST_IMAGES):
        raw = gzip.decompress((d / f"{name}.gz").read_bytes())
        header, body = raw[:16], np.frombuffer(raw[16:], np.uint8) % 17
        (d / f"{name}.gz").write_bytes(gzip.compress(header + body.tobytes()))
    with pytest.raises(DataError, match=r"pixels go up to 16 only, far below data.pixel_max = 255.*"
                                        r"--set data.pixel_max=16"):
        data.load_dataset(d)
    got = data.load_dataset(d, pixel_max=16)
    assert got.train_images.max() == 1.0
    with pytest.raises(DataError, match="above data.pixel_max = 8"):
        data.load_dataset(d, pixel_max=8)


def test_no_dataset_names_what_is_read(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match="no dataset here.*mnist.npz.*mnist_train.csv.*mnist.pkl.gz"):
        data.load_dataset(tmp_path)
