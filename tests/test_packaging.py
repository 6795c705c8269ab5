"""pyproject.toml: `pip install .` gives a `neuron-atlas` command with the run-time set and the files it reads."""

import importlib
import tomllib

from generator.__main__ import command
from generator.config import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def requirements(name: str) -> list[str]:
    lines = (REPO / name).read_text().splitlines()
    return sorted(line.split("#")[0].strip() for line in lines if line.split("#")[0].strip())


def test_console_script_is_the_cli():
    target = PROJECT["project"]["scripts"]["neuron-atlas"]
    module, _, name = target.partition(":")
    assert getattr(importlib.import_module(module), name) is command


def test_dependencies_are_the_runtime_set_and_extras_the_test_and_bench_sets():
    assert sorted(PROJECT["project"]["dependencies"]) == requirements("requirements.in")
    assert sorted(PROJECT["project"]["optional-dependencies"]["test"]) == requirements("requirements-test.in")
    assert "bench" in PROJECT["project"]["optional-dependencies"]


def test_packages_and_shared_files_exist():
    tool = PROJECT["tool"]["setuptools"]
    for package in tool["packages"]:
        directory = REPO / tool["package-dir"].get(package, package.replace(".", "/"))
        assert directory.is_dir(), package
    found = {p.relative_to(REPO).as_posix() for pattern in tool["package-data"]["generator._share"]
             for p in REPO.glob(pattern) if p.is_file()}
    for needed in ("mkdocs.yml", "atlas.toml", "templates/index.md.j2", "templates/static/atlas.css",
                   "templates/overrides/partials/copyright.html", "configs/zero-vs-one.toml"):
        assert needed in found
    # every template is shipped, so an installed package renders the same pages (not Jinja's cache of them)
    assert {p.relative_to(REPO).as_posix() for p in (REPO / "templates").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts} <= found
    assert {p.name for p in (REPO / "generator").iterdir() if p.is_dir() and (p / "__init__.py").exists()} \
        <= {p.split(".")[1] for p in tool["packages"] if p.count(".") == 1}


def test_every_module_warm_compiles_ahead_exists():
    """generator/warm.py's hand-kept list (run by `make site` beside the training): a renamed module would stop
    the build there, so each must be found (without importing it here)."""
    import importlib.util

    from generator.warm import MODULES

    assert [name for name in MODULES if importlib.util.find_spec(name) is None] == []
