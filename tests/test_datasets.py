"""Other networks and datasets: imported weights, class subsets, Fashion-MNIST, sections, any hidden size."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from generator import atlas as atlas_mod
from generator.__main__ import main
from generator.config import REPO
from generator.data import load_dataset, select_classes
from generator.train import load_model

from .conftest import MNIST, TINY, tiny_overrides, write_dataset

FASHION = Path("/usr/share/datasets/fashion-mnist")


def body(page: str) -> str:
    """A page's Markdown after its YAML front matter (class pages carry a search boost there)."""
    return page.split("---\n", 2)[2] if page.startswith("---\n") else page


def sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def test_select_classes_equals_a_loop(tmp_path):
    data = load_dataset(write_dataset(tmp_path, n_train=90, n_classes=5))
    sub = select_classes(data, [3, 1])
    keep = [i for i, y in enumerate(data.train_labels) if y in (3, 1)]
    np.testing.assert_array_equal(sub.train_images, data.train_images[keep])
    assert sub.train_labels.tolist() == [0 if data.train_labels[i] == 3 else 1 for i in keep]
    assert sub.n_classes == 2 and sub.class_names == ("3", "1")


def export_network2(model, path):
    p = model.params
    path.write_text(json.dumps({"sizes": [784, p["W1"].shape[0], 10], "cost": "CrossEntropyCost",
                                "weights": [p["W1"].tolist(), p["W2"].tolist()],
                                "biases": [p["b1"][:, None].tolist(), p["b2"][:, None].tolist()]}))
    return path


def test_an_imported_network2_json_gets_its_own_atlas(tiny_build, tmp_path):
    model = load_model(tiny_build / "build" / "model.npz")
    weights = export_network2(model, tmp_path / "nielsen.json")
    overrides = tiny_overrides(tmp_path)
    assert main(["build", "--weights", str(weights), *sets(overrides)]) == 0
    imported = load_model(tmp_path / "build" / "model.npz")
    for name in ("W1", "b1", "W2", "b2"):
        np.testing.assert_array_equal(imported.params[name], model.params[name])
    assert imported.history == [] and imported.snapshots == {}
    atlas = atlas_mod.load_atlas(tmp_path / "build" / "atlas.json")
    ours = atlas_mod.load_atlas(tiny_build / "build" / "atlas.json")
    assert atlas.model.source == "Nielsen network2 JSON (CrossEntropyCost) from nielsen.json"
    assert atlas.model.test_accuracy == ours.model.test_accuracy and atlas.neurons == ours.neurons
    home = (tmp_path / "build" / "docs" / "index.md").read_text()
    assert "imported, not trained here: Nielsen network2 JSON \\(CrossEntropyCost\\) from nielsen\\.json" in home
    assert "How it formed" not in (tmp_path / "build" / "docs" / "neurons" / "000.md").read_text()
    assert (tmp_path / "site" / "neurons" / "015" / "index.html").is_file()


def test_an_imported_network_that_does_not_fit_the_data_is_refused(tiny_build, tmp_path, capsys):
    model = load_model(tiny_build / "build" / "model.npz")
    np.savez(tmp_path / "net1.npz", weights_0=model.params["W1"][:, :700], biases_0=model.params["b1"],
             weights_1=model.params["W2"], biases_1=model.params["b2"])
    assert main(["train", "--weights", str(tmp_path / "net1.npz"), *sets(tiny_overrides(tmp_path))]) == 6
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "net1.npz: the network takes 700 inputs, the data has 784 pixels" in err
    assert not (tmp_path / "build" / "model.npz").exists()


