"""Pure functions from a trained network and the test set to the atlas's numbers: the hidden layer that feeds
the outputs as Neuron records (the only layer of a one-hidden-layer network), every layer of a deeper one as
Unit records (units.py), the classes (digit_analysis.py). Statistics helpers are in stats.py."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from threadpoolctl import threadpool_limits

from . import activations, attribution, background, effects, network, units
from .atlas import FORMAT, Atlas, HistoryRow, ImageRef, ModelInfo, Neuron, Role, Similar, floats
from .digit_analysis import RANDOM_DRAWS, digit_records
from .config import Config
from .data import Dataset
from .provenance import run_id
from .stats import (EXTREMES, HIST_BINS, NEAR_CONSTANT, OFF, ON, SATURATED, SILENCED, SIMILAR, STAT_DIGITS,
                    class_means, histograms, most_similar, patterns, per_class_accuracy, rounded,
                    saturation, saturation_flag, shown_extremes, typical_examples)
from .train import Model



def network_info(meta: dict, hidden: str, output: str, value_range: tuple[float, float]) -> dict:
    """How the network was read (ModelInfo.network): activations and where they came from, notes, warning."""
    keep = ("activation_source", "output_source", "notes", "inputs", "warning", "imported_test_accuracy")
    return {"activation": hidden, "output": output, "histogram_range": [rounded(v) for v in value_range],
            "saturation": [rounded(value_range[0] + t * (value_range[1] - value_range[0])) for t in (ON, OFF)],
            **{k: meta[k] for k in keep if k in meta}}


@dataclass(frozen=True)
class Forward:
    """The intact network on the test set, in float64, seen from the hidden layer that feeds the outputs."""
    Z1: np.ndarray  # (N, H) hidden pre-activations (of the last hidden layer)
    A1: np.ndarray  # (N, H) hidden activations
    Z2: np.ndarray  # (N, K) output pre-activations
    A2: np.ndarray  # (N, K) outputs
    predicted: np.ndarray  # (N,)


def forward64(params: dict[str, np.ndarray], X: np.ndarray, hidden: str = "sigmoid",
              output: str = "sigmoid") -> Forward:
    return readout(network.forward(params, X, hidden, output))


def readout(f: network.Forward) -> Forward:
    """The forward pass seen from the last hidden layer: the only one for one hidden layer."""
    return Forward(f.zs[-1], f.acts[-1], f.logits, f.outputs, f.predicted)


def neuron_ablation(f: Forward, correct: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """(H, K) change in per-class accuracy when each neuron is replaced by its mean test activation, from
    `correct` (H, K), the images of each class still right (effects.pinned_each)."""
    counts = np.bincount(y, minlength=n_classes)
    base = per_class_accuracy(f.predicted, y, n_classes)
    return correct / np.maximum(counts, 1) - base


@dataclass(frozen=True)
class Arrays:
    """Bulk arrays the figures need but atlas.json need not carry (build/arrays.npz)."""
    image_indices: np.ndarray  # (M,) source test-set indices of the images below
    images: np.ndarray  # (M, rows, cols) uint8 pixels of every test image a page shows
    snapshot_epochs: np.ndarray  # (S,)
    snapshots: np.ndarray  # (S, H, rows, cols) float32 W1 during training (none for a deeper network)
    patterns: np.ndarray  # (H, rows, cols) float32 mean top-activating image minus mean image
    templates: np.ndarray  # (K, rows, cols) W2[d] . diag(mean sigma' over all test images) . W1
    contrasts: np.ndarray  # (K, rows, cols) (W2[d] - W2[rival]) . diag(mean sigma' over d and rival) . W1
    preferred: np.ndarray  # (K, rows, cols) preferred input of each output unit
    gradient_x_input: np.ndarray  # (K, rows, cols) for each digit's worked example
    integrated_gradients: np.ndarray  # (K, rows, cols) for each digit's worked example, black baseline
    # The probe (generator/probe.py) runs the network in the browser on any test image: it needs them all,
    # with their labels and the network's predictions, and the output biases atlas.json does not carry.
    test_images: np.ndarray  # (N, rows, cols) uint8 pixels of every test image, in test-set order
    test_ids: np.ndarray  # (N,) int64 index of each in the source files (MNIST's own index), as pages show
    test_labels: np.ndarray  # (N,) int64
    test_predicted: np.ndarray  # (N,) int64 argmax of the float64 forward pass
    output_bias: np.ndarray  # (K,) float32 b2, exact (b{L+1} for L hidden layers)
    # A deeper network: every hidden layer's units' preferred inputs, layer after layer ((0, rows, cols) for one).
    unit_preferred: np.ndarray  # (H1 + ... + HL, rows, cols) float32


def analyze(config: Config, model: Model, data: Dataset) -> tuple[Atlas, Arrays]:
    """Every statistic of the atlas, on the test set.

    NumPy's BLAS runs on one thread: most products here are small (the preferred inputs' ascent multiplies
    (K, D) by (D, H) thousands of times), and OpenBLAS's spinning threads made them 9x slower, not faster.
    """
    with threadpool_limits(1):
        return _analyze(config, model, data)


def _analyze(config: Config, model: Model, data: Dataset) -> tuple[Atlas, Arrays]:
    p = model.params
    X, y, K = data.test_images, data.test_labels, data.n_classes
    ids = data.test_ids  # source indices of the test images, for every index a page or JSON shows
    shape = data.image_shape
    hidden, output = model.meta.get("activation", "sigmoid"), model.meta.get("output", "sigmoid")
    L = network.depth(p)
    p64 = attribution.as64(p, hidden)
    full = network.forward(p, X, hidden, output)
    f = readout(full)  # the last hidden layer, which the outputs read: the only one for one hidden layer
    # histograms and saturation on this range, scaled to [0, 1]; one range for every layer of a deeper network
    lo, hi = activations.value_range(hidden, np.concatenate([a.ravel() for a in full.acts]) if L > 1 else f.A1)
    unit = (f.A1 - lo) / (hi - lo)  # (N, H); the activations themselves for sigmoid
    W_in, b_in, W_out = p[f"W{L}"], p[f"b{L}"], p[f"W{L + 1}"]  # W1, b1, W2 for one hidden layer
    # What a neuron page draws as its picture: its weights for one hidden layer, its effective input maps
    # (units.effective_maps) for the last layer of a deeper network.
    weights = attribution.weights(p64)
    maps = [units.effective_maps(weights, X, layer, hidden) for layer in range(1, L + 1)] if L > 1 else []
    picture = maps[-1].astype(np.float32) if L > 1 else p["W1"]  # (H, D)
    H = W_in.shape[0]
    W2 = W_out.astype(np.float64)
    means = class_means(f.A1, y, K)  # (H, K)
    unit_means = (means - lo) / (hi - lo)  # on the activation's range, [0, 1]: the means themselves for sigmoid
    fill = f.A1.mean(axis=0)  # (H,) what mean-pinning sets each activation to
    raw, disc = effects.logit_terms(W2, means, fill)  # (K, H) each
    # (H, K) each. The accuracy counts come from the pinned logits the margins use (NumPy, 0.1 s): the numba
    # kernel that counted them was this stage's only use of numba, whose import and cached kernel cost
    # more than a second of it.
    effect, still_right = effects.pinned_each(f.Z2, f.A1, W2, fill, y, K)
    k = config.analysis.top_k
    tops = [effects.ranked(effect[:, d], k) for d in range(K)]
    bottoms = [effects.ranked(effect[:, d], k, sign=-1) for d in range(K)]
    accuracy = per_class_accuracy(f.predicted, y, K)
    mean_images = class_means(X, y, K).T  # (K, D)
    examples = typical_examples(X, y, mean_images)
    ablation = neuron_ablation(f, still_right, y, K)  # (H, K)
    shown_images = set(examples)
    layers, unit_preferred, layer_tops = deeper_layers(p64, full, effect, ablation, maps, X, y, ids, K, shape, k,
                                                       hidden, (lo, hi), shown_images)
    # The class records (more than half of the analysis: pinning, random baselines, preferred inputs) need
    # nothing the neuron records make: they are computed in a second process meanwhile, started as soon as
    # their inputs are. Each is seeded on its own and BLAS runs on one thread in both, so the numbers are the
    # same bits as one after the other.
    classes = background.start(partial(
        digit_records, f, W2, p[f"b{L + 1}"], p64, X, y, ids, shape, K, k, config.train.seed, means, fill, raw,
        disc, effect, ablation, accuracy, mean_images, examples, tops, bottoms, layer_tops))
    hist = histograms(unit, y, K, HIST_BINS)
    above, below = saturation(unit)
    spread = unit.std(axis=0)  # on the activation's range: the activation's own for sigmoid
    saturated, silenced = unit >= SATURATED, unit <= SILENCED  # (N, H)
    overall_ablation = (ablation * np.bincount(y, minlength=K)).sum(axis=1) / len(y)
    similar_w = most_similar(W_in, SIMILAR)
    similar_a = most_similar(f.A1.T, SIMILAR)
    n_pattern = max(1, len(y) // 100)
    # (N, H) each neuron's images by pre-activation, highest and lowest first (stable: ties to the lower
    # index), sorted once for the patterns and the shown extremes (as extremes and shown_extremes sort them)
    highest, lowest = np.argsort(-f.Z1, axis=0, kind="stable"), np.argsort(f.Z1, axis=0, kind="stable")
    pattern = patterns(f.A1, X, highest[:n_pattern].T)
    n_shown = min(EXTREMES, len(y))

    def refs(indices, j) -> list[ImageRef]:
        return [ImageRef(int(ids[i]), int(y[i]), rounded(f.A1[i, j]), rounded(f.Z1[i, j])) for i in indices]

    neurons = []
    for j in range(H):
        w_out = W_out[:, j]
        top, top_sampled = shown_extremes(f.Z1[:, j], saturated[:, j], y, K, n_shown, True, highest[:, j])
        bottom, bottom_sampled = shown_extremes(f.Z1[:, j], silenced[:, j], y, K, n_shown, False, lowest[:, j])
        shown_images.update(top, bottom)
        neurons.append(Neuron(
            id=j, bias=float(floats(b_in[j:j + 1])[0]),
            output_weights=floats(w_out),
            mean_activation=floats(means[j], STAT_DIGITS),
            contribution=floats(raw[:, j], STAT_DIGITS), discriminative=floats(disc[:, j], STAT_DIGITS),
            effect=floats(effect[j], STAT_DIGITS), effect_largest=rounded(effect[j].max()),
            effect_largest_digit=int(np.argmax(effect[j])),
            activation_mean=rounded(fill[j]), activation_std=rounded(spread[j]),
            weights=floats(picture[j].reshape(shape)),
            weight_max_abs=float(floats(np.abs(picture[j]).max(keepdims=True))[0]),
            fires_most_for=int(np.argmax(means[j])),
            fires_for=[int(d) for d in np.argsort(-means[j], kind="stable") if unit_means[j, d] >= 0.5],
            silent_for=[int(d) for d in np.argsort(means[j], kind="stable") if unit_means[j, d] < 0.1],
            promotes=[int(d) for d in np.argsort(-w_out, kind="stable") if w_out[d] > 0],
            suppresses=[int(d) for d in np.argsort(w_out, kind="stable") if w_out[d] < 0],
            top_contributor_of=[Role(d, tops[d].index(j) + 1, rounded(raw[d, j]), rounded(effect[j, d]))
                                for d in range(K) if j in tops[d]],
            top_suppressor_of=[Role(d, bottoms[d].index(j) + 1, rounded(raw[d, j]), rounded(effect[j, d]))
                               for d in range(K) if j in bottoms[d]],
            top_images=refs(top, j), bottom_images=refs(bottom, j),
            saturated=np.bincount(y[saturated[:, j]], minlength=K).tolist(),
            silenced=np.bincount(y[silenced[:, j]], minlength=K).tolist(),
            top_images_sampled=top_sampled, bottom_images_sampled=bottom_sampled,
            histogram=hist[j].tolist(), histogram_peak=int(hist[j].sum(axis=0).max()),
            share_above=rounded(above[j]), share_below=rounded(below[j]),
            flag=saturation_flag(above[j], below[j], bool((unit[:, j] < OFF).all()), spread[j]),
            ablation=floats(ablation[j], STAT_DIGITS), ablation_overall=rounded(overall_ablation[j]),
            ablation_cost=rounded(max(0.0, -ablation[j].min())), ablation_cost_digit=int(np.argmin(ablation[j])),
            similar_by_weights=[Similar(i, rounded(r)) for i, r in similar_w[j]],
            similar_by_activation=[Similar(i, rounded(r)) for i, r in similar_a[j]],
        ))
    digits, confusion, class_maps, wrong = classes()
    shown_images.update(wrong)
    history = [HistoryRow(h.epoch, h.learning_rate, h.train_loss, h.test_loss, h.test_accuracy, h.seconds)
               for h in model.history]
    own_max = np.abs(picture).max(axis=1)
    epochs = sorted(model.snapshots) if L == 1 else []  # snapshots hold W1, drawn for one hidden layer only
    info = ModelInfo(
        run_id=run_id(data.sha256, config.to_dict(), p),
        sizes=network.sizes(p), image_shape=list(shape),
        test_accuracy=rounded((f.predicted == y).mean()), test_loss=rounded(activations.loss(output, f.Z2, y).mean()),
        seed=config.train.seed, epochs=len(model.history),
        training_seconds=round(sum(h.seconds for h in model.history), 1),
        n_train=len(data.train_labels), n_test=len(y), data_sha256=dict(sorted(data.sha256.items())),
        config=config.to_dict(), histogram_bins=HIST_BINS, pattern_images=n_pattern,
        snapshot_epochs=epochs, random_draws=RANDOM_DRAWS,
        weight_max_abs=float(floats(own_max.max(keepdims=True))[0]),
        weight_max_abs_median=rounded(np.median(own_max)), near_constant_std=NEAR_CONSTANT,
        class_names=list(data.class_names), noun=config.data.noun,
        source=model.meta.get("source", "trained by this atlas"),
        network=network_info(model.meta, hidden, output, (lo, hi)))
    shown = sorted(shown_images)  # positions in the test arrays
    raw_pixels = np.round(X[shown] * 255).astype(np.uint8).reshape(len(shown), *shape)
    arrays = Arrays(
        image_indices=ids[shown].astype(np.int64), images=raw_pixels,
        snapshot_epochs=np.array(epochs, np.int64),
        snapshots=np.array([model.snapshots[e] for e in epochs], np.float32).reshape(len(epochs), H, *shape),
        patterns=pattern.astype(np.float32).reshape(H, *shape),
        **{name: np.array(v, np.float32).reshape(K, *shape) for name, v in class_maps.items()},
        test_images=np.round(X * 255).astype(np.uint8).reshape(len(y), *shape), test_labels=y.astype(np.int64),
        test_ids=np.asarray(ids, np.int64), test_predicted=f.predicted.astype(np.int64),
        output_bias=np.asarray(p[f"b{L + 1}"], np.float32),
        unit_preferred=unit_preferred.astype(np.float32).reshape(-1, *shape))
    return Atlas(FORMAT, info, history, neurons, digits, confusion.tolist(), layers), arrays


def deeper_layers(p64: dict, full: network.Forward, effect: np.ndarray, ablation: np.ndarray, maps: list,
                  X: np.ndarray, y: np.ndarray, ids: np.ndarray, K: int, shape, k: int, hidden: str,
                  value_range: tuple[float, float], shown: set) -> tuple[list, np.ndarray, list]:
    """Every hidden layer of a deeper network as units.Layer records, their units' preferred inputs (U, D),
    and each class's top units per layer; adds the test positions their pages show to `shown`. Nothing for
    one hidden layer. effect/ablation (H_L, K): the last layer's, computed for its Neuron records already."""
    weights = attribution.weights(p64)
    L = network.depth(weights)
    if L == 1:
        return [], np.zeros((0, X.shape[1])), [[] for _ in range(K)]
    start = X.astype(np.float64).mean(axis=0)
    layers, preferred, by_layer = [], [], []
    for layer in range(1, L + 1):
        e, a = (effect, ablation) if layer == L else units.layer_effects(weights, full, layer, y, K, hidden)
        best = units.preferred_units(weights, layer, hidden, start, shape)
        record, seen = units.layer_units(weights, full, layer, e, a, maps[layer - 1], best, X, y, ids, K, shape,
                                         hidden, value_range)
        layers.append(record)
        preferred.append(best)
        by_layer.append(e)
        shown.update(seen)
    return layers, np.concatenate(preferred), units.layer_tops(by_layer, K, k)
