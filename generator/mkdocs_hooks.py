"""MkDocs hooks (listed in the build's generated mkdocs.yml): where pages are written, the search index's
shape, the site's title as text, each page's footer naming the run of the atlas the page belongs to, and three
shortcuts that keep the build's output as it was: every other page converted and written by a second process
(mkdocs_pages), images and data hard-linked, not copied, and the raw HTML grids stashed whole before
Python-Markdown's HTML parser (AtlasRawBlocks).

Pages: every page `x/y.md` is written as `x/y/index.html` and linked by that file (names.Names.href), so a
link works served and from the file system alike, and the folder `x/y/` stays the page's permalink
(names.Names.url): mkdocs' directory URLs without their links that end in '/' (use_directory_urls is false).

Search: a page's front matter may say, under `search:`, what else it is called (`aliases`, put in its
index entry's tags, which Material's search weighs above titles) and how much of it to index
(`sections: first` keeps its opening only, `sections: titles` keeps the headings of the rest too). Neuron
pages repeat the same sections with different numbers; indexed whole they made the index 1.2 MB, fetched
on every first visit.

Images and data: the files build/docs holds besides the pages (thousands of PNGs, the JSON) are hard-linked
into site_dir instead of copied (where the file system allows it), just before mkdocs copies static files;
mkdocs then finds each one already in place (the same file) and leaves it. Copying them cost 1-5 s of kernel
time on these 2-core machines (creating a file costs them 0.3-0.9 ms), linking 0.1-0.3 s. Safe because
nothing writes into an existing file: render replaces files (os.replace, a new inode) and no build step
writes into site_dir's copies.

mkdocs-material places `config.site_name` into pages unescaped in some spots (<title>, the header) and
escaped in others (title="..."). Marking the escaped title as safe Markup makes both print it escaped
exactly once, so a title like `<script>alert(1)</script>` shows as those characters.
"""

import json
import os
import posixpath
import re
import sys

from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor
from markupsafe import escape
from mkdocs.plugins import event_priority

if __package__ != "generator":  # loaded by mkdocs from its path: the package is found beside this file
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from generator import mkdocs_pages  # noqa: E402

_site: dict = {}  # the build's Files (on_nav), whose pages' front matter on_post_build reads
# Every other page read, converted and written by a second process (mkdocs_pages): in `mkdocs build`, not in
# serve's rebuilds, and not with ATLAS_SITE_JOBS=1. _pending holds the function that collects the reading.
_parallel = {"on": False}
_pending: list = []


def on_startup(command, dirty):
    _parallel["on"] = command == "build" and not dirty and os.environ.get("ATLAS_SITE_JOBS", "2") != "1"


def on_config(config):
    config.site_name = escape(str(config.site_name))
    config.markdown_extensions.append(AtlasRawBlocks())
    return config


# An activation grid or an image grid (templates/_macros.md.j2: activation_grid, image_grid) as render writes it:
# its <div> line, one line per cell, </div>, then a blank line. No `markdown` attribute, no nested <div>.
_RAW_BLOCK = re.compile(r'^<div (?![^>\n]*\bmarkdown\b)[^>\n]*\bclass="atlas-(?:act|images)"[^>\n]*>\n'
                        r'(?:(?!</?div\b)[^\n]*\n)*</div>\n(?=\n)', re.M)


class RawBlockPreprocessor(Preprocessor):
    """Stash the atlas's grids of raw HTML (_RAW_BLOCK) whole, as Python-Markdown's HTML block parser
    would, without that parser reading them tag by tag."""

    def run(self, lines: list[str]) -> list[str]:
        text = "\n".join(lines)
        if "class=\"atlas-" not in text:
            return lines

        def stash(m: re.Match) -> str:
            # What the parser leaves in place of such a block (a blank line, the placeholder, blank lines), and
            # what it stashes: the block and the line break that ends it at the top level, where a blank line
            # precedes it; inside a `markdown` block (right after its opening line) the element alone.
            if ' id="' in m.group(0) or ' name="' in m.group(0):
                return m.group(0)  # an anchor: left for mkdocs to see (the grids have none)
            html = m.group(0) if text[max(m.start() - 2, 0):m.start()] in ("\n\n", "") else m.group(0)[:-1]
            return f"\n{self.md.htmlStash.store(html)}\n\n\n"

        return _RAW_BLOCK.sub(stash, text).split("\n")


class AtlasRawBlocks(Extension):
    """Python-Markdown's HTML block parser (html.parser, tag by tag) was the largest single cost of the site
    build: a mistakes page holds a 10x10 grid of links per test image, 2 MB of them over ten pages, and each
    neuron page two grids of 16 figures. The grids hold no Markdown, so they are stashed whole before that
    parser runs (after fenced code, which may quote them); the HTML comes out byte for byte as before. mkdocs'
    own pass over the page's raw HTML, which collects anchor ids for link checks, skips them too; a grid
    that holds an id or a name is left to both parsers."""

    def extendMarkdown(self, md):
        # Before html_block (20) and mkdocs' anchor collector (21), which would read them too, after fenced code (25).
        md.preprocessors.register(RawBlockPreprocessor(md), "atlas_raw_blocks", 22)


def page_file(src_uri: str) -> str:
    """Where the page written from `src_uri` goes: x/y.md -> x/y/index.html, x/index.md -> x/index.html."""
    folder, name = posixpath.split(src_uri)
    stem = posixpath.splitext(name)[0]
    return posixpath.join(folder, "index.html" if stem in ("index", "README") else f"{stem}/index.html")


