"""How the site writes numbers and config text: one format for each kind of number, shared by every page."""

from __future__ import annotations

import html
import re


def signed(x: float, digits: int = 3) -> str:
    """+0.123 / −0.123 (a true minus sign), the site's one format for signed numbers."""
    return f"{x:+.{digits}f}".replace("-", "−")


def fixed(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def percent(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%"


def thousands(n: int) -> str:
    return f"{n:,}"


def points(share: float, digits: int = 2) -> str:
    """A change of a share as signed percentage points: −0.81 pts."""
    return f"{signed(100 * share, digits)} pts"


def counted(n: int, word: str) -> str:
    """'1 neuron', '16 neurons', '1,135 images': a count with its noun in the right number."""
    return f"{n:,} {word if n == 1 else plural(word)}"


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


def plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "sh", "ch", "x")) else "s")


def short(x: float) -> str:
    """A threshold or range end in at most 4 significant digits: 0, 1, 0.99, 0.9995, 12.35."""
    return f"{x:.4g}"


def activation_words(network: dict) -> dict[str, str]:
    """How the pages name the hidden layer's activation and its scale (ModelInfo.network): its name, the
    range the histograms and activation colours span, the saturation thresholds and the tied values."""
    lo, hi = network["histogram_range"]
    above, below = network["saturation"]
    output = "" if network["output"] == "sigmoid" else f", {network['output']} outputs"
    return {"hidden": network["activation"], "output": network["output"], "lo": short(lo), "hi": short(hi),
            "above": short(above), "below": short(below), "saturated": short(lo + 0.9995 * (hi - lo)),
            "silenced": short(lo + 0.0005 * (hi - lo)), "network": f"{network['activation']} network{output}"}
