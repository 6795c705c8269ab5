"""The probe (issue 14): its drawing preparation against generator/probe.py's NumPy reference, its data files
against model.npz and the IDX files, and the page in a real browser against NumPy, number by number.

The browser tests use test_browser.py's Chromium and server: the tiny 16-neuron atlas by default, the full
site with ATLAS_SITE=path/to/site (its build directory beside it, or ATLAS_BUILD=path/to/build), where the
tiny/ section's probe is checked too and a drawn 1 and 0 must read as 1 and 0 on the full network.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generator import attribution, data, figures, probe
from generator.analysis import forward64
from generator.train import load_model

from .conftest import MNIST
from .test_browser import ARTIFACTS, browser, served, site  # noqa: F401  (fixtures)

BUDGET = 2_500_000  # bytes the first load of probe/ may transfer


def top_positive(row: np.ndarray, k: int) -> list[int]:
    """The k largest positive entries' indices, largest first (ties: lower index)."""
    return [int(i) for i in np.argsort(-row, kind="stable") if row[i] > 0][:k]


def top_negative(row: np.ndarray, k: int) -> list[int]:
    """The k most negative entries' indices, most negative first."""
    return [int(i) for i in np.argsort(row, kind="stable") if row[i] < 0][:k]


# ---- drawings: synthetic strokes in [0, 1] of the drawing area, y down --------------------------------------

def stroke_one(n=30):
    return [[(0.52 + 0.04 * t, 0.15 + 0.7 * t) for t in np.linspace(1, 0, n)]]


def stroke_ring(n=60):
    a = np.linspace(0, 2 * np.pi, n)
    return [[(0.5 + 0.22 * np.sin(t), 0.5 - 0.32 * np.cos(t)) for t in a]]


DRAWINGS = {
    "one": stroke_one(), "ring": stroke_ring(),
    "seven": [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]],
    "plus": [[(0.2, 0.5), (0.8, 0.5)], [(0.5, 0.2), (0.5, 0.8)]],
    "dot": [[(0.3, 0.6)]],
    "small corner four": [[(0.05, 0.05), (0.05, 0.12), (0.12, 0.12)], [(0.1, 0.04), (0.1, 0.16)]],
    "empty": [],
}


def ink_box(image: np.ndarray, level=0.0) -> tuple[int, int]:
    """Rows and columns spanned by pixels above `level`."""
    rows, cols = np.nonzero(image > level)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


@pytest.mark.parametrize("name", [n for n in DRAWINGS if n != "empty"])
def test_prepare_fits_the_ink_in_20_pixels_and_centres_its_mass(name):
    image = probe.prepare(DRAWINGS[name])
    assert image.shape == (28, 28) and image.min() >= 0 and image.max() == 1
    rows, cols = np.indices(image.shape) + 0.5
    cy, cx = (image * rows).sum() / image.sum(), (image * cols).sum() / image.sum()
    assert abs(cx - 14) < 0.25 and abs(cy - 14) < 0.25, (cx, cy)
    if name != "dot":  # the long side's ink fills the 20-pixel box; the blur adds a faint pixel each side
        assert max(ink_box(image, 0.5)) == 20 and max(ink_box(image)) == 22


def test_prepare_keeps_the_aspect_ratio_and_ignores_where_and_how_big_it_was_drawn():
    one = probe.prepare(stroke_one())
    height, width = ink_box(one, 0.1)
    assert height >= 19 and width <= 6  # a tall thin stroke stays tall and thin
    moved = [[(0.1 + x / 2, 0.3 + y / 2) for x, y in s] for s in stroke_ring()]
    assert np.abs(probe.prepare(moved) - probe.prepare(stroke_ring())).max() < 1e-9
    assert not probe.prepare([]).any()


