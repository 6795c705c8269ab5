"""The site served and from the file system (issue 18): links name files, pages sit in their permalink's
folder, and the search index carries each unit's aliases and little else. The browser half is in
test_browser.py (a click and a search over file://, the ranking over http)."""

from __future__ import annotations

import json
import threading

import pytest

from generator.mkdocs_hooks import AtlasRawBlocks, on_env, page_file, permalink, shape_search_index
from generator.names import Names


@pytest.mark.parametrize("prefix", ["", "tiny/"])
def test_a_link_names_the_file_the_hook_writes_and_the_permalink_its_folder(prefix):
    names = Names(width=3, prefix=prefix)
    pages = [names.home(), names.neurons_index(), names.neuron_page(42), names.digits_index(), names.digit_page(3),
             names.mistakes_index(), names.mistakes_page(3), names.api_page(), names.probe_page()]
    for page in pages:
        assert names.href(page) == page_file(page), page
        assert names.url(page) == permalink(names.href(page)), page
    assert names.href(names.neuron_page(42)) == f"{prefix}neurons/042/index.html"
    assert names.url(names.neuron_page(42)) == f"{prefix}neurons/042/"
    assert names.href(names.home()) == f"{prefix}index.html" and names.url(names.home()) == prefix


GRID = ('<div aria-label="Hidden activations" class="atlas-act" role="img" style="grid-template-columns: repeat(2, 1fr)">\n'
        '<a href="../../neurons/000/index.html" title="neuron 000: 0.5" style="background: #440256">000</a>\n'
        '<a href="../../neurons/001/index.html" title="neuron 001: 1.0" style="background: #fde725" class="atlas-top">001</a>\n'
        '</div>\n')
IMAGES = ('<div class="atlas-images">\n<figure><a href="../../digits/0/index.html" title="test image #7, x &amp; y">'
          '<img alt="Test image #7, a 0" height="56" loading="lazy" src="../../images/00007.png" width="56"></a>\n'
          '<figcaption>0 · 1.000</figcaption></figure>\n</div>\n')


@pytest.mark.parametrize("source", [
    f"# Page\n\nText.\n\n{IMAGES}\n\n<span>after</span>\n",  # a neuron page's image grid
    f"{IMAGES}\nText.\n",  # at the very start
    f'<div class="atlas-row" markdown>\n<figure markdown>\n![a](x.png)\n</figure>\n<figure markdown>\n{GRID}\n'
    '<figcaption>its hidden layer</figcaption>\n</figure>\n</div>\n',  # a mistake's grid inside `markdown` blocks
    f'<div class="atlas-figure" id="fig" markdown>\n{GRID}\nMean activation of *each* neuron.\n</div>\n',  # a digit page's
    f"Text.\n\n{GRID}\n\n{GRID}",  # two, and one without the blank line after it (left to the HTML parser)
    f"```html\n{GRID}```\n\n{GRID}\n",  # quoted in fenced code: stays code
    GRID.replace('class="atlas-act"', 'class="atlas-act" markdown') + "\n",  # a `markdown` grid: left alone
    GRID.replace("<a ", "<div>").replace("</a>", "</div>") + "\n",  # nested <div>s: left alone
    GRID.replace("<a ", '<a id="n0" ', 1) + "\n",  # an anchor inside: left for mkdocs' anchor collector too
])
def test_raw_grids_stashed_whole_come_out_as_the_html_parser_makes_them(source):
    import markdown

    extensions = ["admonition", "attr_list", "md_in_html", "tables", "toc", "fenced_code"]
    assert (markdown.markdown(source, extensions=[*extensions, AtlasRawBlocks()])
            == markdown.markdown(source, extensions=extensions))


