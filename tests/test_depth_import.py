"""Networks of more than one hidden layer, in every format: the chain of any length is read, transposed
layouts and missing biases are handled as for one layer, and the model file round-trips any depth."""

import io
import json
import zipfile

import numpy as np
import pytest

from generator import network
from generator.errors import WeightsError
from generator.train import load_model, model_bytes
from generator.weights import fold_inputs, import_network


def deep(sizes=(6, 5, 4, 3), seed=0) -> dict[str, np.ndarray]:
    """A float32 network of the given sizes as PyTorch stores it: W{i} (out, in), b{i} (out,)."""
    rng = np.random.default_rng(seed)
    p = {}
    for i, (a, b) in enumerate(zip(sizes, sizes[1:]), start=1):
        p[f"W{i}"] = rng.standard_normal((b, a)).astype(np.float32)
        p[f"b{i}"] = rng.standard_normal(b).astype(np.float32)
    return p


def same(got, net):
    assert list(got.params) == list(network.param_names(network.depth(net)))
    for k, v in net.items():
        np.testing.assert_allclose(got.params[k], v, rtol=1e-6, atol=1e-6)


def naive_logits(p, X, act=lambda z: 1 / (1 + np.exp(-z))):
    """Loops over layers and units: the textbook forward pass, float64."""
    a = np.asarray(X, np.float64)
    L = network.depth(p)
    for i in range(1, L + 2):
        W, b = p[f"W{i}"].astype(np.float64), p[f"b{i}"].astype(np.float64)
        z = np.array([[sum(W[j, k] * a[n, k] for k in range(W.shape[1])) + b[j] for j in range(W.shape[0])]
                      for n in range(len(a))])
        a = act(z) if i <= L else z
    return a


def test_network2_json_of_two_hidden_layers(tmp_path):
    net = deep((12, 5, 4, 3))
    path = tmp_path / "deep.json"
    path.write_text(json.dumps({"sizes": [12, 5, 4, 3], "cost": "CrossEntropyCost",
                                "weights": [net[f"W{i}"].tolist() for i in (1, 2, 3)],
                                "biases": [net[f"b{i}"][:, None].tolist() for i in (1, 2, 3)]}))
    got = import_network(path)
    same(got, net)
    assert network.sizes(got.params) == [12, 5, 4, 3] and network.depth(got.params) == 2


def test_npz_of_three_hidden_layers_transposed_and_without_biases(tmp_path):
    net = deep((6, 5, 4, 7, 3))
    np.savez(tmp_path / "a.npz", **{f"weights_{i}": net[f"W{i + 1}"].T for i in range(4)})
    got = import_network(tmp_path / "a.npz")
    assert "transposed" in got.source and "no biases in the file, taken as 0" in got.notes
    for i in range(1, 5):
        np.testing.assert_array_equal(got.params[f"W{i}"], net[f"W{i}"])
        assert not got.params[f"b{i}"].any()
    np.savez(tmp_path / "b.npz", **{f"weights_{i}": net[f"W{i + 1}"] for i in range(4)}, biases_0=net["b1"],
             biases_3=net["b4"])
    got = import_network(tmp_path / "b.npz")
    assert got.notes == ("no biases for layers 2, 3 in the file (1 = first hidden), taken as 0",)


def test_a_broken_chain_names_the_pair(tmp_path):
    net = deep((6, 5, 4, 3))
    np.savez(tmp_path / "a.npz", weights_0=net["W1"], weights_1=net["W2"], weights_2=net["W1"])
    with pytest.raises(WeightsError, match=r"'weights_1' is \(4, 5\) and 'weights_2' is \(5, 6\)"):
        import_network(tmp_path / "a.npz")


def test_safetensors_keras_onnx_at_depth(tmp_path):
    from safetensors.numpy import save_file
    net = deep((6, 5, 4, 3))
    save_file({f"fc{i}.{s}": net[f"{k}{i}"] for i in (1, 2, 3) for s, k in (("weight", "W"), ("bias", "b"))},
              str(tmp_path / "m.safetensors"))
    same(import_network(tmp_path / "m.safetensors"), net)

    # Keras: three Dense layers; every hidden layer must share one activation
    buf = io.BytesIO()
    import h5py
    with h5py.File(buf, "w") as h5:
        for i in (1, 2, 3):
            h5[f"layers/dense_{i}/vars/0"], h5[f"layers/dense_{i}/vars/1"] = net[f"W{i}"].T, net[f"b{i}"]

    def keras(path, acts):
        layers = [{"class_name": "Dense", "config": {"name": f"dense_{i}", "activation": a}}
                  for i, a in enumerate(acts, start=1)]
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": layers}}))
            z.writestr("model.weights.h5", buf.getvalue())
        return path

    got = import_network(keras(tmp_path / "m.keras", ["tanh", "tanh", "softmax"]))
    same(got, net)
    assert (got.hidden, got.output) == ("tanh", "softmax")
    with pytest.raises(WeightsError, match="hidden layers use tanh, relu"):
        import_network(keras(tmp_path / "x.keras", ["tanh", "relu", "softmax"]))
    with pytest.raises(WeightsError, match="no activation between Dense layers 2 and 3"):
        import_network(keras(tmp_path / "y.keras", ["tanh", "linear", "softmax"]))

    # ONNX: a chain of three Gemm nodes
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    inits, nodes, cur = [], [], "input"
    for i in (1, 2, 3):
        inits += [numpy_helper.from_array(net[f"W{i}"], f"w{i}"), numpy_helper.from_array(net[f"b{i}"], f"b{i}")]
        nodes += [helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [f"z{i}"], transB=1)]
        nodes += [helper.make_node("Relu" if i < 3 else "Softmax", [f"z{i}"], [f"a{i}"])]
        cur = f"a{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 6])],
                              [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [None, 3])], inits)
    onnx.save(helper.make_model(graph), str(tmp_path / "m.onnx"))
    got = import_network(tmp_path / "m.onnx")
    same(got, net)
    assert (got.hidden, got.output) == ("relu", "softmax")


