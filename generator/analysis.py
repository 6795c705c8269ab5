"""Pure functions from a trained network and the test set to the atlas's numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from . import activations, attribution, effects, kernels
from .atlas import (FORMAT, Atlas, Contribution, Count, Digit, Example, HistoryRow, ImageRef, Mistake, ModelInfo,
                    Neuron, Push, RandomBaseline, Role, Score, Similar, floats)
from .config import Config
from .data import Dataset
from .provenance import run_id
from .train import Model

STAT_DIGITS = 6  # decimals kept for statistics (activations, contributions, accuracies)
EXTREMES = 16  # top- and least-activating test images shown per neuron
SIMILAR = 5  # similar neurons listed per neuron
HIST_BINS = 20  # activation histogram bins over the activation's range (activations.value_range)
ON, OFF = 0.99, 0.01  # saturation thresholds, as fractions of that range ([0, 1] for sigmoid)
MOSTLY = 0.95  # share of images beyond a threshold that flags a neuron "nearly always" on or off
SATURATED = 0.9995  # activations shown as 1.000 (three decimals): a saturated neuron's top images tie there
SILENCED = 0.0005  # activations shown as 0.000
NEAR_CONSTANT = 0.01  # activation standard deviation over the test set below which a neuron is "near-constant"
RANDOM_DRAWS = 200  # random neuron sets per digit: enough for a 5-95% range of the baseline
PUSHES = 5  # neurons listed per misclassified example
# Preferred inputs: (penalty, smoothness) tried strongest first; each class keeps the first whose preferred
# input scores at least the median logit of the class's real test images (the strongest that is typical).
PREFERRED_STRENGTHS = ((0.5, 2.0), (0.5, 1.0), (0.5, 0.5), (0.2, 0.2), (0.1, 0.1), (0.0, 0.0))


def rounded(v) -> float:
    return round(float(v), STAT_DIGITS)


def class_means(values: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, C) values, (N,) labels -> (C, n_classes) mean of each column over the rows of each class."""
    onehot = np.eye(n_classes)[labels]  # (N, K)
    counts = onehot.sum(axis=0)
    return (values.astype(np.float64).T @ onehot) / np.maximum(counts, 1)


