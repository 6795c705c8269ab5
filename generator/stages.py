"""The pipeline's stages, one function each: train (or import), analyze, render. The site stage is in
site.py. Each takes the config and a `Run`, this invocation's progress reporter and stage times; none
prints (the CLI gives `say`)."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Callable

from . import atlas as atlas_mod
from .config import Config, check_against_data
from .data import Dataset
from .errors import BuildError
from .loaders import check_model_fits, load_analysis, load_data, load_trained, section_configs
from .network import hidden_sizes, sizes
from .output import sync_tree, write_if_changed
from .train import Epoch, fingerprint, load_model, save_model, train
from .warm import CachedKernels, KernelWarmer
from .weights import load_network, normalised_inputs

# Each stage runs as a command of its own (make site runs four and their sections'), so the analysis (numba's
# kernels) and the render (Pillow, Jinja) are imported by the stage that uses them, not by every command.


@dataclass
class Run:
    """One CLI invocation: where progress goes, and the seconds of each stage it ran (and of reading the
    data, as 'data', until the stage that read it records it)."""
    say: Callable[[str], None] = lambda message: None
    times: dict[str, float] = field(default_factory=dict)
    warmer: KernelWarmer | None = None  # numba's compile for this config, started by the CLI (see stage_train)

    def record(self, config: Config, stage: str) -> None:
        """Add this run's seconds of `stage` to build/timings.json (each stage keeps its latest time; make site
        runs the stages as separate commands). 'train' includes reading the data, shown apart as 'data'."""
        path = config.timings_path
        try:
            times = json.loads(path.read_text())
        except (OSError, ValueError):
            times = {}
        times[stage] = round(self.times[stage], 2)
        if stage in ("train", "analyze") and "data" in self.times:
            times[f"data ({stage})"] = round(self.times.pop("data"), 2)
        order = ["data (train)", "train", "data (analyze)", "analyze", "render", "site"]
        times = {k: times[k] for k in order if k in times}
        write_if_changed(path, (json.dumps(times, indent=1) + "\n").encode())

    def data(self, config: Config, train_images: bool = True, train_pixels: bool = False) -> Dataset:
        """load_data(config, train_images, train_pixels), its time added to times['data']."""
        started = time.perf_counter()
        try:
            return load_data(config, train_images, train_pixels)
        finally:
            self.times["data"] = self.times.get("data", 0.0) + time.perf_counter() - started


def stage_import(config: Config, run: Run, data: Dataset) -> None:
    """The train stage for a network trained elsewhere: read it, fit it to the data, store it as model.npz.
    Raises WeightsError (weights.py) for a file that is not a network that fits the data."""
    params, meta, lines = load_network(config, data)
    run.say(f"train: imported a {'-'.join(map(str, sizes(params)))} network ({meta['source']}); no training")
    for line in lines:
        run.say(line)
    meta.update({"config": config.to_dict(), "data_sha256": dict(sorted(data.sha256.items())),
                 "fingerprint": fingerprint(config, data.sha256)})
    save_model(config.model_path, params, [], {}, meta)
    run.say(f"train: wrote {config.model_path}")


def up_to_date(config: Config, fp: str) -> bool:
    """True when build/model.npz was made from exactly these inputs (its fingerprint matches)."""
    try:
        return load_model(config.model_path).meta.get("fingerprint") == fp
    except Exception:  # missing or unreadable: train
        return False


def stage_train(config: Config, run: Run) -> None:
    """Train the configured network into build/model.npz, unless it is up to date; import it with
    network.weights. Raises ConfigError, DataError, TrainingError or WeightsError, and BuildError for a numba
    cache of the kernels that can be neither read nor removed (warm.repaired)."""
    warmer, run.warmer = run.warmer, None  # the CLI's, started before its imports; one training's
    if warmer is None and not config.network.weights:
        warmer = KernelWarmer.start(config)  # compiles beside the data's reading; stopped if the model is up to date
    try:
        _train_or_import(config, run, warmer)
    finally:
        if warmer is not None:
            warmer.stop()


def _train_or_import(config: Config, run: Run, warmer: KernelWarmer | CachedKernels | None) -> None:
    data = run.data(config, train_pixels=True)  # train() makes its sparse inputs of them
    fp = fingerprint(config, data.sha256)
    if up_to_date(config, fp):
        run.say(f"train: {config.model_path} is up to date (same data, settings and code); not retrained")
        return
    if config.network.weights:
        return stage_import(config, run, data)
    check_against_data(config, len(data.train_labels))
    net, d = config.network, config.data
    sizes = "-".join(str(h) for h in (data.n_inputs, *net.hidden_sizes, data.n_classes))
    run.say(f"train: {len(data.train_labels):,} images, {sizes} network, {config.train.epochs} epochs "
            f"(seed {config.train.seed})" + (f", {net.activation} hidden units" if net.activation != "sigmoid" else "")
            + (f", {net.output} outputs" if net.output != "sigmoid" else ""))
    inputs = normalised_inputs(d)
    if inputs:
        run.say(f"train: inputs normalised as {inputs}")

    def report(e: Epoch) -> None:
        run.say(f"  epoch {e.epoch:3d}/{config.train.epochs}  lr {e.learning_rate:.4f}  train loss {e.train_loss:.4f}  "
                f"test loss {e.test_loss:.4f}  test accuracy {100 * e.test_accuracy:.2f}%  {e.seconds:.2f} s")

    # Kernels numba's cache holds (no KernelWarmer): loaded beside the sparse inputs' making (see CachedKernels).
    params, history, snapshots = train(config, data, report, warmer or CachedKernels(config), run.say)
    meta = {"config": config.to_dict(), "data_sha256": dict(sorted(data.sha256.items())),
            "source": "trained by this atlas", "fingerprint": fp,
            "activation": net.activation, "output": net.output}  # as an imported network's meta says them
    if inputs:
        meta["inputs"] = inputs
    save_model(config.model_path, params, history, snapshots, meta)
    run.say(f"train: wrote {config.model_path}")


def stage_analyze(config: Config, run: Run) -> None:
    """build/model.npz and the data -> build/atlas.json and build/arrays.npz (each written only if changed)."""
    model = load_trained(config)
    hidden, k = min(hidden_sizes(model.params)), config.analysis.top_k
    if k > hidden:  # an imported network smaller than the default top-k (load_trained refuses a trained one)
        config = dataclasses.replace(config, analysis=dataclasses.replace(config.analysis, top_k=hidden))
        run.say(f"analyze: analysis.top_k {k} lowered to {hidden}, the imported network's hidden units")
    data = run.data(config, train_images=False)  # the statistics are of the test images
    check_model_fits(config, model, data)
    from .analysis import analyze
    result, arrays = analyze(config, model, data)
    # arrays.npz first: atlas.json is what Make watches, so it must be the last to change.
    write_if_changed(config.arrays_path, atlas_mod.arrays_bytes(arrays))
    write_if_changed(config.atlas_path, atlas_mod.to_json(result))
    run.say(f"analyze: test accuracy {100 * result.model.test_accuracy:.2f}%; wrote {config.atlas_path}")


def stage_render(config: Config, run: Run) -> None:
    """build/atlas.json (and each section's) -> build/docs/. Raises BuildError when a section's page
    would overwrite one of the main atlas's."""
    from .render import render
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
    changed = sync_tree(config.docs_dir, files)
    run.say(f"render: {len(files)} files in {config.docs_dir}, {changed} changed")
