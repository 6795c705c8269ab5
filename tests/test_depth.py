"""A [784, 30, 30, 10] network2 JSON, fitted with NumPy, imported and built end to end: its 30 + 30 unit pages
at neurons/NNN/ and layers/2/neurons/NNN/, and every new number held to an independent computation
(loops over units and images, finite differences, NumPy written out again)."""

import json

import numpy as np
import pytest

from generator import atlas as atlas_mod
from generator import network, units
from generator.__main__ import main
from generator.data import load_dataset
from generator.train import load_model

from . import deep_net
from .conftest import MNIST
from .test_browser import browser, served  # noqa: F401  (fixtures)

TEST_LIMIT = 1000


@pytest.fixture(scope="module")
def deep_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("deep")
    data = load_dataset(MNIST, None, 5000, TEST_LIMIT)
    net = deep_net.fit([784, 30, 30, 10], data.train_images, data.train_labels, epochs=2, seed=3)
    (root / "deep.json").write_text(json.dumps(net))
    overrides = [f"data.test_limit={TEST_LIMIT}", f"site.build_dir='{root / 'build'}'",
                 f"site.site_dir='{root / 'site'}'", "site.sections=[]", "analysis.top_k=3"]
    args = ["build", "--weights", str(root / "deep.json")]
    for o in overrides:
        args += ["--set", o]
    assert main(args) == 0
    atlas = atlas_mod.load_atlas(root / "build" / "atlas.json")
    model = load_model(root / "build" / "model.npz")
    arrays = atlas_mod.load_arrays(root / "build" / "arrays.npz")
    return root, net, atlas, model, data, arrays


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def loops_forward(p, x):
    """One image through the network, unit by unit: the hidden layers' pre-activations and the logits."""
    zs, a = [], np.asarray(x, np.float64)
    L = network.depth(p)
    for i in range(1, L + 2):
        W, b = p[f"W{i}"].astype(np.float64), p[f"b{i}"].astype(np.float64)
        z = np.array([sum(W[j, k] * a[k] for k in range(len(a))) + b[j] for j in range(len(b))])
        zs.append(z)
        a = sigmoid(z)
    return zs


def test_thirty_plus_thirty_unit_pages_at_their_addresses(deep_build):
    root, _, atlas, _, _, _ = deep_build
    site = root / "site"
    for j in range(30):
        assert (site / "neurons" / f"{j:03d}" / "index.html").is_file()
        assert (site / "layers" / "2" / "neurons" / f"{j:03d}" / "index.html").is_file()
        assert (site / "layers" / "2" / "neurons" / f"{j:03d}" / "weights.png").read_bytes()[:4] == b"\x89PNG"
    assert not (site / "neurons" / "030").exists() and not (site / "layers" / "2" / "neurons" / "030").exists()
    assert not (site / "layers" / "3").exists()
    for layer in (1, 2):
        html = (site / "layers" / str(layer) / "index.html").read_text()
        assert f"Hidden layer {layer}" in html
    assert [len(layer.units) for layer in atlas.layers] == [30, 30]
    assert atlas.model.sizes == [784, 30, 30, 10] and atlas.format == 3
    # the class pages link the last layer's units, and list every layer's top units
    digit = (root / "build" / "docs" / "digits" / "3.md").read_text()
    assert "## Every hidden layer" in digit and "../layers/2/neurons/" in digit and "](../neurons/0" in digit
    unit_json = json.loads((root / "build" / "docs" / "layers" / "2" / "neurons" / "007.json").read_text())
    assert unit_json["unit"]["layer"] == 2 and unit_json["unit"]["id"] == 7
    assert unit_json["page"] == "layers/2/neurons/007/"


def test_accuracy_is_the_independent_evaluation(deep_build):
    _, net, atlas, model, data, _ = deep_build
    assert atlas.model.test_accuracy == round(deep_net.accuracy(net, data.test_images, data.test_labels), 6)
    for i in range(3):  # the weights are the file's, as float32
        np.testing.assert_array_equal(model.params[f"W{i + 1}"], np.array(net["weights"][i], np.float32))