def test_prepare_pieces_do_what_they_say():
    coverage = probe.rasterise(np.array([[2.0, 2.0, 2.0, 2.0]]), (5, 5), pen=1.0, s=4)
    assert coverage[1, 1] == coverage[1, 2] == coverage[2, 1] == coverage[2, 2] > 0.7  # a dot at a pixel corner
    assert coverage.sum() == pytest.approx(np.pi, abs=0.2) and coverage[0].sum() == 0
    one = np.zeros((5, 5))
    one[2, 2] = 1
    assert np.allclose(probe.blur(one)[1:4, 1:4], np.outer([1, 2, 1], [1, 2, 1]) / 16)
    assert probe.centre_of_mass(one) == (2.5, 2.5)


def test_colour_tables_are_the_sites_colour_maps():
    """probe.js looks up colour min(255, floor(256 v)); figures.py's PNGs must show the same colours."""
    v = np.concatenate([np.linspace(0, 1, 1001), [0.5 + 1e-12, 1 - 1e-12]])
    for cmap in (figures.DIVERGING, figures.INK, figures.ACTIVATION):
        table = np.frombuffer(bytes.fromhex(probe.lut(cmap)), np.uint8).reshape(256, 3)
        drawn = np.asarray(Image.open(io.BytesIO(figures.png(cmap(v)[None, :, :]))))[0]
        assert (table[np.minimum(255, np.floor(v * 256).astype(int))] == drawn).all()


# ---- the data files -------------------------------------------------------------------------------------

