"""Each network format on small files the tests make: safetensors, Keras, ONNX, PyTorch, npz variants, refusals."""

import gzip
import io
import json
import pickle
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from generator import activations
from generator.config import check_against_data, load_config
from generator.errors import ConfigError, WeightsError
from generator.weights import fold_inputs, import_network, resolve_activations


@pytest.fixture
def net():
    """A 6-4-3 network as PyTorch stores it: weights (out, in), biases (out,), float32."""
    rng = np.random.default_rng(0)
    return {"W1": rng.standard_normal((4, 6)).astype(np.float32), "b1": rng.standard_normal(4).astype(np.float32),
            "W2": rng.standard_normal((3, 4)).astype(np.float32), "b2": rng.standard_normal(3).astype(np.float32)}


def same(got, net):
    for k in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(got.params[k], net[k], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("names", [("0", "2"), ("fc1", "fc2"), ("layers.2", "layers.10")])
def test_safetensors_state_dict_in_layer_order(tmp_path, net, names):
    from safetensors.numpy import save_file
    a, b = names
    save_file({f"{b}.weight": net["W2"], f"{b}.bias": net["b2"], f"{a}.weight": net["W1"], f"{a}.bias": net["b1"]},
              str(tmp_path / "m.bin"))  # no telling extension: recognised by content
    got = import_network(tmp_path / "m.bin")
    same(got, net)
    assert "safetensors" in got.source and got.hidden is None and got.notes == ()


def test_safetensors_other_tensors_are_refused(tmp_path, net):
    from safetensors.numpy import save_file
    save_file({"0.weight": net["W1"], "2.weight": net["W2"], "1.running_mean": net["b1"]}, str(tmp_path / "m.safetensors"))
    with pytest.raises(WeightsError, match="'1.running_mean' is not the weight or bias of a Linear layer"):
        import_network(tmp_path / "m.safetensors")


def keras_h5(net, keras2=False) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        for i, (W, b) in enumerate(((net["W1"], net["b1"]), (net["W2"], net["b2"]))):
            name = "dense" if i == 0 else "dense_1"
            if keras2:
                h5.attrs["layer_names"] = [b"dense", b"dense_1"]
                h5[f"{name}/{name}/kernel:0"], h5[f"{name}/{name}/bias:0"] = W.T, b
            else:
                h5[f"layers/{name}/vars/0"], h5[f"layers/{name}/vars/1"] = W.T, b
    return buf.getvalue()


@pytest.mark.parametrize("keras2", [False, True])
def test_keras_weights_h5_kernels_are_transposed(tmp_path, net, keras2):
    (tmp_path / "model.weights.h5").write_bytes(keras_h5(net, keras2))
    got = import_network(tmp_path / "model.weights.h5")
    same(got, net)
    assert "Keras" in got.source and "transposed" in got.source and got.hidden is None


def keras_archive(path, net, hidden="relu", output="softmax", extra=()):
    layers = [{"class_name": "InputLayer", "config": {"name": "input"}},
              {"class_name": "Dense", "config": {"name": "dense", "units": 4, "activation": hidden}},
              *extra,
              {"class_name": "Dense", "config": {"name": "dense_1", "units": 3, "activation": output}}]
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": layers}}))
        z.writestr("model.weights.h5", keras_h5(net))
    return path


def test_keras_archive_gives_activations(tmp_path, net):
    got = import_network(keras_archive(tmp_path / "m.keras", net))
    same(got, net)
    assert (got.hidden, got.output) == ("relu", "softmax") and "Keras model" in got.source
    relu_layer = [{"class_name": "Activation", "config": {"name": "a", "activation": "tanh"}}]
    got = import_network(keras_archive(tmp_path / "t.keras", net, hidden="linear", output="linear", extra=relu_layer))
    assert (got.hidden, got.output) == ("tanh", None)
    conv = [{"class_name": "Conv2D", "config": {"name": "c"}}]
    with pytest.raises(WeightsError, match="Conv2D layer"):
        import_network(keras_archive(tmp_path / "c.keras", net, extra=conv))


def onnx_file(path, net, style="gemm", hidden="Relu", output="Softmax", alpha=1.0, beta=1.0, transB=1):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    inits, nodes = [], []
    cur = "input"
    for i, (W, b, act) in enumerate(((net["W1"], net["b1"], hidden), (net["W2"], net["b2"], output))):
        if style == "gemm":
            B = W if transB else W.T
            inits += [numpy_helper.from_array(B / alpha, f"w{i}"), numpy_helper.from_array(b / beta, f"b{i}")]
            nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [f"z{i}"], alpha=alpha, beta=beta,
                                          transB=transB))
        else:
            inits += [numpy_helper.from_array(W.T.copy(), f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
            nodes += [helper.make_node("MatMul", [cur, f"w{i}"], [f"m{i}"]),
                      helper.make_node("Add", [f"m{i}", f"b{i}"], [f"z{i}"])]
        cur = f"z{i}"
        if act:
            nodes.append(helper.make_node(act, [cur], [f"a{i}"]))
            cur = f"a{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 6])],
                              [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [None, 3])], inits)
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.mark.parametrize("style, alpha, beta, transB", [("gemm", 1.0, 1.0, 1), ("gemm", 2.0, 0.5, 0),
                                                         ("matmul", 1.0, 1.0, 1)])