def test_first_layer_effective_maps_are_the_weights(deep_build):
    _, _, atlas, model, data, _ = deep_build
    W1 = model.params["W1"]
    for u in atlas.layers[0].units:
        assert np.array_equal(np.array(u.effective_map, np.float32).ravel(), W1[u.id])
        assert np.float32(u.effective_max_abs) == np.abs(W1[u.id]).max()  # its shortest float32 form
    p64 = network.as64(model.params)
    assert np.array_equal(units.effective_maps(p64, data.test_images[:5], 1, "sigmoid"), W1.astype(np.float64))
    assert np.array_equal(network.unit_input_gradients(p64, data.test_images[:5], 1, "sigmoid") / 5,
                          W1.astype(np.float64))


def test_second_layer_effective_maps_against_loops_and_finite_differences(deep_build):
    _, _, atlas, model, data, _ = deep_build
    p = network.as64(model.params)
    X = data.test_images.astype(np.float64)
    W1, W2, b1 = p["W1"], p["W2"], p["b1"]
    j = 4
    total = np.zeros(784)
    for x in X:  # chain rule written out: dz2_j/dx = sum_k W2[j, k] s'(z1_k) W1[k]
        a1 = sigmoid(W1 @ x + b1)
        total += sum(W2[j, k] * a1[k] * (1 - a1[k]) * W1[k] for k in range(30))
    got = np.array(atlas.layers[1].units[j].effective_map, np.float64).ravel()
    np.testing.assert_allclose(got, (total / len(X)).astype(np.float32), rtol=1e-5, atol=1e-8)
    # one image, central differences of the pre-activation
    x, h = X[0], 1e-5
    z = lambda v: loops_forward(model.params, v)[1][j]  # noqa: E731
    fd = np.array([(z(x + h * e) - z(x - h * e)) / (2 * h) for e in np.eye(784)[::97]])
    np.testing.assert_allclose(network.unit_input_gradients(p, X[:1], 2, "sigmoid")[j][::97], fd, rtol=1e-4, atol=1e-7)


def test_pinning_a_first_layer_unit_against_a_brute_force_rerun(deep_build):
    _, _, atlas, model, data, _ = deep_build
    p = network.as64(model.params)
    X, y = data.test_images.astype(np.float64), data.test_labels
    A1 = sigmoid(X @ p["W1"].T + p["b1"])
    j = 11
    pinned = A1.copy()
    pinned[:, j] = A1[:, j].mean()

    def logits(a1):
        return sigmoid(a1 @ p["W2"].T + p["b2"]) @ p["W3"].T + p["b3"]

    def margins(Z):
        return np.array([Z[n, y[n]] - max(Z[n, k] for k in range(10) if k != y[n]) for n in range(len(y))])

    Z0, Z1 = logits(A1), logits(pinned)
    drop = margins(Z0) - margins(Z1)
    u = atlas.layers[0].units[j]
    for d in range(10):
        mine = y == d
        assert u.effect[d] == pytest.approx(drop[mine].mean(), abs=2e-6)
        change = (Z1[mine].argmax(axis=1) == d).mean() - (Z0[mine].argmax(axis=1) == d).mean()
        assert u.ablation[d] == pytest.approx(change, abs=2e-6)
    # its shift of the next layer's units
    A2, A2p = sigmoid(A1 @ p["W2"].T + p["b2"]), sigmoid(pinned @ p["W2"].T + p["b2"])
    np.testing.assert_allclose(u.next_shift, np.abs(A2p - A2).mean(axis=0), atol=2e-6)
    np.testing.assert_array_equal(np.array(u.outgoing, np.float32), model.params["W2"][:, j])  # exact float32
    # the last layer's units: pinning them moves the logits only through W3, as for one hidden layer
    last = atlas.layers[1].units[2]
    assert last.effect == atlas.neurons[2].effect and last.next_shift == []
    np.testing.assert_array_equal(np.array(last.outgoing, np.float32), model.params["W3"][:, 2])