def test_folded_inputs_keep_every_layer_at_depth():
    net = deep((6, 5, 4, 3))
    X = np.random.default_rng(1).random((7, 6))
    folded = fold_inputs(net, 0.1307, 0.3081)
    assert set(folded) == set(net)
    np.testing.assert_allclose(network.forward(folded, X).logits, network.forward(net, (X - 0.1307) / 0.3081).logits,
                               rtol=1e-5, atol=1e-5)


def test_forward_matches_loops_at_any_depth():
    for sizes in ((6, 5, 3), (6, 5, 4, 3), (6, 2, 3, 4, 3)):
        net = deep(sizes, seed=len(sizes))
        X = np.random.default_rng(2).random((4, 6))
        f = network.forward(net, X)
        np.testing.assert_allclose(f.logits, naive_logits(net, X), rtol=1e-12, atol=1e-12)
        assert [a.shape[1] for a in f.acts] == list(sizes[1:-1])


def test_model_file_round_trips_any_depth_and_one_layer_bytes_are_unchanged():
    net = deep((6, 5, 4, 3))
    model = load_model_from(model_bytes(net, [], {}, {"source": "x"}))
    assert list(model.params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    for k in net:
        np.testing.assert_array_equal(model.params[k], net[k])
    one = deep((6, 5, 3))
    shuffled = {k: one[k] for k in ("W2", "b1", "b2", "W1")}  # order of the dict does not matter
    assert model_bytes(shuffled, [], {}, {}) == model_bytes(one, [], {}, {})
    with zipfile.ZipFile(io.BytesIO(model_bytes(one, [], {}, {}))) as z:
        assert z.namelist()[:4] == ["W1.npy", "b1.npy", "W2.npy", "b2.npy"]


def load_model_from(raw: bytes):
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.npz"
        path.write_bytes(raw)
        return load_model(path)


def test_gradients_and_pinning_of_a_three_hidden_layer_network_against_brute_force():
    from generator import units
    net = deep((6, 5, 4, 3, 3), seed=5)
    p = network.as64(net)
    rng = np.random.default_rng(6)
    X, y = rng.random((40, 6)), np.arange(40) % 3
    f = network.forward(net, X)
    z_of = lambda x, layer: naive_pre(net, x)[layer - 1]  # noqa: E731
    h = 1e-6
    for layer in (1, 2, 3):  # mean gradient of each unit's pre-activation, against central differences
        got = network.unit_input_gradients(p, X, layer, "sigmoid") / len(X)
        fd = np.mean([[[(z_of(x + h * e, layer)[u] - z_of(x - h * e, layer)[u]) / (2 * h) for e in np.eye(6)]
                       for u in range(net[f"W{layer}"].shape[0])] for x in X], axis=0)
        np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-7)
        rows = network.unit_gradients(p, np.tile(X[3], (len(got), 1)), layer, "sigmoid")
        np.testing.assert_allclose(rows, network.unit_input_gradients(p, X[3:4], layer, "sigmoid"), atol=1e-12)
    sums = network.jacobian_sums(p, X, y, 3, "sigmoid")  # class sums of d logits / d z1, times W1
    for c in range(3):
        for k in range(3):
            mean = network.input_gradient(p, X[y == c], np.eye(3)[k], "sigmoid").sum(axis=0)
            np.testing.assert_allclose(sums[c, k] @ p["W1"], mean, atol=1e-12)
    for layer in (1, 2):  # pinning one unit and re-running everything after it
        effect, accuracy = units.layer_effects(p, f, layer, y, 3, "sigmoid")
        A = f.acts[layer - 1]
        for j in range(A.shape[1]):
            a = A.copy()
            a[:, j] = A[:, j].mean()
            Z = network.from_layer(p, a, layer, "sigmoid")[2]
            m0 = np.array([f.logits[n, y[n]] - max(f.logits[n, k] for k in range(3) if k != y[n]) for n in range(40)])
            m1 = np.array([Z[n, y[n]] - max(Z[n, k] for k in range(3) if k != y[n]) for n in range(40)])
            for d in range(3):
                assert effect[j, d] == pytest.approx((m0 - m1)[y == d].mean(), abs=1e-12)
                assert accuracy[j, d] == pytest.approx((Z[y == d].argmax(1) == d).mean()
                                                       - (f.logits[y == d].argmax(1) == d).mean(), abs=1e-12)


def naive_pre(p, x):
    """Each layer's pre-activations for one image, by loops."""
    out, a = [], np.asarray(x, np.float64)
    for i in range(1, network.depth(p) + 2):
        W, b = p[f"W{i}"].astype(np.float64), p[f"b{i}"].astype(np.float64)
        z = np.array([sum(W[j, k] * a[k] for k in range(len(a))) + b[j] for j in range(len(b))])
        out.append(z)
        a = 1 / (1 + np.exp(-z))
    return out
