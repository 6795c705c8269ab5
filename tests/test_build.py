"""One tiny atlas of real MNIST built end to end; its pages and JSON against independent computations."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from generator import atlas as atlas_mod
from generator.__main__ import main
from generator.config import REPO, load_config
from generator.data import load_dataset
from generator.render import fixed, neuron_summaries, percent, points, signed
from generator.train import load_model

from .conftest import MNIST, tiny_overrides


@pytest.fixture(scope="module")
def built(tiny_build):
    atlas = atlas_mod.load_atlas(tiny_build / "build" / "atlas.json")
    model = load_model(tiny_build / "build" / "model.npz")
    config = load_config(REPO / "atlas.toml", tiny_overrides(tiny_build))
    data = load_dataset(MNIST, config.data.sha256, config.data.train_limit, config.data.test_limit)
    return tiny_build, atlas, model, data


def brute_force_activations(params, X):
    """Hidden and output activations one image and one neuron at a time."""
    H, K = params["W1"].shape[0], params["W2"].shape[0]
    A1, A2 = np.zeros((len(X), H)), np.zeros((len(X), K))
    for n, x in enumerate(X.astype(np.float64)):
        for j in range(H):
            A1[n, j] = 1 / (1 + np.exp(-(params["b1"][j] + np.dot(params["W1"][j].astype(np.float64), x))))
        for k in range(K):
            A2[n, k] = 1 / (1 + np.exp(-(params["b2"][k] + np.dot(params["W2"][k].astype(np.float64), A1[n]))))
    return A1, A2


def test_every_page_and_figure_is_built(built):
    root, atlas, _, _ = built
    site = root / "site"
    assert (site / "index.html").is_file() and (site / "neurons" / "index.html").is_file()
    for j in range(16):
        assert (site / "neurons" / f"{j:03d}" / "index.html").is_file()
        assert (site / "neurons" / f"{j:03d}" / "weights.png").read_bytes()[:4] == b"\x89PNG"
    for d in range(10):
        assert (site / "digits" / str(d) / "index.html").is_file()
        assert (site / "digits" / str(d) / "mean.png").is_file()
    assert not (site / "neurons" / "016").exists()
    html = (site / "index.html").read_text()
    assert "fonts.googleapis" not in html and "fonts.gstatic" not in html


def test_json_matches_the_model_and_a_brute_force_pass(built):
    _, atlas, model, data = built
    p = model.params
    A1, A2 = brute_force_activations(p, data.test_images)
    y = data.test_labels
    raw_differs = False
    assert atlas.model.sizes == [784, 16, 10] and atlas.model.n_test == 600
    assert atlas.model.test_accuracy == pytest.approx((A2.argmax(1) == y).mean(), abs=1e-6)
    for n in atlas.neurons:
        j = n.id
        np.testing.assert_array_equal(np.array(n.weights, np.float32).ravel(), p["W1"][j])  # exact round trip
        assert np.float32(n.bias) == p["b1"][j]
        np.testing.assert_array_equal(np.array(n.output_weights, np.float32), p["W2"][:, j])
        for d in range(10):
            mean = A1[y == d, j].mean()
            assert n.mean_activation[d] == pytest.approx(mean, abs=2e-6)
            assert n.contribution[d] == pytest.approx(p["W2"][d, j] * mean, abs=1e-5)
        assert n.fires_most_for == int(np.argmax([A1[y == d, j].mean() for d in range(10)]))
        assert n.weight_max_abs == pytest.approx(float(np.abs(p["W1"][j]).max()))
    for dg in atlas.digits:
        d = dg.digit
        assert dg.count == (y == d).sum()
        assert dg.accuracy == pytest.approx((A2[y == d].argmax(1) == d).mean(), abs=1e-6)
        effect = [(margin_drop(p, A1, y, j, d), j) for j in range(16)]
        best = [j for c, j in sorted(effect, key=lambda t: -t[0]) if c > 0][:3]
        worst = [j for c, j in sorted(effect, key=lambda t: t[0]) if c < 0][:3]
        assert [c.neuron for c in dg.top_contributors] == best
        assert [c.neuron for c in dg.top_suppressors] == worst
        raw = sorted(range(16), key=lambda j: -p["W2"][d, j] * A1[y == d, j].mean())[:3]
        raw_differs |= raw != best
        for c in dg.top_contributors + dg.top_suppressors:
            j = c.neuron
            assert c.effect == pytest.approx(margin_drop(p, A1, y, j, d), abs=2e-6)
            assert c.contribution == pytest.approx(p["W2"][d, j] * A1[y == d, j].mean(), abs=1e-5)
            assert c.discriminative == pytest.approx(p["W2"][d, j] * (A1[y == d, j].mean() - A1[:, j].mean()), abs=1e-5)
            assert c.accuracy_change == atlas.neurons[j].ablation[d]
        e = dg.example
        assert y[e.index] == d == e.label
        np.testing.assert_allclose(e.hidden_activation, A1[e.index], atol=2e-6)
        np.testing.assert_allclose(e.output, A2[e.index], atol=2e-6)
        assert e.predicted == A2[e.index].argmax()
        np.testing.assert_allclose(np.array(dg.mean_image).ravel(), data.test_images[y == d].mean(0), atol=1e-6)
    assert raw_differs, "the raw-contribution ranking equals the measured one here: the test would not see a swap"
    for dg in atlas.digits:  # each neuron lists exactly the digits whose top-k name it, with its rank
        for rank, c in enumerate(dg.top_contributors, 1):
            assert atlas_mod.Role(dg.digit, rank, c.contribution, c.effect) in atlas.neurons[c.neuron].top_contributor_of
    assert sum(len(n.top_contributor_of) for n in atlas.neurons) == sum(len(d.top_contributors) for d in atlas.digits)


def margin_drop(p, A1, y, j, d):
    """Mean over the test images of d of the drop of z_d - max_{k != d} z_k when a_j is pinned to its mean,
    one image at a time."""
    drops = []
    for n in np.flatnonzero(y == d):
        a = A1[n].copy()
        before = a @ p["W2"].T.astype(np.float64) + p["b2"]
        a[j] = A1[:, j].mean()
        after = a @ p["W2"].T.astype(np.float64) + p["b2"]
        drops.append((before[d] - np.delete(before, d).max()) - (after[d] - np.delete(after, d).max()))
    return float(np.mean(drops))


def table_after(markdown: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header line starts with `header`, as stripped cells."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:  # skip the header and the |---| line
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_neuron_pages_show_the_json_numbers(built):
    root, atlas, model, data = built
    A1, _ = brute_force_activations(model.params, data.test_images)
    y = data.test_labels
    arrays = atlas_mod.load_arrays(root / "build" / "arrays.npz")
    summaries = neuron_summaries(atlas, atlas.model.class_names)
    for n in atlas.neurons:
        md = (root / "build" / "docs" / "neurons" / f"{n.id:03d}.md").read_text()
        assert f"| Bias | {signed(n.bias)} |" in md
        table = table_after(md, "| digit | outgoing weight")
        assert len(table) == 10
        for d, row in enumerate(table):
            assert row[1:] == [signed(n.output_weights[d]), fixed(n.mean_activation[d]), signed(n.contribution[d]),
                               signed(n.discriminative[d]), signed(-n.effect[d]), points(n.ablation[d])]
        assert f"changes test accuracy by {points(n.ablation_overall)}" in md
        assert f"{percent(n.share_above, 1)} / {percent(n.share_below, 1)} of test images" in md
        captions = re.findall(r"<figcaption>(\d) · ([^<\s]+)", md)
        shown = n.top_images + n.bottom_images
        typical = [(str(dg.digit), fixed(dg.example.hidden_activation[n.id])) for dg in atlas.digits]
        assert captions == [(str(r.label), fixed(r.activation)) for r in shown] + typical + [
            (str(r.label), fixed(r.activation)) for r in n.top_images[:8]]
        assert summaries[n.id] in md
        a = A1[:, n.id]
        # its place in the 4 x 4 activation grids of the 16-neuron network, counted by hand
        assert f"neuron {n.id} of 16, row {n.id // 4 + 1}, column {n.id % 4 + 1} of the 4×4 grids" in md
        assert f"| Activation over the test images | mean {fixed(a.mean())}, standard deviation {fixed(a.std())} |" in md
        if n.top_images_sampled:
            counts = np.bincount(y[a >= 0.9995], minlength=10)
            listed = "".join(f"{c:,} of {k}, " for k, c in enumerate(counts) if c)
            assert f"**{counts.sum():,} test images saturate it** (activation ≥ 0.9995): {listed}so any 16" in md
        # every signed map prints its own scale: the largest |value| of the array it draws
        pattern = arrays["patterns"][n.id]
        assert f'pattern, own scale <span class="atlas-pm">±{fixed(np.abs(pattern).max())}</span>' in md
        w = np.array(n.weights)
        for dg in atlas.digits:
            product = np.abs(w * np.array(dg.example.image)).max()
            assert f'{fixed(dg.example.hidden_activation[n.id])}<br><span class="atlas-pm">±{fixed(product)}</span>' in md
        for r in n.top_contributor_of:
            assert f"rank {r.rank} of 3, margin change when pinned {signed(-r.effect)}" in md


def test_digit_pages_show_the_json_numbers(built):
    root, atlas, _, _ = built
    for dg in atlas.digits:
        md = (root / "build" / "docs" / "digits" / f"{dg.digit}.md").read_text()
        assert f"**{percent(dg.accuracy)}**" in md
        rows = [r for r in md.splitlines() if re.match(r"^\| \d \| \[!\[Weight map", r)]
        listed = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
        expected = [[str(rank), f"[neuron {c.neuron:03d}](../neurons/{c.neuron:03d}.md)", signed(-c.effect),
                     points(c.accuracy_change), signed(c.contribution), signed(c.discriminative)]
                    for group in (dg.top_contributors, dg.top_suppressors) for rank, c in enumerate(group, 1)]
        assert [[r[0], *r[2:]] for r in listed] == expected
        outputs = table_after(md, "| output unit |")
        assert [row[1] for row in outputs] == [fixed(o) for o in dg.example.output]
        assert [row[0] for row in outputs] == [f"[{k}](../digits/{k}.md)" for k in range(10)]


def test_model_card_shows_accuracy_and_settings(built):
    root, atlas, _, _ = built
    md = (root / "build" / "docs" / "index.md").read_text()
    assert f"**{percent(atlas.model.test_accuracy)}**" in md
    assert "784 inputs → 16 sigmoid hidden neurons → 10 sigmoid outputs" in md
    assert md.count("](neurons/0") >= 16


def test_rebuild_changes_no_byte(built, tmp_path):
    root, _, _, _ = built
    args = [a for o in tiny_overrides(root) for a in ("--set", o)]
    before = {p: p.read_bytes() for p in (root / "site").rglob("*") if p.is_file()}
    json_before = (root / "build" / "atlas.json").read_bytes()
    assert main(["analyze", *args]) == 0 and main(["render", *args]) == 0 and main(["site", *args]) == 0
    after = {p: p.read_bytes() for p in (root / "site").rglob("*") if p.is_file()}
    assert (root / "build" / "atlas.json").read_bytes() == json_before
    assert before.keys() == after.keys()
    assert [p for p in before if before[p] != after[p]] == []


def test_failed_mkdocs_build_keeps_the_old_site(built, tmp_path, capsys):
    root, _, _, _ = built
    args = [a for o in tiny_overrides(root) for a in ("--set", o)]
    before = {p: p.read_bytes() for p in (root / "site").rglob("*") if p.is_file()}
    broken = root / "build" / "docs" / "broken.md"
    broken.write_text("[a link to nowhere](nowhere.md)\n")  # --strict turns this warning into a failure
    try:
        assert main(["site", *args]) == 5
    finally:
        broken.unlink()
    err = capsys.readouterr().err
    assert err.startswith("error: mkdocs build failed") and err.count("\n") == 1
    after = {p: p.read_bytes() for p in (root / "site").rglob("*") if p.is_file()}
    assert before == after
    assert not list(root.glob(".site.new.*"))


def test_warnings_of_pages_converted_in_the_second_process_fail_the_build(built, tmp_path):
    """mkdocs_pages converts every other page in a forked child while mkdocs converts the rest: two pages
    in a row, each with a broken link, are one each. --strict must count the child's warning as mkdocs' own,
    and both must be shown; the log says the pages were split."""
    root, _, _, _ = built
    docs = root / "build" / "docs"
    pages = [docs / f"zz-broken-{i}.md" for i in (1, 2)]
    for i, page in enumerate(pages, 1):
        page.write_text(f"[a link to nowhere](nowhere-{i}.md)\n")
    try:
        result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--verbose", "--config-file",
                                 str(root / "build" / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                                capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    finally:
        for page in pages:
            page.unlink()
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if line.startswith("WARNING")]
    # every warning shown is counted (build/mkdocs.yml may add its own, e.g. from an earlier test's page)
    assert result.returncode == 1 and f"Aborted with {len(warnings)} warnings in strict mode" in output, warnings
    assert [w for w in warnings if "nowhere-1.md" in w] and [w for w in warnings if "nowhere-2.md" in w], warnings
    assert re.search(r"\d+ of \d+ pages read and converted in a second process", output)


def test_an_error_on_a_page_of_the_second_process_names_the_page_and_its_cause(tmp_path):
    """A page converted in mkdocs_pages' child raises an exception that cannot be pickled (its class lives in
    a hooks file): the build still fails with mkdocs' line naming the page, the exception's type and message,
    and the child's traceback, as it would without the split."""
    from generator.config import PACKAGE

    (tmp_path / "docs").mkdir()
    for name in ("index", "a", "b"):  # mkdocs' order: index.md, a.md, b.md; the child converts a.md
        (tmp_path / "docs" / f"{name}.md").write_text(f"# {name}\n")
    (tmp_path / "evil.py").write_text(
        "class TwoArgError(Exception):\n"
        "    def __init__(self, what, page):\n"
        "        super().__init__(what)\n"
        "        self.page = page\n\n\n"
        "def on_page_markdown(markdown, page, config, files):\n"
        "    if page.file.src_uri == 'a.md':\n"
        "        raise TwoArgError('boom on a', page)\n"
        "    return markdown\n")
    (tmp_path / "mkdocs.yml").write_text(
        f"site_name: t\ndocs_dir: docs\nuse_directory_urls: false\nplugins: []\n"  # (mkdocs' own search: not split)
        f"hooks: ['{PACKAGE / 'mkdocs_hooks.py'}', evil.py]\n")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--verbose", "--config-file",
                             str(tmp_path / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                            capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "Error reading page 'a.md'" in output and "TwoArgError: boom on a" in output, output[-3000:]
    assert "background process ended without a result" not in output
    assert "ChildTraceback" in output and "raise TwoArgError('boom on a', page)" in output  # the child's traceback


def test_cli_reports_a_bad_setting_in_one_line(tmp_path, capsys):
    assert main(["build", "--set", "train.epoch=3", "--set", f"site.build_dir='{tmp_path}'"]) == 2
    err = capsys.readouterr().err
    assert err == "error: defaults: unknown key 'train.epoch' (did you mean 'epochs'?)\n" or "train.epoch" in err
    assert err.count("\n") == 1 and not any(tmp_path.iterdir())


def test_neuron_statistics_equal_brute_force(built):
    root, atlas, model, data = built
    p = model.params
    A1, A2 = brute_force_activations(p, data.test_images)
    y, N = data.test_labels, len(data.test_labels)
    arrays = atlas_mod.load_arrays(root / "build" / "arrays.npz")
    base = [(A2[y == d].argmax(1) == d).mean() for d in range(10)]
    sampled = 0
    for n in atlas.neurons:
        j, a = n.id, A1[:, n.id]
        z = data.test_images.astype(np.float64) @ p["W1"][j].astype(np.float64) + float(p["b1"][j])
        order = sorted(range(N), key=lambda i: (-z[i], i))
        bottom_order = sorted(range(N), key=lambda i: (z[i], i))
        for refs, is_sample, tied, ranking, sign in ((n.top_images, n.top_images_sampled, a >= 0.9995, order, -1),
                                                     (n.bottom_images, n.bottom_images_sampled, a <= 0.0005,
                                                      bottom_order, 1)):
            if tied.sum() <= 16:
                assert not is_sample and [r.index for r in refs] == ranking[:16]
                continue
            sampled += 1  # a sample of the tied set: each class's share of 16 seats, its strongest images
            counts = np.bincount(y[tied], minlength=10)
            assert is_sample and len(refs) == 16
            shown = np.bincount([r.label for r in refs], minlength=10)
            assert all(abs(shown[c] - 16 * counts[c] / counts.sum()) < 1 for c in range(10))
            assert shown[np.argmax(counts)] >= 1
            for c in range(10):
                strongest = sorted(np.flatnonzero(tied & (y == c)), key=lambda i: (sign * z[i], i))[:shown[c]]
                assert sorted(r.index for r in refs if r.label == c) == sorted(strongest)
            assert [r.index for r in refs] == [i for i in ranking if i in {r.index for r in refs}]
        assert n.saturated == np.bincount(y[a >= 0.9995], minlength=10).tolist()
        for r in n.top_images + n.bottom_images:
            assert r.label == y[r.index] and r.activation == pytest.approx(a[r.index], abs=2e-6)
            assert r.pre_activation == pytest.approx(z[r.index], abs=2e-5)
        assert n.activation_std == pytest.approx(a.std(), abs=1e-6)
        assert n.effect == pytest.approx([margin_drop(p, A1, y, j, d) for d in range(10)], abs=2e-6)
        hist = np.zeros((10, 20), int)
        for i in range(N):
            hist[y[i], min(int(a[i] * 20), 19)] += 1
        assert np.array_equal(n.histogram, hist) and n.histogram_peak == hist.sum(0).max()
        assert n.share_above == pytest.approx(sum(v > 0.99 for v in a) / N, abs=1e-6)
        assert n.share_below == pytest.approx(sum(v < 0.01 for v in a) / N, abs=1e-6)
        # Ablation: rerun the output layer with a_j pinned to its mean over the test set.
        ablated = A1.copy()
        ablated[:, j] = a.mean()
        pred = (ablated @ p["W2"].T.astype(np.float64) + p["b2"]).argmax(1)
        for d in range(10):
            assert n.ablation[d] == pytest.approx((pred[y == d] == d).mean() - base[d], abs=1e-6)
        assert n.ablation_overall == pytest.approx((pred == y).mean() - (A2.argmax(1) == y).mean(), abs=1e-6)
        assert n.ablation_cost == pytest.approx(max(0.0, -min(n.ablation)), abs=1e-9)
        # Similar neurons: np.corrcoef, independently of the analysis code.
        rw = np.corrcoef(p["W1"].astype(np.float64))[j]
        want = sorted((i for i in range(16) if i != j), key=lambda i: -rw[i])[:5]
        assert [s.neuron for s in n.similar_by_weights] == want
        ra = np.corrcoef(A1.T)[j]
        for s in n.similar_by_activation:
            assert s.correlation == pytest.approx(ra[s.neuron], abs=1e-6)
        assert [s.neuron for s in n.similar_by_activation] == sorted((i for i in range(16) if i != j),
                                                                      key=lambda i: -ra[i])[:5]
        top = order[:atlas.model.pattern_images]
        pattern = data.test_images[top].mean(0) - data.test_images.mean(0)
        np.testing.assert_allclose(arrays["patterns"][j].ravel(), pattern, atol=1e-5)
    assert sampled, "no neuron of the tiny atlas saturates: the sampling went untested"
    for s, e in enumerate(atlas.model.snapshot_epochs):
        assert arrays["snapshots"][s].reshape(16, 784).tobytes() == model.snapshots[e].tobytes()
    assert atlas.model.snapshot_epochs == [0, 1, 2]
    for i, pixels in zip(arrays["image_indices"], arrays["images"]):
        assert np.array_equal(pixels.ravel(), np.round(data.test_images[i] * 255).astype(np.uint8))


def test_digit_decisions_equal_brute_force(built):
    root, atlas, model, data = built
    p = {k: v.astype(np.float64) for k, v in model.params.items()}
    A1, A2 = brute_force_activations(model.params, data.test_images)
    y, X = data.test_labels, data.test_images.astype(np.float64)
    pred = A2.argmax(1)
    arrays = atlas_mod.load_arrays(root / "build" / "arrays.npz")
    confusion = np.zeros((10, 10), int)
    for t, c in zip(y, pred):
        confusion[t, c] += 1
    assert atlas.confusion == confusion.tolist()
    fill = A1.mean(0)

    def accuracy_pinned(neurons, d):
        pinned = A1.copy()
        pinned[:, neurons] = fill[neurons]
        return ((pinned @ p["W2"].T + p["b2"]).argmax(1)[y == d] == d).mean()

    def margin_change(neurons, d):
        pinned = A1.copy()
        pinned[:, neurons] = fill[neurons]
        changes = []
        for before, after in zip((A1 @ p["W2"].T + p["b2"])[y == d], (pinned @ p["W2"].T + p["b2"])[y == d]):
            changes.append((after[d] - np.delete(after, d).max()) - (before[d] - np.delete(before, d).max()))
        return np.mean(changes)

    def logit(x, d):
        return (1 / (1 + np.exp(-(x @ p["W1"].T + p["b1"])))) @ p["W2"][d] + p["b2"][d]

    rng = np.random.default_rng(0)
    for dg in atlas.digits:
        d = dg.digit
        assert dg.ablate_top == pytest.approx(accuracy_pinned([c.neuron for c in dg.top_contributors], d), abs=1e-6)
        assert dg.ablate_suppressors == pytest.approx(accuracy_pinned([c.neuron for c in dg.top_suppressors], d), abs=1e-6)
        top = [c.neuron for c in dg.top_contributors]
        assert dg.margin_top == pytest.approx(margin_change(top, d), abs=1e-6)
        assert dg.margin_suppressors == pytest.approx(margin_change([c.neuron for c in dg.top_suppressors], d), abs=1e-6)
        # The random baseline: the same draws, re-evaluated here from outside the top k.
        draw = np.random.default_rng([atlas.model.seed, 5, d])
        outside = [j for j in range(16) if j not in top]
        sets = [sorted(draw.choice(outside, size=len(top), replace=False).tolist()) for _ in range(atlas.model.random_draws)]
        b = dg.random_baseline
        assert b.draws == atlas.model.random_draws == 200 and b.pool == 16 - len(top)
        changes = [margin_change(s, d) for s in sets]
        assert [b.margin_low, b.margin_median, b.margin_high] == pytest.approx(np.percentile(changes, [5, 50, 95]), abs=1e-6)
        accuracies = [accuracy_pinned(s, d) for s in sets]
        assert [b.accuracy_low, b.accuracy_median, b.accuracy_high] == pytest.approx(
            np.percentile(accuracies, [5, 50, 95]), abs=1e-6)
        assert dg.ablate_random == b.accuracy_median
        assert b.top_outside == (dg.margin_top < b.margin_low)
        assert [(c.digit, c.count) for c in dg.mistaken_for] == sorted(
            ((c, confusion[d, c]) for c in range(10) if c != d and confusion[d, c]), key=lambda t: (-t[1], t[0]))
        assert [(c.digit, c.count) for c in dg.mistaken_as] == sorted(
            ((c, confusion[c, d]) for c in range(10) if c != d and confusion[c, d]), key=lambda t: (-t[1], t[0]))
        both = [confusion[d, c] + confusion[c, d] if c != d else -1 for c in range(10)]
        r = dg.rival
        assert both[r] == max(both)
        pair = (y == d) | (y == r)
        scores = [(p["W2"][d, j] - p["W2"][r, j]) * (A1[y == d, j].mean() - A1[y == r, j].mean()) for j in range(16)]
        assert [s.neuron for s in dg.toward] == [j for j in sorted(range(16), key=lambda j: -scores[j]) if scores[j] > 0][:3]
        for s in dg.toward + dg.away:
            assert s.score == pytest.approx(scores[s.neuron], abs=1e-6)
        wrong = [i for i in range(len(y)) if y[i] == d and pred[i] != d]
        assert [m.index for m in dg.mistakes] == wrong
        for m in dg.mistakes:
            c = pred[m.index]
            assert m.predicted == c and m.output_predicted == pytest.approx(A2[m.index, c], abs=1e-6)
            net = [(p["W2"][c, j] - p["W2"][d, j]) * A1[m.index, j] for j in range(16)]
            assert [q.neuron for q in m.pushes] == [j for j in sorted(range(16), key=lambda j: -net[j]) if net[j] > 0][:5]
            for q in m.pushes:
                assert q.to_true == pytest.approx(p["W2"][d, q.neuron] * A1[m.index, q.neuron], abs=1e-6)
                assert q.to_predicted == pytest.approx(p["W2"][c, q.neuron] * A1[m.index, q.neuron], abs=1e-6)
                assert q.to_true < q.to_predicted  # no neuron is blamed that pushed the true digit as hard
            z = A1[m.index] @ p["W2"].T + p["b2"]
            assert m.logit_gap == pytest.approx(z[c] - z[d], abs=1e-6) and m.logit_gap > 0
            assert m.bias_gap == pytest.approx(p["b2"][c] - p["b2"][d], abs=1e-6)
            np.testing.assert_allclose(m.hidden_activation, A1[m.index], atol=2e-6)
            np.testing.assert_allclose(m.output, A2[m.index], atol=2e-6)
        # Contrast map and template: finite-difference slopes of the logits, averaged over the images.
        eps = 1e-5
        for i in rng.choice(784, 4, replace=False):
            e = np.zeros(784)
            e[i] = eps
            slope = ((logit(X[pair] + e, d) - logit(X[pair] + e, r)) - (logit(X[pair] - e, d) - logit(X[pair] - e, r)))
            assert arrays["contrasts"][d].ravel()[i] == pytest.approx(slope.mean() / (2 * eps), rel=1e-4, abs=1e-6)
            slope = (logit(X + e, d) - logit(X - e, d)) / (2 * eps)
            assert arrays["templates"][d].ravel()[i] == pytest.approx(slope.mean(), rel=1e-4, abs=1e-6)
        x = X[dg.example.index]
        assert dg.example_logit == pytest.approx(logit(x, d), abs=1e-6)
        assert dg.baseline_logit == pytest.approx(logit(np.zeros(784), d), abs=1e-6)
        assert arrays["integrated_gradients"][d].sum() == pytest.approx(dg.example_logit - dg.baseline_logit, rel=1e-3)
        assert dg.example_ig_sum == pytest.approx(dg.example_logit - dg.baseline_logit, rel=1e-3)
        grad = np.array([(logit(x + ei, d) - logit(x - ei, d)) / (2 * eps) for ei in np.eye(784)[:100] * eps])
        np.testing.assert_allclose(arrays["gradient_x_input"][d].ravel()[:100], grad * x[:100], atol=1e-5)
        preferred = arrays["preferred"][d].ravel().astype(np.float64)
        assert preferred.min() >= 0 and preferred.max() <= 1
        assert dg.preferred_logit == pytest.approx(logit(preferred, d), abs=1e-3)
        assert dg.preferred_logit > dg.start_logit == pytest.approx(logit(X.mean(0), d), abs=1e-6)
        assert dg.median_logit == pytest.approx(np.median([logit(x, d) for x in X[y == d]]), abs=1e-6)
        assert dg.preferred_logit >= dg.median_logit  # as strong as a typical test image of the digit


def test_digit_and_mistake_pages_show_the_json_numbers(built):
    root, atlas, _, _ = built
    docs = root / "build" / "docs"
    for dg in atlas.digits:
        md = (docs / "digits" / f"{dg.digit}.md").read_text()
        rows = table_after(md, "| neurons pinned |")
        b = dg.random_baseline
        assert [r[1:] for r in rows] == [
            [f"{fixed(dg.margin)} (mean margin)", percent(dg.accuracy), ""],
            [signed(dg.margin_top), percent(dg.ablate_top), points(dg.ablate_top - dg.accuracy)],
            [f"{signed(b.margin_low)} to {signed(b.margin_high)} ({signed(b.margin_median)})",
             f"{percent(b.accuracy_low)} to {percent(b.accuracy_high)} ({percent(b.accuracy_median)})",
             points(dg.ablate_random - dg.accuracy)],
            [signed(dg.margin_suppressors), percent(dg.ablate_suppressors), points(dg.ablate_suppressors - dg.accuracy)]]
        verdict = "they matter more than chance" if b.top_outside else "lie inside the random range"
        assert verdict in md
        check_grid(md.split('id="fig-hidden-mean"')[1], [n.mean_activation[dg.digit] for n in atlas.neurons],
                   [c.neuron for c in dg.top_contributors])
        check_grid(md.split('id="fig-example-hidden"')[1], dg.example.hidden_activation,
                   [c.neuron for c in dg.top_contributors])
        assert f"strongest rival, counting both directions, is **[{dg.rival}]" in md
        assert (f"to {signed(dg.preferred_logit, 2)}, against a median of\n{signed(dg.median_logit, 2)} over the real "
                f"test images of {dg.digit}") in md
        assert f"(pull to the mean\n{dg.preferred_penalty}, smoothness {dg.preferred_smoothness})" in md
        assert f"adds up to\n{signed(dg.example_ig_sum)}" in md or f"add up to\n{signed(dg.example_ig_sum)}" in md
        assert md.count("<figcaption>→ ") == len(dg.mistakes)
        mistakes = (docs / "mistakes" / f"{dg.digit}.md").read_text()
        for m in dg.mistakes:
            section = mistakes.split(f"{{ #test-{m.index:05d} }}", 1)[1]
            assert f"Output {m.predicted}: {fixed(m.output_predicted)}, output {dg.digit}: {fixed(m.output_true)};" in section
            assert f"= {signed(m.logit_gap)}, of which the output biases give {signed(m.bias_gap)}." in section
            table = table_after(section, "| neuron | activation |")
            assert [r[1:] for r in table] == [[fixed(q.activation), signed(q.to_predicted), signed(q.to_true),
                                               signed(q.net)] for q in m.pushes]
            assert "All outputs: " + " · ".join(f"{k} {fixed(o)}" for k, o in enumerate(m.output)) in section
            check_grid(section, m.hidden_activation, [q.neuron for q in m.pushes])
    overview = (docs / "digits" / "index.md").read_text()
    table = table_after(overview, "| true ↓ called →")
    for d, row in enumerate(table):
        for c, cell in enumerate(row[1:]):
            n = atlas.confusion[d][c]
            assert cell == (f"**{n:,}**" if c == d else f"[{n}](../mistakes/{d}.md#predicted-{c})" if n else "·")


def check_grid(markdown: str, values, outlined):
    """The first activation grid in `markdown`: one link per neuron to its page, its value on hover, its
    viridis colour (matplotlib's, independently of figures.py) and the outline on exactly `outlined`."""
    import matplotlib

    grid = markdown[markdown.index(' class="atlas-act" '):]
    cells = re.findall(r'^<a href="(?:\.\./)+neurons/(\d{3})/index\.html" title="neuron (\d{3}): (\S+)" '
                       r'style="background: (#[0-9a-f]{6})"( class="atlas-top")?>(\d{3})</a>$', grid.split("</div>")[0], re.M)
    assert len(cells) == len(values)
    for j, (a, b, value, colour, top, c) in enumerate(cells):
        assert int(a) == int(b) == int(c) == j and value == fixed(values[j])
        assert colour == matplotlib.colors.to_hex(matplotlib.colormaps["viridis"](min(max(values[j], 0), 1)))
        assert bool(top) == (j in outlined)


def test_overview_tables_show_the_json_numbers(built):
    root, atlas, model, data = built
    docs = root / "build" / "docs"
    rows = table_after((docs / "neurons" / "index.md").read_text(), "| neuron | weights | shared scale | summary")
    assert len(rows) == len(atlas.neurons)
    summaries = neuron_summaries(atlas, atlas.model.class_names)
    # Fires most for: the class with the largest mean activation, from a NumPy forward pass of the test images.
    X, y = data.test_images.astype(np.float64), data.test_labels
    A1 = 1 / (1 + np.exp(-(X @ model.params["W1"].astype(np.float64).T + model.params["b1"].astype(np.float64))))
    class_means = np.array([A1[y == d].mean(0) for d in range(10)])  # (10, H)
    for n, row in zip(atlas.neurons, rows):
        flagged = f" ({n.flag})" if n.flag in ("near-constant", "dead") else ""
        assert row[0] == f"[neuron {n.id:03d}](../neurons/{n.id:03d}.md){flagged}" and row[3] == summaries[n.id]
        max_w = float(np.abs(model.params["W1"][n.id].astype(np.float64)).max())
        assert "weights.png" in row[1] and row[1].endswith(f"<br>±{max_w:.3f}") and "weights-shared.png" in row[2]
        top = int(np.argmax(class_means[:, n.id]))
        assert row[4] == f"[{top}](../digits/{top}.md) ({class_means[top, n.id]:.2f})"
        assert row[6:] == [f"{fixed(max(n.effect))} on {int(np.argmax(n.effect))}",
                           f"{100 * n.ablation_cost:.2f} on {n.ablation_cost_digit}", percent(n.share_above, 1),
                           percent(n.share_below, 1), n.flag]
    rows = table_after((docs / "digits" / "index.md").read_text(), "| digit | mean image")
    assert [(r[2], r[3]) for r in rows] == [(f"{d.count:,}", percent(d.accuracy)) for d in atlas.digits]
    rows = table_after((docs / "mistakes" / "index.md").read_text(), "| digit | misclassified")
    assert [r[1] for r in rows] == [f"{len(d.mistakes)} of {d.count:,}" for d in atlas.digits]
    home = (docs / "index.md").read_text()
    card = dict(r[:2] for r in table_after(home, "| property | value |"))
    assert card["Training time"] == f"{sum(h.seconds for h in model.history):.1f} s"
    assert card["Seed"] == "1" and card["Test accuracy"] == f"**{percent(atlas.model.test_accuracy)}**"
    assert card["Training"].startswith(f"{len(model.history)} epochs of mini-batch SGD, batch 10")


def test_stage_times_are_recorded(built):
    root, atlas, model, _ = built
    times = json.loads((root / "build" / "timings.json").read_text())
    assert list(times) == ["data (train)", "train", "data (analyze)", "analyze", "render", "site"]
    assert all(t >= 0 for t in times.values()) and times["train"] >= times["data (train)"]
    assert times["train"] >= sum(h.seconds for h in model.history)  # the stage includes its epochs
