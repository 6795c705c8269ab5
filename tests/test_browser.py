"""The site in a real browser: Debian's Chromium driven by playwright, the site served on 127.0.0.1.

Every page loads with no HTTP error, no console error, no broken image and no request to another host;
search finds a neuron by its number; the lightbox zooms a figure; screenshots go to test-artifacts/.
Set ATLAS_SITE=path/to/site to run these against another build (the full site) instead of the tiny one.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from generator.config import REPO

CHROMIUM = os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        # No name resolves but 127.0.0.1's: a request to another host fails at once, and is recorded below.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
# Wait for every image, lazy ones included, to load or fail; then report those that show nothing.
LOAD_IMAGES = """async () => {
  const images = [...document.images];
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done); img.addEventListener("error", done);
  })));
  return images.filter(img => img.naturalWidth === 0).map(img => img.getAttribute("src"));
}"""


def browser_missing(reason: str):
    """Locally, skip loudly; under CI (CI=true) a browser that cannot run is a failure, not a skip."""
    message = (f"BROWSER TEST NOT RUN: {reason}. Install Debian's Chromium (apt-get install chromium; .ci/run does) "
               f"or point ATLAS_CHROMIUM at a Chromium binary.")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def site(request) -> Path:
    if os.environ.get("ATLAS_SITE"):
        return Path(os.environ["ATLAS_SITE"]).resolve()
    return request.getfixturevalue("tiny_build") / "site"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a browser that leaves a page cancels its pending requests: not the site's fault


@pytest.fixture(scope="module")
def served(site):
    """The site over HTTP on 127.0.0.1, on a free port, for this module; yields its base URL."""
    server = Server(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium with a fresh profile that can reach nothing but 127.0.0.1."""
    if not Path(CHROMIUM).is_file():
        browser_missing(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        browser_missing(f"playwright cannot be imported ({e})")
    with sync_playwright() as p:
        try:
            context = p.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
                args=ARGS, viewport={"width": 1280, "height": 900}, service_workers="block")
        except Exception as e:  # a binary that does not start is the same as none
            browser_missing(f"Chromium at {CHROMIUM} did not start ({type(e).__name__}: {str(e).splitlines()[0]})")
        context.set_default_timeout(30_000)
        yield Recorder(context)
        context.close()


class Recorder:
    """The browser context; every request of its pages to another host is recorded in `elsewhere` (the
    resolver rules make it fail), every HTTP error, failed request, console error and uncaught exception
    in `problems`."""

    def __init__(self, context):
        self.context = context
        self.problems: list[str] = []
        self.elsewhere: list[str] = []

    def page(self):
        page = self.context.new_page()
        page.on("request", lambda r: urlsplit(r.url).hostname not in ("127.0.0.1", None) and
                self.elsewhere.append(r.url))
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console error on {page.url}: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"uncaught exception on {page.url}: {e}"))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status} for {r.url}"))
        # A request cancelled by leaving the page (ERR_ABORTED) is no fault of the site; errors show as HTTP codes.
        page.on("requestfailed", lambda r: urlsplit(r.url).hostname == "127.0.0.1" and r.failure != "net::ERR_ABORTED"
                and self.problems.append(f"request failed: {r.url} ({r.failure})"))
        return page


def pages_of(site: Path) -> list[str]:
    """Every page of the site as a URL path relative to the root ('' for the home page)."""
    paths = []
    for index in sorted(site.rglob("index.html")):
        rel = index.parent.relative_to(site).as_posix()
        paths.append("" if rel == "." else rel + "/")
    return paths


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def run_ids(site: Path) -> dict[str, str]:
    """The run id of each atlas in the site, by the URL prefix of its pages ('' or 'tiny/')."""
    ids = {}
    for path in site.rglob("atlas.json"):
        rel = path.parent.relative_to(site).as_posix()
        ids["" if rel == "." else rel + "/"] = json.loads(path.read_bytes())["model"]["run_id"]
    return ids


