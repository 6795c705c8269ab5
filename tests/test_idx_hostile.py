"""The IDX reader against hostile files: random and mutated headers and bodies, gzip bombs, lying sizes.

Whatever the bytes, read_idx returns the array its header declares or raises DataError with one line
naming the file, and never allocates more than the file really holds.
"""

import gzip
import hashlib
import tracemalloc
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from generator import data
from generator.errors import DataError

MAGICS = (data.IMAGES_MAGIC, data.LABELS_MAGIC)
NDIM = {data.IMAGES_MAGIC: 3, data.LABELS_MAGIC: 1}
# A few small bodies of memory per call at most: nothing the header claims may be allocated up front.
MEMORY_BOUND = 8 << 20


def header(magic: int, dims) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in dims)


@st.composite
def idx_files(draw):
    """(magic the reader is asked for, file bytes): a valid IDX file, then maybe mangled, maybe gzipped."""
    want = draw(st.sampled_from(MAGICS))
    magic = draw(st.one_of(st.sampled_from(MAGICS), st.sampled_from([0x0802, 0x0804, 0x0D03, 0x0903]),
                           st.integers(0, 2**32 - 1)))
    magic = draw(st.sampled_from([want, magic]))  # half the time the right magic
    ndim = draw(st.sampled_from([NDIM[want], NDIM[want], 1, 2, 3]))
    small = st.integers(0, 5)
    huge = st.integers(0, 2**32 - 1)
    dims = draw(st.lists(st.one_of(small, small, small, huge), min_size=ndim, max_size=ndim))
    size = int(np.prod(dims)) if max(dims, default=0) < 6 else draw(st.integers(0, 64))
    raw = header(magic, dims) + draw(st.binary(min_size=size, max_size=size))
    for _ in range(draw(st.integers(0, 2))):  # mutate the plain bytes
        op = draw(st.sampled_from(["flip", "cut", "append"]))
        if op == "flip" and raw:
            i = draw(st.integers(0, len(raw) - 1))
            raw = raw[:i] + bytes([raw[i] ^ draw(st.integers(1, 255))]) + raw[i + 1:]
        elif op == "cut":
            raw = raw[:draw(st.integers(0, len(raw)))]
        elif op == "append":
            raw += draw(st.binary(min_size=1, max_size=8))
    if draw(st.booleans()):
        raw = gzip.compress(raw, mtime=0)
        op = draw(st.sampled_from(["none", "none", "flip", "cut", "append"]))  # mutate the gzip stream
        if op == "flip":
            i = draw(st.integers(0, len(raw) - 1))
            raw = raw[:i] + bytes([raw[i] ^ draw(st.integers(1, 255))]) + raw[i + 1:]
        elif op == "cut":
            raw = raw[:draw(st.integers(0, len(raw)))]
        elif op == "append":
            raw += draw(st.binary(min_size=1, max_size=8))
    return want, raw


def read_measured(path, magic):
    """read_idx's result or DataError, and the peak memory it allocated."""
    tracemalloc.start()
    try:
        return data.read_idx(path, magic), tracemalloc.get_traced_memory()[1]
    except DataError as e:
        return e, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("idx") / "train-images-idx3-ubyte"


@settings(max_examples=400, deadline=timedelta(seconds=10), suppress_health_check=[HealthCheck.too_slow])
@given(case=idx_files())
def test_parser_returns_the_declared_shape_or_a_data_error(case, scratch):
    want, raw = case
    scratch.write_bytes(raw)
    result, peak = read_measured(scratch, want)  # anything but DataError propagates and fails the test
    assert peak < MEMORY_BOUND
    if isinstance(result, DataError):
        message = str(result)
        assert message.startswith(f"{scratch}: ") and "\n" not in message
        return
    array, digest = result
    plain = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw  # an independent reading
    n = NDIM[want]
    dims = tuple(int.from_bytes(plain[4 + 4 * i: 8 + 4 * i], "big") for i in range(n))
    assert int.from_bytes(plain[:4], "big") == want
    assert array.shape == dims and array.dtype == np.uint8
    assert array.tobytes() == plain[4 + 4 * n:]
    assert digest == hashlib.sha256(plain).hexdigest()


def test_a_gzip_bomb_is_stopped_after_the_declared_size(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as f:  # 60 labels, then 64 MiB of zeros in about 64 KiB
        f.write(header(data.LABELS_MAGIC, [60]) + bytes(60))
        for _ in range(64):
            f.write(bytes(1 << 20))
    assert path.stat().st_size < 1 << 20
    error, peak = read_measured(path, data.LABELS_MAGIC)
    assert isinstance(error, DataError) and "has trailing bytes" in str(error)
    assert peak < MEMORY_BOUND


@pytest.mark.parametrize("gz", [False, True])
def test_a_header_claiming_more_than_the_file_holds_allocates_nothing(tmp_path, gz):
    path = tmp_path / "labels"
    raw = header(data.LABELS_MAGIC, [data.MAX_IDX_BYTES]) + bytes(100)  # 1 GiB claimed, 100 bytes held
    path.write_bytes(gzip.compress(raw) if gz else raw)
    error, peak = read_measured(path, data.LABELS_MAGIC)
    assert isinstance(error, DataError) and f"= {data.MAX_IDX_BYTES} bytes" in str(error)
    assert "file holds 100; the file is truncated" in str(error)
    assert peak < MEMORY_BOUND


def test_sizes_that_multiply_to_gigabytes_are_refused_from_the_header(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(header(data.IMAGES_MAGIC, [2**31, 28, 28]))
    with pytest.raises(DataError, match=r"2147483648x28x28 = \d+ bytes of data, more than the limit"):
        data.read_idx(path, data.IMAGES_MAGIC)
