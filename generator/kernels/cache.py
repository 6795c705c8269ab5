"""Keep numba's on-disk cache of the kernels consistent with their source.

numba keys a cached function on its own source file only (its path and modification time). A kernel
compiled together with code from other modules (`threads.thread_steps` takes in `step.output_step`, which
uses `numerics`) is therefore not recompiled when only those modules change: it would run the old maths. So
before any kernel is compiled or loaded, `invalidate_if_changed` hashes every module of this package and,
when the hash differs from the one recorded beside the cache, removes the package's cached kernels. Where
the cache is not the package's own `__pycache__` (NUMBA_CACHE_DIR set, or a read-only install), nothing is
done and numba's own rule applies. `drop` removes the cached kernels wherever numba keeps them, for a cache
that numba cannot read (warm.load_kernels).
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CACHE = PACKAGE / "__pycache__"
STAMP_PREFIX = ".kernels-source-"
WARMED_PREFIX = ".kernels-warmed-"  # warm.KernelWarmer's marks: compiled for this source


def source_hash(package: Path = PACKAGE) -> str:
    """SHA-256 (first 16 hex digits) of every .py file of `package`, by name, in name order."""
    digest = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def invalidate_if_changed(package: Path = PACKAGE, cache: Path = CACHE) -> bool:
    """Remove `cache`'s numba files (*.nbi, *.nbc) unless they were written for the package's current
    source; returns True when it removed them. Never raises for a cache it cannot write."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return False
    stamp = cache / f"{STAMP_PREFIX}{source_hash(package)}"
    if stamp.exists():
        return False
    try:
        cache.mkdir(exist_ok=True)
        for old in [*cache.glob("*.nbi"), *cache.glob("*.nbc"), *cache.glob(f"{STAMP_PREFIX}*"),
                    *cache.glob(f"{WARMED_PREFIX}*")]:
            old.unlink(missing_ok=True)
        stamp.touch()
    except OSError:
        return False
    return True



def numba_cache_dir() -> Path:
    """Where numba keeps this package's cached kernels: the package's __pycache__, or under NUMBA_CACHE_DIR the
    directory its dispatchers' cache locator chose there (numba's Cache, numba/core/caching.py). Raises OSError
    where NUMBA_CACHE_DIR is set and numba no longer names that directory as this reads it."""
    from . import threads
    where = getattr(getattr(threads.thread_steps, "_cache", None), "_cache_path", None)  # numba's private name
    if where:
        return Path(where)
    if os.environ.get("NUMBA_CACHE_DIR"):  # a numba that names it otherwise: not the package's, say so
        raise OSError(errno.ENOENT, "numba's directory for the kernels is not known", os.environ["NUMBA_CACHE_DIR"])
    return CACHE


def drop(folder: Path | None = None, marks: Path = CACHE) -> Path:
    """Remove numba's cached kernels (*.nbi, *.nbc) from `folder` (default `numba_cache_dir()`) and the warmers'
    marks from `marks`: for a cache that cannot be read (a truncated .nbc makes numba raise UnpicklingError at
    every load), so that the kernels are compiled and saved again. The source stamp stays: what is left
    (nothing) was written for this source. Returns `folder`; raises the first OSError of a file it could not
    remove, after removing all the others (not for a mark: one left is harmless, since warm.already_compiled also
    wants numba's index files)."""
    folder = numba_cache_dir() if folder is None else folder
    failed = []
    for old in [*folder.glob("*.nbi"), *folder.glob("*.nbc")]:
        try:
            old.unlink(missing_ok=True)
        except OSError as error:
            failed.append(error)
    for mark in marks.glob(f"{WARMED_PREFIX}*"):
        try:
            mark.unlink(missing_ok=True)
        except OSError:
            pass
    if failed:
        raise failed[0]
    return folder