def test_every_page_loads_cleanly(browser, served, site):
    paths = pages_of(site)
    assert "" in paths and "neurons/000/" in paths and "digits/0/" in paths and "api/" in paths
    ids = run_ids(site)
    page = browser.page()
    for path in paths:
        response = page.goto(served + path, wait_until="load")
        assert response is not None and response.status == 200, path
        broken = page.evaluate(LOAD_IMAGES)
        assert broken == [], f"{path}: images that show nothing: {broken}"
        footer = page.locator(".md-copyright .atlas-run").inner_text()
        run_id = ids[max((p for p in ids if path.startswith(p)), key=len)]  # the page's own atlas's run
        assert footer.startswith(f"Run {run_id} ·") and "seed" in footer and "test accuracy" in footer, path
    page.close()
    assert browser.problems == []
    assert browser.elsewhere == []


def test_screenshots_of_the_home_page_a_neuron_and_a_digit(browser, served):
    page = browser.page()
    for path, name in [("", "home"), ("neurons/003/", "neuron-003"), ("digits/3/", "digit-3")]:
        page.goto(served + path, wait_until="load")
        page.evaluate(LOAD_IMAGES)
        screenshot(page, name)
    page.close()
    dark = browser.context.new_page()
    dark.add_init_script("localStorage.clear()")  # forget the palette the pages above stored
    dark.emulate_media(color_scheme="dark")  # the second palette follows the system's
    dark.goto(served + "neurons/003/", wait_until="load")
    assert dark.locator("body").get_attribute("data-md-color-scheme") == "slate"
    dark.evaluate(LOAD_IMAGES)
    screenshot(dark, "neuron-003-dark")
    dark.close()
    for name in ("home", "neuron-003", "digit-3", "neuron-003-dark"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000
    assert browser.problems == [] and browser.elsewhere == []


def test_search_finds_a_neuron_by_its_number(browser, served):
    page = browser.page()
    page.goto(served, wait_until="load")
    page.locator(".md-search__input").click()
    # The index loads in a web worker; a query typed before it is ready is not rerun, as a person would retype.
    page.locator(".md-search-result__meta").filter(has_text="Type to start searching").wait_for()
    page.locator(".md-search__input").press_sequentially("007", delay=50)  # typed, as a person would
    hit = page.locator('.md-search-result__link[href$="neurons/007/index.html"]').first
    hit.wait_for(state="visible")
    hit.click()
    page.wait_for_url("**/neurons/007/index.html")
    assert page.locator("h1").first.inner_text().startswith("Neuron 007")
    page.close()
    assert browser.problems == [] and browser.elsewhere == []


def test_citation_permalink_is_absolute_and_figures_zoom_but_linked_thumbnails_navigate(browser, served):
    page = browser.page()
    page.goto(served + "neurons/003/", wait_until="load")
    assert page.locator("a.atlas-permalink").inner_text() == served + "neurons/003/"
    citation = page.locator(".atlas-citation code").inner_text()
    assert citation.startswith("Neuron 003, ") and citation.endswith(", " + served + "neurons/003/")
    page.goto(served + "neurons/003/#fig-pattern", wait_until="load")
    assert page.evaluate("document.querySelector(':target').id") == "fig-pattern"
    # Click the weight map: the lightbox opens it, from this site, with its pixels kept square.
    page.locator("#fig-weights a.glightbox").click()
    slide = page.locator(".glightbox-container .gslide.current.loaded img")
    slide.wait_for(state="visible")
    page.wait_for_timeout(600)  # the fade-in
    assert slide.evaluate("img => img.naturalWidth") > 0
    assert slide.bounding_box()["height"] >= 0.7 * 900  # the 28-pixel map fills the screen
    assert slide.evaluate("img => getComputedStyle(img).imageRendering") == "pixelated"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "lightbox.png"))
    page.keyboard.press("Escape")
    page.locator(".glightbox-container").wait_for(state="detached")
    # A thumbnail inside a link is not lightboxed: it leads to its page.
    page.goto(served, wait_until="load")
    assert page.locator(".atlas-grid a.glightbox").count() == 0
    page.locator('.atlas-grid a[href="neurons/001/index.html"]').first.click()
    page.wait_for_url("**/neurons/001/index.html")
    page.close()
    assert browser.problems == [] and browser.elsewhere == []


