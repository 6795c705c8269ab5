"""Pages and figures from atlas.json into build/docs: Jinja templates place, Python formats; no statistics here."""

from __future__ import annotations

import functools
import hashlib
import html
import json
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined, Template

from . import atlas as atlas_mod
from . import background, figures, probe, prose, render_layers
from .atlas import Atlas
from .config import SHARE, Config
from .errors import BuildError
from .formats import activation_words, counted, fixed, md_text, percent, plural, points, signed, thousands
from .names import Names, root_of
from .provenance import RUN_ID_HEX

TEMPLATES = SHARE / "templates"


class TemplateCache(FileSystemBytecodeCache):
    """Compiled templates kept beside them in templates/__pycache__, as Python keeps its bytecode: compiling
    the pages' templates took 0.8 s of every render. Jinja checks each entry against the template's source
    and its own version, and writes entries atomically; the entry's name also holds `settings`
    (settings_key: what else the compiled code depends on), so an environment with other settings never
    loads another's code. Where the directory cannot be written (a read-only checkout), templates are
    compiled each run, as without it."""

    def __init__(self, directory: Path = TEMPLATES / "__pycache__", settings: str = ""):
        try:
            directory.mkdir(exist_ok=True)
        except OSError:
            pass
        super().__init__(str(directory), f"%s-{settings}.jinja" if settings else "%s.jinja")

    def load_bytecode(self, bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except OSError:  # e.g. the directory is a file: compiled as without a cache
            pass

    def dump_bytecode(self, bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def settings_key(env: Environment) -> str:
    """A short hash of the settings a template's compiled code depends on besides its source and Jinja's
    version (which Jinja's cache checks itself): the syntax, whitespace handling, escaping, extensions, and
    the names of the filters and tests (checked when a template compiles)."""
    settings = (env.block_start_string, env.block_end_string, env.variable_start_string, env.variable_end_string,
                env.comment_start_string, env.comment_end_string, env.line_statement_prefix, env.line_comment_prefix,
                env.trim_blocks, env.lstrip_blocks, env.newline_sequence, env.keep_trailing_newline,
                env.autoescape, env.optimized, sorted(env.extensions), sorted(env.filters), sorted(env.tests))
    return hashlib.sha256(repr(settings).encode()).hexdigest()[:12]


@functools.cache
def environment() -> Environment:
    """The one Jinja environment of a run: a section's atlas and the main one share its compiled templates
    (each compiled once instead of once per atlas, a fifth of a second), cached across runs (TemplateCache)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    env.filters.update(signed=signed, fixed=fixed, percent=percent, thousands=thousands, points=points,
                       md_text=md_text, counted=counted)
    env.bytecode_cache = TemplateCache(settings=settings_key(env))
    return env


def compile_templates() -> None:
    """Compile every template into TemplateCache (generator/warm.py does it ahead of the first render)."""
    env = environment()
    for name in env.list_templates(filter_func=lambda name: name.endswith(".j2")):
        env.get_template(name)


PRODUCTS = 8  # top-activating images whose product with the weights a neuron page shows


def figure_files(atlas: Atlas, arrays: dict[str, np.ndarray],
                 names: Names) -> tuple[dict[str, Callable[[], bytes]], dict[str, str]]:
    """Every PNG of the site, by path, as the call that draws it (`make` draws them); and the symmetric
    scale of each signed map whose scale is its own, formatted as the pages print it ('±0.123'), by path."""
    scales = {}

    def signed_map(path: str, values: np.ndarray) -> None:
        vmax = float(np.abs(values).max())
        files[path] = partial(figures.diverging, values, vmax)
        scales[path] = "±" + fixed(vmax)

    files = {
        "assets/colourbar-diverging.png": partial(figures.colour_bar, figures.DIVERGING),
        "assets/colourbar-ink.png": partial(figures.colour_bar, figures.INK),
        "assets/colourbar-activation.png": partial(figures.colour_bar, figures.ACTIVATION),
    }
    pixels = dict(zip(arrays["image_indices"].tolist(), arrays["images"].astype(np.float64) / 255))
    for index, image in pixels.items():
        files[names.image(index)] = partial(figures.ink, image)
    means = np.array([n.mean_activation for n in atlas.neurons])  # (H, K)
    lo, hi = atlas.model.network["histogram_range"]  # activation grids span the activation's range
    for n in atlas.neurons:
        w = np.array(n.weights)
        files[names.neuron_fig(n.id, "weights-shared")] = partial(figures.diverging, w, atlas.model.weight_max_abs)
        if atlas.layers:  # a deeper network: its unit pages have their own figures (render_layers)
            continue
        files[names.neuron_fig(n.id, "weights")] = partial(figures.diverging, w, n.weight_max_abs)
        # The question's element-wise view: input times weights, pixel by pixel, each on its own scale:
        # for the typical image of the class it fires for most, and of every class.
        x = np.array(atlas.digits[n.fires_most_for].example.image)
        signed_map(names.neuron_fig(n.id, "product"), w * x)
        for d in atlas.digits:
            signed_map(names.neuron_fig(n.id, f"product-class-{d.digit}"), w * np.array(d.example.image))
        for ref in n.top_images[:PRODUCTS]:
            signed_map(names.neuron_fig(n.id, f"product-{ref.index}"), w * pixels[ref.index])
        signed_map(names.neuron_fig(n.id, "pattern"), arrays["patterns"][n.id])
        for s, epoch in enumerate(atlas.model.snapshot_epochs):
            signed_map(names.neuron_fig(n.id, f"epoch-{epoch}"), arrays["snapshots"][s, n.id])
        files[names.neuron_fig(n.id, "histogram")] = partial(figures.stacked_bars, np.array(n.histogram))
    files[names.confusion_fig()] = partial(figures.confusion, np.array(atlas.confusion))
    for name in ("templates", "contrasts", "gradient_x_input", "integrated_gradients"):
        for d, values in enumerate(arrays[name]):
            signed_map(names.digit_fig(d, name), values)
    for d, values in enumerate(arrays["preferred"]):
        files[names.digit_fig(d, "preferred")] = partial(figures.ink, values)
    for d in atlas.digits:
        files[names.digit_fig(d.digit, "mean")] = partial(figures.ink, np.array(d.mean_image))
        files[names.digit_fig(d.digit, "hidden-mean")] = partial(figures.activation_grid,
                                                                 (means[:, d.digit] - lo) / (hi - lo))
        files[names.digit_fig(d.digit, "example")] = partial(figures.ink, np.array(d.example.image))
        files[names.digit_fig(d.digit, "example-hidden")] = partial(
            figures.activation_grid, (np.array(d.example.hidden_activation) - lo) / (hi - lo))
    deeper, deeper_scales = render_layers.figure_files(atlas, arrays, names)
    return {**files, **deeper}, {**scales, **deeper_scales}


def mistake_groups(mistakes: list) -> list[tuple[int, list]]:
    """Mistakes grouped by the class they were called, in class order; within a group, by test index."""
    called = sorted({m.predicted for m in mistakes})
    return [(c, [m for m in mistakes if m.predicted == c]) for c in called]


def confusion_cells(atlas: Atlas, names: Names, root: str) -> list[dict]:
    """The confusion matrix as Markdown table cells: mistakes link to their images, correct counts in bold."""
    rows = []
    for d, counts in enumerate(atlas.confusion):
        cells = []
        for c, n in enumerate(counts):
            if c == d:
                cells.append(f"**{thousands(n)}**")
            elif n:
                cells.append(f"[{n}]({root}{names.mistakes_page(d)}#predicted-{c})")
            else:
                cells.append("·")
        rows.append({"digit": d, "cells": cells})
    return rows


def evidence_rows(d) -> list[dict]:
    """The digit page's pinning table: what was pinned, the mean margin change and the accuracy change, as
    the strings the table shows (a range for the random baseline)."""
    r = d.random_baseline
    rows = [{"what": "none", "margin": fixed(d.margin, 3) + " (mean margin)", "accuracy": percent(d.accuracy),
             "change": ""}]
    if d.top_contributors:
        rows.append({"what": f"its top {counted(len(d.top_contributors), 'contributor')}",
                     "margin": signed(d.margin_top), "accuracy": percent(d.ablate_top),
                     "change": points(d.ablate_top - d.accuracy)})
    if r.draws:
        rows.append({"what": f"{counted(len(d.top_contributors), 'random neuron')} from the other {r.pool} "
                             f"(5–95% of {r.draws} draws, median)",
                     "margin": f"{signed(r.margin_low)} to {signed(r.margin_high)} ({signed(r.margin_median)})",
                     "accuracy": f"{percent(r.accuracy_low)} to {percent(r.accuracy_high)} ({percent(r.accuracy_median)})",
                     "change": points(d.ablate_random - d.accuracy)})
    if d.top_suppressors:
        rows.append({"what": f"its top {counted(len(d.top_suppressors), 'suppressor')}",
                     "margin": signed(d.margin_suppressors), "accuracy": percent(d.ablate_suppressors),
                     "change": points(d.ablate_suppressors - d.accuracy)})
    return rows


def grid_cells(values, value_range, top: list[int], links: tuple[list[str], list[str]]) -> list[dict]:
    """A hidden layer's activations as the cells of its grid (neuron 0 top left, row by row): each cell's
    neuron, its id ('042') and page from links = `neuron_links(...)` (made once: the template would make them
    for each of a mistakes page's thousands of cells), its viridis colour on the activation's fixed range
    (value_range: [0, 1] for sigmoid), its value, and whether it is outlined (in `top`)."""
    lo, hi = value_range
    colours = figures.activation_hex((np.asarray(values, np.float64) - lo) / (hi - lo))
    ids, pages = links
    return [{"neuron": j, "id": ids[j], "page": pages[j], "colour": colours[j], "value": fixed(v), "top": j in top}
            for j, v in enumerate(values)]


def neuron_links(names: Names, n: int) -> tuple[list[str], list[str]]:
    """The ids ('042') and pages (site-relative, names.href) of neurons 0..n-1."""
    return [names.nid(j) for j in range(n)], [names.href(names.neuron_page(j)) for j in range(n)]


def page_files(atlas: Atlas, config: Config, names: Names, json_sizes: dict[str, str],
               sections: list[tuple[str, str, str]], scales: dict[str, str]) -> dict[str, Callable[[], bytes]]:
    """Every Markdown page of the site, by path, as the call that renders it (`make` renders them); `scales`
    gives each signed map's printed scale. json_sizes, the API page's size column, is read when that page
    is rendered, so it may be filled in until then."""
    env = environment()
    grid_rows, grid_cols = figures.grid_shape(len(atlas.neurons))
    noun = atlas.model.noun
    nouns = plural(noun)
    cls = [md_text(c) for c in atlas.model.class_names]
    cls_html = [html.escape(" ".join(str(c).split())) for c in atlas.model.class_names]  # for raw HTML blocks
    summaries = neuron_summaries(atlas, cls)
    common = dict(atlas=atlas, model=atlas.model, train=atlas.model.config["train"], title=config.site.title,
                  names=names, grid_rows=grid_rows, grid_cols=grid_cols, digit_colours=figures.DIGIT_HEX,
                  cls=cls, cls_html=cls_html, noun=noun, Noun=noun.capitalize(), nouns=nouns, Nouns=nouns.capitalize(),
                  summaries=summaries, scales=scales, act=activation_words(atlas.model.network),
                  hidden_layers=[counted(h, activation_words(atlas.model.network)["hidden"] + " hidden neuron")
                                 for h in atlas.model.sizes[1:-1]],
                  picture_words={"map": "effective input map" if atlas.layers else "weight map"})
    span = atlas.model.network["histogram_range"]
    links = neuron_links(names, len(atlas.neurons))

    files = {}

    def page(path: str, template: str, **context) -> None:
        # url_root: from the page's served address (neurons/042/) back to the site root, for raw HTML links,
        # which mkdocs does not rewrite: the probe's (their #test=N fragments are state, not anchors), and the
        # grids of cells and images, which as Markdown were most of the mkdocs build's time.
        # The template is compiled (or loaded from TemplateCache) once, when its first page is planned.
        files[path] = partial(render_page, env.get_template(template),
                              dict(**common, root=root_of(path), url_root="../" * Names.url(path).count("/"),
                                   **context))

    page(names.home(), "index.md.j2", sections=sections)
    if atlas.layers:  # a deeper network: a page per layer and per unit instead of the neuron pages
        render_layers.pages(atlas, names, page, cls, root_of)
    else:
        page(names.neurons_index(), "neurons.md.j2")
    page(names.digits_index(), "digits.md.j2", confusion_header=[str(d.digit) for d in atlas.digits],
         confusion_rows=confusion_cells(atlas, names, root_of(names.digits_index())))
    page(names.mistakes_index(), "mistakes_index.md.j2")
    page(names.probe_page(), "probe.md.j2",
         probe_layers=render_layers.probe_layers(atlas, names, "../" * Names.url(names.probe_page()).count("/")))
    page(names.api_page(), "api.md.j2", sizes=json_sizes, run_id_hex=RUN_ID_HEX,
         example_neuron=min(42, len(atlas.neurons) - 1), example_digit=min(3, len(atlas.digits) - 1))
    for n in ([] if atlas.layers else atlas.neurons):
        page(names.neuron_page(n.id), "neuron.md.j2", n=n, typical=atlas.digits[n.fires_most_for],
             products=n.top_images[:PRODUCTS], summary=summaries[n.id],
             position=(n.id // grid_cols + 1, n.id % grid_cols + 1),
             citation=citation(atlas, config.site.title, f"Neuron {names.nid(n.id)}"))
    for d in atlas.digits:
        tops = [c.neuron for c in d.top_contributors]
        page(names.digit_page(d.digit), "digit.md.j2", d=d, evidence=evidence_rows(d),
             mean_grid=grid_cells([n.mean_activation[d.digit] for n in atlas.neurons], span, tops, links),
             example_grid=grid_cells(d.example.hidden_activation, span, tops, links))
        page(names.mistakes_page(d.digit), "mistakes.md.j2", d=d, groups=mistake_groups(d.mistakes),
             grids={m.index: grid_cells(m.hidden_activation, span, [q.neuron for q in m.pushes], links)
                    for m in d.mistakes})
    return files


def render_page(template: Template, context: dict) -> bytes:
    return template.render(context).encode()


def make(calls: dict[str, Callable[[], bytes]]) -> dict[str, bytes]:
    """{path: the call that makes its bytes} -> {path: its bytes}, in the same order."""
    return {path: call() for path, call in calls.items()}


def neuron_summaries(atlas: Atlas, cls: list[str]) -> list[str]:
    """Each neuron's generated summary (prose.neuron_summary), by neuron id."""
    nouns, act = plural(atlas.model.noun), activation_words(atlas.model.network)
    return [prose.neuron_summary(n, cls, atlas.model.weight_max_abs_median, nouns, act) for n in atlas.neurons]


def citation(atlas: Atlas, title: str, what: str) -> str:
    """A ready-to-paste line naming a unit of this run's network; the page appends its permalink."""
    m = atlas.model
    return (f"{what}, {title}, run {m.run_id} ({'-'.join(map(str, m.sizes))} {activation_words(m.network)['network']}, seed {m.seed}, "
            f"test accuracy {percent(m.test_accuracy)})")


def json_bytes(value) -> bytes:
    """JSON as atlas.json writes it: keys in field order, shortest round-trip floats, one trailing newline."""
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


DIGIT_PICTURES = ("mean_image",)  # pixel arrays left out of digits/D.json: they are served as PNGs


def data_files(atlas: Atlas, names: Names, figure_paths) -> dict[str, bytes]:
    """atlas.json and one small JSON per neuron and per digit beside its page, for scripts (the API page)."""
    by_folder = {}  # figures sit in their page's folder
    for p in sorted(figure_paths):
        by_folder.setdefault(p[:p.rfind("/") + 1], []).append(p)

    def frame(page: str, kind: str, entry: dict, **links: str) -> bytes:
        folder = names.url(page)
        figs = {PurePosixPath(p).stem: p for p in by_folder.get(folder, [])}
        return json_bytes({"format": atlas.format, "run_id": atlas.model.run_id, "page": folder, **links,
                           "atlas": names.atlas_json(), "figures": figs, kind: entry})

    files = {names.atlas_json(): atlas_mod.to_json(atlas)}
    summaries = neuron_summaries(atlas, list(atlas.model.class_names))
    files.update(render_layers.data_files(atlas, names, frame))
    for n in ([] if atlas.layers else atlas.neurons):
        files[names.neuron_json(n.id)] = frame(names.neuron_page(n.id), "neuron",
                                               {**atlas_mod.plain(n), "summary": summaries[n.id]})
    for d in atlas.digits:
        entry = atlas_mod.plain(d)
        for key in DIGIT_PICTURES:
            del entry[key]
        del entry["example"]["image"]
        files[names.digit_json(d.digit)] = frame(names.digit_page(d.digit), "digit", entry,
                                                 mistakes_page=names.url(names.mistakes_page(d.digit)))
    return files


def json_sizes(atlas: Atlas, names: Names, data: dict[str, bytes]) -> dict[str, str]:
    """The API page's size column: atlas.json, and the mean size of a neuron's and a digit's JSON."""
    def size(paths: list[str]) -> str:
        n = sum(len(data[p]) for p in paths) / len(paths)
        return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"

    units = ([names.unit_json(u.layer, u.id) for layer in atlas.layers for u in layer.units] if atlas.layers
             else [names.neuron_json(n.id) for n in atlas.neurons])
    return {"atlas": size([names.atlas_json()]), "neuron": size(units),
            "digit": size([names.digit_json(d.digit) for d in atlas.digits])}


def render(atlas: Atlas, arrays: dict[str, np.ndarray], config: Config, prefix: str = "",
           sections: list[tuple[str, str, str]] = ()) -> dict[str, bytes]:
    """The whole docs tree of one atlas in memory: pages, figures, JSON and static assets, by relative path.

    sections lists (title, home page path, description) of other atlases published in the same site.
    """
    names = Names(width=max(3, len(str(max(atlas.model.sizes[1:-1]) - 1))),
                  image_width=max(5, len(str(atlas.model.n_test - 1))), prefix=prefix,
                  classes="digits" if atlas.model.noun == "digit" else "classes",
                  neuron_layer=len(atlas.model.sizes) - 2)
    files = {}
    plan, scales = figure_files(atlas, arrays, names)
    sizes = {}  # the API page's size column: filled in below, once the JSON and probe files are made
    planned = page_files(atlas, config, names, sizes, list(sections), scales)
    # The PNGs (about half the stage's CPU time) are made in a second process meanwhile: they need nothing the
    # rest makes, and the same bytes come out in either process. The pages are made here: with the neuron pages
    # there too, this process waited 1.0-1.1 s for that one, and 0.2-0.5 s now (render() 2.2-2.5 -> 1.9-2.2 s).
    made_away = background.start(lambda: make(plan))
    data = data_files(atlas, names, plan)
    probing = probe.probe_files(atlas, arrays, names)
    sizes.update({**json_sizes(atlas, names, data), **probe.sizes(probing, names)})
    pages = make(planned)
    figs = made_away()
    for part in (pages, figs, data, probing):
        clash = files.keys() & part.keys()
        if clash:
            raise BuildError(f"two outputs target the same path {sorted(clash)[0]}; rename one of them")
        files.update(part)
    for static in sorted((TEMPLATES / "static").iterdir()):
        files[f"assets/{static.name}"] = static.read_bytes()
    return files
