"""Writing files safely: atomic replacement, and skipping writes that would not change a byte."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Write `data` to `path` through a temporary file in the same directory and os.replace it into place.

    durable fsyncs before the rename, so even a power cut leaves the old or the new file; pages and
    figures, rebuilt from atlas.json at will, skip it (thousands of fsyncs cost tens of seconds).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_if_changed(path: Path, data: bytes, durable: bool = True) -> bool:
    """Write atomically unless the file already holds exactly `data`; True when it wrote."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    write_atomic(path, data, durable)
    return True


def sync_tree(root: Path, files: dict[str, bytes]) -> int:
    """Make directory `root` hold exactly `files` (relative path -> bytes); returns how many files changed.

    Unchanged files keep their timestamps; files not in `files` are removed, then empty directories.
    """
    changed = sum(write_if_changed(root / rel, data, durable=False) for rel, data in sorted(files.items()))
    keep = {(root / rel).resolve() for rel in files}
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file() and path.resolve() not in keep:
            path.unlink()
            changed += 1
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return changed


def swap_dir(new: Path, target: Path) -> None:
    """Put directory `new` in place of `target` with two renames; the old tree is removed afterwards."""
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    if old.exists():
        shutil.rmtree(old)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive (np.load reads it) that is byte-identical for equal arrays.

    np.savez stamps each member with the current time; this writes the same members with a fixed one.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()
