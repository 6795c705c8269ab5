"""The published atlas itself (after `make site`): real MNIST, at least 98% test accuracy, JSON = weights.

Skipped until `make site` has built it; under CI (CI=true) `.ci/run` builds it first, and a missing
atlas fails instead of skipping.
"""

import os

import numpy as np
import pytest

from generator import atlas as atlas_mod
from generator.config import REPO, load_config
from generator.data import load_dataset
from generator.train import load_model

BUILD, SITE = REPO / "build", REPO / "site"
pytestmark = pytest.mark.skipif(not (BUILD / "atlas.json").is_file() and os.environ.get("CI") != "true",
                                reason="run `make site` first: these tests check the published atlas")


@pytest.fixture(scope="module")
def real():
    config = load_config(REPO / "atlas.toml")
    data = load_dataset(config.path(config.data.dir), config.data.sha256)
    return atlas_mod.load_atlas(BUILD / "atlas.json"), load_model(BUILD / "model.npz"), data


def test_the_default_network_is_accurate_and_the_json_matches_its_weights(real):
    atlas, model, data = real
    p = {k: v.astype(np.float64) for k, v in model.params.items()}
    X, y = data.test_images.astype(np.float64), data.test_labels
    assert len(y) == 10000 and len(data.train_labels) == 60000 and atlas.model.n_train == 60000
    A1 = 1 / (1 + np.exp(-(X @ p["W1"].T + p["b1"])))
    predicted = (A1 @ p["W2"].T + p["b2"]).argmax(axis=1)
    accuracy = (predicted == y).mean()
    assert accuracy >= 0.98, f"test accuracy {accuracy:.4f} is below the 98.0% the default config promises"
    assert atlas.model.test_accuracy == pytest.approx(accuracy, abs=1e-6)
    assert atlas.model.sizes == [784, 100, 10] and len(atlas.neurons) == 100
    for d in range(10):
        mine = y == d
        assert atlas.digits[d].accuracy == pytest.approx((predicted[mine] == d).mean(), abs=1e-6)
        means = A1[mine].mean(axis=0)
        np.testing.assert_allclose([n.mean_activation[d] for n in atlas.neurons], means, atol=1e-6)


def test_the_site_has_every_page_at_its_stable_url(real):
    atlas, _, _ = real
    assert (SITE / "index.html").is_file()
    for j in range(100):
        assert (SITE / "neurons" / f"{j:03d}" / "index.html").is_file()
    for d in range(10):
        assert (SITE / "digits" / str(d) / "index.html").is_file()
        assert (SITE / "mistakes" / str(d) / "index.html").is_file()
    assert (SITE / "tiny" / "index.html").is_file() and (SITE / "tiny" / "neurons" / "000" / "index.html").is_file()


def test_the_tiny_network_tells_0_from_1(real):
    tiny = atlas_mod.load_atlas(BUILD / "tiny" / "atlas.json")
    assert tiny.model.sizes == [784, 1, 2] and tiny.model.class_names == ["0", "1"]
    assert tiny.model.test_accuracy > 0.99 and tiny.model.n_test == 980 + 1135
