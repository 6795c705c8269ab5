"""Compile ahead of use, beside work that leaves a core idle. Standard library only, like config.py.

- numba's kernels for the train stage: `KernelWarmer`, a second process, which the CLI starts before
  its own imports; or, once numba's cache holds them, `CachedKernels`, which loads them beside the sparse
  inputs' making.
- What the render and site stages would otherwise compile the first time they run: this module's `main`,

      nice -n 19 .venv/bin/python -m generator.warm

  Python compiles a module to bytecode the first time it is imported, and a fresh .venv holds none (the
  first render paid for PIL's and Jinja's modules, the first site build for mkdocs');
  Jinja compiles the page templates (0.8 s, kept in templates/__pycache__ by render.TemplateCache). `make
  site` runs it beside the training, whose first seconds leave one core idle while numba compiles on the
  other, at the lowest priority so that it takes only that core. A module missing from MODULES only costs
  its own compile where it is first imported; nothing here changes any output.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .config import Config
from .errors import BuildError, caused_by_interrupt

# What the render stage and mkdocs (the site stage's subprocess: its command, build, plugins and Markdown
# extensions, as build/mkdocs.yml lists them) import; `python -X importtime` shows the rest is small.
MODULES = ("generator.render", "generator.probe", "generator.site", "mkdocs.__main__", "mkdocs.commands.build",
           "material.plugins.search.plugin", "material.plugins.offline.plugin", "mkdocs_glightbox.plugin",
           "pymdownx.tabbed", "markdown.extensions.admonition", "markdown.extensions.attr_list",
           "markdown.extensions.md_in_html", "markdown.extensions.tables", "markdown.extensions.toc")


KERNELS = Path(__file__).resolve().parent / "kernels"
WARMED_PREFIX = ".kernels-warmed-"  # kernels/cache.py removes these with the cache itself


def numba_release() -> str:
    """The installed numba's version, from its .dist-info folder's name, without importing numba (importlib.metadata
    took 70 ms, more than this whole check is for); "none" when numba is not installed."""
    spec = importlib.util.find_spec("numba")
    if spec is None or not spec.origin:
        return "none"
    found = sorted(Path(spec.origin).parent.parent.glob("numba-*.dist-info"))
    return found[0].name[len("numba-"):-len(".dist-info")] if found else "unknown"


def compiled_marker(args: list, kernels: Path = KERNELS) -> Path | None:
    """The file a KernelWarmer leaves beside numba's cache of the kernels once it has compiled them for
    `args` (see KernelWarmer), named with the Python and numba versions, for which numba keeps or drops its
    cache; None where NUMBA_CACHE_DIR keeps that cache elsewhere (the warmer always runs)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    name = "-".join([sys.implementation.cache_tag, f"numba{numba_release()}", *(str(a).lower() for a in args)])
    return kernels / "__pycache__" / (WARMED_PREFIX + name)


def already_compiled(args: list, kernels: Path = KERNELS) -> bool:
    """Whether a KernelWarmer compiled the kernels for `args` after their source last changed: its mark is
    newer than every kernels/*.py (numba's own rule for its cache, each source file's modification time), and
    numba's index files for this Python are there (False on any doubt: the warmer then runs, as without marks)."""
    marker = compiled_marker(args, kernels)
    try:
        marked = marker.stat().st_mtime if marker is not None else None
    except OSError:
        return False
    indexed = any(marker.parent.glob(f"*.py{sys.version_info[0]}{sys.version_info[1]}.nbi")) if marked else False
    return indexed and all(p.stat().st_mtime < marked for p in kernels.glob("*.py"))


def warm_args(config: Config) -> list:
    """What `train.warm_kernels` needs of the network: hidden layers, activation, output, normalised inputs."""
    net, d = config.network, config.data
    return [len(net.hidden_sizes), net.activation, net.output, (d.mean, d.std) != (0.0, 1.0)]


