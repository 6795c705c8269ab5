"""The CLI: one subcommand per pipeline stage (train, analyze, render, site) and `build` for all four.

    data/mnist/*.gz -> build/model.npz -> build/atlas.json -> build/docs/ -> site/
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .config import REPO, SHARE, Config, load_config
from .errors import AtlasError, BuildError, caused_by_interrupt
from .warm import KernelWarmer

# Only the standard library and config.py up to here: the stages' modules (NumPy and the rest, about a second
# to import in a fresh .venv) are imported when a stage runs, after the train stage's compile has started.
if TYPE_CHECKING:
    from .stages import Run

# NumPy asks Linux for transparent huge pages for every array of 4 MB or more. On these virtual machines a huge
# page the host has taken back since its last use costs about 16 ms to fault in: after a few idle seconds MNIST's
# 188 MB of float images took 2.6-3.2 s to fill instead of 0.1-0.25 s, analyze 5.3-5.5 s instead of 2.1-2.5 s
# (bench/README.md, "Eighth round"). NumPy reads this when first imported (here, after this line); the stages'
# child processes inherit it. A value set in the environment wins.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")


def say(message: str) -> None:
    print(message, flush=True)


# Exit codes (README.md, "Errors and exit codes"): 0 success, 1 internal error, 2 config or command line, 3 data,
# 4 divergence, 5 build or write failure, 130 interrupted. Codes 2-5 live on the error classes.
INTERNAL_ERROR = 1
INTERRUPTED = 130


def imported_when_run(module: str, name: str):
    """The stage function `name` of `module`, imported when the stage runs (see the imports above)."""
    def stage(config: Config, run: Run) -> None:
        getattr(importlib.import_module(module, __package__), name)(config, run)
    return stage


# The site stage's module needs mkdocs' YAML and the render's helpers: only that stage imports it.
STAGES = {name: imported_when_run(".site" if name == "site" else ".stages", f"stage_{name}")
          for name in ("train", "analyze", "render", "site")}

def default_config() -> str | None:
    """The repository's atlas.toml in a checkout; installed, the built-in defaults (None), whose paths are
    relative to the current directory: data/mnist, build/, site/."""
    return str(REPO / "atlas.toml") if SHARE == REPO else None


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C. Its own class: raised as a bare KeyboardInterrupt, it ended the process
    by SIGINT (status -2) instead of main()'s 130 whenever SIGINT was ignored (a job started in the
    background, as in CI), although main() had handled it; this subclass gives 130 there too (tested)."""


def terminated(signum, frame):
    """SIGTERM (make or a CI runner stopping the run) ends it as Ctrl-C does, so that the stage's cleanup runs:
    its second processes stopped (warm.KernelWarmer, background.py), no output half-written."""
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """The CLI; returns the exit code. SIGTERM is handled as Ctrl-C while it runs (in the main thread)."""
    previous = signal.signal(signal.SIGTERM, terminated) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return run_cli(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run_cli(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog=Path(sys.argv[0]).name if Path(sys.argv[0]).name == "neuron-atlas"
                                     else "python -m generator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=[*STAGES, "build"], help="pipeline stage to run; build runs all four")
    parser.add_argument("--config", default=default_config(), help="TOML config file (default: the repository's "
                        "atlas.toml; installed, the built-in settings with data/mnist, build/ and site/ under the "
                        "current directory)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one setting, e.g. --set train.epochs=5 (repeatable)")
    parser.add_argument("--weights", metavar="FILE", help="explain this trained network instead of training one "
                        "(Nielsen network2 JSON, .npz, .safetensors, Keras .keras/.weights.h5, ONNX, PyTorch .pt); "
                        "same as --set network.weights=FILE")
    parser.add_argument("--data", metavar="DIR", help="a directory with the four MNIST-format IDX files (or EMNIST, "
                        "QMNIST or CSV files), or a mnist.npz or mnist.pkl.gz; "
                        "same as --set data.dir=DIR (and no checksums)")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    args = parser.parse_args(argv)
    try:
        overrides = list(args.set)
        if args.weights:
            overrides.append(f"network.weights={json.dumps(str(Path(args.weights).resolve()))}")
        if args.data:
            overrides += [f"data.dir={json.dumps(str(Path(args.data).resolve()))}", "data.sha256={}"]
        config = load_config(args.config, overrides)
        stages = list(STAGES) if args.stage == "build" else [args.stage]
        # numba's compile first, in its own process: the longest wait of a fresh clone's training, it then
        # runs beside this process's imports too (the train stage stops it if the model is up to date).
        warmer = KernelWarmer.start(config) if "train" in stages and not config.network.weights else None
        try:
            run_stages(config, stages, args.stage == "build", warmer)
        finally:
            if warmer is not None:
                warmer.stop()
    except AtlasError as e:
        if args.debug:
            raise
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return interrupted(args.debug)
    except OSError as e:  # reading or writing outside output.py's safe writes: name the file, no traceback
        if args.debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{one_line(e.strerror or str(e))}; rerun with --debug for the traceback", file=sys.stderr)
        return BuildError.exit_code
    except Exception as e:  # a bug, not a bad input: say so, briefly
        if caused_by_interrupt(e):  # Ctrl-C inside a numba kernel surfaces as a SystemError around it
            return interrupted(args.debug)
        if args.debug:
            raise
        print(f"error: internal error ({type(e).__name__}: {one_line(str(e))}); rerun with --debug for the "
              "traceback and report it", file=sys.stderr)
        return INTERNAL_ERROR
    return 0


def run_stages(config: Config, stages: list[str], build: bool, warmer: KernelWarmer | None) -> None:
    from .stages import Run
    run = Run(say, warmer=warmer)
    for name in stages:
        if name == "render" and build:  # the render stage reads the sections' analyses
            from .loaders import section_configs
            for section in section_configs(config):
                for step in ("train", "analyze"):
                    STAGES[step](section, Run(say))
        started = time.perf_counter()
        STAGES[name](config, run)
        run.times[name] = time.perf_counter() - started
        say(f"{name}: {run.times[name]:.1f} s")
        run.record(config, name)


def interrupted(debug: bool) -> int:
    if debug:
        raise
    print("error: interrupted; finished outputs are intact, unfinished ones were not written", file=sys.stderr)
    return INTERRUPTED


def one_line(text: str) -> str:
    """`text` with its whitespace runs collapsed: every error is one line on stderr."""
    return " ".join(text.split())


def command() -> None:
    """`python -m generator` and the neuron-atlas command: main(), then exit with its code. After a success
    the process exits without the interpreter's teardown (os._exit, as mypy's command does): every output is
    written and closed, every child process and thread joined by then, and with numba's kernels loaded the
    teardown took 0.25-0.3 s (freeing numba's and LLVM's objects one by one), measured. An error exits as
    usual, and so does a run under a profiler or tracer (cProfile, coverage), which writes its report at exit."""
    code = main()
    monitored = hasattr(sys, "monitoring") and any(sys.monitoring.get_tool(i) for i in range(6))  # 3.12+ profilers
    if code == 0 and sys.getprofile() is None and sys.gettrace() is None and not monitored:
        try:
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:  # None where the descriptor was closed (`>&-`)
                    stream.flush()
        except OSError:  # e.g. a full disk or a closed pipe: Python's own exit code when its final flush fails
            os._exit(120)
        os._exit(0)
    sys.exit(code)


if __name__ == "__main__":
    command()
