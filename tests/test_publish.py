"""Publish-ready (issue 7): run ids, the served JSON, links that resolve, byte-identical rebuilds and builds
that fail or are killed without touching the previous site or model."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from generator import atlas as atlas_mod
from generator import figures
from generator.__main__ import main
from generator.config import REPO
from generator.provenance import run_config, run_id
from generator.render import neuron_summaries, percent
from generator.train import load_model

from .conftest import TINY, tiny_overrides
from .sitecheck import broken_links, external_loads, parse


def sets(overrides) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def tree(directory) -> dict[str, bytes]:
    """Every file under `directory`, by relative path."""
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def differences(a: dict[str, bytes], b: dict[str, bytes]) -> list[str]:
    return sorted(set(a) ^ set(b)) + [p for p in sorted(set(a) & set(b)) if a[p] != b[p]]


@pytest.fixture(scope="module")
def built(tiny_build):
    return tiny_build, atlas_mod.load_atlas(tiny_build / "build" / "atlas.json")


@pytest.fixture
def built_copy(tiny_build, tmp_path):
    """A copy of the tiny build (model, atlas, docs, site) that a test may break; returns (root, overrides)."""
    shutil.copytree(tiny_build / "build", tmp_path / "build")
    shutil.copytree(tiny_build / "site", tmp_path / "site")
    return tmp_path, tiny_overrides(tmp_path)


# ---- the run id ------------------------------------------------------------------------------------

def test_run_id_changes_with_data_settings_and_any_weight_bit_but_not_with_paths():
    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((3, 4)).astype(np.float32), "b1": np.zeros(3, np.float32),
              "W2": rng.standard_normal((2, 3)).astype(np.float32), "b2": np.ones(2, np.float32)}
    sha = {"train-images": "ab" * 32, "t10k-images": "cd" * 32}
    config = {"data": {"dir": "data/mnist", "train_limit": 0}, "train": {"seed": 1, "epochs": 30},
              "site": {"title": "MNIST Neuron Atlas", "build_dir": "build", "site_dir": "site"}}
    base = run_id(sha, config, params)
    assert len(base) == 12 and int(base, 16) >= 0
    assert run_id(dict(reversed(sha.items())), config, {k: params[k] for k in reversed(params)}) == base
    moved = {"data": {"dir": "/elsewhere/mnist", "train_limit": 0}, "train": {"epochs": 30, "seed": 1},
             "site": {"title": "Another title", "build_dir": "/tmp/b", "site_dir": "/tmp/s"}}
    assert run_id(sha, moved, params) == base  # where it was built and what the site is called: same run
    assert run_config(moved) == {"data": {"train_limit": 0}, "train": {"epochs": 30, "seed": 1}}
    assert run_config({"network": {"hidden": 3, "weights": "/some/file.npz"}}) == {"network": {"hidden": 3}}
    flipped = {k: v.copy() for k, v in params.items()}
    flipped["W1"].view(np.uint32)[1, 2] ^= 1  # one bit of one weight
    others = [run_id(sha, config, flipped), run_id({**sha, "t10k-images": "ce" * 32}, config, params),
              run_id(sha, {**config, "train": {"seed": 2, "epochs": 30}}, params),
              run_id(sha, config, {**params, "b2": params["b2"].astype(np.float64)})]
    assert len({base, *others}) == 5


def test_atlas_run_id_is_that_of_its_model(built):
    root, atlas = built
    model = load_model(root / "build" / "model.npz")
    assert atlas.model.run_id == run_id(atlas.model.data_sha256, atlas.model.config, model.params)
    assert json.loads((root / "build" / "atlas.json").read_bytes())["model"]["run_id"] == atlas.model.run_id


def test_every_page_names_its_run_in_the_footer(built):
    root, atlas = built
    m = atlas.model
    pages = sorted((root / "site").rglob("*.html"))
    assert len(pages) >= 16 + 10 + 10 + 5
    for path in pages:
        html = path.read_text()
        footer = html[html.index('<div class="md-copyright">'):]
        assert f"Run <code>{m.run_id}</code>" in footer, path
        assert f"seed {m.seed}" in footer and f"test accuracy {percent(m.test_accuracy)}" in footer, path
        assert f"{m.epochs} epochs, batch 10, learning rate 0.5 (cosine)" in footer, path
    home = (root / "site" / "index.html").read_text()
    assert f"<code>{m.run_id}</code>: names this trained network" in home


def test_neuron_pages_offer_a_citation_a_permalink_and_figure_anchors(built):
    root, atlas = built
    site = root / "site"
    for n in atlas.neurons:
        nid = f"{n.id:03d}"
        page = site / "neurons" / nid / "index.html"
        html, parsed = page.read_text(), parse(page)
        assert (f"Neuron {nid}, MNIST Neuron Atlas, run {atlas.model.run_id} (784-16-10 sigmoid network, seed 1, "
                f"test accuracy {percent(atlas.model.test_accuracy)}), <span class=\"atlas-url\">neurons/{nid}/</span>"
                in html)
        assert '<a class="atlas-permalink" href="index.html">neurons/' in html and "cite" in parsed.ids
        for png in (site / "neurons" / nid).glob("*.png"):  # every figure of the page can be linked to
            assert f"fig-{png.stem}" in parsed.ids, png
            if not png.stem.startswith("product-"):
                assert f'href="#fig-{png.stem}"' in html, png
    for d in atlas.digits:
        parsed = parse(site / "digits" / str(d.digit) / "index.html")
        for png in (site / "digits" / str(d.digit)).glob("*.png"):
            assert f"fig-{png.stem}" in parsed.ids, png
    assert "fig-confusion" in parse(site / "digits" / "index.html").ids


# ---- data for scripts ------------------------------------------------------------------------------

def test_the_site_serves_atlas_json_and_one_small_json_per_neuron_and_digit(built):
    root, atlas = built
    site = root / "site"
    assert (site / "atlas.json").read_bytes() == (root / "build" / "atlas.json").read_bytes()
    whole = json.loads((site / "atlas.json").read_bytes())
    summaries = neuron_summaries(atlas, atlas.model.class_names)
    for n in atlas.neurons:
        path = site / "neurons" / f"{n.id:03d}.json"
        data = json.loads(path.read_bytes())
        assert path.stat().st_size < 20_000
        assert list(data) == ["format", "run_id", "page", "atlas", "figures", "neuron"]
        assert data["run_id"] == atlas.model.run_id and data["page"] == f"neurons/{n.id:03d}/"
        # unabridged, the exact float32 weights included, and the summary the page prints
        assert data["neuron"] == {**whole["neurons"][n.id], "summary": summaries[n.id]}
        assert data["figures"]["weights"] == f"neurons/{n.id:03d}/weights.png"
        for figure in data["figures"].values():
            assert (site / figure).is_file()
        assert (site / data["page"] / "index.html").is_file() and (site / data["atlas"]).is_file()
    for d in atlas.digits:
        path = site / "digits" / f"{d.digit}.json"
        data = json.loads(path.read_bytes())
        assert path.stat().st_size < 40_000  # each mistake carries its hidden layer: this tiny net makes many
        expected = dict(whole["digits"][d.digit])
        del expected["mean_image"]  # pictures are served as PNGs
        expected["example"] = {k: v for k, v in expected["example"].items() if k != "image"}
        assert data["digit"] == expected
        assert data["figures"]["mean"] == f"digits/{d.digit}/mean.png" and "example" in data["figures"]
        assert (site / data["mistakes_page"] / "index.html").is_file()
    api = (site / "api" / "index.html").read_text()
    assert "neurons/000.json" in api and atlas.model.run_id in api and 'id="run-id"' in api


def test_json_is_stable_and_compact(built):
    root, _ = built
    for path in [root / "site" / "neurons" / "003.json", root / "site" / "digits" / "3.json"]:
        raw = path.read_bytes()
        assert raw.endswith(b"}\n") and b"\n" not in raw[:-1] and b": " not in raw[:200]
        assert json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":")).encode() + b"\n" == raw


# ---- self-contained, no broken links -----------------------------------------------------------------

def test_every_internal_link_and_image_resolves(built):
    root, _ = built
    assert broken_links(root / "site") == []


def test_nothing_is_loaded_from_another_host(built):
    root, _ = built
    site = root / "site"
    assert external_loads(site) == []
    assert list(site.glob("assets/javascripts/glightbox.min.js")) and list(site.glob("assets/javascripts/workers/search.*.js"))
    config = yaml.safe_load((root / "build" / "mkdocs.yml").read_text())
    assert config["theme"]["custom_dir"] == str(REPO / "templates" / "overrides")


# ---- the published site itself (after `make site`; .ci/run builds it) ----------------------------------

PUBLISHED = REPO / "site"
published = pytest.mark.skipif(not (REPO / "build" / "atlas.json").is_file() and os.environ.get("CI") != "true",
                               reason="run `make site` first: these tests check the published site")


@published
def test_published_site_links_resolve_and_nothing_loads_from_elsewhere():
    assert broken_links(PUBLISHED) == []
    assert external_loads(PUBLISHED) == []


@published
def test_published_pages_name_the_run_of_their_own_atlas():
    """The main atlas's pages show its run; a section's pages (tiny/) show the section's."""
    runs = {}
    for path in PUBLISHED.rglob("atlas.json"):
        rel = path.parent.relative_to(PUBLISHED).as_posix()
        runs["" if rel == "." else rel + "/"] = json.loads(path.read_bytes())["model"]["run_id"]
    assert "" in runs and len(set(runs.values())) == len(runs)
    for page in PUBLISHED.rglob("*.html"):
        rel = page.relative_to(PUBLISHED).as_posix()
        own = runs[max((p for p in runs if rel.startswith(p)), key=len)]
        html = page.read_text()
        assert f"Run <code>{own}</code>" in html[html.index('<div class="md-copyright">'):], rel