def atlas_test_set(atlas_json: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The atlas's test images (N, D) float64, labels and source indices, read from the IDX files as its config says."""
    d = atlas_json["model"]["config"]["data"]
    ds = data.load_dataset(MNIST, test_limit=d["test_limit"])
    if d["classes"]:
        ds = data.select_classes(ds, d["classes"])
    return ds.test_images.astype(np.float64), ds.test_labels, ds.test_ids



def read_probe(folder: Path) -> dict:
    manifest = json.loads((folder / "network.json").read_bytes())
    params = {k: np.fromfile(folder / f["file"], "<f4").reshape(f["shape"]) for k, f in manifest["parameters"].items()}
    t = manifest["test"]
    sheets = [np.asarray(Image.open(folder / s)) for s in t["sheets"]]
    rows, cols = manifest["image_shape"]
    images = []
    for n in range(t["count"]):
        sheet, k = divmod(n, t["per_sheet"])
        r, c = divmod(k, t["columns"])
        images.append(sheets[sheet][r * rows:(r + 1) * rows, c * cols:(c + 1) * cols].reshape(-1))
    return {"manifest": manifest, "params": params, "images": np.array(images),
            "labels": np.fromfile(folder / t["labels"]["file"], np.uint8),
            "predicted": np.fromfile(folder / t["predicted"]["file"], np.uint8)}


def test_probe_files_hold_the_exact_network_and_every_test_image(tiny_build):
    build = tiny_build / "build"
    atlas_json = json.loads((build / "atlas.json").read_bytes())
    served_files = read_probe(tiny_build / "site" / "probe")
    m = served_files["manifest"]
    model = load_model(build / "model.npz")
    H, K = model.params["W1"].shape[0], model.params["W2"].shape[0]
    assert m["run_id"] == atlas_json["model"]["run_id"] and m["sizes"] == [784, H, K] and m["image_shape"] == [28, 28]
    assert m["hidden_activation"] == m["output_activation"] == "sigmoid"
    for name in ("W1", "b1", "W2", "b2"):
        assert served_files["params"][name].tobytes() == model.params[name].astype("<f4").tobytes(), name
    X, y, ids = atlas_test_set(atlas_json)
    assert m["test"]["count"] == len(y) == 600 and (ids == np.arange(600)).all()
    assert m["test"]["ids"] is None and not (tiny_build / "site" / "probe" / "test-ids.u32").exists()
    assert (served_files["images"] == np.round(X * 255)).all()
    assert (served_files["labels"] == y).all()
    assert (served_files["predicted"] == forward64(model.params, X).predicted).all()
    assert m["drawing"] == {"box": 20 / 28, "pen": probe.PEN, "supersample": probe.SUPERSAMPLE,
                            "min_extent": probe.MIN_EXTENT}


# ---- the page in a browser -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sections(site) -> list[dict]:
    """Each atlas of the served site with a probe: its URL prefix, model, test images and labels."""
    build = Path(os.environ.get("ATLAS_BUILD") or (site.parent / "build"))
    if not (build / "model.npz").is_file():
        pytest.skip(f"no model.npz in {build} beside the site {site}; set ATLAS_BUILD")
    found = []
    for prefix, folder in (("", build), ("tiny/", build / "tiny")):
        if (site / prefix / "probe" / "index.html").is_file() and (folder / "model.npz").is_file():
            atlas_json = json.loads((folder / "atlas.json").read_bytes())
            X, y, ids = atlas_test_set(atlas_json)
            params = load_model(folder / "model.npz").params
            served_ids = site / prefix / "probe" / "test-ids.u32"
            if served_ids.is_file():  # a subset's source indices, as the pages number its images
                assert (np.fromfile(served_ids, "<u4") == ids).all()
            else:
                assert (ids == np.arange(len(ids))).all()
            found.append({"prefix": prefix, "params": params, "X": X, "y": y, "ids": ids, "f": forward64(params, X),
                          "names": atlas_json["model"]["class_names"], "run_id": atlas_json["model"]["run_id"]})
    assert found and found[0]["prefix"] == ""
    return found


def open_probe(browser, url: str):  # noqa: F811
    page = browser.page()
    page.goto(url, wait_until="load")
    page.evaluate("window.atlasProbe.ready")
    page.wait_for_function("document.querySelector('[data-probe]').dataset.ready === 'true'")
    return page


def wait_frames(page) -> None:
    page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def number(text: str) -> float:
    return float(text.replace("−", "-"))


def canvas_rgb(page, selector: str) -> np.ndarray:
    width, height, pixels = page.evaluate("""selector => {
      const c = document.querySelector(selector);
      return [c.width, c.height, Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data)];
    }""", selector)
    return np.array(pixels, np.uint8).reshape(height, width, 4)[..., :3]


def png_rgb(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_first_load_stays_within_the_transfer_budget(browser, served, sections):  # noqa: F811
    """Everything the first visit to probe/#test=N fetches (cache off), search index and worker included."""
    page = browser.page()
    cdp = browser.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    sizes = {}
    page.on("response", lambda r: sizes.__setitem__(r.url, r))
    page.goto(served + "probe/#test=7", wait_until="load")
    page.evaluate("window.atlasProbe.ready")
    page.wait_for_load_state("networkidle")
    total = {url: len(r.body()) for url, r in sizes.items() if r.status == 200}
    assert any(u.endswith("probe/W1.f32") for u in total) and any(u.endswith("probe/test-000.png") for u in total)
    assert not any(u.endswith("test-001.png") for u in total), "only the sheet of the image shown"
    print(f"first load of probe/: {len(total)} responses, {sum(total.values()):,} bytes")
    assert sum(total.values()) <= BUDGET, sorted(total.items(), key=lambda kv: -kv[1])[:5]
    cdp.detach()
    page.close()
    assert browser.problems == [] and browser.elsewhere == []


def test_forward_equals_numpy_on_hundreds_of_test_images_and_is_fast(browser, served, sections):  # noqa: F811
    for s in sections:
        page = open_probe(browser, served + s["prefix"] + "probe/")
        picks = np.linspace(0, len(s["y"]) - 1, min(300, len(s["y"]))).astype(int)
        got = page.evaluate("xs => xs.map(x => window.atlasProbe.forward(x))", s["X"][picks].tolist())
        hidden = np.array([g["hidden"] for g in got])
        output = np.array([g["output"] for g in got])
        assert np.abs(hidden - s["f"].A1[picks]).max() < 1e-5
        assert np.abs(output - s["f"].A2[picks]).max() < 1e-5
        assert (output.argmax(axis=1) == s["f"].predicted[picks]).all()
        ms = page.evaluate("""x => {
          const start = performance.now();
          for (let i = 0; i < 200; i++) window.atlasProbe.forward(x);
          return (performance.now() - start) / 200;
        }""", s["X"][picks[0]].tolist())
        print(f"{s['prefix'] or 'main'}: forward pass {ms:.3f} ms in the page")
        assert ms < 4, "a forward pass must take well under a frame (16 ms)"
        page.close()
    assert browser.problems == [] and browser.elsewhere == []


def check_page_numbers(page, s: dict, n: int, neuron: int | None) -> None:
    """Every number and picture the probe shows for test image n, against NumPy."""
    p = {k: v.astype(np.float64) for k, v in s["params"].items()}
    x = np.round(s["X"][n] * 255) / 255  # the pixels as the page has them: bytes / 255 in float64
    f, names = s["f"], s["names"]
    a1, a2, z2 = f.A1[n], f.A2[n], f.Z2[n]
    c = int(f.predicted[n])
    state = page.evaluate("window.atlasProbe.state()")
    assert state["test"] == s["ids"][n] and state["predicted"] == c
    assert np.array_equal(np.array(state["pixels"]), x), "the image shown is test image n, exactly"
    assert np.abs(np.array(state["hidden"]) - a1).max() < 1e-5 and np.abs(np.array(state["output"]) - a2).max() < 1e-5
    text = lambda sel: page.locator(sel).first.inner_text()  # noqa: E731
    assert text("[data-probe-source]") == f"test image #{s['ids'][n]}, labelled {names[s['y'][n]]}"
    assert text("[data-probe-predicted]") == names[c]
    assert np.array_equal(canvas_rgb(page, "[data-probe-input]"), png_rgb(figures.ink(x.reshape(28, 28))))
    # The hidden grid: one cell per neuron, its colour and its hover text.
    cells = page.evaluate("""() => [...document.querySelectorAll('[data-probe-unit]')].map(a =>
      [a.title, getComputedStyle(a).backgroundColor])""")
    assert len(cells) == len(a1)
    width = len(page.locator("[data-probe-unit]").first.get_attribute("data-id"))
    colours = np.round(figures.ACTIVATION(np.clip(a1, 0, 1))[:, :3] * 255).astype(int)
    for j, (title, colour) in enumerate(cells):
        assert title == f"neuron {j:0{width}d}: {a1[j]:.3f}"
        assert colour == "rgb({}, {}, {})".format(*colours[j])
    # The outputs.
    bars = page.locator("[data-probe-output] output").all_inner_texts()
    assert [number(b) for b in bars] == pytest.approx(a2, abs=5e-4)
    # The pushes, up and down, and against the runner-up.
    push = p["W2"][c] * a1
    runner = int(np.argsort(-z2, kind="stable")[1]) if len(z2) > 1 else None
    margin = (p["W2"][c] - p["W2"][runner]) * a1 if runner is not None else None
    for selector, expected in (("[data-probe-up] tr", top_positive(push, 5)), ("[data-probe-down] tr", top_negative(push, 5))):
        rows = page.locator(selector).all()
        if not expected:
            assert len(rows) == 1 and rows[0].inner_text().strip() == "none"
            continue
        assert [int(r.get_attribute("data-probe-pusher")) for r in rows] == expected
        for r, j in zip(rows, expected):
            cols = r.locator("td").all_inner_texts()
            assert number(cols[2]) == pytest.approx(a1[j], abs=5e-4)
            assert number(cols[3]) == pytest.approx(push[j], abs=5e-4)
            if margin is not None:
                assert number(cols[4]) == pytest.approx(margin[j], abs=5e-4)
    assert number(text("[data-probe-logit]")) == pytest.approx(z2[c], abs=5e-4)
    assert number(text("[data-probe-bias2]")) == pytest.approx(p["b2"][c], abs=5e-4)
    if runner is not None:
        assert text("[data-probe-runner]") == names[runner]
        assert number(text("[data-probe-margin]")) == pytest.approx(z2[c] - z2[runner], abs=5e-4)
    # One neuron: the one in the address, else the strongest push up.
    j = neuron if neuron is not None else (top_positive(push, 1) or [int(np.argmax(push))])[0]
    w = p["W1"][j]
    product = w * x
    z1 = product.sum() + p["b1"][j]
    assert number(text("[data-probe-sum]")) == pytest.approx(product.sum(), abs=5e-4)
    assert number(text("[data-probe-bias]")) == pytest.approx(p["b1"][j], abs=5e-4)
    assert number(text("[data-probe-z]")) == pytest.approx(z1, abs=5e-4)
    assert number(text("[data-probe-activation]")) == pytest.approx(1 / (1 + np.exp(-z1)), abs=5e-4)
    assert number(text("[data-probe-out-weight]")) == pytest.approx(p["W2"][c, j], abs=5e-4)
    assert number(text("[data-probe-push]")) == pytest.approx(push[j], abs=5e-4)
    assert number(text("[data-probe-wmax]")) == pytest.approx(np.abs(w).max(), abs=5e-4)
    assert number(text("[data-probe-pmax]")) == pytest.approx(np.abs(product).max(), abs=5e-4)
    assert np.array_equal(canvas_rgb(page, "[data-probe-weights]"),
                          png_rgb(figures.diverging(w.reshape(28, 28), np.abs(w).max())))
    assert np.array_equal(canvas_rgb(page, "[data-probe-product]"),
                          png_rgb(figures.diverging(product.reshape(28, 28), np.abs(product).max())))
    # Gradient x input of the predicted logit.
    gx = x * attribution.input_gradient(p, x[None, :], np.eye(len(z2))[c])[0]
    assert number(text("[data-probe-gsum]")) == pytest.approx(gx.sum(), abs=5e-4)
    assert number(text("[data-probe-gmax]")) == pytest.approx(np.abs(gx).max(), abs=5e-4)
    shown = canvas_rgb(page, "[data-probe-gradient]").astype(int)
    expected_gx = png_rgb(figures.diverging(gx.reshape(28, 28), np.abs(gx).max())).astype(int)
    assert np.abs(shown - expected_gx).max() <= 1 and (shown != expected_gx).any(axis=2).sum() <= 2


def test_the_address_picks_the_image_and_neuron_and_every_number_matches_numpy(browser, served, sections):  # noqa: F811
    for s in sections:
        f, y = s["f"], s["y"]
        wrong = np.flatnonzero(f.predicted != y)
        picks = [1, len(y) - 1] + ([int(wrong[0])] if len(wrong) else [])
        H = s["params"]["W1"].shape[0]
        ids = [int(s["ids"][n]) for n in picks]  # the address numbers images as the pages do
        page = open_probe(browser, served + s["prefix"] + f"probe/#test={ids[0]}&neuron={H - 1}")
        check_page_numbers(page, s, picks[0], H - 1)
        for n, i in zip(picks[1:], ids[1:]):  # the page follows the address as it changes
            page.evaluate("i => { location.hash = `test=${i}`; }", i)
            page.wait_for_function("i => window.atlasProbe.state().test === i", arg=i)
            check_page_numbers(page, s, n, None)
        if s["prefix"]:  # a number that is not in this test set: a message, the image stays
            page.evaluate("() => { location.hash = 'test=999999'; }")
            page.wait_for_function("() => document.querySelector('[data-probe-message]').textContent !== ''")
            assert page.evaluate("window.atlasProbe.state().test") == ids[-1]
        page.close()
    assert browser.problems == [] and browser.elsewhere == []


def test_random_buttons_pick_a_test_image_of_that_class_and_a_mistake(browser, served, sections):  # noqa: F811
    s = sections[0]
    page = open_probe(browser, served + "probe/#test=0")
    for k in (3, 0):
        page.locator(f'[data-probe-random="{k}"]').click()
        page.wait_for_function("() => location.hash !== '#test=0' && window.atlasProbe.state().test !== 0")
        n = page.evaluate("window.atlasProbe.state().test")
        assert s["y"][n] == k and page.evaluate("location.hash") == f"#test={n}"
        page.evaluate("location.hash = 'test=0'")
        page.wait_for_function("() => window.atlasProbe.state().test === 0")
    page.locator("[data-probe-mistake]").click()
    page.wait_for_function("() => window.atlasProbe.state().test !== 0")
    n = page.evaluate("window.atlasProbe.state().test")
    assert s["f"].predicted[n] != s["y"][n] and page.evaluate("window.atlasProbe.state().predicted") == s["f"].predicted[n]
    page.close()
    assert browser.problems == [] and browser.elsewhere == []


def test_every_hidden_unit_links_to_its_page(browser, served, site, sections):  # noqa: F811
    for s in sections:
        page = open_probe(browser, served + s["prefix"] + "probe/")
        links = page.evaluate("() => [...document.querySelectorAll('[data-probe-unit]')].map(a => [a.dataset.probeUnit, a.href])")
        H = s["params"]["W1"].shape[0]
        assert [int(j) for j, _ in links] == list(range(H))
        width = max(3, len(str(H - 1)))
        for j, href in links:
            assert href == f"{served}{s['prefix']}neurons/{int(j):0{width}d}/index.html"  # a file: works from disk too
            assert (site / href[len(served):]).is_file()
        page.locator(f'[data-probe-unit="{H - 1}"]').click()
        page.wait_for_url(f"**/{s['prefix']}neurons/{H - 1:0{width}d}/index.html")
        assert page.locator("h1").first.inner_text().startswith(f"Neuron {H - 1:0{width}d}")
        page.close()
    assert browser.problems == [] and browser.elsewhere == []


def test_the_page_prepares_a_drawing_as_numpy_does(browser, served, sections):  # noqa: F811
    page = open_probe(browser, served + "probe/")
    for name, strokes in DRAWINGS.items():
        got = np.array(page.evaluate("s => window.atlasProbe.prepare(s)", [[list(map(float, p)) for p in s] for s in strokes]))
        assert np.abs(got - probe.prepare(strokes).reshape(-1)).max() < 1e-12, name
    page.close()
    assert browser.problems == [] and browser.elsewhere == []


def draw(page, strokes) -> None:
    """Draw strokes ([0, 1] of the drawing area) with the mouse, as a person would."""
    box = page.locator("[data-probe-draw]").bounding_box()
    at = lambda x, y: (box["x"] + x * box["width"], box["y"] + y * box["width"])  # noqa: E731
    for stroke in strokes:
        page.mouse.move(*at(*stroke[0]))
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(*at(x, y), steps=2)
        page.mouse.up()
    wait_frames(page)


def test_a_drawn_one_reads_as_one_and_a_ring_as_zero(browser, served, sections):  # noqa: F811
    """Drawn with the mouse: the page's input is NumPy's preparation of what it recorded, its answer NumPy's,
    and a stroke reads as 1 and a ring as 0 (on the full network, and on the tests' 16-neuron one too)."""
    s = sections[0]
    page = open_probe(browser, served + "probe/#test=3&neuron=2")
    for strokes, digit in ((stroke_one(12), 1), (stroke_ring(36), 0)):
        page.locator("[data-probe-clear]").click()
        draw(page, strokes)
        state = page.evaluate("window.atlasProbe.state()")
        recorded = page.evaluate("window.atlasProbe.strokes()")
        assert state["test"] is None and len(recorded) == 1 and len(recorded[0]) >= len(strokes[0])
        expected = probe.prepare(recorded).reshape(-1)
        assert np.abs(np.array(state["pixels"]) - expected).max() < 1e-12
        answer = int(forward64(s["params"], expected[None, :]).predicted[0])
        assert state["predicted"] == answer
        assert page.locator("[data-probe-predicted]").first.inner_text() == s["names"][answer]
        assert page.evaluate("location.hash") == "#neuron=2"  # the drawing replaced the test image, kept the neuron
        assert answer == digit
    screenshot = ARTIFACTS / "probe-drawn-ring.png"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    assert browser.problems == [] and browser.elsewhere == []


def test_narrow_and_dark_screenshots(browser, served, sections):  # noqa: F811
    page = open_probe(browser, served + "probe/#test=5")
    page.screenshot(path=str(ARTIFACTS / "probe-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    wait_frames(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling at 390 px"
    page.screenshot(path=str(ARTIFACTS / "probe-390.png"), full_page=True)
    page.close()
    dark = browser.context.new_page()
    dark.add_init_script("localStorage.clear()")
    dark.emulate_media(color_scheme="dark")
    dark.goto(served + "probe/#test=5", wait_until="load")
    dark.evaluate("window.atlasProbe.ready")
    assert dark.locator("body").get_attribute("data-md-color-scheme") == "slate"
    dark.screenshot(path=str(ARTIFACTS / "probe-dark.png"), full_page=True)
    dark.close()
    assert browser.problems == [] and browser.elsewhere == []


def test_pages_link_to_the_probe_with_their_images_and_neurons(tiny_build):
    """Home, neuron, digit and mistake pages lead to probe/ with #test=N (and the neuron); the links resolve."""
    from .sitecheck import parse

    site_dir = tiny_build / "site"
    atlas_json = json.loads((tiny_build / "build" / "atlas.json").read_bytes())

    def probe_links(page: str) -> list[str]:
        urls = [v for tag, attr, v, _ in parse(site_dir / page / "index.html").urls if tag == "a"]
        hits = [u for u in urls if "probe/" in u]
        for u in hits:  # the target, a file (probe/index.html), resolves from the page's address
            assert u.split("#")[0].endswith("probe/index.html"), (page, u)
            assert (site_dir / page / u.split("#")[0]).resolve().is_file(), (page, u)
        return [u.split("#", 1)[1] for u in hits if "#" in u]

    assert probe_links("") == [] and any("probe/" in v for _, _, v, _ in parse(site_dir / "index.html").urls)
    n = atlas_json["neurons"][3]
    assert probe_links("neurons/003") == [f"test={r['index']}&neuron=3" for r in n["top_images"]]
    for d in atlas_json["digits"]:
        mistakes = [f"test={x['index']}" for x in d["mistakes"]]
        assert sorted(probe_links(f"digits/{d['digit']}")) == sorted([f"test={d['example']['index']}"] + mistakes)
        assert sorted(probe_links(f"mistakes/{d['digit']}")) == sorted(mistakes)


def test_a_finger_draws_too(browser, served, sections):  # noqa: F811
    """Touch pointer events (a phone) draw as the mouse does; typing an index shows that image."""
    page = open_probe(browser, served + "probe/")
    box = page.locator("[data-probe-draw]").bounding_box()
    points = [(box["x"] + x * box["width"], box["y"] + y * box["width"]) for x, y in stroke_one(10)[0]]
    page.evaluate("""points => {
      const pad = document.querySelector("[data-probe-draw]");
      const fire = (type, [x, y]) => pad.dispatchEvent(new PointerEvent(type, {clientX: x, clientY: y, pointerId: 7,
        pointerType: "touch", isPrimary: true, bubbles: true, cancelable: true}));
      fire("pointerdown", points[0]);
      points.slice(1).forEach(p => fire("pointermove", p));
      fire("pointerup", points[points.length - 1]);
    }""", points)
    wait_frames(page)
    recorded = page.evaluate("window.atlasProbe.strokes()")
    assert len(recorded) == 1 and len(recorded[0]) == len(points)
    assert np.allclose(recorded[0], stroke_one(10)[0], atol=1e-6)
    state = page.evaluate("window.atlasProbe.state()")
    assert state["test"] is None and np.abs(np.array(state["pixels"]) - probe.prepare(recorded).reshape(-1)).max() < 1e-12
    assert state["predicted"] == 1
    page.locator("[data-probe-index]").fill("4")
    page.locator("[data-probe-form] button[type=submit]").click()
    page.wait_for_function("() => window.atlasProbe.state().test === 4")
    assert page.evaluate("location.hash") == "#test=4" and page.evaluate("window.atlasProbe.strokes()") == []
    page.close()
    assert browser.problems == [] and browser.elsewhere == []
