"""Pages and figures from atlas.json into build/docs: Jinja templates place, Python formats; no statistics here."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from . import figures
from .atlas import Atlas
from .config import REPO, Config
from .errors import BuildError

TEMPLATES = REPO / "templates"


def signed(x: float, digits: int = 3) -> str:
    """+0.123 / −0.123 (a true minus sign), the site's one format for signed numbers."""
    return f"{x:+.{digits}f}".replace("-", "−")


def fixed(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def percent(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%"


def thousands(n: int) -> str:
    return f"{n:,}"


# The characters Python-Markdown lets a backslash escape, with the tables extension's '|' (mkdocs.yml
# enables it): each can start emphasis, code, a link, an attribute list, a heading or a table cell.
# '<' and '>' are not among them here: they become HTML entities instead.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def md_text(value) -> str:
    """Text from a config (a title, a class name) as Markdown that shows exactly those characters.

    Markdown syntax is backslash-escaped, HTML's & < > become entities, and runs of whitespace and
    control characters (newlines; the STX/ETX Python-Markdown uses internally) become one space, so the
    text stays on its line. Inline only: for headings, table cells and link labels; not for attribute
    values or YAML front matter.
    """
    text = " ".join(_CONTROL.sub(" ", str(value)).split())
    return html.escape(_MARKDOWN_SPECIAL.sub(r"\\\1", text), quote=False)


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    env.filters.update(signed=signed, fixed=fixed, percent=percent, thousands=thousands, md_text=md_text)
    return env


@dataclass(frozen=True)
class Names:
    """Page and figure paths, relative to the docs root; the URL scheme lives here and only here."""
    width: int

    def nid(self, j: int) -> str:
        return f"{j:0{self.width}d}"

    def neuron_page(self, j: int) -> str:
        return f"neurons/{self.nid(j)}.md"

    def neuron_fig(self, j: int, name: str) -> str:
        return f"neurons/{self.nid(j)}/{name}.png"

    @staticmethod
    def digit_page(d: int) -> str:
        return f"digits/{d}.md"

    @staticmethod
    def digit_fig(d: int, name: str) -> str:
        return f"digits/{d}/{name}.png"


def figure_files(atlas: Atlas, names: Names) -> dict[str, bytes]:
    """Every PNG of the site, by path."""
    files = {
        "assets/colourbar-diverging.png": figures.colour_bar(figures.DIVERGING),
        "assets/colourbar-ink.png": figures.colour_bar(figures.INK),
        "assets/colourbar-activation.png": figures.colour_bar(figures.ACTIVATION),
    }
    means = np.array([n.mean_activation for n in atlas.neurons])  # (H, K)
    for n in atlas.neurons:
        w = np.array(n.weights)
        files[names.neuron_fig(n.id, "weights")] = figures.diverging(w, n.weight_max_abs)
        x = np.array(atlas.digits[n.fires_most_for].example.image)
        product = w * x  # the question's element-wise view: input times weights, pixel by pixel
        files[names.neuron_fig(n.id, "product")] = figures.diverging(product, float(np.abs(product).max()))
    for d in atlas.digits:
        files[names.digit_fig(d.digit, "mean")] = figures.ink(np.array(d.mean_image))
        files[names.digit_fig(d.digit, "hidden-mean")] = figures.activation_grid(means[:, d.digit])
        files[names.digit_fig(d.digit, "example")] = figures.ink(np.array(d.example.image))
        files[names.digit_fig(d.digit, "example-hidden")] = figures.activation_grid(d.example.hidden_activation)
    return files


def page_files(atlas: Atlas, config: Config, names: Names) -> dict[str, bytes]:
    """Every Markdown page of the site, by path."""
    env = environment()
    grid_rows, grid_cols = figures.grid_shape(len(atlas.neurons))
    common = dict(atlas=atlas, model=atlas.model, train=config.train, title=config.site.title,
                  names=names, grid_rows=grid_rows, grid_cols=grid_cols)

    def page(template: str, **context) -> bytes:
        return env.get_template(template).render(**common, **context).encode()

    files = {
        "index.md": page("index.md.j2", root=""),
        "neurons/index.md": page("neurons.md.j2", root="../"),
        "digits/index.md": page("digits.md.j2", root="../"),
    }
    for n in atlas.neurons:
        files[names.neuron_page(n.id)] = page("neuron.md.j2", root="../", n=n,
                                              typical=atlas.digits[n.fires_most_for])
    for d in atlas.digits:
        files[names.digit_page(d.digit)] = page("digit.md.j2", root="../", d=d)
    return files


def render(atlas: Atlas, config: Config) -> dict[str, bytes]:
    """The whole docs tree in memory: pages, figures and static assets, by relative path."""
    names = Names(width=max(3, len(str(len(atlas.neurons) - 1))))
    files = {}
    for part in (page_files(atlas, config, names), figure_files(atlas, names)):
        clash = files.keys() & part.keys()
        if clash:
            raise BuildError(f"two outputs target the same path {sorted(clash)[0]}; rename one of them")
        files.update(part)
    for static in sorted((TEMPLATES / "static").iterdir()):
        files[f"assets/{static.name}"] = static.read_bytes()
    return files
