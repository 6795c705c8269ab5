"""Time `make site` in a fresh clone, as a newcomer runs it, and say where the time goes.

    python bench/fresh_clone.py [--keep] [--cold-uv]

Clones this repository's HEAD into a temporary directory, runs `make site` there (each line of its output
shown after the seconds since the start) and prints, from the output's timestamps and build/timings.json:
setting up .venv (uv's download cache stays as it is unless
--cold-uv points uv at an empty one, as on a machine that never ran it), numba's cold compile (in the
train stage's second process, and how much of it the training waited for; then the first epoch minus
the mean of the others: loading the kernels from the cache), each stage, and the total. Standard library only: it runs before
.venv exists. The machine is shared, so the load average at start and end is printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EPOCH = re.compile(r"^\s+epoch\s+(\d+)/(\d+).*\s([\d.]+) s$")
READY = re.compile(r"^train: numba's kernels ready in ([\d.]+) s, .*\(waited ([\d.]+) s\)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the clone and print its path")
    parser.add_argument("--cold-uv", action="store_true", help="give uv an empty download cache")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="atlas-fresh-"))
    clone = work / "atlas"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    env = dict(os.environ)
    if args.cold_uv:
        env["UV_CACHE_DIR"] = str(work / "uv-cache")
    load = os.getloadavg()[0]
    started = time.perf_counter()
    first_stage = None
    epochs: list[tuple[int, float]] = []
    ready: list[tuple[float, float]] = []
    with subprocess.Popen(["make", "site"], cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as make:
        for line in make.stdout:
            sys.stdout.write(f"{time.perf_counter() - started:5.1f} {line}")  # when each line came: the critical path
            if first_stage is None and line.startswith("train:"):
                first_stage = time.perf_counter() - started
            r = READY.match(line)
            if r:
                ready.append((float(r.group(1)), float(r.group(2))))
            m = EPOCH.match(line)
            if m and m.group(2) == "30":  # the main atlas's 30 epochs, not the tiny section's
                epochs.append((int(m.group(1)), float(m.group(3))))
    total = time.perf_counter() - started
    if make.returncode:
        print(f"make site failed with exit {make.returncode}; the clone is in {clone}")
        return 1
    timings = json.loads((clone / "build" / "timings.json").read_text())
    for section in sorted((clone / "build").glob("*/timings.json")):  # the sections, e.g. tiny/
        timings.update({f"{k} ({section.parent.name}/)": v for k, v in json.loads(section.read_text()).items()})
    rest = [s for e, s in epochs if e > 1]
    compile_s = epochs[0][1] - sum(rest) / len(rest) if rest else float("nan")
    rows = [("set-up (.venv, before the first stage)", first_stage or 0.0),
            ("numba: the second process's compile", ready[0][0] if ready else float("nan")),
            ("numba: of it, waited for before epoch 1", ready[0][1] if ready else float("nan")),
            ("epoch 1 minus a warm one (loads the kernels)", compile_s),
            *((f"stage {k}", v) for k, v in timings.items()),
            ("total make site", total)]
    print()
    for name, seconds in rows:
        print(f"{name:48s} {seconds:7.1f} s")
    print(f"load average: {load:.2f} at start, {os.getloadavg()[0]:.2f} at end (2 cores)")
    if args.keep:
        print(f"clone kept in {clone}")
    else:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
