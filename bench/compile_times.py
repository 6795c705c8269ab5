"""Where a cold start's numba compile goes: each kernel's compile, per signature, on an empty numba cache.

    .venv/bin/python bench/compile_times.py [--runs N] [--hidden 100] [--warm]

Each run is a fresh process with its own empty NUMBA_CACHE_DIR (nothing under generator/kernels/ is
touched). The process trains one float32 epoch of 784-H-10 on 200 random sparse images (the same
compiled signatures as `make site`'s first epoch), then a second; it prints the first call minus the
second, in process CPU seconds and wall seconds, and a table of every signature numba compiled: its
seconds (with what it compiled inside it, the callees, and without: "self"), and the part of "self"
spent holding numba's LLVM lock (optimising and emitting machine code). With --warm, a second process
on the same cache shows what still compiles when the cache is warm (nothing, if `cache=True` works).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def worker(hidden: int) -> dict:
    sys.path.insert(0, str(REPO))
    import numpy as np
    from numba.core import event

    spans = []  # (name, start, end, depth) of each compile; llvm lock spans attributed to the innermost compile
    stack = []

    class Listener(event.Listener):
        def on_start(self, ev):
            if ev.kind == "numba:compile":
                d = ev.data["dispatcher"]
                name = f"{d.py_func.__module__.rsplit('.', 1)[-1]}.{d.py_func.__name__}"
                stack.append({"name": name, "sig": str(ev.data["args"]), "t0": time.process_time(), "w0": time.perf_counter(),
                              "child": 0.0, "llvm": 0.0})
            elif ev.kind == "numba:llvm_lock" and stack:
                stack[-1]["l0"] = time.process_time()

        def on_end(self, ev):
            if ev.kind == "numba:compile":
                s = stack.pop()
                total = time.process_time() - s["t0"]
                spans.append({"name": s["name"], "sig": s["sig"], "total": total, "self": total - s["child"],
                              "llvm": s["llvm"], "wall": time.perf_counter() - s["w0"]})
                if stack:
                    stack[-1]["child"] += total
            elif ev.kind == "numba:llvm_lock" and stack and "l0" in stack[-1]:
                stack[-1]["llvm"] += time.process_time() - stack[-1].pop("l0")

    event.register("numba:compile", Listener())
    event.register("numba:llvm_lock", Listener())
    t_import = time.process_time()
    from generator import kernels
    from generator.train import init_params
    t_import = time.process_time() - t_import

    rng = np.random.default_rng(0)
    N = 200
    X = np.where(rng.random((N, 784)) < 0.2, rng.random((N, 784)), 0).astype(np.float32)
    y = rng.integers(0, 10, N).astype(np.int64)
    inputs = kernels.sparse_inputs(X)
    times = []
    for _ in range(2):
        params = init_params(784, hidden, 10, np.random.default_rng(0))
        c0, w0 = time.process_time(), time.perf_counter()
        kernels.sgd_epoch(params, X, y, rng.permutation(N), 10, np.float32(0.5), np.float32(0.99), inputs)
        times.append((time.process_time() - c0, time.perf_counter() - w0))
    return {"cpu": times[0][0] - times[1][0], "wall": times[0][1] - times[1][1], "import_cpu": t_import,
            "spans": spans, "load": os.getloadavg()[0]}


def run(cache: str, hidden: int) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, __file__, "--worker", str(hidden)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", type=int)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--warm", action="store_true")
    a = ap.parse_args()
    if a.worker is not None:
        print(json.dumps(worker(a.worker)))
        return 0
    for r in range(a.runs):
        with tempfile.TemporaryDirectory() as cache:
            res = run(cache, a.hidden)
            print(f"run {r + 1}: cold compile {res['cpu']:.2f} CPU s, {res['wall']:.2f} wall s "
                  f"(load average {res['load']:.1f}); import {res['import_cpu']:.2f} CPU s")
            print(f"  {'function':32} {'total':>7} {'self':>7} {'llvm':>7}  signature")
            for s in res["spans"]:
                print(f"  {s['name']:32} {s['total']:7.2f} {s['self']:7.2f} {s['llvm']:7.2f}  {s['sig'][:90]}")
            if a.warm:
                res = run(cache, a.hidden)
                print(f"  warm cache: first call minus second {res['cpu']:.2f} CPU s; compiled: "
                      f"{[s['name'] for s in res['spans']] or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