# ---- reproducible ----------------------------------------------------------------------------------

def test_two_builds_in_two_directories_from_one_model_are_byte_identical(tiny_build, tmp_path, monkeypatch):
    """Same model.npz, data, templates and config: the same bytes, wherever the build runs.

    Each directory gets its own copy of atlas.toml (relative paths) and a link to the data, so the two
    configs are equal; any absolute path, date or random salt in the output would show up as a difference.
    A published address (as the Pages workflow sets) fills the sitemap, whose dates must not move either.
    The first builds its site with half the pages converted in a second process (mkdocs_pages), the second
    with mkdocs alone (ATLAS_SITE_JOBS=1).
    """
    monkeypatch.setenv("SITE_URL", "https://example.org/atlas/")
    trees = []
    for name, jobs in (("one", "2"), ("two", "1")):
        monkeypatch.setenv("ATLAS_SITE_JOBS", jobs)
        root = tmp_path / name
        (root / "build").mkdir(parents=True)
        (root / "data").symlink_to(REPO / "data", target_is_directory=True)
        shutil.copy(REPO / "atlas.toml", root / "atlas.toml")
        shutil.copy(tiny_build / "build" / "model.npz", root / "build" / "model.npz")
        for stage in ("analyze", "render", "site"):
            assert main([stage, "--config", str(root / "atlas.toml"), *sets([*TINY, "site.sections=[]"])]) == 0
        trees.append(({"atlas.json": (root / "build" / "atlas.json").read_bytes(),
                       "arrays.npz": (root / "build" / "arrays.npz").read_bytes()}, tree(root / "site")))
    (build_one, site_one), (build_two, site_two) = trees
    assert differences(build_one, build_two) == []
    assert differences(site_one, site_two) == []
    assert {"sitemap.xml", "sitemap.xml.gz", "search/search_index.json", "atlas.json", "neurons/000.json",
            "assets/javascripts/glightbox.min.js"} <= set(site_one)
    assert site_one["sitemap.xml"].count(b"<lastmod>1980-01-01</lastmod>") == site_one["sitemap.xml"].count(b"<url>")
    assert b"<loc>https://example.org/atlas/neurons/000/</loc>" in site_one["sitemap.xml"]
    assert str(tmp_path).encode() not in site_one["atlas.json"]


