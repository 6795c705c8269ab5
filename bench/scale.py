"""How each pipeline stage's time grows with the hidden layer: hidden 100, 300 and 1,000 on the same data.

    .venv/bin/python bench/scale.py            (make bench-scale)

Every stage should grow no faster than linearly with the number of hidden neurons: the last
column divides each time by the hidden size relative to the 100-neuron run (1.0 = linear,
below 1 = better than linear). Times are wall-clock seconds on a shared machine: compare the
rows of one run, not runs of different days.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator import __main__ as cli  # noqa: E402
from generator.config import load_config  # noqa: E402

SIZES = (100, 300, 1000)
STAGES = ("train", "analyze", "render", "site")


def main() -> int:
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for hidden in SIZES:
            root = Path(tmp) / str(hidden)
            config = load_config(cli.REPO / "atlas.toml", [
                f"network.hidden={hidden}", "data.train_limit=10000", "data.test_limit=2000", "train.epochs=1",
                "site.sections=[]", f"site.build_dir='{root / 'build'}'", f"site.site_dir='{root / 'site'}'"])
            times = {}
            for stage in STAGES:
                started = time.perf_counter()
                cli.STAGES[stage](config)
                times[stage] = time.perf_counter() - started
            rows[hidden] = times
    print(f"\n{'hidden':>7} " + " ".join(f"{s:>9}" for s in STAGES) + "   seconds per neuron relative to 100 neurons")
    base = rows[SIZES[0]]
    for hidden, times in rows.items():
        growth = " ".join(f"{times[s] / base[s] / (hidden / SIZES[0]):5.2f}" for s in STAGES)
        print(f"{hidden:7d} " + " ".join(f"{times[s]:9.2f}" for s in STAGES) + f"   {growth}")
    worst = max(rows[SIZES[-1]][s] / base[s] / (SIZES[-1] / SIZES[0]) for s in STAGES)
    print(f"scale hidden{SIZES[0]}->{SIZES[-1]} worst_stage_growth_per_neuron={worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
