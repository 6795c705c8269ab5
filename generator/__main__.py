"""The CLI: one subcommand per pipeline stage (train, analyze, render, site) and `build` for all four.

    data/mnist/*.gz -> build/model.npz -> build/atlas.json -> build/docs/ -> site/
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from . import atlas as atlas_mod
from .analysis import analyze
from .config import REPO, Config, check_against_data, load_config
from .data import Dataset, load_dataset, select_classes
from .errors import AtlasError, BuildError, ConfigError, DataError
from .output import swap_dir, sync_tree, write_if_changed
from .render import TEMPLATES, render, run_facts, site_nav
from .train import Epoch, fingerprint, load_model, save_model, train
from .weights import load_network

# A fixed build date unless the caller sets one: the site's bytes depend on its inputs only.
DEFAULT_SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01


def say(message: str) -> None:
    print(message, flush=True)


TIMES: dict[str, float] = {}  # seconds of each stage of this run, and of reading the data


def load_data(config: Config) -> Dataset:
    """The configured dataset: its class subset, its class names, checked against the settings."""
    started = time.perf_counter()
    data = _load_data(config)
    TIMES["data"] = TIMES.get("data", 0.0) + time.perf_counter() - started
    return data


def _load_data(config: Config) -> Dataset:
    d = config.data
    data = load_dataset(config.path(d.dir), d.sha256, d.train_limit, d.test_limit, d.pixel_max, d.transpose)
    if d.classes:
        missing = [c for c in d.classes if c >= data.n_classes]
        if missing:
            raise ConfigError(f"{config.where('data.classes')}: 'data.classes' names label(s) {missing} that "
                              f"{d.dir} does not have (labels 0..{data.n_classes - 1})")
        data = select_classes(data, d.classes)
    if d.class_names:
        if len(d.class_names) != data.n_classes:
            raise ConfigError(f"{config.where('data.class_names')}: 'data.class_names' has {len(d.class_names)} "
                              f"names, the data has {data.n_classes} classes; give one name per class")
        data = dataclasses.replace(data, class_names=tuple(d.class_names))
    return data


def stage_import(config: Config, data: Dataset) -> None:
    """The train stage for a network trained elsewhere: read it, fit it to the data, store it as model.npz."""
    params, meta, lines = load_network(config, data)
    H = params["W1"].shape[0]
    say(f"train: imported a {data.n_inputs}-{H}-{data.n_classes} network ({meta['source']}); no training")
    for line in lines:
        say(line)
    meta.update({"config": config.to_dict(), "data_sha256": dict(sorted(data.sha256.items())),
                 "fingerprint": fingerprint(config, data.sha256)})
    save_model(config.build_dir / "model.npz", params, [], {}, meta)
    say(f"train: wrote {config.build_dir / 'model.npz'}")


def up_to_date(config: Config, fp: str) -> bool:
    """True when build/model.npz was made from exactly these inputs (its fingerprint matches)."""
    path = config.build_dir / "model.npz"
    try:
        return load_model(path).meta.get("fingerprint") == fp
    except Exception:  # missing or unreadable: train
        return False


def stage_train(config: Config) -> None:
    data = load_data(config)
    fp = fingerprint(config, data.sha256)
    if up_to_date(config, fp):
        say(f"train: {config.build_dir / 'model.npz'} is up to date (same data, settings and code); not retrained")
        return
    if config.network.weights:
        return stage_import(config, data)
    check_against_data(config, len(data.train_labels))
    say(f"train: {len(data.train_labels):,} images, {data.n_inputs}-{config.network.hidden}-{data.n_classes} "
        f"network, {config.train.epochs} epochs (seed {config.train.seed})")

    def report(e: Epoch) -> None:
        say(f"  epoch {e.epoch:3d}/{config.train.epochs}  lr {e.learning_rate:.4f}  train loss {e.train_loss:.4f}  "
            f"test loss {e.test_loss:.4f}  test accuracy {100 * e.test_accuracy:.2f}%  {e.seconds:.2f} s")

    params, history, snapshots = train(config, data, report)
    meta = {"config": config.to_dict(), "data_sha256": dict(sorted(data.sha256.items())),
            "source": "trained by this atlas", "fingerprint": fp}
    save_model(config.build_dir / "model.npz", params, history, snapshots, meta)
    say(f"train: wrote {config.build_dir / 'model.npz'}")


def stage_analyze(config: Config) -> None:
    path = config.build_dir / "model.npz"
    if not path.is_file():
        raise BuildError(f"{path}: no trained model; run 'python -m generator train' (or make site) first")
    try:
        model = load_model(path)
    except Exception as e:  # a zip, npy or JSON problem: whatever np.load finds, the file is not a model
        raise BuildError(f"{path}: not a readable model file ({type(e).__name__}: {e}); "
                         "rerun 'python -m generator train'") from e
    hidden, k = model.params["W1"].shape[0], config.analysis.top_k
    if k > hidden and "weights_sha256" in model.meta:  # an imported network may be smaller than the default top-k
        config = dataclasses.replace(config, analysis=dataclasses.replace(config.analysis, top_k=hidden))
        say(f"analyze: analysis.top_k {k} lowered to {hidden}, the imported network's hidden units")
    elif k > hidden:  # the config's network.hidden was checked; this model may have been trained with another
        raise ConfigError(f"{config.where('analysis.top_k')}: 'analysis.top_k' must be in 1..{hidden} "
                          f"(the hidden neurons of {path}), got {k}")
    data = load_data(config)
    if model.params["W1"].shape[1] != data.n_inputs or model.params["W2"].shape[0] != data.n_classes:
        raise DataError(f"{path}: model is {model.params['W1'].shape[1]}-{model.params['W2'].shape[0]} but the data "
                        f"in {config.data.dir} is {data.n_inputs}-{data.n_classes}; retrain with this config")
    result, arrays = analyze(config, model, data)
    out = config.build_dir / "atlas.json"
    # arrays.npz first: atlas.json is what Make watches, so it must be the last to change.
    write_if_changed(config.build_dir / "arrays.npz", atlas_mod.arrays_bytes(arrays))
    write_if_changed(out, atlas_mod.to_json(result))
    say(f"analyze: test accuracy {100 * result.model.test_accuracy:.2f}%; wrote {out}")


def load_analysis(config: Config, config_arg: str = "") -> tuple[atlas_mod.Atlas, dict]:
    """atlas.json and arrays.npz of the analyze stage, or a one-line error saying what to run."""
    path = config.build_dir / "atlas.json"
    if not path.is_file():
        raise BuildError(f"{path}: no atlas; run 'python -m generator analyze{config_arg}' first")
    try:
        return atlas_mod.load_atlas(path), atlas_mod.load_arrays(config.build_dir / "arrays.npz")
    except Exception as e:  # malformed JSON or fields: the files were not written by analyze
        raise BuildError(f"{path}: not a readable atlas ({type(e).__name__}: {e}); "
                         f"rerun 'python -m generator analyze{config_arg}'") from e


def section_configs(config: Config) -> list[Config]:
    """The configs of the atlases published as sections of this one (site.sections)."""
    sections = []
    for rel in config.site.sections:
        section = load_config(config.path(rel))
        if not section.site.section:
            raise ConfigError(f"{config.path(rel)}: 'site.section' must name the section's directory (e.g. "
                              f"'tiny'), since {config.where('site.sections')} publishes it as a section")
        sections.append(section)
    return sections


def stage_render(config: Config) -> None:
    atlas, arrays = load_analysis(config)
    parts, links = [], []
    for rel, section in zip(config.site.sections, section_configs(config)):
        sub_atlas, sub_arrays = load_analysis(section, f" --config {rel}")
        parts.append((rel, section, render(sub_atlas, sub_arrays, section, prefix=f"{section.site.section}/")))
        m = sub_atlas.model
        links.append((section.site.title, f"{section.site.section}/index.md",
                      f"a {'→'.join(map(str, m.sizes))} network, {100 * m.test_accuracy:.2f}% test accuracy"))
    files = render(atlas, arrays, config, sections=links)  # everything in memory first
    for rel, section, part in parts:
        clash = sorted(k for k in files.keys() & part.keys() if not k.startswith("assets/"))
        if clash:
            raise BuildError(f"{rel}: section '{section.site.section}' would overwrite {clash[0]}; rename it")
        files.update(part)
    changed = sync_tree(config.build_dir / "docs", files)
    say(f"render: {len(files)} files in {config.build_dir / 'docs'}, {changed} changed")


def atlas_facts(config: Config) -> dict[str, str]:
    """What the footer says about the run of the atlas that `config` builds (render.run_facts)."""
    path = config.build_dir / "atlas.json"
    try:
        return run_facts(atlas_mod.load_atlas(path))
    except Exception as e:  # missing or malformed: the site cannot say which run it shows
        raise BuildError(f"{path}: not a readable atlas ({type(e).__name__}: {e}); "
                         "rerun 'python -m generator analyze'") from e


def mkdocs_config(config: Config) -> Path:
    """A mkdocs.yml in the build directory that inherits the repository's and points at this build.

    Written by a YAML emitter, so a title or path holding quotes, colons or '#' stays one string;
    the hook makes the theme show the title as text, never as HTML. It also carries the run's facts for
    every page's footer (extra.atlas, shown by templates/overrides) and the override's absolute path:
    mkdocs resolves a relative custom_dir against this file, not against the inherited one.
    """
    docs = config.build_dir / "docs"
    sections = section_configs(config)
    nav = site_nav(docs, {s.site.section: s.site.title for s in sections})
    # The footer names the run of the page's own atlas: the main one, or a section's under its prefix.
    facts = {**atlas_facts(config), "sections": [{"prefix": f"{s.site.section}/", **atlas_facts(s)} for s in sections]}
    text = yaml.safe_dump({"INHERIT": str(REPO / "mkdocs.yml"), "docs_dir": str(docs),
                           "site_name": config.site.title, "hooks": [str(REPO / "generator" / "mkdocs_hooks.py")],
                           "theme": {"custom_dir": str(TEMPLATES / "overrides")}, "extra": {"atlas": facts},
                           "nav": nav},
                          sort_keys=False, allow_unicode=True, width=1 << 16)
    path = config.build_dir / "mkdocs.yml"
    write_if_changed(path, text.encode())
    return path


def stage_site(config: Config) -> None:
    target = config.site_dir
    if target.exists() and not (target / "sitemap.xml").is_file() and (target.is_file() or any(target.iterdir())):
        raise ConfigError(f"{config.where('site.site_dir')}: 'site.site_dir' is {target}, which holds files "
                          "but no site built by mkdocs (no sitemap.xml); it would be replaced: "
                          "choose an empty or new directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.new.*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{target.name}.new.", dir=target.parent))
    env = dict(os.environ)
    env.setdefault("SOURCE_DATE_EPOCH", DEFAULT_SOURCE_DATE_EPOCH)
    env["NO_MKDOCS_2_WARNING"] = "1"
    # Not --quiet: it hides the warnings that --strict counts, and a broken link would pass.
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict",
           "--config-file", str(mkdocs_config(config)), "--site-dir", str(fresh)]
    try:
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            lines = re.sub(r"\x1b\[[0-9;]*m", "", result.stderr).splitlines()
            problems = [line for line in lines if line.startswith(("WARNING", "ERROR"))] or lines[-1:] or ["?"]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise BuildError(f"mkdocs build failed, {target} left as it was: {' '.join(problems[0].split())}{more}")
        os.chmod(fresh, 0o755)
        swap_dir(fresh, target)
    finally:
        if fresh.exists():
            shutil.rmtree(fresh)
    say(f"site: built {target}")


# Exit codes (README.md, "Errors and exit codes"): 0 success, 1 internal error, 2 config or command line, 3 data,
# 4 divergence, 5 build or write failure, 130 interrupted. Codes 2-5 live on the error classes.
INTERNAL_ERROR = 1
INTERRUPTED = 130

def record_times(config: Config, stage: str) -> None:
    """Add this run's stage times to build/timings.json (each stage keeps its latest time; make site runs
    the stages as separate commands). 'train' includes reading the data, shown apart as 'data'."""
    path = config.build_dir / "timings.json"
    try:
        times = json.loads(path.read_text())
    except (OSError, ValueError):
        times = {}
    times[stage] = round(TIMES[stage], 2)
    if stage in ("train", "analyze") and "data" in TIMES:
        times[f"data ({stage})"] = round(TIMES.pop("data"), 2)
    order = ["data (train)", "train", "data (analyze)", "analyze", "render", "site"]
    times = {k: times[k] for k in order if k in times}
    write_if_changed(path, (json.dumps(times, indent=1) + "\n").encode())


STAGES = {"train": stage_train, "analyze": stage_analyze, "render": stage_render, "site": stage_site}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m generator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=[*STAGES, "build"], help="pipeline stage to run; build runs all four")
    parser.add_argument("--config", default=str(REPO / "atlas.toml"), help="TOML config file (default: atlas.toml)")
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
        for name in stages:
            if name == "render" and args.stage == "build":  # the render stage reads the sections' analyses
                for section in section_configs(config):
                    for step in ("train", "analyze"):
                        STAGES[step](section)
            started = time.perf_counter()
            STAGES[name](config)
            TIMES[name] = time.perf_counter() - started
            say(f"{name}: {TIMES[name]:.1f} s")
            record_times(config, name)
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


def interrupted(debug: bool) -> int:
    if debug:
        raise
    print("error: interrupted; finished outputs are intact, unfinished ones were not written", file=sys.stderr)
    return INTERRUPTED


def caused_by_interrupt(error: BaseException) -> bool:
    """Whether a KeyboardInterrupt is in the exception's chain. Ctrl-C that lands while a numba-compiled
    function returns makes the dispatcher raise SystemError("... returned a result with an exception set")
    with the KeyboardInterrupt as its context."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def one_line(text: str) -> str:
    """`text` with its whitespace runs collapsed: every error is one line on stderr."""
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
