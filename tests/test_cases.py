"""The real files users bring (../shared/cases, beside the clone): each gives the atlas its framework would
give, with the test accuracy of an independent NumPy evaluation of the same weights, or a one-line error."""

from pathlib import Path

import numpy as np
import pytest

from generator import atlas as atlas_mod
from generator.__main__ import main
from generator.config import REPO
from generator.data import load_dataset
from generator.train import load_model

from .conftest import MNIST

CASES = REPO.parent / "shared" / "cases"
pytestmark = pytest.mark.skipif(not CASES.is_dir(), reason=f"{CASES} is not here")


def sets(tmp_path, *extra):
    args = []
    for o in (f"site.build_dir='{tmp_path / 'build'}'", f"site.site_dir='{tmp_path / 'site'}'", "site.sections=[]",
              *extra):
        args += ["--set", o]
    return args


@pytest.fixture(scope="module")
def mnist_test():
    data = load_dataset(MNIST)
    return data.test_images.astype(np.float64), data.test_labels  # pixels / 255, as the users' frameworks had them


def correct(W1, b1, W2, b2, act, X, y) -> int:
    """Test images classified right by x -> W2 act(W1 x + b1) + b2, the (out, in) layout of PyTorch."""
    hidden = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z))}[act]
    with np.errstate(over="ignore"):
        z = hidden(X @ np.asarray(W1, np.float64).T + b1) @ np.asarray(W2, np.float64).T + b2
    return int((z.argmax(axis=1) == y).sum())


def independent(case: str):
    """The file's W1, b1, W2, b2 (out, in), read here without the atlas's readers."""
    path = CASES / case
    if path.suffix == ".npz":
        f = np.load(path)
        w0, w1 = f["weights_0"], f["weights_1"]
        if w0.shape[0] == 784:  # Keras kernels (in, out)
            w0, w1 = w0.T, w1.T
        return w0, f["biases_0"], w1, f["biases_1"]
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file
        t = load_file(path)
        return t["0.weight"], t["0.bias"], t["2.weight"], t["2.bias"]
    if path.suffix == ".pt":
        import torch
        t = {k: v.numpy() for k, v in torch.load(path, weights_only=True).items()}
        return t["0.weight"], t["0.bias"], t["2.weight"], t["2.bias"]
    if path.name.endswith(".h5"):
        import h5py
        with h5py.File(path) as h:
            v = [h[f"layers/{n}/vars/{i}"][()] for n in ("dense", "dense_1") for i in (0, 1)]
        return v[0].T, v[1], v[2].T, v[3]
    if path.suffix == ".onnx":
        import onnx
        from onnx import numpy_helper
        t = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
        return t["0.weight"], t["0.bias"], t["2.weight"], t["2.bias"]
    raise AssertionError(case)


def import_and_analyze(tmp_path, capsys, weights: Path, *extra) -> tuple[atlas_mod.Atlas, str]:
    assert main(["train", "--weights", str(weights), *sets(tmp_path, *extra)]) == 0
    assert main(["analyze", *sets(tmp_path, *extra)]) == 0
    return atlas_mod.load_atlas(tmp_path / "build" / "atlas.json"), capsys.readouterr().out


@pytest.mark.parametrize("case, activation, expected", [
    ("relu-tanh/torch_relu_network1.npz", "relu", 0.9657),
    ("relu-tanh/torch_tanh_network1.npz", "tanh", 0.9647),
    ("keras-kernel-layout/kernel_layout.npz", "sigmoid", None),
    ("pytorch-checkpoint/mlp.safetensors", "sigmoid", None),
    ("binary-formats/model.weights.h5", "sigmoid", None),
    ("binary-formats/mlp.onnx", "sigmoid", None),
])
def test_a_network_gives_its_frameworks_accuracy(tmp_path, capsys, mnist_test, case, activation, expected):
    X, y = mnist_test
    extra = [f"network.activation={activation}"] if activation != "sigmoid" else []
    atlas, out = import_and_analyze(tmp_path, capsys, CASES / case, *extra)
    ours = round(atlas.model.test_accuracy * len(y))
    assert abs(ours - correct(*independent(case), activation, X, y)) <= 1
    if expected is not None:
        assert atlas.model.test_accuracy == pytest.approx(expected, abs=1e-4)
    assert atlas.model.network["activation"] == activation
    if atlas.model.test_accuracy < 0.2:  # the tiny 784-3-10 nets are near chance: that must be loud
        assert "WARNING: test accuracy" in out and "near chance" in atlas.model.network["warning"]
    if "kernel" in case or case.endswith(".h5"):
        assert "transposed" in atlas.model.source and "transposed" in out