class KernelWarmer:
    """`train.warm_kernels` for a network (`warm_args`) in a second process, started as soon as the config is
    loaded (by the CLI before it imports NumPy and the stages, about a second in a fresh .venv; else by the
    train stage): on a cold numba cache (a fresh clone, or the kernels changed) the compile, single-threaded,
    runs beside those imports, the reading of the data and the sparse inputs instead of before the first
    epoch, and the training loads the kernels from the cache it wrote. If that process fails, or what it
    wrote cannot be loaded, numba's cache of them is removed and another compiles them (`repaired`); if that
    one fails too, the training compiles them itself.

    The second process is the first to import `generator.kernels` (the import that drops a stale cache,
    kernels/cache.py): this one imports it only after `wait`, so the two never race over the cache's files.
    Meanwhile this one reads the data, computes the images' nonzero pixels and imports numba itself (after
    the second process has, so Python compiles numba's modules once).

    Once it has compiled a network's kernels it marks them (`compiled_marker`), and `start` starts no second
    process while that mark holds (a section's training, any retraining with the kernels unchanged): a
    second process that loaded them only added its own start to loading them here (`CachedKernels`)."""
    done = "ready in {0:.1f} s, beside reading the data (waited {1:.1f} s)"  # train.train's line after `wait`
    failed = "the kernels' second process failed"  # and what it said, once `wait` knows

    @classmethod
    def start(cls, config: Config) -> KernelWarmer | None:
        """A KernelWarmer for `config`'s network, or None when numba's cache holds its kernels (`already_compiled`)."""
        args = warm_args(config)
        return None if already_compiled(args) else cls(args)

    def __init__(self, args: list):
        self.args = args
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")) if p))
        code = ("import json, sys, time; t = time.perf_counter(); from generator.train import warm_kernels; "
                "warm_kernels(*json.loads(sys.argv[1])); print(round(time.perf_counter() - t, 2))")
        self.process = subprocess.Popen([sys.executable, "-c", code, json.dumps(args)], env=env, text=True,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    TIMEOUT = 600  # seconds; a compile takes 5-10 s on 2 cores. Past this, the training compiles itself.

    def wait(self, repair: bool = True) -> tuple[float | None, float]:
        """Wait for the second process, then load the kernels it compiled into this one (`load_kernels`, not
        in epoch 1): (its seconds, or None when it failed, took over TIMEOUT s or its kernels could not be
        loaded; the seconds waited for it). On None, `failed` says why and the first epoch compiles them.
        Where it failed or its kernels could not be loaded and `repair`, numba's cache of them is removed and
        they are compiled again in another second process (`repaired`: a cache numba cannot read makes every
        load fail), `done` then saying so. Raises BuildError for such a cache that cannot be removed."""
        import numba  # noqa: F401 (numba's own import, 0.3 s, beside the compile too: it touches no kernel's cache)
        started = time.perf_counter()
        while True:  # in short waits: Python acts on a signal when this thread runs Python code again, and
            try:  # one that another thread (OpenBLAS's) took does not wake a blocking wait
                out, err = self.process.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if time.perf_counter() - started > self.TIMEOUT:
                    self.stop()
                    self.failed = f"the kernels' second process took over {self.TIMEOUT} s"
                    return None, time.perf_counter() - started
        waited = time.perf_counter() - started
        seconds = compile_seconds(out) if self.process.returncode == 0 else None
        if seconds is None:
            problem = f"the kernels' second process failed ({last_line(err, self.process.returncode)})"
        else:
            problem = load_kernels(self.args)  # from the cache it wrote, with Ctrl-C held
        if problem is None:
            mark_compiled(self.args)  # only once they loaded: a mark sends later runs to that cache
            return seconds, waited
        if not repair:
            self.failed = problem
            return None, waited
        return repaired(self, problem, started)

    def stop(self) -> None:
        """End the second process if it still runs (the model was up to date, or the stage failed)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()


class CachedKernels:
    """What the train stage gives train.train instead of a KernelWarmer when numba's cache holds the kernels
    (`already_compiled`): `wait` loads them in the calling thread (`load_kernels`: numba's import, its
    compiler's set-up, the cached machine code; 0.5-0.8 s that epoch 1 paid before), while train.train makes
    the sparse inputs in a thread of its own (NumPy's loops, which release Python's lock). Not the other way
    round: a thread inside numba cannot be stopped, and Ctrl-C waited for it (1.5-2.8 s, measured). The same
    `wait` as KernelWarmer's, repair included."""
    done = "ready in {0:.1f} s from its cache, beside making the sparse inputs"
    failed = "numba's cached kernels could not be loaded"  # and why, once `wait` knows

    def __init__(self, config: Config):
        self.args = warm_args(config)

    def wait(self) -> tuple[float | None, float]:
        """Load the kernels here: (seconds, the same seconds waited); see KernelWarmer.wait for the repair.
        Raises BuildError for a cache that can be neither loaded nor removed."""
        started = time.perf_counter()
        problem = load_kernels(self.args)
        if problem is None:
            seconds = time.perf_counter() - started
            return seconds, seconds
        return repaired(self, problem, started)


def repaired(warmer: KernelWarmer | CachedKernels, problem: str, started: float) -> tuple[float | None, float]:
    """After `problem` (one line: why the kernels could not be had from numba's cache), remove that cache
    (`drop_cached_kernels`) and compile them again in a second process, waited for as `KernelWarmer.wait` waits
    (Ctrl-C stops it at once; a compile in this process could lose it: see `load_kernels`), then load them here.
    Sets the warmer's `done` (or `failed`, where that process fails too or its cache cannot be loaded either:
    that cache is then removed again, and the first epoch compiles them) to the line train.train prints and
    returns (seconds since `started`, or None; the same seconds waited). The repair is for any failure: a
    kernel that does not compile fails again in epoch 1, which then shows its error. Raises BuildError where
    the cache cannot be removed: every run would fail on it again."""
    where = removed_cache(problem)
    again = KernelWarmer(warmer.args)
    try:
        seconds, _ = again.wait(repair=False)
    finally:
        again.stop()
    total = time.perf_counter() - started
    if seconds is None:
        removed_cache(problem)  # what the second process wrote may be what cannot be loaded
        warmer.failed = f"{problem}; numba's cache of them in {where} was removed; {again.failed}"
        return None, total
    said = f"{problem}, so numba's cache of them in {where} was removed".replace("{", "{{").replace("}", "}}")
    warmer.done = "ready in {0:.1f} s, compiled again: " + said  # train.train formats it
    return total, total


def removed_cache(problem: str) -> Path:
    """`drop_cached_kernels`, its directory returned; BuildError (one line: `problem`, the file, what to do)
    for a file it cannot remove."""
    try:
        return drop_cached_kernels()
    except OSError as error:
        raise BuildError(f"{problem}, and numba's cache of them could not be removed ({error.strerror}: "
                         f"{error.filename}); delete the *.nbi and *.nbc files there, or set NUMBA_CACHE_DIR "
                         f"to another directory, and run again") from error


def compile_seconds(out: str | None) -> float | None:
    """The seconds a second process printed last on stdout (numba's own debugging output may come before)."""
    words = (out or "").split()
    try:
        return float(words[-1]) if words else None
    except ValueError:
        return None


def load_kernels(args: list) -> str | None:
    """`train.warm_kernels(*args)` in this process, with SIGINT and SIGTERM held until it returns (`signals_held`):
    while numba loads cached kernels, llvmlite calls back into Python through ctypes, and an exception raised
    in such a callback (a signal handler's KeyboardInterrupt) is printed and dropped: a Ctrl-C landing there
    let the run go on to exit 0 (a reviewer's driver hit it every time; timed signals, about 1 in 50).

    Returns None, or, where loading raised (a cache file numba cannot read: a truncated .nbc raises
    UnpicklingError at every load; before, every run then ended in "internal error"), what it raised, in one
    line, for `repaired`. An interrupt is raised as it came."""
    from .train import warm_kernels
    try:
        with signals_held():
            warm_kernels(*args)
    except Exception as error:
        if caused_by_interrupt(error):
            raise
        said = str(error).strip().splitlines()
        return f"numba's cached kernels could not be loaded ({type(error).__name__}{': ' + said[0] if said else ''})"
    return None


def drop_cached_kernels() -> Path:
    """`kernels.cache.drop`: numba's cache of the kernels removed, its directory returned; raises OSError for a
    file it could not remove."""
    from .kernels.cache import drop
    return drop()


def last_line(text: str | None, returncode: int | None) -> str:
    """What a second process that failed said last on stderr (its exception, for a Python traceback), else its
    exit status: for one line of the train stage's output."""
    if returncode is not None and returncode < 0:  # killed: whatever it printed before is not why
        return f"killed by signal {-returncode}"
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if returncode == 0:  # it exited as it should but printed no seconds last
        return "it printed no seconds" + (f"; its stderr ended in: {lines[-1]}" if lines else "")
    return lines[-1] if lines else f"exit status {returncode}"


@contextmanager
def signals_held(signums=(signal.SIGINT, signal.SIGTERM)):
    """Hold these signals for the block, then deliver the first that came (to the handlers that were set before:
    KeyboardInterrupt, or the CLI's Terminated). Only in the main thread, where Python runs signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            if handler is not None:  # None: a handler set outside Python, which signal.signal cannot put back
                signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])


def mark_compiled(args: list, kernels: Path = KERNELS) -> None:
    """Leave the mark `already_compiled` looks for (nothing where numba's cache is elsewhere or read-only)."""
    marker = compiled_marker(args, kernels)
    try:
        if marker is not None and marker.parent.is_dir():
            marker.touch()
    except OSError:
        pass


def main() -> None:
    for name in MODULES:
        importlib.import_module(name)
    from .render import compile_templates
    compile_templates()


if __name__ == "__main__":
    main()
