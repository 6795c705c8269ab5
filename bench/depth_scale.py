"""How each stage's time grows with the units of a deeper network: [H, H] hidden layers for H = 50, 100, 200,
and four layers of 50 (as many units as two of 100), each imported as a network2 JSON fitted with NumPy
(training deeper networks is the kernels' part of issue 16), on 2,000 test images.

    .venv/bin/python bench/depth_scale.py [100,100 50,50,50,50 ...]   (the hidden sizes of each network)

The last columns divide each time by the total hidden units relative to the first network (1.0 = linear).
Wall-clock seconds on a shared machine: compare the rows of one run.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator import __main__ as cli  # noqa: E402
from generator.config import load_config  # noqa: E402
from generator.data import load_dataset  # noqa: E402
from generator.stages import Run  # noqa: E402
from tests.deep_net import fit  # noqa: E402

NETWORKS = ((50, 50), (100, 100), (200, 200), (50, 50, 50, 50))
STAGES = ("train", "analyze", "render", "site")


def main(networks=NETWORKS) -> int:
    data = load_dataset(cli.REPO / "data" / "mnist", None, 10000, 2000)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for hidden in networks:
            root = Path(tmp) / "-".join(map(str, hidden))
            root.mkdir()
            # fitted well enough that the mistakes, whose pages grow with their number, are few in every network
            net = fit([784, *hidden, 10], data.train_images, data.train_labels, epochs=5, lr=1.0)
            (root / "net.json").write_text(json.dumps(net))
            config = load_config(cli.REPO / "atlas.toml", [
                f"network.weights='{root / 'net.json'}'", "data.test_limit=2000", "site.sections=[]",
                f"site.build_dir='{root / 'build'}'", f"site.site_dir='{root / 'site'}'"])
            times = {}
            for stage in STAGES:
                started = time.perf_counter()
                cli.STAGES[stage](config, Run())
                times[stage] = time.perf_counter() - started
            atlas = json.loads((root / "build" / "atlas.json").read_text())
            mistakes = sum(len(d["mistakes"]) for d in atlas["digits"])
            rows[hidden] = times
            print(hidden, {k: round(v, 2) for k, v in times.items()}, f"accuracy {atlas['model']['test_accuracy']}",
                  f"mistakes {mistakes}", flush=True)
    first = networks[0]
    print(f"\n{'hidden':>16} {'units':>6} " + " ".join(f"{s:>8}" for s in STAGES) + "   per unit, relative to "
          f"{list(first)}")
    for hidden, times in rows.items():
        scale = sum(hidden) / sum(first)
        growth = " ".join(f"{times[s] / rows[first][s] / scale:5.2f}" for s in STAGES)
        print(f"{str(list(hidden)):>16} {sum(hidden):6d} " + " ".join(f"{times[s]:8.2f}" for s in STAGES) + f"   {growth}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main([tuple(map(int, a.split(","))) for a in sys.argv[1:]] or NETWORKS))
