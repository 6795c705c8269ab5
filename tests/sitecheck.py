"""Checks of a built site/ tree that need no browser: every internal link resolves, nothing is fetched from elsewhere."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

BASE = "http://site.invalid/"  # pages are resolved as if served here; any other host is external
EXTERNAL_SCHEMES = ("http", "https", "mailto", "data", "javascript", "tel")
# Attributes that name a URL, by tag. <a href> and <link href> are links; the rest load something.
URL_ATTRS = {"a": ("href",), "link": ("href",), "img": ("src",), "script": ("src",), "source": ("src",),
             "iframe": ("src",), "video": ("src", "poster"), "audio": ("src",), "embed": ("src",),
             "object": ("data",), "form": ("action",)}


class Page(HTMLParser):
    """The ids and the URL-valued attributes of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.urls: list[tuple[str, str, str, str]] = []  # (tag, attribute, value, rel)

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if values.get(key):
                self.ids.add(values[key])
        for attr in URL_ATTRS.get(tag, ()):
            if values.get(attr) is not None:
                self.urls.append((tag, attr, values[attr], (values.get("rel") or "").lower()))


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def target_file(site: Path, url: str) -> Path:
    """The file of `site` that a static server sends for `url` (an address under BASE)."""
    rel = unquote(urlsplit(url).path)[len(urlsplit(BASE).path):]
    path = site / rel
    if rel == "" or rel.endswith("/") or path.is_dir():
        path = path / "index.html"
    return path


def broken_links(site: Path) -> list[str]:
    """Every href/src in the site's HTML that points at a missing file or a missing #fragment, one line each.

    External URLs (another scheme or host) are not followed here; see `external_loads`.
    """
    pages = {path: parse(path) for path in sorted(site.rglob("*.html"))}
    problems = []
    for path, page in pages.items():
        here = BASE + path.relative_to(site).as_posix()
        for tag, attr, value, _ in page.urls:
            if not value.strip():
                problems.append(f"{path.relative_to(site)}: <{tag} {attr}> is empty")
                continue
            url = urljoin(here, value.strip())
            parts = urlsplit(url)
            if parts.scheme in EXTERNAL_SCHEMES and not url.startswith(BASE):
                continue
            target = target_file(site, url)
            if not target.is_file():
                problems.append(f"{path.relative_to(site)}: <{tag} {attr}={value!r}> -> missing "
                                f"{target.relative_to(site) if target.is_relative_to(site) else target}")
                continue
            # A fragment like test=12&neuron=3 is state a page's script reads (the probe), not an element id.
            if parts.fragment and target.suffix == ".html" and "=" not in parts.fragment:
                ids = pages[target].ids if target in pages else parse(target).ids
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{path.relative_to(site)}: <{tag} {attr}={value!r}> -> no "
                                    f"id {parts.fragment!r} in {target.relative_to(site)}")
    return problems


NOT_LOADED = {"canonical", "alternate", "author", "license", "next", "prev", "search"}  # <link rel> that fetch nothing


def external_loads(site: Path) -> list[str]:
    """Resources the site's HTML and CSS would fetch from another host (links to read elsewhere are fine)."""
    found = []
    for path in sorted(site.rglob("*.html")):
        for tag, attr, value, rel in parse(path).urls:
            remote = urlsplit(value.strip()).scheme in ("http", "https") or value.strip().startswith("//")
            if remote and tag != "a" and not (tag == "link" and set(rel.split()) <= NOT_LOADED and rel):
                found.append(f"{path.relative_to(site)}: <{tag} {attr}={value!r}>")
    for path in sorted(site.rglob("*.css")):
        text = path.read_text(encoding="utf-8", errors="replace").replace(" ", "")
        for marker in ("url(http", 'url("http', "url('http", "url(//", 'url("//', '@import"http', "@import'http"):
            if marker in text:
                found.append(f"{path.relative_to(site)}: {marker}…")
    return found