def test_a_class_subset_with_names(tmp_path):
    overrides = [*tiny_overrides(tmp_path), "data.classes=[7, 1]", "data.class_names=['seven', 'one']",
                 "data.noun='class'", "network.hidden=3", "analysis.top_k=2"]
    assert main(["build", *sets(overrides)]) == 0
    atlas = atlas_mod.load_atlas(tmp_path / "build" / "atlas.json")
    data = load_dataset(MNIST, None, 3000, 600)
    assert atlas.model.sizes == [784, 3, 2] and atlas.model.class_names == ["seven", "one"]
    assert [d.count for d in atlas.digits] == [(data.test_labels == 7).sum(), (data.test_labels == 1).sum()]
    assert atlas.model.n_test == ((data.test_labels == 7) | (data.test_labels == 1)).sum()
    page = (tmp_path / "build" / "docs" / "classes" / "0.md").read_text()
    assert body(page).startswith("# Class seven") and "test images of seven" in page
    assert (tmp_path / "site" / "classes" / "1" / "index.html").is_file()


def test_a_section_is_published_inside_the_main_site(tmp_path):
    section = tmp_path / "tiny.toml"
    section.write_text(f"""[data]\ndir = "{MNIST}"\nclasses = [0, 1]\ntrain_limit = 2000\ntest_limit = 500
[network]\nhidden = 1\n[train]\nepochs = 2\n[analysis]\ntop_k = 1
[site]\ntitle = "One neuron"\nsection = "tiny"\nbuild_dir = "{tmp_path / 'tiny-build'}"\nsite_dir = "{tmp_path / 'tiny-site'}"
""")
    overrides = [*tiny_overrides(tmp_path), f"site.sections=['{section}']"]
    assert main(["build", *sets(overrides)]) == 0
    site = tmp_path / "site"
    assert (site / "index.html").is_file() and (site / "tiny" / "index.html").is_file()
    assert (site / "tiny" / "neurons" / "000" / "index.html").is_file()
    assert (site / "tiny" / "digits" / "1" / "index.html").is_file()
    home = (tmp_path / "build" / "docs" / "tiny" / "index.md").read_text()
    tiny = atlas_mod.load_atlas(tmp_path / "tiny-build" / "atlas.json")
    n = tiny.neurons[0]
    assert "## One neuron is enough" in home and f"correctly on **{100 * tiny.model.test_accuracy:.2f}%**" in home
    assert f"Its mean activation is {n.mean_activation[0]:.3f} on" in home
    assert (f"[One neuron](tiny/index.md): a 784→1→2 network, {100 * tiny.model.test_accuracy:.2f}% test accuracy"
            in (tmp_path / "build" / "docs" / "index.md").read_text())


@pytest.mark.skipif(not FASHION.is_dir() and os.environ.get("CI") != "true",
                    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_preset_builds(tmp_path):
    overrides = [*TINY, f"site.build_dir='{tmp_path / 'build'}'", f"site.site_dir='{tmp_path / 'site'}'"]
    assert main(["build", "--config", str(REPO / "configs" / "fashion-mnist.toml"), *sets(overrides)]) == 0
    atlas = atlas_mod.load_atlas(tmp_path / "build" / "atlas.json")
    assert atlas.model.noun == "class" and atlas.model.class_names[9] == "Ankle boot"
    assert atlas.model.test_accuracy > 0.6  # 16 neurons, 2 epochs on 3,000 images; chance is 0.1
    page = (tmp_path / "build" / "docs" / "classes" / "0.md").read_text()
    assert body(page).startswith("# Class T\\-shirt/top")
    html = (tmp_path / "site" / "classes" / "0" / "index.html").read_text()
    assert "Class T-shirt/top" in html and (tmp_path / "site" / "classes" / "9" / "index.html").is_file()


def test_a_thousand_hidden_neurons(tmp_path):
    overrides = [*tiny_overrides(tmp_path), "network.hidden=1000", "data.train_limit=500", "data.test_limit=200",
                 "train.epochs=1"]
    assert main(["build", *sets(overrides)]) == 0
    site = tmp_path / "site" / "neurons"
    pages = sorted(p.name for p in site.iterdir() if (p / "index.html").is_file())
    assert pages == [f"{j:03d}" for j in range(1000)]
    assert "10×10" not in (tmp_path / "build" / "docs" / "index.md").read_text()
    assert "32×32 grid" in (tmp_path / "build" / "docs" / "index.md").read_text()