# ---- atomic ----------------------------------------------------------------------------------------

def test_a_render_that_fails_half_way_leaves_docs_and_site_as_they_were(built_copy, monkeypatch, capsys):
    root, overrides = built_copy
    (root / "build" / "docs" / "index.md").write_text("an older page")  # so a render would have work to do
    before = tree(root / "build"), tree(root / "site")
    calls = []
    real = figures.diverging

    def fails_on_the_tenth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise RuntimeError("injected failure while drawing figures")
        return real(*args, **kwargs)

    monkeypatch.setattr(figures, "diverging", fails_on_the_tenth)
    assert main(["render", *sets(overrides)]) == 1
    assert "injected failure" in capsys.readouterr().err
    assert (tree(root / "build"), tree(root / "site")) == before


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_a_site_build_killed_while_mkdocs_runs_leaves_the_previous_site(built_copy):
    root, overrides = built_copy
    before = tree(root / "site")
    proc = subprocess.Popen([sys.executable, "-m", "generator", "site", *sets(overrides)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # mkdocs is writing pages into the new tree beside site/: kill the CLI and mkdocs together, as a
        # cancelled CI job or a closed terminal would.
        wait_for(lambda: any(p.is_file() for d in root.glob(".site.new.*") for p in d.rglob("*")) or
                 proc.poll() is not None, 120, "mkdocs to start writing")
        assert proc.poll() is None, "the build finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # any mkdocs child still alive
        except ProcessLookupError:
            pass
    assert proc.returncode == -signal.SIGKILL
    assert list(root.glob(".site.new.*")), "the kill came after mkdocs had finished"
    assert tree(root / "site") == before  # not one byte of the previous site changed
    assert main(["site", *sets(overrides)]) == 0  # the leftover half-built tree does not get in the way
    assert tree(root / "site") == before  # same inputs, same bytes
    assert not list(root.glob(".site.new.*")) and not list(root.glob(".site.old"))


def test_training_killed_outright_leaves_the_previous_model(built_copy):
    root, overrides = built_copy
    model = root / "build" / "model.npz"
    before = model.read_bytes()
    cmd = [sys.executable, "-m", "generator", "train", *sets([*overrides, "train.epochs=100000"])]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        for line in proc.stdout:  # training has started: kill it without a chance to clean up
            if line.startswith("  epoch "):
                os.killpg(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert model.read_bytes() == before
    assert main(["analyze", *sets(overrides)]) == 0  # and it is still the model the atlas is built from


# ---- deployment ------------------------------------------------------------------------------------

def test_pages_workflow_builds_with_make_and_deploys_with_the_official_actions():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "pages.yml").read_text())
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "push" in on and "workflow_dispatch" in on
    # Least privilege per job: only the deploy job may write to Pages or mint an OIDC token.
    assert workflow["permissions"] == {}
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    assert build["permissions"] == {"contents": "read", "pages": "read"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    uses = [step.get("uses", "") for step in build["steps"]]
    runs = "\n".join(step.get("run", "") for step in build["steps"])
    assert any(u.startswith("actions/cache@") for u in uses)
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert "make site" in runs
    steps = [step.get("run", step.get("uses", "")) for step in build["steps"]]
    test_at = steps.index("make test")  # the tests pass before anything is uploaded for deployment
    assert steps.index("make site") < test_at < next(i for i, s in enumerate(steps) if "upload-pages-artifact" in s)
    for job in (build, deploy):  # expressions reach shell steps through env, never spliced into the script
        assert all("${{" not in step.get("run", "") for step in job["steps"])
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "site"
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]
    # Every action pinned to a full commit, with the release tag it was taken from in a comment.
    text = (REPO / ".github" / "workflows" / "pages.yml").read_text()
    pins = re.findall(r"uses: (\S+)@(\S+)(.*)", text)
    assert len(pins) == sum("uses" in step for job in (build, deploy) for step in job["steps"])
    for action, ref, comment in pins:
        assert re.fullmatch(r"[0-9a-f]{40}", ref) and re.fullmatch(r"\s+# v\d+(\.\d+)*", comment), action


def test_compiled_templates_are_kept_checked_against_their_source_and_settings_and_optional(tmp_path, monkeypatch):
    """render.TemplateCache: a second environment loads a template compiled by the first instead of compiling
    it, with the same output; an edited template is compiled again, and so is one for an environment with
    other settings (trim_blocks here) sharing the directory; a cache that cannot be written is skipped."""
    from jinja2 import Environment, FileSystemLoader

    from generator.render import TemplateCache, environment, settings_key

    pages = environment()
    assert isinstance(pages.bytecode_cache, TemplateCache) and settings_key(pages) in pages.bytecode_cache.pattern
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "page.md.j2").write_text("{% if x %}\n{{ x }} and {{ x * 2 }}\n{% endif %}\n")

    def env(directory=tmp_path / "cache", **settings):
        e = Environment(loader=FileSystemLoader(tmp_path / "t"), **settings)
        e.bytecode_cache = TemplateCache(directory, settings_key(e))
        return e

    first = env().get_template("page.md.j2").render(x=3)
    assert first == "\n3 and 6\n" and len(list((tmp_path / "cache").iterdir())) == 1
    second = env()
    monkeypatch.setattr(second, "compile", lambda *a, **k: pytest.fail("compiled again despite the cache"))
    assert second.get_template("page.md.j2").render(x=3) == first
    assert env(trim_blocks=True).get_template("page.md.j2").render(x=3) == "3 and 6\n"  # not the first's code
    (tmp_path / "t" / "page.md.j2").write_text("{{ x }} or {{ x * 3 }}\n")
    assert env().get_template("page.md.j2").render(x=3) == "3 or 9"
    (tmp_path / "file").write_text("")
    assert env(tmp_path / "file" / "cache").get_template("page.md.j2").render(x=1) == "1 or 3"


def test_in_two_halves_does_every_item_and_raises_only_once_both_halves_stopped():
    """output.in_two_halves, which writes the docs tree in two threads: every item once; an error in either
    half is raised, and only after the other half has finished (no thread left writing)."""
    from generator.output import in_two_halves

    seen = []
    assert in_two_halves(list(range(101)), lambda i: seen.append(i) or i) == sum(range(101))
    assert sorted(seen) == list(range(101))
    done = []

    def work(i: int) -> int:
        if i in (0, 99):
            raise OSError(f"item {i}")
        time.sleep(0.002)
        done.append(i)
        return 1

    with pytest.raises(OSError, match="item 0"):
        in_two_halves(list(range(100)), work)
    assert sorted(done) == list(range(50, 99))  # the second half ran to its own error before this was raised