def on_files(files, config):
    for file in files.documentation_pages():
        file.dest_uri = page_file(file.src_uri)
        for derived in ("url", "abs_dest_path"):  # cached from the old dest_uri if read already
            file.__dict__.pop(derived, None)
    return files


@event_priority(-100)  # the last on_nav: mkdocs' loop over the pages comes right after it
def on_nav(nav, config, files):
    _site["files"] = files
    _pending.clear()
    _parallel["on"] = _parallel["on"] and mkdocs_pages.splittable(config)
    if _parallel["on"]:
        finish = mkdocs_pages.split_reading(config, files)
        if finish is not None:
            _pending.append(finish)
    return nav


@event_priority(100)  # the first on_env, right after mkdocs' loop: before anything reads a page
def on_env(env, config, files):
    """Collect the pages converted in the second process (on_nav) and split the writing the same way. Then
    hard-link the documentation's files other than pages into site_dir (see the module's docstring); any that
    cannot be linked (another file system, a file system without hard links) mkdocs copies as before."""
    while _pending:
        _pending.pop()()
    if _parallel["on"]:
        mkdocs_pages.split_writing(config, files)
    docs = os.path.join(os.path.abspath(config.docs_dir), "")
    made = set()
    for file in files:
        src = file.abs_src_path
        if file.generated_by or not src or not src.startswith(docs) or file.is_documentation_page():
            continue
        if not file.inclusion.is_included():
            continue
        dest = file.abs_dest_path
        folder = os.path.dirname(dest)
        try:
            if folder not in made:
                os.makedirs(folder, exist_ok=True)
                made.add(folder)
            os.link(src, dest)
        except OSError:
            return env  # mkdocs copies this one and the rest
    return env


def permalink(url: str) -> str:
    """A page's address in the form people paste: neurons/042/index.html -> neurons/042/."""
    return url[:-len("index.html")] if url == "index.html" or url.endswith("/index.html") else url


def on_pre_page(page, config, files):
    if page.canonical_url:  # the sitemap's and <link rel="canonical">'s address: the permalink
        page.canonical_url = permalink(page.canonical_url)
    return page


def page_run(atlas: dict | None, url: str) -> dict | None:
    """The run facts for a page at `url` (extra.atlas of the generated mkdocs.yml): a section's when the
    url starts with its prefix (tiny/), the main atlas's otherwise; None without extra.atlas."""
    run = atlas
    for section in (atlas or {}).get("sections", []):
        if url.startswith(section["prefix"]):
            run = section
    return run


def on_pre_build(config):
    _site.clear()


_HEADING = re.compile(r"<h[2-6][^>]*>.*?</h[2-6]>", re.S)


def indexed_html(content: str, sections: str | None) -> str:
    """The part of a page's HTML that its `sections` rule lets into the index: all of it (None), its opening
    up to the first <h2> ('first'), or that opening and the later headings alone ('titles')."""
    cut = content.find("<h2")
    if sections not in ("first", "titles") or cut < 0:
        return content
    return content[:cut] + ("".join(_HEADING.findall(content, cut)) if sections == "titles" else "")


@event_priority(100)  # before Material's search plugin indexes the page (priority 0)
def on_page_context(context, page, config, nav):
    context["atlas_run"] = page_run(config.extra.get("atlas"), page.url)
    rule = page.meta.get("search") or {}
    search = config.plugins.get("material/search")
    if search is not None and rule.get("sections") and not rule.get("exclude"):
        # Index only what the rule keeps: Material's parser would otherwise read every neuron and mistake
        # page whole (a quarter of the build) for entries shape_search_index drops.
        content = page.content
        page.content = indexed_html(content, rule["sections"])
        try:
            search.search_index.add_entry_from_context(page)
        finally:
            page.content = content
        page.meta["search"] = {**rule, "exclude": True}  # indexed: the plugin's own pass skips it
    return context


def on_template_context(context, template_name, config):  # pages without a Markdown source (404.html)
    context["atlas_run"] = config.extra.get("atlas")
    return context


def shape_search_index(index: dict, rules: dict[str, dict]) -> dict:
    """The search index with each page's `search:` rules applied (see the module's docstring).

    A page's entries come in order: the page itself (its location has no '#'), then its sections, the first
    being its title's. Aliases go into the page entry's tags; `sections` trims the sections after the first.
    """
    docs, seen = [], {}
    for entry in index["docs"]:
        url, hash_, _ = entry["location"].partition("#")
        rule = rules.get(url, {})
        seen[url] = seen.get(url, -1) + 1  # 0: the page entry, 1: its first section, ...
        if not hash_ and rule.get("aliases"):
            entry = {**entry, "tags": [str(a) for a in rule["aliases"]]}
        if seen[url] >= 2 and rule.get("sections") == "first":
            continue
        if seen[url] >= 2 and rule.get("sections") == "titles":
            entry = {**entry, "text": ""}
        docs.append(entry)
    return {**index, "docs": docs}


def on_build_error(error):
    mkdocs_pages.restore()


@event_priority(-50)  # after the search plugin writes the index (0), before the offline plugin copies it (-100)
def on_post_build(config):
    mkdocs_pages.restore()
    path = os.path.join(config.site_dir, "search", "search_index.json")
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as f:
        index = json.load(f)
    rules = {file.page.url: file.page.meta.get("search") or {}  # each page's front matter (see on_page_context)
             for file in _site["files"].documentation_pages() if file.page is not None}
    shaped = shape_search_index(index, rules)
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(shaped, ensure_ascii=False, separators=(",", ":")))