def per_class_accuracy(predicted: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(K,) share of each class's examples that were predicted correctly."""
    return class_means((predicted == labels)[:, None], labels, n_classes)[0]


def typical_examples(images: np.ndarray, labels: np.ndarray, means: np.ndarray) -> list[int]:
    """For each class, the index of its image nearest (Euclidean) to the class mean image."""
    picks = []
    for d in range(means.shape[0]):
        idx = np.flatnonzero(labels == d)
        dist = ((images[idx].astype(np.float64) - means[d]) ** 2).sum(axis=1)
        picks.append(int(idx[np.argmin(dist)]))
    return picks


def extremes(activations: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, H) -> (H, n) indices of each neuron's highest activations (highest first) and lowest (lowest first).

    Ties go to the lower image index.
    """
    top = np.argsort(-activations, axis=0, kind="stable")[:n].T
    bottom = np.argsort(activations, axis=0, kind="stable")[:n].T
    return top, bottom


def histograms(activations: np.ndarray, labels: np.ndarray, n_classes: int, bins: int) -> np.ndarray:
    """(H, K, bins) counts of each neuron's activations in equal bins over [0, 1], split by class.

    Bin b holds b/bins <= a < (b+1)/bins; an activation of exactly 1 counts in the last bin.
    """
    which = np.minimum((activations * bins).astype(np.int64), bins - 1)  # (N, H)
    H = activations.shape[1]
    counts = np.zeros((H, n_classes, bins), np.int64)
    np.add.at(counts, (np.arange(H)[None, :], labels[:, None], which), 1)
    return counts


def saturation(activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, H) -> shares of images with activation above ON and below OFF, each (H,)."""
    return (activations > ON).mean(axis=0), (activations < OFF).mean(axis=0)


def saturation_flag(above: float, below: float, always_off: bool, spread: float) -> str:
    """'dead' (below OFF on every image), 'near-constant' (activation standard deviation below NEAR_CONSTANT:
    whatever its weight map looks like, it passes almost no information on), 'nearly always off',
    'nearly always on', or ''."""
    if always_off:
        return "dead"
    if spread < NEAR_CONSTANT:
        return "near-constant"
    if below >= MOSTLY:
        return "nearly always off"
    if above >= MOSTLY:
        return "nearly always on"
    return ""


def largest_remainder(counts: np.ndarray, n: int) -> np.ndarray:
    """(K,) counts -> (K,) seats summing to min(n, counts.sum()), proportional to the counts (Hamilton's
    method: floors of the quotas, then one more seat each to the largest remainders, ties to the lower index)."""
    total = counts.sum()
    n = min(n, int(total))
    if n == 0:
        return np.zeros_like(counts)
    quota = counts * n / total
    seats = np.floor(quota).astype(np.int64)
    for k in np.argsort(-(quota - seats), kind="stable")[: n - seats.sum()]:
        seats[k] += 1
    return seats


def shown_extremes(z: np.ndarray, tied: np.ndarray, labels: np.ndarray, n_classes: int, n: int,
                   highest: bool) -> tuple[list[int], bool]:
    """The n test images a neuron page shows at one end of a neuron's range, and whether they are a sample.

    z (N,) pre-activations, which order images the same way as the activations but keep apart the ones
    the activation saturates to the same shown value; tied (N,) marks the images at that end's saturated
    value. When at most n images are tied: the n with the highest (or lowest) z, ties to the lower index.
    When more are tied, the top n by activation would be an arbitrary pick among them, so the page shows a
    sample of the tied set instead: seats per class proportional to the class's share of the tied set
    (largest_remainder), each class's images by z; the whole sample ordered by z.
    """
    order = np.argsort(-z if highest else z, kind="stable")
    if tied.sum() <= n:
        return [int(i) for i in order[:n]], False
    ranked = order[tied[order]]  # the tied images, strongest first
    seats = largest_remainder(np.bincount(labels[tied], minlength=n_classes), n)
    keep = np.concatenate([ranked[labels[ranked] == k][: seats[k]] for k in range(n_classes)])
    position = np.empty(len(z), np.int64)
    position[order] = np.arange(len(z))
    return [int(i) for i in keep[np.argsort(position[keep], kind="stable")]], True


def most_similar(matrix: np.ndarray, n: int) -> list[list[tuple[int, float]]]:
    """For each row, the n other rows with the highest Pearson correlation: [(row, r), ...], highest first.

    Rows without variance correlate with nothing (np.corrcoef gives NaN) and are never listed.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(matrix.astype(np.float64))
    r = np.atleast_2d(r)
    ranked = np.where(np.isnan(r), -np.inf, r)
    np.fill_diagonal(ranked, -np.inf)
    out = []
    for j in range(len(ranked)):
        order = np.argsort(-ranked[j], kind="stable")[:n]
        out.append([(int(i), float(r[j, i])) for i in order if np.isfinite(ranked[j, i])])
    return out


def patterns(activations: np.ndarray, images: np.ndarray, top: np.ndarray) -> np.ndarray:
    """(H, D): mean of each neuron's top-activating images (rows of `top`) minus the mean of all images."""
    return images[top].astype(np.float64).mean(axis=1) - images.astype(np.float64).mean(axis=0)


def network_info(meta: dict, hidden: str, output: str, value_range: tuple[float, float]) -> dict:
    """How the network was read (ModelInfo.network): activations and where they came from, notes, warning."""
    keep = ("activation_source", "output_source", "notes", "inputs", "warning", "imported_test_accuracy")
    return {"activation": hidden, "output": output, "histogram_range": [rounded(v) for v in value_range],
            "saturation": [rounded(value_range[0] + t * (value_range[1] - value_range[0])) for t in (ON, OFF)],
            **{k: meta[k] for k in keep if k in meta}}


@dataclass(frozen=True)
class Forward:
    """The intact network on the test set, in float64."""
    Z1: np.ndarray  # (N, H) hidden pre-activations
    A1: np.ndarray  # (N, H) hidden activations
    Z2: np.ndarray  # (N, K) output pre-activations
    A2: np.ndarray  # (N, K) outputs
    predicted: np.ndarray  # (N,)


def forward64(params: dict[str, np.ndarray], X: np.ndarray, hidden: str = "sigmoid",
              output: str = "sigmoid") -> Forward:
    p = {k: v.astype(np.float64) for k, v in params.items()}
    Z1 = X.astype(np.float64) @ p["W1"].T + p["b1"]
    A1 = activations.apply(hidden, Z1)
    Z2 = A1 @ p["W2"].T + p["b2"]
    A2 = activations.apply(output, Z2)
    return Forward(Z1, A1, Z2, A2, Z2.argmax(axis=1))


def neuron_ablation(f: Forward, W2: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """(H, K) change in per-class accuracy when each neuron is replaced by its mean test activation."""
    counts = np.bincount(y, minlength=n_classes)
    correct = kernels.ablation_correct(f.Z2, f.A1, W2.astype(np.float64), f.A1.mean(axis=0), y, n_classes)
    base = per_class_accuracy(f.predicted, y, n_classes)
    return correct / np.maximum(counts, 1) - base


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) counts: row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def ranked_counts(counts: np.ndarray, skip: int) -> list[tuple[int, int]]:
    """Non-zero entries except `skip`, largest first (ties: lower index): [(index, count), ...]."""
    return [(int(i), int(counts[i])) for i in np.argsort(-counts, kind="stable") if i != skip and counts[i] > 0]


def strongest_rival(confusion: np.ndarray, d: int) -> int:
    """The class most confused with d in either direction (ties: lower class)."""
    both = confusion[d] + confusion[:, d]
    both[d] = -1
    return int(np.argmax(both))


@dataclass(frozen=True)
class Arrays:
    """Bulk arrays the figures need but atlas.json need not carry (build/arrays.npz)."""
    image_indices: np.ndarray  # (M,) source test-set indices of the images below
    images: np.ndarray  # (M, rows, cols) uint8 pixels of every test image a page shows
    snapshot_epochs: np.ndarray  # (S,)
    snapshots: np.ndarray  # (S, H, rows, cols) float32 W1 during training
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
    output_bias: np.ndarray  # (K,) float32 b2, exact


def preferred(p64: dict, mean_image: np.ndarray, shape, typical: np.ndarray) -> tuple[np.ndarray, list[tuple]]:
    """(K, D) preferred inputs and the (penalty, smoothness) each was found with: for each class the
    strongest regularisation in PREFERRED_STRENGTHS whose input reaches typical[d] (the median logit of
    the class's test images); the weakest when none does."""
    K = p64["W2"].shape[0]
    chosen, found = [None] * K, np.zeros((K, len(mean_image)))
    for strength in PREFERRED_STRENGTHS:
        if all(chosen):
            break
        x = attribution.preferred_inputs(p64, mean_image, shape, penalty=strength[0], smooth=strength[1])
        z = attribution.logits(p64, x)[np.arange(K), np.arange(K)]
        for d in range(K):
            if chosen[d] is None and (z[d] >= typical[d] or strength == PREFERRED_STRENGTHS[-1]):
                chosen[d], found[d] = strength, x[d]
    return found, chosen


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
    f = forward64(p, X, hidden, output)
    lo, hi = activations.value_range(hidden, f.A1)  # histograms and saturation on this range, scaled to [0, 1]
    unit = (f.A1 - lo) / (hi - lo)  # (N, H); the activations themselves for sigmoid
    H = p["W1"].shape[0]
    W2 = p["W2"].astype(np.float64)
    means = class_means(f.A1, y, K)  # (H, K)
    unit_means = (means - lo) / (hi - lo)  # on the activation's range, [0, 1]: the means themselves for sigmoid
    fill = f.A1.mean(axis=0)  # (H,) what mean-pinning sets each activation to
    raw, disc = effects.logit_terms(W2, means, fill)  # (K, H) each
    effect = effects.margin_effects(f.Z2, f.A1, W2, fill, y, K)  # (H, K)
    k = config.analysis.top_k
    tops = [effects.ranked(effect[:, d], k) for d in range(K)]
    bottoms = [effects.ranked(effect[:, d], k, sign=-1) for d in range(K)]
    accuracy = per_class_accuracy(f.predicted, y, K)
    mean_images = class_means(X, y, K).T  # (K, D)
    examples = typical_examples(X, y, mean_images)
    hist = histograms(unit, y, K, HIST_BINS)
    above, below = saturation(unit)
    spread = unit.std(axis=0)  # on the activation's range: the activation's own for sigmoid
    saturated, silenced = unit >= SATURATED, unit <= SILENCED  # (N, H)
    ablation = neuron_ablation(f, W2, y, K)  # (H, K)
    overall_ablation = (ablation * np.bincount(y, minlength=K)).sum(axis=1) / len(y)
    similar_w = most_similar(p["W1"], SIMILAR)
    similar_a = most_similar(f.A1.T, SIMILAR)
    n_pattern = max(1, len(y) // 100)
    pattern = patterns(f.A1, X, extremes(f.Z1, n_pattern)[0])
    n_shown = min(EXTREMES, len(y))

    def refs(indices, j) -> list[ImageRef]:
        return [ImageRef(int(ids[i]), int(y[i]), rounded(f.A1[i, j]), rounded(f.Z1[i, j])) for i in indices]

    def contribution(d: int, j: int) -> Contribution:
        return Contribution(j, rounded(raw[d, j]), rounded(disc[d, j]), rounded(effect[j, d]), rounded(ablation[j, d]))

    neurons, shown_images = [], set(examples)
    for j in range(H):
        w_out = p["W2"][:, j]
        top, top_sampled = shown_extremes(f.Z1[:, j], saturated[:, j], y, K, n_shown, highest=True)
        bottom, bottom_sampled = shown_extremes(f.Z1[:, j], silenced[:, j], y, K, n_shown, highest=False)
        shown_images.update(top, bottom)
        neurons.append(Neuron(
            id=j, bias=float(floats(p["b1"][j:j + 1])[0]),
            output_weights=floats(w_out),
            mean_activation=floats(means[j], STAT_DIGITS),
            contribution=floats(raw[:, j], STAT_DIGITS), discriminative=floats(disc[:, j], STAT_DIGITS),
            effect=floats(effect[j], STAT_DIGITS), effect_largest=rounded(effect[j].max()),
            effect_largest_digit=int(np.argmax(effect[j])),
            activation_mean=rounded(fill[j]), activation_std=rounded(spread[j]),
            weights=floats(p["W1"][j].reshape(shape)),
            weight_max_abs=float(floats(np.abs(p["W1"][j]).max(keepdims=True))[0]),
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
    confusion = confusion_matrix(y, f.predicted, K)
    p64 = attribution.as64(p, hidden)
    eye = np.eye(K)
    sp = attribution.sigma_prime(p64, X.astype(np.float64))  # (N, H)
    mean_image = X.astype(np.float64).mean(axis=0)
    median_logit = np.array([np.median(f.Z2[y == d, d]) if (y == d).any() else 0.0 for d in range(K)])
    preferred_all, strengths = preferred(p64, mean_image, shape, median_logit)  # (K, D)
    margin = effects.margins(f.Z2, y)  # (N,)
    maps = {name: [] for name in ("templates", "contrasts", "preferred", "gradient_x_input", "integrated_gradients")}
    digits = []
    for d in range(K):
        e = examples[d]
        mine = y == d
        pinned_top = effects.pin(f.Z2, f.A1, W2, fill, y, d, tops[d])
        pinned_bottom = effects.pin(f.Z2, f.A1, W2, fill, y, d, bottoms[d])
        drawn, pool, margin_pct, accuracy_pct = effects.random_baseline(
            f.Z2, f.A1, W2, fill, y, d, tops[d], len(tops[d]), RANDOM_DRAWS, [config.train.seed, 5, d])
        baseline = RandomBaseline(drawn, pool, *map(rounded, margin_pct), *map(rounded, accuracy_pct),
                                  top_outside=bool(drawn and pinned_top.margin_change < margin_pct[0]))
        r = strongest_rival(confusion, d)
        pair = (y == d) | (y == r)
        separation = (W2[d] - W2[r]) * (means[:, d] - means[:, r])  # (H,)
        x = X[e].astype(np.float64)
        ig = attribution.integrated_gradients(p64, x, d)
        maps["templates"].append(attribution.linearised_map(p64, eye[d], sp.mean(axis=0)))
        maps["contrasts"].append(attribution.linearised_map(p64, eye[d] - eye[r], sp[pair].mean(axis=0)))
        maps["preferred"].append(preferred_all[d])
        maps["gradient_x_input"].append(x * attribution.input_gradient(p64, x[None, :], eye[d])[0])
        maps["integrated_gradients"].append(ig)
        z = attribution.logits(p64, np.stack([preferred_all[d], mean_image, x, np.zeros_like(x)]))[:, d]
        wrong = np.flatnonzero(mine & (f.predicted != d))
        shown_images.update(wrong.tolist())
        digits.append(Digit(
            digit=d, count=int(mine.sum()), accuracy=rounded(accuracy[d]),
            top_contributors=[contribution(d, j) for j in tops[d]],
            top_suppressors=[contribution(d, j) for j in bottoms[d]],
            mean_image=floats(mean_images[d].reshape(shape), STAT_DIGITS),
            example=Example(index=int(ids[e]), label=int(y[e]), predicted=int(f.predicted[e]),
                            image=floats(X[e].reshape(shape)),
                            hidden_activation=floats(f.A1[e], STAT_DIGITS),
                            output=floats(f.A2[e], STAT_DIGITS)),
            ablate_top=rounded(pinned_top.accuracy), ablate_random=rounded(accuracy_pct[1] if drawn else accuracy[d]),
            ablate_suppressors=rounded(pinned_bottom.accuracy),
            margin=rounded(margin[mine].mean()), margin_top=rounded(pinned_top.margin_change),
            margin_suppressors=rounded(pinned_bottom.margin_change), random_baseline=baseline,
            mistaken_for=[Count(c, n) for c, n in ranked_counts(confusion[d], d)],
            mistaken_as=[Count(c, n) for c, n in ranked_counts(confusion[:, d], d)],
            rival=r,
            toward=[Score(j, rounded(separation[j])) for j in effects.ranked(separation, k)],
            away=[Score(j, rounded(separation[j])) for j in effects.ranked(separation, k, sign=-1)],
            mistakes=[mistake(f, W2, p["b2"], i, int(ids[i]), d) for i in wrong],
            preferred_logit=rounded(z[0]), median_logit=rounded(median_logit[d]),
            preferred_penalty=strengths[d][0], preferred_smoothness=strengths[d][1],
            start_logit=rounded(z[1]), example_logit=rounded(z[2]),
            baseline_logit=rounded(z[3]), example_ig_sum=rounded(ig.sum()),
        ))
    history = [HistoryRow(h.epoch, h.learning_rate, h.train_loss, h.test_loss, h.test_accuracy, h.seconds)
               for h in model.history]
    own_max = np.abs(p["W1"]).max(axis=1)
    info = ModelInfo(
        run_id=run_id(data.sha256, config.to_dict(), p),
        sizes=[data.n_inputs, H, K], image_shape=list(shape),
        test_accuracy=rounded((f.predicted == y).mean()), test_loss=rounded(activations.loss(output, f.Z2, y).mean()),
        seed=config.train.seed, epochs=len(model.history),
        training_seconds=round(sum(h.seconds for h in model.history), 1),
        n_train=len(data.train_labels), n_test=len(y), data_sha256=dict(sorted(data.sha256.items())),
        config=config.to_dict(), histogram_bins=HIST_BINS, pattern_images=n_pattern,
        snapshot_epochs=sorted(model.snapshots), random_draws=RANDOM_DRAWS,
        weight_max_abs=float(floats(own_max.max(keepdims=True))[0]),
        weight_max_abs_median=rounded(np.median(own_max)), near_constant_std=NEAR_CONSTANT,
        class_names=list(data.class_names), noun=config.data.noun,
        source=model.meta.get("source", "trained by this atlas"),
        network=network_info(model.meta, hidden, output, (lo, hi)))
    shown = sorted(shown_images)  # positions in the test arrays
    raw_pixels = np.round(X[shown] * 255).astype(np.uint8).reshape(len(shown), *shape)
    epochs = sorted(model.snapshots)
    arrays = Arrays(
        image_indices=ids[shown].astype(np.int64), images=raw_pixels,
        snapshot_epochs=np.array(epochs, np.int64),
        snapshots=np.array([model.snapshots[e] for e in epochs], np.float32).reshape(len(epochs), H, *shape),
        patterns=pattern.astype(np.float32).reshape(H, *shape),
        **{name: np.array(v, np.float32).reshape(K, *shape) for name, v in maps.items()},
        test_images=np.round(X * 255).astype(np.uint8).reshape(len(y), *shape), test_labels=y.astype(np.int64),
        test_ids=np.asarray(ids, np.int64), test_predicted=f.predicted.astype(np.int64), output_bias=np.asarray(p["b2"], np.float32))
    return Atlas(FORMAT, info, history, neurons, digits, confusion.tolist()), arrays


def mistake(f: Forward, W2: np.ndarray, b2: np.ndarray, i: int, index: int, label: int) -> Mistake:
    """Test image i (source index `index`) of class `label`, misclassified: its outputs, its hidden layer,
    and the PUSHES neurons with the largest positive net push towards the wrong answer."""
    c = int(f.predicted[i])
    to_pred, to_true, net = effects.net_pushes(f.A1[i], W2, c, label)
    blamed = effects.ranked(net, PUSHES)
    return Mistake(index, label, c, rounded(f.A2[i, c]), rounded(f.A2[i, label]),
                   logit_gap=rounded(f.Z2[i, c] - f.Z2[i, label]), bias_gap=rounded(float(b2[c]) - float(b2[label])),
                   pushes=[Push(j, rounded(f.A1[i, j]), rounded(to_pred[j]), rounded(to_true[j]), rounded(net[j]))
                           for j in blamed],
                   hidden_activation=floats(f.A1[i], STAT_DIGITS), output=floats(f.A2[i], STAT_DIGITS))
