import gzip

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from generator import data
from generator.config import load_config
from generator.errors import DataError

from .conftest import MNIST, idx_bytes, write_dataset


def test_reads_gzip_and_plain_alike(tmp_path):
    a = data.load_dataset(write_dataset(tmp_path / "gz", gz=True))
    b = data.load_dataset(write_dataset(tmp_path / "plain", gz=False))
    assert a.train_images.shape == (60, 30) and a.image_shape == (6, 5) and a.n_classes == 3
    assert a.train_images.dtype == np.float32 and a.train_labels.dtype == np.int64
    np.testing.assert_array_equal(a.train_images, b.train_images)
    assert a.sha256 == b.sha256


def test_pixels_are_bytes_over_255(tmp_path):
    d = write_dataset(tmp_path)
    raw = gzip.decompress((d / f"{data.TRAIN_IMAGES}.gz").read_bytes())
    first = np.frombuffer(raw[16:46], np.uint8)
    ds = data.load_dataset(d)
    np.testing.assert_array_equal(ds.train_images[0], first.astype(np.float32) / 255)
    assert ds.train_images.min() >= 0 and ds.train_images.max() <= 1


def test_limits_take_the_first_images(tmp_path):
    ds = data.load_dataset(write_dataset(tmp_path), train_limit=7, test_limit=4)
    full = data.load_dataset(tmp_path)
    assert len(ds.train_labels) == 7 and len(ds.test_labels) == 4
    np.testing.assert_array_equal(ds.train_images, full.train_images[:7])


def test_real_mnist_matches_its_readme():
    config = load_config(MNIST.parent.parent / "atlas.toml")
    ds = data.load_dataset(config.path(config.data.dir), config.data.sha256)
    assert ds.train_images.shape == (60000, 784) and ds.test_images.shape == (10000, 784)
    assert np.bincount(ds.train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(ds.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _one_line(e) -> str:
    message = str(e.value)
    assert "\n" not in message
    return message


def test_missing_file_is_named(tmp_path):
    d = write_dataset(tmp_path)
    (d / f"{data.TEST_LABELS}.gz").unlink()
    with pytest.raises(DataError) as e:
        data.load_dataset(d)
    assert data.TEST_LABELS in _one_line(e) and "not found" in str(e.value)


def test_truncated_gzip_is_named(tmp_path):
    d = write_dataset(tmp_path)
    path = d / f"{data.TRAIN_IMAGES}.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError) as e:
        data.load_dataset(d)
    assert str(path) in _one_line(e) and "truncated" in str(e.value)


def test_truncated_body_is_named(tmp_path):
    d = write_dataset(tmp_path, gz=False)
    path = d / data.TRAIN_IMAGES
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError) as e:
        data.load_dataset(d)
    assert str(path) in _one_line(e) and "1800 bytes" in str(e.value) and "holds 1797" in str(e.value)


def test_wrong_magic_is_named(tmp_path):
    d = write_dataset(tmp_path, gz=False)
    path = d / data.TRAIN_LABELS
    path.write_bytes(idx_bytes(np.zeros((60, 1, 1), np.uint8)))  # an image file where labels belong
    with pytest.raises(DataError) as e:
        data.load_dataset(d)
    assert str(path) in _one_line(e) and "magic 0x00000803" in str(e.value)


def test_altered_file_fails_its_checksum(tmp_path):
    d = write_dataset(tmp_path)
    sums = data.load_dataset(d).sha256
    path = d / f"{data.TEST_IMAGES}.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] ^= 0xFF  # one pixel changed, size and header intact
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError) as e:
        data.load_dataset(d, sums)
    assert str(path) in _one_line(e) and "SHA-256" in str(e.value)


def test_image_and_label_counts_must_agree(tmp_path):
    d = write_dataset(tmp_path, gz=False)
    (d / data.TEST_LABELS).write_bytes(idx_bytes(np.zeros(19, np.uint8)))
    with pytest.raises(DataError) as e:
        data.load_dataset(d)
    assert "20 images" in _one_line(e) and "19 labels" in str(e.value)


def test_read_without_the_training_images_keeps_everything_else(tmp_path):
    """analyze reads the data with train_images=False: the test images, every label, the counts and the
    checksums are those of a full read; only the training pixels are left out, and a class subset still works."""
    directory = write_dataset(tmp_path, n_train=60, n_test=20, n_classes=3)
    full = data.load_dataset(directory)
    lean = data.load_dataset(directory, train_images=False)
    assert lean.train_images.shape == (0, full.n_inputs) and full.train_images.shape == (60, full.n_inputs)
    assert np.array_equal(lean.test_images, full.test_images) and np.array_equal(lean.train_labels, full.train_labels)
    assert (lean.test_labels.tolist(), lean.sha256, lean.n_classes) == (full.test_labels.tolist(), full.sha256, 3)
    subset, subset_full = data.select_classes(lean, [2, 0]), data.select_classes(full, [2, 0])
    assert np.array_equal(subset.test_images, subset_full.test_images)
    assert np.array_equal(subset.train_labels, subset_full.train_labels) and len(subset.train_images) == 0