def test_files_other_than_pages_are_linked_into_the_site_and_mkdocs_leaves_them(tmp_path):
    from types import SimpleNamespace

    from mkdocs.structure.files import File, Files

    docs, site = tmp_path / "docs", tmp_path / "site"
    (docs / "neurons" / "042").mkdir(parents=True)
    (docs / "neurons" / "042" / "weights.png").write_bytes(b"png")
    (docs / "neurons" / "042.json").write_text("{}")
    (docs / "neurons" / "042.md").write_text("# Neuron 42\n")
    files = Files([File(p, str(docs), str(site), use_directory_urls=False)
                   for p in ("neurons/042/weights.png", "neurons/042.json", "neurons/042.md")])
    on_env(None, SimpleNamespace(docs_dir=str(docs)), files)
    files.copy_static_files()
    png, json_ = site / "neurons" / "042" / "weights.png", site / "neurons" / "042.json"
    assert png.samefile(docs / "neurons" / "042" / "weights.png") and png.read_bytes() == b"png"
    assert json_.samefile(docs / "neurons" / "042.json") and json_.read_text() == "{}"
    assert not (site / "neurons" / "042.md").exists()  # a page is converted to HTML by mkdocs, never linked


def test_shape_search_index_keeps_what_each_page_asks_for():
    def page(url, *titles):
        return [{"location": url, "title": titles[0], "text": ""}] + [
            {"location": f"{url}#{t.lower()}", "title": t, "text": f"text of {t}"} for t in titles]

    index = {"config": {"lang": ["en"]}, "docs": page("neurons/042/index.html", "Neuron 042", "What fires it", "Effect")
             + page("mistakes/3/index.html", "Mistakes of 3", "Test image #18", "Test image #247")
             + page("api/index.html", "API", "Fields")}
    rules = {"neurons/042/index.html": {"boost": 3, "aliases": ["neuron 42"], "sections": "first"},
             "mistakes/3/index.html": {"sections": "titles"}}
    shaped = shape_search_index(index, rules)
    assert shaped["config"] == index["config"]
    assert [(d["location"], d["text"], d.get("tags")) for d in shaped["docs"]] == [
        ("neurons/042/index.html", "", ["neuron 42"]),
        ("neurons/042/index.html#neuron 042", "text of Neuron 042", None),
        ("mistakes/3/index.html", "", None),
        ("mistakes/3/index.html#mistakes of 3", "text of Mistakes of 3", None),
        ("mistakes/3/index.html#test image #18", "", None),
        ("mistakes/3/index.html#test image #247", "", None),
        ("api/index.html", "", None), ("api/index.html#api", "text of API", None),
        ("api/index.html#fields", "text of Fields", None)]


def test_the_built_site_links_files_and_ships_a_small_search_index_for_both_ways(tiny_build):
    site = tiny_build / "site"
    home = (site / "index.html").read_text()
    assert 'href="neurons/003/index.html"' in home and 'href="neurons/003/"' not in home
    assert 'src="assets/iframe-worker.js"' in home and "unpkg" not in home  # the worker shim, from the site
    index = (site / "search" / "search_index.json").read_text(encoding="utf-8")
    # The offline plugin's copy for file://, written after the hook shaped the index.
    assert (site / "search" / "search_index.js").read_text(encoding="utf-8") == f"var __index = {index}"
    docs = json.loads(index)["docs"]
    neuron = [d for d in docs if d["location"].startswith("neurons/003/")]
    assert [d["location"] for d in neuron] == ["neurons/003/index.html", "neurons/003/index.html#neuron-003"]
    assert neuron[0]["tags"] == ["neuron 3"]
    assert [d.get("tags") for d in docs if d["location"] == "digits/3/index.html"] == [["digit 3"]]
    assert len(index.encode()) < 150_000  # 130 KB for 16 neurons (mostly the digit pages); 310 KB for 100


def test_the_build_is_split_only_with_the_plugins_it_knows():
    """mkdocs_pages.splittable: mkdocs' own search plugin keeps its index in a form split_writing does not put
    back, and an unknown plugin may keep per-page state: either keeps mkdocs alone."""
    from types import SimpleNamespace

    from generator.mkdocs_pages import splittable

    assert not splittable(SimpleNamespace(plugins={"search": None, "/x/mkdocs_hooks.py": None}))
    assert not splittable(SimpleNamespace(plugins={"material/search": None, "tags": None}))
    known = SimpleNamespace(plugins={"material/search": None, "material/offline": None, "glightbox": None,
                                     "/x/mkdocs_hooks.py": None})
    assert splittable(known) == (threading.active_count() == 1)  # and only from a process's only thread