def test_every_layers_top_units_on_the_class_pages(deep_build):
    _, _, atlas, _, _, _ = deep_build
    for d in atlas.digits:
        assert [t.layer for t in d.layers] == [1, 2]
        for t in d.layers:
            effect = np.array([u.effect[d.digit] for u in atlas.layers[t.layer - 1].units])
            order = [int(j) for j in np.argsort(-effect, kind="stable")[:3] if effect[j] > 0]
            assert [s.neuron for s in t.top] == order
            assert [s.score for s in t.top] == [effect[j] for j in order]
        assert [c.neuron for c in d.top_contributors] == [s.neuron for s in d.layers[1].top]


def test_preferred_inputs_and_top_images(deep_build):
    _, _, atlas, model, data, arrays = deep_build
    X = data.test_images.astype(np.float64)
    for layer in (1, 2):
        u = atlas.layers[layer - 1].units[6]
        x = arrays["unit_preferred"][(layer - 1) * 30 + u.id].astype(np.float64).ravel()
        assert 0 <= x.min() and x.max() <= 1
        assert u.preferred_pre_activation == pytest.approx(loops_forward(model.params, x)[layer - 1][u.id], abs=1e-4)
        z = np.array([loops_forward(model.params, X[i])[layer - 1][u.id] for i in range(len(X))])
        assert u.top_pre_activation == pytest.approx(z.max(), abs=1e-6)
        if not u.top_images_sampled:
            expected = [int(i) for i in np.argsort(-z, kind="stable")[:16]]
            assert [r.index for r in u.top_images] == [int(data.test_ids[i]) for i in expected]
        # incoming weights, exact
        W = model.params[f"W{layer}"]
        assert np.array_equal(np.array(u.incoming, np.float32), W[u.id])
        assert u.mean_activation == pytest.approx(
            [sigmoid(z[data.test_labels == d]).mean() for d in range(10)], abs=1e-6)