def test_a_class_subset_read_with_only_its_training_images_equals_the_subset_of_a_full_read(tmp_path):
    """load_data converts only a class subset's training images (train_classes): the same arrays, bit for
    bit, as selecting the subset from a full read."""
    directory = write_dataset(tmp_path, n_train=60, n_test=20, n_classes=3)
    full = data.select_classes(data.load_dataset(directory), [2, 0])
    read = data.load_dataset(directory, train_classes=[2, 0])
    assert set(read.train_labels.tolist()) == {0, 2} and len(read.train_images) == len(read.train_labels) < 60
    assert read.n_classes == 3 and len(read.test_labels) == 20  # classes and test images: as a full read's
    lean = data.select_classes(read, [2, 0])
    assert 0 < len(lean.train_labels) < 60 and lean.n_classes == full.n_classes == 2
    for name in ("train_images", "train_labels", "test_images", "test_labels", "test_ids"):
        assert np.array_equal(getattr(lean, name), getattr(full, name)), name
    assert lean.train_images.dtype == full.train_images.dtype and lean.sha256 == full.sha256


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["uint8", "uint16", "float32", "float64"]), n=st.integers(1, 11),
       rows=st.integers(1, 5), cols=st.integers(1, 5), transposed=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_sparse_inputs_of_stored_pixels_are_those_of_their_float_images(kind, n, rows, cols, transposed, seed):
    """The train stage makes the kernels' sparse inputs of the pixels as stored (sparse_inputs(pixels, pixel_max),
    a few images at a time): bit for bit those of the whole float32 images (to_float), for every dtype a dataset
    may hold, a transposed view (data.transpose), blocks that split the images (SPARSE_ROWS is 4 here), blank
    images, and float64 values that round to 0 or to subnormals in float32 (dropped or kept exactly as to_float's)."""
    rng = np.random.default_rng(seed)
    if kind.startswith("uint"):
        pixel_max = int(rng.choice([16, 255, 4095])) if kind == "uint16" else 255
        pixels = (rng.integers(0, pixel_max + 1, (n, rows, cols)) * (rng.random((n, rows, cols)) < 0.5)).astype(kind)
    else:
        pixel_max = 1
        pixels = np.where(rng.random((n, rows, cols)) < 0.5, rng.random((n, rows, cols)), 0).astype(kind)
        if kind == "float64" and pixels.size:
            pixels.flat[rng.integers(0, pixels.size, 3)] = [1e-50, 1e-40, 2e-45]  # 0, subnormal, subnormal in float32
    if transposed:
        pixels = pixels.transpose(0, 2, 1)
    old, data.SPARSE_ROWS = data.SPARSE_ROWS, 4
    try:
        got = data.sparse_inputs(pixels, pixel_max)
        want = data.sparse_inputs(data.to_float(pixels, pixel_max))
    finally:
        data.SPARSE_ROWS = old
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape and g.tobytes() == w.tobytes()
    assert got[2].dtype == np.float32 and len(got[0]) == n + 1


@pytest.mark.parametrize("transpose", [False, True])
def test_a_read_for_the_training_keeps_the_pixels_as_stored(tmp_path, transpose):
    """The train stage reads with train_pixels: no float training images (Dataset.train_images is (0, D)), but the
    pixels they come from, which to_float(train_pixels, pixel_max) turns into those of a full read; everything
    else is a full read's, also for a class subset read with only its images, and after select_classes."""
    directory = write_dataset(tmp_path, n_train=60, n_test=20, n_classes=3)
    full = data.load_dataset(directory, transpose=transpose)
    read = data.load_dataset(directory, transpose=transpose, train_pixels=True)
    assert read.train_images.shape == (0, full.n_inputs) and read.pixel_max == 255
    assert read.train_pixels.dtype == np.uint8 and read.train_pixels.shape == (60, *full.image_shape)
    np.testing.assert_array_equal(data.to_float(read.train_pixels, read.pixel_max), full.train_images)
    for name in ("train_labels", "test_images", "test_labels", "test_ids"):
        assert np.array_equal(getattr(read, name), getattr(full, name)), name
    subset_full = data.select_classes(full, [2, 0])
    for subset in (data.select_classes(read, [2, 0]),
                   data.select_classes(data.load_dataset(directory, transpose=transpose, train_classes=[2, 0],
                                                         train_pixels=True), [2, 0])):
        np.testing.assert_array_equal(data.to_float(subset.train_pixels, subset.pixel_max), subset_full.train_images)
        assert np.array_equal(subset.train_labels, subset_full.train_labels) and len(subset.train_images) == 0
