"""The Makefile's targets follow the config: generator/make_paths.py resolves paths as config.py does, and
`make site CONFIG=...` builds and marks only that config's atlas (dry runs: nothing is built)."""

import os
import shutil
import subprocess
import sys

import pytest

from generator.config import REPO, load_config
from generator.make_paths import query

CONFIGS = [REPO / "atlas.toml", REPO / "configs" / "zero-vs-one.toml", REPO / "configs" / "fashion-mnist.toml"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_make_paths_agree_with_the_config(path, monkeypatch):
    monkeypatch.chdir(REPO)
    config = load_config(path)
    assert [REPO / p for p in query(path, "build")] == [config.build_dir]
    assert [REPO / p for p in query(path, "site")] == [config.site_dir]
    assert [(REPO / p).resolve() for p in query(path, "sections")] == \
        [(config.root / s).resolve() for s in config.site.sections]


# The make a newcomer types, not one nested in `make test`'s: the outer make's MAKEFLAGS name a jobserver
# (the Makefile runs two jobs) that a make started by pytest cannot reach, and it would say so on stderr.
NEWCOMER_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}


def dry_run(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("no make")
    proc = subprocess.run(["make", "-n", *args, f"PYTHON={sys.executable}"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env=NEWCOMER_ENV)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_site_with_another_config_marks_only_that_atlas():
    lines = dry_run("-B", "site", "CONFIG=configs/fashion-mnist.toml").splitlines()
    touched = [line.split()[1] for line in lines if line.startswith("touch build")]
    assert touched == [f"build/fashion-mnist/{name}" for name in ("model.npz", "atlas.json", ".rendered", ".site")]
    assert all("--config configs/fashion-mnist.toml" in line for line in lines if "-m generator " in line)  # the stages


def test_default_make_site_builds_the_atlas_and_its_section():
    out = dry_run("-B", "site")
    for target in ("build/model.npz", "build/tiny/model.npz", "build/tiny/atlas.json", "build/atlas.json",
                   "build/.rendered", "build/.site"):
        assert f"touch {target}\n" in out
    assert "train --config configs/zero-vs-one.toml" in out and "train --config atlas.toml" in out


def test_an_unreadable_config_stops_make_with_one_line():
    proc = subprocess.run(["make", "-n", "site", "CONFIG=no-such.toml"], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env=NEWCOMER_ENV)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "no-such.toml" in proc.stderr
