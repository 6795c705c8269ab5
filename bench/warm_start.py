"""A short training with everything warm: the train command against an independent NumPy script of it.

    python bench/warm_start.py [--epochs 3] [--rounds 3]      (make bench-warm)

Issue 17's warm start: once numba's cache holds the kernels and Python's the bytecode, a short run should take
at most half of what an independent NumPy script of the same training takes (bench/numpy_train.py: the
default network, the whole training set, the same schedule and the same per-epoch test evaluation). Each
round times, one after the other (the machine is shared: rounds interleave so that both see it alike),
`python -m generator train --set train.epochs=N` into a new build directory (so that it trains, never
"up to date") and the script, each a whole process from start to exit; then prints each round's seconds,
the medians and their ratio, and the train command's own account of its stages (build/timings.json).
Both run with NUMPY_MADVISE_HUGEPAGE=0 unless the environment sets it, as the train command does by default
(generator/__main__.py): the script is then timed with the same memory setting, not with NumPy's huge pages,
which cost these machines seconds after an idle moment.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")  # inherited by both commands (see the docstring)


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    python = sys.executable
    atlas, script, stages = [], [], []
    with tempfile.TemporaryDirectory(prefix="atlas-warm-") as work:
        # One untimed run of each: numba's cache and the bytecode warm, the files in the page cache.
        warm_cmd = [python, "-m", "generator", "train", "--config", "atlas.toml", "--set", f"train.epochs={args.epochs}"]
        timed([*warm_cmd, "--set", f"site.build_dir={work}/warm"])
        timed([python, "bench/numpy_train.py", "--epochs", str(args.epochs), "--out", f"{work}/warm-numpy.npz"])
        for r in range(args.rounds):
            build = f"{work}/build-{r}"
            atlas.append(timed([*warm_cmd, "--set", f"site.build_dir={build}"]))
            stages.append(json.loads(Path(build, "timings.json").read_text()))
            script.append(timed([python, "bench/numpy_train.py", "--epochs", str(args.epochs),
                                 "--out", f"{work}/numpy-{r}.npz"]))
            print(f"round {r + 1}: train command {atlas[-1]:.2f} s, NumPy script {script[-1]:.2f} s "
                  f"(ratio {atlas[-1] / script[-1]:.2f}); stages {stages[-1]}")
    a, s = statistics.median(atlas), statistics.median(script)
    print(f"median: train command {a:.2f} s, NumPy script {s:.2f} s, {args.epochs} epochs of 60,000 images")
    print(f"ratio train/numpy-script={a / s:.2f} (target <= 0.5); load average {os.getloadavg()[0]:.2f} (2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
