"""Compile, ahead of use, what the render and site stages would otherwise compile the first time they run.

    nice -n 19 .venv/bin/python -m generator.warm

Python compiles a module to bytecode the first time it is imported, and a fresh .venv holds none (the
first render paid 0.7 s for matplotlib's, PIL's and Jinja's modules, the first site build for mkdocs');
Jinja compiles the page templates (0.8 s, kept in templates/__pycache__ by render.TemplateCache). `make site`
runs this beside the training, whose first seconds leave one core idle while numba compiles on the other,
at the lowest priority so that it takes only that core. A module missing from MODULES only costs its own
compile where it is first imported; nothing here changes any output.
"""

from __future__ import annotations

import importlib

# What the render stage and mkdocs (the site stage's subprocess: its command, build, plugins and Markdown
# extensions, as build/mkdocs.yml lists them) import; `python -X importtime` shows the rest is small.
MODULES = ("generator.render", "generator.probe", "generator.site", "mkdocs.__main__", "mkdocs.commands.build",
           "material.plugins.search.plugin", "material.plugins.offline.plugin", "mkdocs_glightbox.plugin",
           "pymdownx.tabbed", "markdown.extensions.admonition", "markdown.extensions.attr_list",
           "markdown.extensions.md_in_html", "markdown.extensions.tables", "markdown.extensions.toc")


def main() -> None:
    for name in MODULES:
        importlib.import_module(name)
    from .render import compile_templates
    compile_templates()


if __name__ == "__main__":
    main()