def test_json_is_served_beside_the_pages(browser, served):
    """A script on any page (or anywhere) can fetch the atlas's JSON: same origin, JSON content type."""
    page = browser.page()
    page.goto(served + "neurons/003/", wait_until="load")
    for path, key in [("../../atlas.json", "neurons"), ("../003.json", "neuron"), ("../../digits/3.json", "digit")]:
        status, kind, keys = page.evaluate("""async path => {
          const response = await fetch(path);
          return [response.status, response.headers.get("content-type"), Object.keys(await response.json())];
        }""", path)
        assert status == 200 and kind.startswith("application/json") and key in keys, path
    page.close()
    assert browser.problems == [] and browser.elsewhere == []


def example_neuron(site: Path) -> int:
    """The neuron the issue names (042), or the last one of a smaller network (the tiny build's 015)."""
    return min(42, len(json.loads((site / "atlas.json").read_bytes())["neurons"]) - 1)


def open_search(page) -> None:
    page.locator(".md-search__input").click()
    # The index loads in a web worker; a query typed before it is ready is not rerun, as a person would retype.
    page.locator(".md-search-result__meta").filter(has_text="Type to start searching").wait_for()


def first_hit(page, query: str, expected: str) -> list[str]:
    """Type `query` into the open search box; the result pages' links, best first, once the first one ends
    with `expected` (or after 10 s, for the assertion to show what came first instead)."""
    box = page.locator(".md-search__input")
    box.fill("")
    box.press_sequentially(query, delay=30)  # typed, as a person would
    links = ".md-search-result__item > .md-search-result__link"
    try:
        page.wait_for_function("([links, end]) => { const a = document.querySelector(links);"
                               " return a && a.getAttribute('href').endsWith(end); }", arg=[links, expected],
                               timeout=10_000)
    except Exception:
        pass
    return page.eval_on_selector_all(links, "as => as.map(a => a.getAttribute('href'))")


def test_search_puts_a_units_own_page_first(browser, served, site):
    """'neuron 42', '42', 'neuron 042' and 'digit 3' each list that unit's page first, over http."""
    j = example_neuron(site)
    page = browser.page()
    page.goto(served, wait_until="load")
    open_search(page)
    for query, target in [(f"neuron {j}", f"neurons/{j:03d}/index.html"), (str(j), f"neurons/{j:03d}/index.html"),
                          (f"neuron {j:03d}", f"neurons/{j:03d}/index.html"), ("digit 3", "digits/3/index.html")]:
        hits = first_hit(page, query, target)
        assert hits and hits[0].endswith(target), (query, hits[:5])
    page.close()
    assert browser.problems == [] and browser.elsewhere == []


def test_the_site_works_opened_from_the_file_system(browser, site):
    """Double-clicking site/index.html: a click leads to a neuron's page (not a folder listing), its figures
    show, and search (the offline plugin's index script, the worker shim) finds the neuron by its number."""
    j = example_neuron(site)
    nid = f"{j:03d}"
    page = browser.page()
    page.goto((site / "index.html").as_uri(), wait_until="load")
    page.locator(f'.atlas-grid a[href="neurons/{nid}/index.html"]').first.click()
    page.wait_for_url(f"**/neurons/{nid}/index.html")
    assert page.locator("h1").first.inner_text().startswith(f"Neuron {nid}")
    assert page.evaluate(LOAD_IMAGES) == []
    page.locator(".md-nav__link", has_text="Neurons").first.click()  # the sidebar, a relative link to a file
    page.wait_for_url("**/neurons/index.html")
    open_search(page)
    hits = first_hit(page, nid, f"neurons/{nid}/index.html")
    assert hits and hits[0] == (site / "neurons" / nid / "index.html").as_uri(), hits[:5]
    page.locator(".md-search-result__link").first.click()
    page.wait_for_url(f"**/neurons/{nid}/index.html")
    # The probe cannot read its files from the file system; it says how to serve the site instead of failing.
    page.goto((site / "probe" / "index.html").as_uri(), wait_until="load")
    assert "make serve" in page.locator("[data-probe-message]").inner_text()
    page.close()
    assert browser.problems == [] and browser.elsewhere == []


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SIDEWAYS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
WITHOUT_SIDEWAYS = "e => e.scrollWidth <= e.clientWidth"  # Material wraps each table in a scrolling div