def test_relu_read_as_sigmoid_is_asked_about_and_a_kept_assumption_warns(tmp_path, capsys):
    weights = CASES / "relu-tanh/torch_relu_network1.npz"
    assert main(["train", "--weights", str(weights), *sets(tmp_path)]) == 2  # the file does not say relu
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--set network.activation=relu" in err and "68.2%" in err and "96.6%" in err
    assert not (tmp_path / "build" / "model.npz").exists()
    atlas, out = import_and_analyze(tmp_path, capsys, weights, "network.activation=sigmoid")  # kept on purpose
    assert "WARNING: test accuracy 68.2% read with sigmoid" in out and "try --set network.activation=relu" in out
    assert atlas.model.network["activation_source"] == "set by network.activation"
    assert "96.6%" in atlas.model.network["warning"]


def test_onnx_records_its_activation_and_a_contradicting_setting_is_refused(tmp_path, capsys):
    weights = CASES / "binary-formats/mlp.onnx"
    assert main(["train", "--weights", str(weights), *sets(tmp_path, "network.activation=relu")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'network.activation' is 'relu' but mlp.onnx records 'sigmoid'" in err
    assert not (tmp_path / "build" / "model.npz").exists()


@pytest.mark.parametrize("case, code, words", [
    ("binary-formats/wih.npy", 6, ["single NumPy array (.npy)", "np.savez"]),
    ("binary-formats/net.pkl.gz", 6, ["pickle", "never unpickles"]),
])
def test_refused_files_say_what_to_do(tmp_path, capsys, case, code, words):
    assert main(["train", "--weights", str(CASES / case), *sets(tmp_path)]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(w in err for w in words)


def test_pytorch_checkpoint(tmp_path, capsys, mnist_test):
    weights = CASES / "pytorch-checkpoint/model.pt"
    try:
        import torch  # noqa: F401
    except ImportError:
        assert main(["train", "--weights", str(weights), *sets(tmp_path)]) == 6
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "torch is not installed" in err and "safetensors" in err
        return
    atlas, _ = import_and_analyze(tmp_path, capsys, weights)
    X, y = mnist_test
    ours = round(atlas.model.test_accuracy * len(y))
    # model.pt's own weights: the case's mlp.safetensors holds another draw of the same net (9.7% against 16.0%)
    assert abs(ours - correct(*independent("pytorch-checkpoint/model.pt"), "sigmoid", X, y)) <= 1


def test_sklearn_digits_need_pixel_max(tmp_path, capsys):
    data = CASES / "sklearn-digits-0-16" / "data"
    assert main(["train", "--data", str(data), *sets(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.pixel_max" in err and "--set data.pixel_max=16" in err
    extra = ["data.pixel_max=16", "train.epochs=10"]
    assert main(["train", "--data", str(data), *sets(tmp_path, *extra)]) == 0
    assert main(["analyze", "--data", str(data), *sets(tmp_path, *extra)]) == 0
    atlas = atlas_mod.load_atlas(tmp_path / "build" / "atlas.json")
    assert atlas.model.image_shape == [8, 8] and atlas.model.test_accuracy > 0.8
    assert load_model(tmp_path / "build" / "model.npz").params["W1"].shape == (100, 64)
