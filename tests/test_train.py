import numpy as np
import pytest
from threadpoolctl import threadpool_info

from generator import train as train_module
from generator.config import REPO, load_config
from generator.data import load_dataset
from generator.errors import TrainingError
from generator.train import load_model, model_bytes, save_model, train

from .conftest import MNIST


@pytest.fixture(scope="module")
def subset():
    config = load_config(REPO / "atlas.toml", ["data.train_limit=2000", "data.test_limit=500", "network.hidden=30",
                                               "train.epochs=3"])
    return config, load_dataset(MNIST, config.data.sha256, 2000, 500)


def test_short_training_learns(subset):
    config, data = subset
    params, history, snapshots = train(config, data)
    assert sorted(snapshots) == [0, 1, 2, 3]
    assert snapshots[3].tobytes() == params["W1"].tobytes() and not np.array_equal(snapshots[0], snapshots[1])
    assert [h.epoch for h in history] == [1, 2, 3]
    assert history[-1].test_accuracy > 0.8  # chance is 0.1
    assert history[-1].train_loss < history[0].train_loss
    assert params["W1"].shape == (30, 784) and params["W2"].shape == (10, 30)
    assert all(p.dtype == np.float32 for p in params.values())


def test_same_seed_same_bits_other_seed_other_weights(subset):
    config, data = subset
    a, ha, _ = train(config, data)
    b, hb, _ = train(config, data)
    for name in a:
        assert a[name].tobytes() == b[name].tobytes()
    assert [h.train_loss for h in ha] == [h.train_loss for h in hb]
    other = load_config(REPO / "atlas.toml", ["data.train_limit=2000", "network.hidden=30", "train.epochs=3",
                                              "train.seed=2"])
    c, _, _ = train(other, data)
    assert not np.array_equal(a["W1"], c["W1"])


def test_evaluation_runs_blas_on_one_thread_and_restores_it(subset, monkeypatch):
    # OpenBLAS threads spin after each call and took a core from the next epoch's numba threads.
    config, data = subset
    seen = []
    original = train_module.evaluate

    def spy(*args):
        seen.append([i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])
        return original(*args)

    monkeypatch.setattr(train_module, "evaluate", spy)
    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    train(config, data)
    assert seen == [[1] * len(before)] * 3 and before  # a BLAS is loaded, and limited in all three epochs
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


def test_divergence_names_the_epoch(subset):
    _, data = subset
    config = load_config(REPO / "atlas.toml", ["network.hidden=30", "train.epochs=2", "train.learning_rate=1e30"])
    with pytest.raises(TrainingError, match=r"diverged in epoch 1 .*smaller"):
        train(config, data)


def test_model_file_round_trips_and_is_byte_stable(subset, tmp_path):
    config, data = subset
    params, history, snaps = train(load_config(REPO / "atlas.toml", ["network.hidden=5", "train.epochs=1",
                                                                      "train.snapshot_epochs=[1]"]), data)
    meta = {"config": config.to_dict()}
    assert model_bytes(params, history, snaps, meta) == model_bytes(params, history, snaps, meta)
    save_model(tmp_path / "model.npz", params, history, snaps, meta)
    model = load_model(tmp_path / "model.npz")
    for name in params:
        assert model.params[name].tobytes() == params[name].tobytes()
    assert model.history == history and model.meta == meta
    assert sorted(model.snapshots) == [0, 1] and model.snapshots[1].tobytes() == params["W1"].tobytes()


@pytest.mark.parametrize("sets", [[], ["data.mean=0.1307", "data.std=0.3081"]])
def test_training_on_the_stored_pixels_gives_the_bits_of_training_on_the_float_images(subset, sets):
    """The train stage reads the training images as stored (load_dataset's train_pixels) and never converts them
    all to floats: the same weights, losses and snapshots, bit for bit, as training on the float images."""
    config, data = subset
    config = load_config(REPO / "atlas.toml", ["data.train_limit=2000", "data.test_limit=500", "network.hidden=30",
                                               "train.epochs=2", *sets])
    pixels = load_dataset(MNIST, config.data.sha256, 2000, 500, train_pixels=True)
    assert len(pixels.train_images) == 0 and len(pixels.train_pixels) == 2000
    a, ha, sa = train(config, data)
    b, hb, sb = train(config, pixels)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a) and sorted(sa) == sorted(sb)
    assert all(sa[e].tobytes() == sb[e].tobytes() for e in sa)
    assert [(h.train_loss, h.test_loss) for h in ha] == [(h.train_loss, h.test_loss) for h in hb]


def test_normalised_training_returns_weights_folded_onto_pixels(subset):
    # Trained on (x - mean) / std, stored acting on x: the folded network's accuracy on the raw test
    # images is the accuracy training measured on the normalised ones.
    _, data = subset
    config = load_config(REPO / "atlas.toml", ["data.train_limit=2000", "data.test_limit=500", "network.hidden=30",
                                               "train.epochs=2", "data.mean=0.1307", "data.std=0.3081"])
    params, history, snapshots = train(config, data)
    assert snapshots[2].tobytes() == params["W1"].tobytes()
    _, acc = train_module.evaluate(params, data.test_images, data.test_labels)
    assert acc == pytest.approx(history[-1].test_accuracy, abs=0.004) and acc > 0.8


def test_two_hidden_layers_relu_softmax_learn(subset):
    _, data = subset
    config = load_config(REPO / "atlas.toml", ["network.hidden=[30, 20]", "network.activation=relu",
                                               "network.output=softmax", "train.epochs=3", "train.learning_rate=0.1"])
    params, history, _ = train(config, data)
    assert [params[k].shape for k in ("W1", "b1", "W2", "b2", "W3", "b3")] == [(30, 784), (30,), (20, 30), (20,),
                                                                              (10, 20), (10,)]
    _, acc = train_module.evaluate(params, data.test_images, data.test_labels, "relu", "softmax")
    assert acc == history[-1].test_accuracy and acc > 0.8


WARM_THEN_TRAIN = """
import sys
from numba.core import event
from generator.config import REPO, load_config
from generator.data import load_dataset
from generator.train import train, warm_kernels
hidden, activation, output, normalised = sys.argv[1:5]
overrides = ["data.train_limit=300", "data.test_limit=100", "train.epochs=1", f"network.hidden={hidden}",
             f"network.activation={activation!r}", f"network.output={output!r}"]
if normalised == "1":
    overrides += ["data.mean=0.1307", "data.std=0.3081"]
config = load_config(REPO / "atlas.toml", overrides)
data = load_dataset(REPO / config.data.dir, config.data.sha256, 300, 100)
warm_kernels(len(config.network.hidden_sizes), activation, output, normalised == "1")
compiled = []
class Listener(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__name__)
    def on_end(self, ev):
        pass
event.register("numba:compile", Listener())
train(config, data)
print(",".join(compiled) or "none")
"""


@pytest.mark.parametrize("hidden, activation, output, normalised",
                         [("30", "sigmoid", "sigmoid", "0"), ("[20, 10]", "relu", "softmax", "1")])
def test_warm_kernels_compiles_everything_training_calls(hidden, activation, output, normalised, tmp_path):
    """KernelWarmer's second process compiles exactly what `train` then loads from the cache: after
    warm_kernels, in a fresh process with an empty numba cache, training compiles nothing more."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", WARM_THEN_TRAIN, hidden, activation, output, normalised], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "none"