def test_the_neurons_overview_reads_sorts_and_filters_on_a_desktop_and_a_phone(browser, served, site):
    neurons = json.loads((site / "atlas.json").read_bytes())["neurons"]
    page = browser.page()
    for size, name in ((DESKTOP, "overview-1280"), (PHONE, "overview-390")):
        page.set_viewport_size(size)
        page.goto(served + "neurons/", wait_until="load")
        assert page.evaluate(SIDEWAYS) == 0, size
        first = page.locator(".atlas-overview tbody tr").first
        summary = first.locator("td").nth(3).bounding_box()
        # Wide enough to read: a quarter of the table on a desktop, the card's whole width on a phone.
        assert summary["width"] >= (250 if size is DESKTOP else 300), (size, summary)
        assert first.bounding_box()["height"] < (200 if size is DESKTOP else 420), size
        if size is DESKTOP:  # the whole table fits its column: nothing to scroll sideways inside it either
            assert page.locator(".atlas-overview .md-typeset__scrollwrap").evaluate(WITHOUT_SIDEWAYS)
        headers = page.locator(".atlas-overview thead th")
        assert headers.count() == 11 and page.locator(".atlas-overview thead th button.atlas-sort").count() == 11
        texts = [t.strip() for t in headers.all_inner_texts()]
        assert texts[:5] == ["neuron", "weights", "shared scale", "summary", "fires most for"] and texts[-1] == "flag"
        weights = headers.nth(1)
        weights.locator("button").click()  # a column of numbers: largest first
        assert weights.get_attribute("aria-sort") == "descending"
        shown = [float(t.split("±")[1]) for t in page.locator(".atlas-overview tbody td:nth-child(2)").all_inner_texts()]
        assert shown == sorted((round(n["weight_max_abs"], 3) for n in neurons), reverse=True)
        weights.locator("button").click()
        assert weights.get_attribute("aria-sort") == "ascending" and headers.nth(0).get_attribute("aria-sort") == "none"
        shown = [float(t.split("±")[1]) for t in page.locator(".atlas-overview tbody td:nth-child(2)").all_inner_texts()]
        assert shown == sorted(round(n["weight_max_abs"], 3) for n in neurons)
        # The filter by digit: only the neurons that fire most for 3, counted.
        page.locator("select[data-atlas-filter]").select_option("3")
        visible = page.locator(".atlas-overview tbody tr:visible")
        expected = sorted(n["id"] for n in neurons if n["fires_most_for"] == 3)
        assert sorted(int(t.split()[1]) for t in visible.locator("td:first-child").all_inner_texts()) == expected
        assert page.locator("[data-atlas-filter-count]").inner_text() == f"{len(expected)} of {len(neurons)}"
        page.locator("select[data-atlas-filter]").select_option("")
        assert page.locator(".atlas-overview tbody tr:visible").count() == len(neurons)
        screenshot(page, name)
    page.close()
    assert browser.problems == [] and browser.elsewhere == []


def test_no_page_scrolls_sideways_on_a_phone(browser, served, site):
    digits = json.loads((site / "atlas.json").read_bytes())["digits"]
    most = max(digits, key=lambda d: len(d["mistakes"]))["digit"]
    j = example_neuron(site)
    page = browser.page()
    page.set_viewport_size(PHONE)
    for path in ["", "neurons/", f"neurons/{j:03d}/", "digits/", "digits/3/", "mistakes/", f"mistakes/{most}/",
                 "probe/", "api/"]:
        page.goto(served + path, wait_until="load")
        page.evaluate(LOAD_IMAGES)
        assert page.evaluate(SIDEWAYS) == 0, path
    # The confusion matrix's table fits its column, also on a phone.
    page.goto(served + "digits/", wait_until="load")
    assert page.locator(".atlas-confusion .md-typeset__scrollwrap").evaluate(WITHOUT_SIDEWAYS)
    page.close()
    assert browser.problems == [] and browser.elsewhere == []