def test_class_templates_of_a_deeper_network_are_mean_gradients(deep_build):
    _, _, atlas, model, data, arrays = deep_build
    p = network.as64(model.params)
    X = data.test_images.astype(np.float64)
    d = 7
    grads = network.input_gradient(p, X, np.eye(10)[d], "sigmoid")
    np.testing.assert_allclose(arrays["templates"][d].ravel(), grads.mean(axis=0), rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def site(deep_build):
    """The deeper atlas's site, for test_browser's fixtures (served, browser)."""
    return deep_build[0] / "site"


def test_the_probe_runs_every_layer_as_numpy_does(browser, served, deep_build):  # noqa: F811
    _, _, atlas, model, data, _ = deep_build
    manifest = json.loads((deep_build[0] / "site" / "probe" / "network.json").read_text())
    assert manifest["sizes"] == [784, 30, 30, 10] and tuple(manifest["parameters"]) == network.param_names(2)
    X = data.test_images.astype(np.float64)
    f = network.forward(model.params, X)
    page = browser.page()
    page.goto(served + "probe/#test=7&neuron=4", wait_until="load")
    page.evaluate("window.atlasProbe.ready")
    page.wait_for_function("document.querySelector('[data-probe]').dataset.ready === 'true'")
    picks = list(range(0, len(X), 20))
    got = page.evaluate("xs => xs.map(x => window.atlasProbe.forward(x))", X[picks].tolist())
    for layer in (0, 1):
        assert np.abs(np.array([g["layers"][layer] for g in got]) - f.acts[layer][picks]).max() < 1e-5
    assert np.abs(np.array([g["hidden"] for g in got]) - f.acts[1][picks]).max() < 1e-5
    assert np.abs(np.array([g["output"] for g in got]) - f.outputs[picks]).max() < 1e-5
    # each hidden layer's grid, coloured by this image's activations
    cells = page.eval_on_selector_all("[data-probe-layer='1']", "cs => cs.map(c => Number(c.dataset.activation))")
    np.testing.assert_allclose(cells, f.acts[0][7], atol=1e-9)
    last = page.eval_on_selector_all("[data-probe-unit]", "cs => cs.map(c => Number(c.dataset.activation))")
    np.testing.assert_allclose(last, f.acts[1][7], atol=1e-9)
    # one neuron of the last layer: the gradient of its pre-activation at this input, times the input
    p = network.as64(model.params)
    g = network.unit_gradients(p, np.tile(X[7], (30, 1)), 2, "sigmoid")[4]  # row u: unit u at its own image
    number = lambda s: float(page.text_content(s).replace("−", "-"))  # noqa: E731
    assert number("[data-probe-sum]") == pytest.approx(g @ X[7], abs=1e-3)
    assert number("[data-probe-z]") == pytest.approx(f.zs[1][7, 4], abs=1e-3)
    # gradient x input of the predicted logit, backpropagated through both layers
    c = int(f.predicted[7])
    gx = network.input_gradient(p, X[7:8], np.eye(10)[c], "sigmoid")[0] * X[7]
    assert number("[data-probe-gsum]") == pytest.approx(gx.sum(), rel=1e-2, abs=1e-3)
    page.close()
    assert browser.problems == [] and browser.elsewhere == []


def test_a_unit_page_and_its_layer_page_against_numpy(deep_build):
    root, _, atlas, model, data, _ = deep_build
    p = network.as64(model.params)
    X, y = data.test_images.astype(np.float64), data.test_labels
    A1 = sigmoid(X @ p["W1"].T + p["b1"])
    A2 = sigmoid(A1 @ p["W2"].T + p["b2"])
    j = 5
    page = (root / "build" / "docs" / "layers" / "2" / "neurons" / f"{j:03d}.md").read_text()

    def fmt(x, digits=3, sign=False):
        return (f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}").replace("-", "−")

    assert f"| Bias | {fmt(model.params['b2'][j], sign=True)} |" in page
    assert f"mean {fmt(A2[:, j].mean())}, standard deviation {fmt(A2[:, j].std())}" in page
    # the units it reads: the largest |W2[j, i]| first, with unit i's mean activation
    order = np.argsort(-np.abs(model.params["W2"][j]), kind="stable")[:8]
    rows = [f"| [unit {i:03d}](../../../neurons/{i:03d}.md) | {fmt(model.params['W2'][j, i], sign=True)} | "
            f"{fmt(A1[:, i].mean())} |" for i in order]
    assert "\n".join(rows) in page
    # what it does: each class's mean activation and margin change when pinned, and its output weight
    Z = A2 @ p["W3"].T + p["b3"]
    pinned = A2.copy()
    pinned[:, j] = A2[:, j].mean()
    Zp = pinned @ p["W3"].T + p["b3"]
    m = lambda Z: np.array([Z[n, y[n]] - np.delete(Z[n], y[n]).max() for n in range(len(y))])  # noqa: E731
    change = m(Zp) - m(Z)
    for d in range(10):
        assert (f"| [{d}](../../../digits/{d}.md) | {fmt(A2[y == d, j].mean())} | "
                f"{fmt(change[y == d].mean(), sign=True)} |") in page
        assert f"| {fmt(model.params['W3'][d, j], sign=True)} |" in page
    # similar units by activation: Pearson correlation over the test images, highest first
    r = np.corrcoef(A2.T)[j]
    r[j] = -np.inf
    best = np.argsort(-r, kind="stable")[:5]
    assert " · ".join(f"[unit {i:03d}](../../../layers/2/neurons/{i:03d}.md) ({fmt(r[i], sign=True)})"
                      for i in best) in page
    # the layer page's table: the class each unit fires most for, with its mean
    layer_page = (root / "build" / "docs" / "layers" / "1" / "index.md").read_text()
    for i in (0, 17):
        means = [A1[y == d, i].mean() for d in range(10)]
        d = int(np.argmax(means))
        assert f"| [unit {i:03d}](../../neurons/{i:03d}.md) | {d} ({fmt(means[d])}) |" in layer_page