def test_onnx_chains(tmp_path, net, style, alpha, beta, transB):
    got = import_network(onnx_file(tmp_path / "m.onnx", net, style, alpha=alpha, beta=beta, transB=transB))
    same(got, net)
    assert (got.hidden, got.output) == ("relu", "softmax") and "ONNX" in got.source
    got = import_network(onnx_file(tmp_path / "s.onnx", net, hidden="Sigmoid", output=None))
    assert (got.hidden, got.output) == ("sigmoid", None)
    with pytest.raises(WeightsError, match="no activation between"):
        import_network(onnx_file(tmp_path / "l.onnx", net, hidden=None))


def test_torch_checkpoint_without_torch_says_how_to_convert(tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "model.pt", "w") as z:  # the layout of torch.save's zip format
        z.writestr("model/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("model/version", "3")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    with pytest.raises(WeightsError) as e:
        import_network(tmp_path / "model.pt")
    message = str(e.value)
    assert "torch is not installed" in message and "save_file(torch.load('model.pt', weights_only=True)" in message
    assert "\n" not in message


def test_torch_checkpoint_with_torch(tmp_path, net):
    torch = pytest.importorskip("torch")
    torch.save({k.replace("W1", "0.weight").replace("b1", "0.bias").replace("W2", "2.weight").replace("b2", "2.bias"):
                torch.from_numpy(v) for k, v in net.items()}, tmp_path / "model.pt")
    same(import_network(tmp_path / "model.pt"), net)


def test_npz_transposed_and_without_biases(tmp_path, net):
    np.savez(tmp_path / "k.npz", weights_0=net["W1"].T, biases_0=net["b1"], weights_1=net["W2"].T, biases_1=net["b2"])
    got = import_network(tmp_path / "k.npz")
    same(got, net)
    assert "(in, out), transposed" in got.source
    np.savez(tmp_path / "nb.npz", weights_0=net["W1"], weights_1=net["W2"])
    got = import_network(tmp_path / "nb.npz")
    assert not got.params["b1"].any() and not got.params["b2"].any()
    assert "no biases in the file, taken as 0" in got.source
    np.savez(tmp_path / "bad.npz", weights_0=np.zeros((4, 6)), weights_1=np.zeros((3, 5)))
    with pytest.raises(WeightsError, match=r"chain neither as \(out, in\)"):
        import_network(tmp_path / "bad.npz")


def test_square_shapes_are_settled_by_the_biases(tmp_path):
    rng = np.random.default_rng(1)
    W1, W2 = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    np.savez(tmp_path / "sq.npz", weights_0=W1, biases_0=np.zeros(5), weights_1=W2, biases_1=np.zeros(5))
    got = import_network(tmp_path / "sq.npz")  # chains both ways: the usual (out, in) layout wins
    np.testing.assert_array_equal(got.params["W1"], W1.astype(np.float32))


def npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize("content, words", [
    (lambda: npy_bytes(np.zeros((4, 6))), ["single NumPy array (.npy)", "np.savez", "the atlas reads"]),
    (lambda: pickle.dumps({"sizes": [6, 4, 3], "weights": [np.zeros((4, 6))]}), ["Python pickle", "never unpickles"]),
    (lambda: gzip.compress(pickle.dumps({"sizes": [6, 4, 3]})), ["gzip'd Python pickle", "runs whatever code"]),
    (lambda: b"\x00\x01garbage" * 10, ["unknown kind", "the atlas reads", "safetensors", "ONNX"]),
    (lambda: b"PK\x03\x04" + b"\x00" * 30, ["damaged zip"]),
])
def test_other_files_are_refused_in_one_line(tmp_path, content, words):
    path = tmp_path / "net.bin"
    path.write_bytes(content())
    with pytest.raises(WeightsError) as e:
        import_network(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    for w in words:
        assert w in message


def test_a_config_that_contradicts_the_file_is_an_error(tmp_path, net):
    path = keras_archive(tmp_path / "m.keras", net)  # relu, softmax
    imported = import_network(path)
    config = load_config(None, [f"network.weights='{path}'"])
    meta = resolve_activations(config, path, imported)
    assert meta == {"activation": "relu", "activation_source": "read from the file", "output": "softmax",
                    "output_source": "read from the file"}
    with pytest.raises(ConfigError, match="'network.activation' is 'tanh' but m.keras records 'relu'"):
        resolve_activations(load_config(None, [f"network.weights='{path}'", "network.activation=tanh"]), path, imported)
    np.savez(tmp_path / "n.npz", weights_0=net["W1"], weights_1=net["W2"])
    meta = resolve_activations(config, path, import_network(tmp_path / "n.npz"))
    assert meta["activation"] == "sigmoid" and meta["activation_source"] == "assumed (not in the file)"


def test_training_takes_other_activations_normalised_inputs_and_depth_and_refuses_unknown_values():
    for settings in (["network.activation=relu"], ["network.output=softmax"], ["data.mean=0.1307", "data.std=0.3081"],
                     ["network.hidden=[30, 30]"]):
        check_against_data(load_config(None, settings), 100)  # no error: the kernels train these
    with pytest.raises(ConfigError, match="'network.activation' must be 'sigmoid' or 'relu' or 'tanh'"):
        load_config(None, ["network.activation=gelu"])
    with pytest.raises(ConfigError, match="'data.std' must be > 0"):
        load_config(None, ["data.std=0"])


def test_folded_normalisation_gives_the_same_pre_activations(net):
    rng = np.random.default_rng(2)
    X = rng.random((20, 6))
    folded = fold_inputs(net, 0.1307, 0.3081)
    z_file = ((X - 0.1307) / 0.3081) @ net["W1"].T.astype(np.float64) + net["b1"]
    z_ours = X @ folded["W1"].T.astype(np.float64) + folded["b1"]
    np.testing.assert_allclose(z_ours, z_file, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", activations.HIDDEN)
def test_derivatives_match_finite_differences(name):
    z = np.linspace(-3, 3, 61) + 0.01  # off the ReLU kink
    numeric = (activations.apply(name, z + 1e-6) - activations.apply(name, z - 1e-6)) / 2e-6
    np.testing.assert_allclose(activations.derivative(name, z), numeric, atol=1e-6)


def test_softmax_loss_and_sigmoid_loss():
    Z = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    y = np.array([0, 2])
    p = activations.softmax(Z)
    np.testing.assert_allclose(activations.loss("softmax", Z, y), -np.log(p[[0, 1], y]))
    s = activations.sigmoid(Z)
    t = np.eye(3)[y]
    np.testing.assert_allclose(activations.loss("sigmoid", Z, y), -(t * np.log(s) + (1 - t) * np.log(1 - s)).sum(1))


def test_load_network_folds_normalisation_and_warns_near_chance(tmp_path):
    from generator.data import load_dataset
    from generator.weights import load_network

    from .conftest import write_dataset
    data = load_dataset(write_dataset(tmp_path / "data", n_train=60, n_test=30, shape=(3, 2), n_classes=3))
    rng = np.random.default_rng(5)
    W1, b1, W2, b2 = rng.standard_normal((4, 6)), rng.standard_normal(4), rng.standard_normal((3, 4)), np.zeros(3)
    np.savez(tmp_path / "net.npz", weights_0=W1, biases_0=b1, weights_1=W2, biases_1=b2)
    config = load_config(None, [f"network.weights='{tmp_path / 'net.npz'}'", "network.activation=tanh",
                                "data.mean=0.5", "data.std=0.25"])
    params, meta, lines = load_network(config, data)
    X = data.test_images.astype(np.float64)
    theirs = (np.tanh(((X - 0.5) / 0.25) @ W1.T + b1) @ W2.T + b2).argmax(axis=1)
    ours = (np.tanh(X @ params["W1"].T.astype(np.float64) + params["b1"]) @ params["W2"].T + params["b2"]).argmax(1)
    assert (theirs != ours).sum() <= 1
    assert meta["activation"] == "tanh" and meta["activation_source"] == "set by network.activation"
    assert meta["inputs"].startswith("(pixel / 255 - 0.5) / 0.25") and any("normalised" in line for line in lines)
    assert ("warning" in meta) == (meta["imported_test_accuracy"] < 2 / 3)
    assert any(line.startswith("WARNING:") for line in lines) == ("warning" in meta)


def test_npz_of_a_state_dict_or_of_keras_get_weights(tmp_path, net):
    np.savez(tmp_path / "sd.npz", **{"fc1.weight": net["W1"], "fc1.bias": net["b1"], "fc2.weight": net["W2"],
                                     "fc2.bias": net["b2"]})
    same(import_network(tmp_path / "sd.npz"), net)
    np.savez(tmp_path / "kw.npz", net["W1"].T, net["b1"], net["W2"].T, net["b2"])  # arr_0 .. arr_3
    got = import_network(tmp_path / "kw.npz")
    same(got, net)
    assert "transposed" in got.source


def test_keras_rescaling_layer_is_folded_into_the_weights(tmp_path, net):
    from generator.data import load_dataset
    from generator.weights import load_network

    from .conftest import write_dataset
    data = load_dataset(write_dataset(tmp_path / "data", n_train=60, n_test=30, shape=(3, 2), n_classes=3))
    rescale = [{"class_name": "Rescaling", "config": {"name": "r", "scale": 1 / 255, "offset": -0.5}}]
    path = tmp_path / "m.keras"
    layers = [{"class_name": "InputLayer", "config": {"name": "input"}}, *rescale,
              {"class_name": "Dense", "config": {"name": "dense", "units": 4, "activation": "relu"}},
              {"class_name": "Dense", "config": {"name": "dense_1", "units": 3, "activation": "softmax"}}]
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": layers}}))
        z.writestr("model.weights.h5", keras_h5(net))
    params, meta, lines = load_network(load_config(None, [f"network.weights='{path}'"]), data)
    raw = data.test_images.astype(np.float64) * 255
    theirs = (np.maximum((raw / 255 - 0.5) @ net["W1"].T + net["b1"], 0) @ net["W2"].T + net["b2"]).argmax(1)
    ours = (np.maximum(data.test_images @ params["W1"].T.astype(np.float64) + params["b1"], 0) @ params["W2"].T
            + params["b2"]).argmax(1)
    assert (theirs != ours).sum() <= 1 and "Rescaling" in meta["inputs"]
    with pytest.raises(ConfigError, match="scales its inputs itself"):
        load_network(load_config(None, [f"network.weights='{path}'", "data.mean=0.1"]), data)


def external_onnx(directory, net, name="mlp.onnx"):
    """An ONNX model whose weights live in NAME.data beside it, as torch.onnx.export (dynamo) writes it."""
    import onnx
    directory.mkdir(parents=True, exist_ok=True)
    onnx_file(directory / "tmp.onnx", net)
    model = onnx.load(str(directory / "tmp.onnx"))
    (directory / "tmp.onnx").unlink()
    onnx.save_model(model, str(directory / name), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{name}.data", size_threshold=0)
    return directory / name


def test_onnx_external_data_is_read_beside_the_file_not_from_the_current_directory(tmp_path, net, monkeypatch):
    from generator.weights import files_sha256
    other = {k: v + 1 for k, v in net.items()}
    new, old = external_onnx(tmp_path / "new", net), external_onnx(tmp_path / "old", other)
    assert (tmp_path / "new" / "mlp.onnx.data").is_file()
    monkeypatch.chdir(tmp_path / "old")  # the old network's mlp.onnx.data is in the current directory
    got = import_network(Path("..") / "new" / "mlp.onnx")
    same(got, net)
    assert "mlp.onnx.data" in got.source and [n for n, _ in got.external] == ["mlp.onnx.data"]
    same(import_network(old), other)
    before = files_sha256(new)  # the training fingerprint: a changed .data file is read again
    data = tmp_path / "new" / "mlp.onnx.data"
    data.write_bytes(data.read_bytes()[::-1])
    assert files_sha256(new) != before


def test_onnx_external_data_missing_or_outside_is_one_line(tmp_path, net):
    import onnx
    path = external_onnx(tmp_path / "a", net)
    (tmp_path / "a" / "mlp.onnx.data").rename(tmp_path / "elsewhere.data")
    with pytest.raises(WeightsError) as e:
        import_network(path)
    assert "external file 'mlp.onnx.data', which is not in" in str(e.value) and "\n" not in str(e.value)
    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../elsewhere.data"
    onnx.save_model(model, str(tmp_path / "a" / "up.onnx"))
    with pytest.raises(WeightsError, match="not a file beside it"):
        import_network(tmp_path / "a" / "up.onnx")


def fitted_data(tmp_path, hidden, mean=0.0, std=1.0, seed=7):
    """A small dataset and a 6-8-3 network that classifies it perfectly when read with `hidden` on
    (x - mean) / std: the labels are the network's own predictions. Returns (data, weights npz path)."""
    from generator.data import load_dataset
    from .conftest import write_dataset
    data = load_dataset(write_dataset(tmp_path / "data", n_train=60, n_test=300, shape=(3, 2), n_classes=3))
    rng = np.random.default_rng(seed)
    W1, b1 = rng.standard_normal((8, 6)) * 3, rng.standard_normal(8)
    W2, b2 = rng.standard_normal((3, 8)) * 3, rng.standard_normal(3)
    X = (data.test_images.astype(np.float64) - mean) / std
    labels = (activations.apply(hidden, X @ W1.T + b1) @ W2.T + b2).argmax(axis=1)
    data = data.__class__(**{**data.__dict__, "test_labels": labels.astype(data.test_labels.dtype)})
    np.savez(tmp_path / "net.npz", weights_0=W1, biases_0=b1, weights_1=W2, biases_1=b2)
    return data, tmp_path / "net.npz"


def test_an_assumed_activation_or_normalisation_that_does_not_fit_is_asked_about(tmp_path):
    from generator.weights import load_network, reading_accuracies
    data, path = fitted_data(tmp_path, "tanh", 0.1307, 0.3081)
    with pytest.raises(ConfigError) as e:  # sigmoid and no normalisation assumed: both are asked for
        load_network(load_config(None, [f"network.weights='{path}'"]), data)
    message = str(e.value)
    assert "--set network.activation=tanh --set data.mean=0.1307 --set data.std=0.3081" in message
    assert "100.0% with tanh hidden units on (pixel / pixel_max - 0.1307) / 0.3081" in message and "\n" not in message
    good = [f"network.weights='{path}'", "network.activation=tanh", "data.mean=0.1307", "data.std=0.3081"]
    params, meta, lines = load_network(load_config(None, good), data)
    assert meta["imported_test_accuracy"] == 1.0 and "warning" not in meta
    # set explicitly and wrong: a warning on stdout and the home page, not a refusal
    params, meta, lines = load_network(load_config(None, [good[0], "network.activation=sigmoid", *good[2:]]), data)
    assert "try --set network.activation=tanh" in meta["warning"] and "as set" in meta["warning"]
    assert any(line.startswith("WARNING: ") for line in lines)
    # the cheap path (X W1^T once, each normalisation an affine map of it) equals folding and running each reading
    from generator.weights import fold_inputs, import_network
    imported = import_network(path)
    counts = reading_accuracies(imported.params, ["tanh"], [(0.5, 0.5)], data.test_images, data.test_labels, chunk=7)
    folded = fold_inputs(imported.params, 0.5, 0.5)
    from generator.network import forward
    assert counts[("tanh", (0.5, 0.5))] == (forward(folded, data.test_images, "tanh").predicted == data.test_labels).sum()


def test_a_reading_that_fits_passes_and_near_chance_names_the_classes(tmp_path):
    from generator.weights import load_network
    data, path = fitted_data(tmp_path, "sigmoid")
    params, meta, lines = load_network(load_config(None, [f"network.weights='{path}'"]), data)
    assert meta["activation_source"] == "assumed (not in the file)" and "warning" not in meta
    shuffled = data.__class__(**{**data.__dict__, "test_labels": (data.test_labels + 1) % 3})  # another class order
    params, meta, lines = load_network(load_config(None, [f"network.weights='{path}'"]), shuffled)
    assert "near chance" in meta["warning"] and "classes in this order" in meta["warning"]


def test_npz_mean_and_std_are_the_files_normalisation(tmp_path):
    from generator.weights import load_network
    data, path = fitted_data(tmp_path, "tanh", 0.1307, 0.3081)
    with np.load(path) as f:
        arrays = dict(f)
    np.savez(tmp_path / "ms.npz", **arrays, mean=np.float32(0.1307), std=np.array([0.3081]))
    weights = f"network.weights='{tmp_path / 'ms.npz'}'"
    params, meta, lines = load_network(load_config(None, [weights, "network.activation=tanh"]), data)
    assert meta["imported_test_accuracy"] == 1.0 and "'mean' and 'std' arrays" in meta["inputs"]
    load_network(load_config(None, [weights, "network.activation=tanh", "data.mean=0.1307", "data.std=0.3081"]), data)
    with pytest.raises(ConfigError, match="scales its inputs itself.*drop data.mean and data.std"):
        load_network(load_config(None, [weights, "network.activation=tanh", "data.mean=0.5", "data.std=0.5"]), data)
    np.savez(tmp_path / "px.npz", **arrays, mean=np.zeros(6), std=np.ones(6))
    with pytest.raises(WeightsError, match="per-pixel normalisation"):
        import_network(tmp_path / "px.npz")


def test_keras_legacy_h5_model_records_its_activations(tmp_path, net):
    layers = [{"class_name": "InputLayer", "config": {"name": "input"}},
              {"class_name": "Flatten", "config": {"name": "flatten"}},
              {"class_name": "Dense", "config": {"name": "dense", "units": 4, "activation": "relu"}},
              {"class_name": "Dense", "config": {"name": "dense_1", "units": 3, "activation": "softmax"}}]
    with h5py.File(tmp_path / "net.h5", "w") as h5:  # model.save('net.h5'): weights under model_weights/
        h5.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": layers}})
        g = h5.create_group("model_weights")
        g.attrs["layer_names"] = [b"flatten", b"dense", b"dense_1"]
        g["dense/dense/kernel:0"], g["dense/dense/bias:0"] = net["W1"].T, net["b1"]
        g["dense_1/dense_1/kernel:0"], g["dense_1/dense_1/bias:0"] = net["W2"].T, net["b2"]
        h5["optimizer_weights/adam/iter:0"] = np.int64(3)
    got = import_network(tmp_path / "net.h5")
    same(got, net)
    assert (got.hidden, got.output) == ("relu", "softmax") and "legacy HDF5" in got.source


@pytest.mark.parametrize("extra, words", [
    ([{"class_name": "ReLU", "config": {"name": "r", "max_value": 1.0, "negative_slope": 0.0, "threshold": 0.0}}],
     "is ReLU(max_value=1.0), not the plain relu"),
    ([{"class_name": "ReLU", "config": {"name": "r", "max_value": None, "negative_slope": 0.3, "threshold": 0.0}}],
     "is ReLU(negative_slope=0.3)"),
    ([{"class_name": "Activation", "config": {"name": "a", "activation": "tanh"}}],
     "applies tanh after 'dense' already applied relu: two activations in a row"),
])
def test_keras_activations_the_atlas_cannot_explain_are_refused(tmp_path, net, extra, words):
    hidden = "linear" if extra[0]["class_name"] == "ReLU" else "relu"
    with pytest.raises(WeightsError) as e:
        import_network(keras_archive(tmp_path / "m.keras", net, hidden=hidden, extra=extra))
    assert words in str(e.value) and "\n" not in str(e.value)
    plain = [{"class_name": "ReLU", "config": {"name": "r", "max_value": None, "negative_slope": 0.0, "threshold": 0}}]
    assert import_network(keras_archive(tmp_path / "p.keras", net, hidden="linear", extra=plain)).hidden == "relu"


def test_keras_log_softmax_reads_as_softmax_and_a_normalization_layer_is_folded(tmp_path, net):
    got = import_network(keras_archive(tmp_path / "l.keras", net, output="log_softmax"))
    assert got.output == "softmax" and "log_softmax, read as softmax" in got.source
    layers = [{"class_name": "InputLayer", "config": {"name": "input"}},
              {"class_name": "Normalization", "config": {"name": "norm", "axis": None}},
              {"class_name": "Dense", "config": {"name": "dense", "units": 4, "activation": "relu"}},
              {"class_name": "Dense", "config": {"name": "dense_1", "units": 3, "activation": "softmax"}}]
    for mean, var, ok in ((np.float32(0.25), np.float32(0.04), True), (np.zeros(6), np.ones(6), False)):
        buf = io.BytesIO()
        with h5py.File(buf, "w") as h5:
            h5["layers/norm/vars/0"], h5["layers/norm/vars/1"], h5["layers/norm/vars/2"] = mean, var, np.int64(9)
            h5["layers/dense/vars/0"], h5["layers/dense/vars/1"] = net["W1"].T, net["b1"]
            h5["layers/dense_1/vars/0"], h5["layers/dense_1/vars/1"] = net["W2"].T, net["b2"]
        with zipfile.ZipFile(tmp_path / "n.keras", "w") as z:
            z.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": layers}}))
            z.writestr("model.weights.h5", buf.getvalue())
        if ok:
            got = import_network(tmp_path / "n.keras")
            same(got, net)
            assert got.input_norm == pytest.approx((0.25, 0.2)) and "Normalization layer 'norm'" in got.input_norm_source
        else:
            with pytest.raises(WeightsError, match="layer 'norm' is a Normalization layer with a mean and variance per"):
                import_network(tmp_path / "n.keras")


def torch_zip(path, pkl: bytes, extra=()):
    """The layout of torch.save's zip format (ARCHIVE/data.pkl, ...), with a pickle of our making."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{path.stem}/data.pkl", pkl)
        z.writestr(f"{path.stem}/version", "3")
        for name in extra:
            z.writestr(f"{path.stem}/{name}", b"")
    return path


@pytest.mark.parametrize("pkl, extra, words", [
    (pickle.dumps({"epoch": 3, "model_state_dict": {}, "optimizer_state_dict": {}}, protocol=2), (),
     ["torch is not installed", "save_file(torch.load('m.pt', weights_only=True)['model_state_dict'], 'm.safetensors')"]),
    (b"\x80\x02ctorch.nn.modules.linear\nLinear\nq\x00.", (),
     ["whole pickled model", "torch.nn.modules.linear.Linear", "save_file(model.state_dict(), 'm.safetensors')"]),
    (b"\x80\x02}q\x00.", ("code/__torch__/m.py", "constants.pkl"),
     ["TorchScript archive", "torch.jit.load('m.pt').state_dict()"]),
])
def test_torch_files_without_torch_get_the_command_that_fits_them(tmp_path, monkeypatch, pkl, extra, words):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    with pytest.raises(WeightsError) as e:
        import_network(torch_zip(tmp_path / "m.pt", pkl, extra))
    assert "\n" not in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_torch_legacy_pickle_is_told_by_its_magic_number_under_any_name(tmp_path, monkeypatch):
    from generator.readers.frameworks import TORCH_LEGACY_MAGIC
    (tmp_path / "m.ckpt").write_bytes(TORCH_LEGACY_MAGIC + b".")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(WeightsError, match="a PyTorch checkpoint, and torch is not installed"):
        import_network(tmp_path / "m.ckpt")


def test_state_dict_layers_are_ordered_by_their_shapes_when_their_names_do_not(tmp_path, net):
    from safetensors.numpy import save_file
    save_file({"features.weight": net["W1"], "features.bias": net["b1"], "classifier.weight": net["W2"],
               "classifier.bias": net["b2"]}, str(tmp_path / "fc.safetensors"))
    got = import_network(tmp_path / "fc.safetensors")  # 'classifier' sorts first, but takes features' outputs
    same(got, net)
    assert "layers ordered by their shapes (features, classifier)" in got.source
    sq = {"b.weight": np.zeros((4, 4), np.float32), "a.weight": np.zeros((4, 4), np.float32),
          "c.weight": np.zeros((4, 6), np.float32)}
    save_file(sq, str(tmp_path / "sq.safetensors"))  # c, then a and b in either order
    with pytest.raises(WeightsError, match="chain in more than one order"):
        import_network(tmp_path / "sq.safetensors")


def test_state_dict_mean_and_std_buffers_are_the_inputs_normalisation(tmp_path, net):
    from safetensors.numpy import save_file
    save_file({"fc1.weight": net["W1"], "fc1.bias": net["b1"], "fc2.weight": net["W2"], "fc2.bias": net["b2"],
               "mean": np.array(0.1307, np.float32), "std": np.array(0.3081, np.float32)}, str(tmp_path / "n.safetensors"))
    got = import_network(tmp_path / "n.safetensors")
    same(got, net)
    assert got.input_norm == pytest.approx((0.1307, 0.3081)) and "'mean' and 'std' tensors" in got.input_norm_source


def test_npz_w1_stored_in_out_and_lowercase_names(tmp_path, net):
    np.savez(tmp_path / "io.npz", W1=net["W1"].T, b1=net["b1"], W2=net["W2"].T, b2=net["b2"])
    got = import_network(tmp_path / "io.npz")
    same(got, net)
    assert "transposed" in got.source
    np.savez(tmp_path / "lc.npz", w1=net["W1"], b1=net["b1"], w2=net["W2"], b2=net["b2"])
    same(import_network(tmp_path / "lc.npz"), net)


def test_torch_training_checkpoint_with_torch(tmp_path, net, capfd):
    torch = pytest.importorskip("torch")
    sd = {"fc1.weight": net["W1"], "fc1.bias": net["b1"], "fc2.weight": net["W2"], "fc2.bias": net["b2"]}
    torch.save({"epoch": 2, "model_state_dict": {k: torch.from_numpy(v) for k, v in sd.items()},
                "optimizer_state_dict": {"state": {}, "param_groups": []}, "loss": 0.3}, tmp_path / "ckpt.pt")
    same(import_network(tmp_path / "ckpt.pt"), net)
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, tmp_path / "old.ckpt",
               _use_new_zipfile_serialization=False)
    same(import_network(tmp_path / "old.ckpt"), net)
    assert capfd.readouterr().err == ""  # torch's warnings stay off stderr


@pytest.mark.parametrize("mean, std, ok", [(0.1307, 0.3081, True), (np.full(6, 0.1, np.float32), 0.3, False)])
def test_onnx_scalar_sub_and_div_before_the_first_layer_are_folded(tmp_path, net, mean, std, ok):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(np.asarray(mean, np.float32), "m"), numpy_helper.from_array(np.float32(std), "s"),
             numpy_helper.from_array(net["W1"], "w0"), numpy_helper.from_array(net["b1"], "b0"),
             numpy_helper.from_array(net["W2"], "w1"), numpy_helper.from_array(net["b2"], "b1")]
    nodes = [helper.make_node("Sub", ["input", "m"], ["c"]), helper.make_node("Div", ["c", "s"], ["n"]),
             helper.make_node("Gemm", ["n", "w0", "b0"], ["z0"], transB=1), helper.make_node("Tanh", ["z0"], ["a0"]),
             helper.make_node("Gemm", ["a0", "w1", "b1"], ["z1"], transB=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 6])],
                              [helper.make_tensor_value_info("z1", TensorProto.FLOAT, [None, 3])], inits)
    onnx.save(helper.make_model(graph), str(tmp_path / "n.onnx"))
    if ok:
        got = import_network(tmp_path / "n.onnx")
        same(got, net)
        assert got.input_norm == pytest.approx((0.1307, 0.3081)) and "Sub and Div" in got.input_norm_source
    else:
        with pytest.raises(WeightsError, match=r"normalises the input in a way the atlas does not fold.*data.mean"):
            import_network(tmp_path / "n.onnx")


def test_of_readings_about_as_good_the_one_that_changes_fewest_settings_is_asked_for(tmp_path, monkeypatch):
    from generator import weights
    data, path = fitted_data(tmp_path, "sigmoid")
    counts = {(h, m): 800 for h in activations.HIDDEN for m in [(0.0, 1.0), *weights.NORMALISATIONS]}
    counts[("sigmoid", (0.1307, 0.3081))], counts[("tanh", (0.1307, 0.3081))] = 913, 914  # tanh best by 1 image
    monkeypatch.setattr(weights, "reading_accuracies", lambda *a: counts)
    config = load_config(None, [f"network.weights='{path}'"])
    imported = import_network(path)
    meta = resolve_activations(config, path, imported)
    with pytest.raises(ConfigError) as e:
        weights.check_reading(config, path, imported, meta, (0.0, 1.0), False, np.zeros((1000, 6)), np.zeros(1000, int))
    assert "pass --set data.mean=0.1307 --set data.std=0.3081 (or" in str(e.value) and "activation=tanh" not in str(e.value)
