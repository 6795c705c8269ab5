"""Importing networks trained elsewhere: each format, and each way a file can be wrong."""

import json

import numpy as np
import pytest

from generator.errors import WeightsError
from generator.weights import check_shapes, import_network


def network(rng, sizes=(12, 5, 3)):
    d, h, k = sizes
    return [rng.standard_normal((h, d)), rng.standard_normal((k, h))], [rng.standard_normal((h, 1)),
                                                                          rng.standard_normal((k, 1))]


def network2_json(path, weights, biases, sizes=None, cost="CrossEntropyCost"):
    data = {"sizes": sizes or [weights[0].shape[1], weights[0].shape[0], weights[1].shape[0]],
            "weights": [w.tolist() for w in weights], "biases": [b.tolist() for b in biases], "cost": cost}
    path.write_text(json.dumps(data))
    return path


def test_network2_json_as_nielsen_saves_it(tmp_path):
    weights, biases = network(np.random.default_rng(0))
    got = import_network(network2_json(tmp_path / "net.json", weights, biases))
    np.testing.assert_array_equal(got.params["W1"], weights[0].astype(np.float32))
    np.testing.assert_array_equal(got.params["b1"], biases[0][:, 0].astype(np.float32))
    np.testing.assert_array_equal(got.params["W2"], weights[1].astype(np.float32))
    assert got.params["b2"].shape == (3,) and all(p.dtype == np.float32 for p in got.params.values())
    assert "network2" in got.source and "net.json" in got.source and len(got.sha256) == 64


def test_network1_npz_and_model_npz(tmp_path):
    weights, biases = network(np.random.default_rng(1))
    np.savez(tmp_path / "net1.npz", weights_0=weights[0], biases_0=biases[0], weights_1=weights[1], biases_1=biases[1])
    a = import_network(tmp_path / "net1.npz")
    np.savez(tmp_path / "model.npz", W1=weights[0], b1=biases[0][:, 0], W2=weights[1], b2=biases[1][:, 0])
    b = import_network(tmp_path / "model.npz")
    for name in ("W1", "b1", "W2", "b2"):
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert "network1" in a.source and "model.npz" in b.source


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.update(sizes=[12, 5, 4, 3]), ["'weights' has 2 layer(s)", "'sizes' [12, 5, 4, 3] needs 3 of each"]),
    (lambda d: d.update(sizes=[12, 3]), ["'sizes' is [12, 3]", "no hidden layer"]),
    (lambda d: d.update(cost="HingeCost"), ["unknown 'cost'", "HingeCost"]),
    (lambda d: d.pop("biases"), ["missing field 'biases'"]),
    (lambda d: d["weights"][1].pop(), ["'weights[1]'", "(2, 5)", "needs (3, 5)"]),
    (lambda d: d["weights"][0][0].__setitem__(0, float("nan")), ["'weights[0]'", "NaN or Inf"]),
    (lambda d: d["weights"][0][1].pop(), ["'weights[0]'", "rectangular"]),
    (lambda d: d["biases"][0].pop(), ["'biases[0]'", "4 values, expected 5"]),
    (lambda d: d.update(weights=d["weights"] + d["weights"][:1]), ["3 layer(s)", "needs 2 of each"]),
])
def test_bad_network2_files_name_the_field(tmp_path, mutate, words):
    weights, biases = network(np.random.default_rng(2))
    data = {"sizes": [12, 5, 3], "weights": [w.tolist() for w in weights], "biases": [b.tolist() for b in biases],
            "cost": "CrossEntropyCost"}
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data, allow_nan=True))
    with pytest.raises(WeightsError) as e:
        import_network(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    for w in words:
        assert w in message


def test_bad_npz_files(tmp_path):
    np.savez(tmp_path / "pickled.npz", W1=np.array([object()], dtype=object), b1=[1], W2=[[1]], b2=[1])
    with pytest.raises(WeightsError, match="pickle"):
        import_network(tmp_path / "pickled.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(WeightsError, match="no arrays named W1"):
        import_network(tmp_path / "other.npz")
    np.savez(tmp_path / "gap.npz", weights_0=np.zeros((2, 3)), biases_0=np.zeros(2), weights_2=np.zeros((1, 2)),
             biases_2=np.zeros(1))
    with pytest.raises(WeightsError, match="not numbered 0, 1"):
        import_network(tmp_path / "gap.npz")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(WeightsError, match="not valid JSON"):
        import_network(tmp_path / "junk.json")
    with pytest.raises(WeightsError, match="not found"):
        import_network(tmp_path / "missing.json")


def test_shapes_are_checked_against_the_data(tmp_path):
    weights, biases = network(np.random.default_rng(3), sizes=(784, 4, 10))
    got = import_network(network2_json(tmp_path / "net.json", weights, biases))
    check_shapes(got, tmp_path / "net.json", 784, 10)
    with pytest.raises(WeightsError, match=r"784 inputs \(28x28 images\), the data has 1024"):
        check_shapes(got, tmp_path / "net.json", 1024, 10)
    with pytest.raises(WeightsError, match="10 outputs, the data has 2 classes"):
        check_shapes(got, tmp_path / "net.json", 784, 2)
