"""Pure functions from a trained network and the test set to the atlas's numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import activations, attribution, kernels
from .atlas import (FORMAT, Atlas, Contribution, Count, Digit, Example, HistoryRow, ImageRef, Mistake, ModelInfo,
                    Neuron, Push, Role, Score, Similar, floats)
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
RANDOM_DRAWS = 20  # random neuron sets per digit, the baseline for ablating its top-k
PUSHES = 5  # neurons listed per misclassified example


def rounded(v) -> float:
    return round(float(v), STAT_DIGITS)


def class_means(values: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, C) values, (N,) labels -> (C, n_classes) mean of each column over the rows of each class."""
    onehot = np.eye(n_classes)[labels]  # (N, K)
    counts = onehot.sum(axis=0)
    return (values.astype(np.float64).T @ onehot) / np.maximum(counts, 1)


def contributions(W2: np.ndarray, mean_activation: np.ndarray) -> np.ndarray:
    """(K, H): contribution of hidden neuron j to class d = W2[d, j] * mean activation of j on class d."""
    return W2.astype(np.float64) * mean_activation.T


def top_positive(row: np.ndarray, k: int) -> list[int]:
    """Indices of the k largest strictly positive entries, largest first (ties: lower index first)."""
    order = np.argsort(-row, kind="stable")
    return [int(i) for i in order[:k] if row[i] > 0]


def top_negative(row: np.ndarray, k: int) -> list[int]:
    """Indices of the k most negative entries, most negative first (ties: lower index first)."""
    order = np.argsort(row, kind="stable")
    return [int(i) for i in order[:k] if row[i] < 0]


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


def saturation_flag(above: float, below: float, always_off: bool) -> str:
    """'dead' (below OFF on every image), 'nearly always off', 'nearly always on', or ''."""
    if always_off:
        return "dead"
    if below >= MOSTLY:
        return "nearly always off"
    if above >= MOSTLY:
        return "nearly always on"
    return ""


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


def join_digits(ds: list[int], class_names=None) -> str:
    names = [class_names[d] if class_names else str(d) for d in ds]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def summarize(mean_activation, output_weights, ablation, flag: str, class_names=None) -> str:
    """One generated sentence: what fires the neuron, what it is silent for, what it pushes, what it costs.

    mean_activation, output_weights and ablation (accuracy change when ablated, as a share) are per class;
    class_names name the classes (default: their indices).
    """
    name = (lambda d: class_names[d]) if class_names else str
    mean_activation, output_weights, ablation = map(np.asarray, (mean_activation, output_weights, ablation))
    parts = []
    fires = [int(d) for d in np.argsort(-mean_activation, kind="stable") if mean_activation[d] >= 0.5][:3]
    silent = [int(d) for d in np.argsort(mean_activation, kind="stable") if mean_activation[d] < 0.1][:3]
    if flag == "dead":
        parts.append("Dead: below 0.01 on every test image")
    else:
        if flag:
            parts.append(flag[0].upper() + flag[1:])
        if fires:
            parts.append(f"fires for {join_digits(fires, class_names)}")
        else:
            best = int(np.argmax(mean_activation))
            parts.append(f"fires weakly, most for {name(best)} (mean {mean_activation[best]:.2f})")
        if silent:
            parts.append(f"silent for {join_digits(silent, class_names)}")
    promotes = [int(d) for d in np.argsort(-output_weights, kind="stable") if output_weights[d] > 0][:2]
    suppresses = [int(d) for d in np.argsort(output_weights, kind="stable") if output_weights[d] < 0][:2]
    effect = []
    if promotes:
        effect.append(f"promotes {join_digits(promotes, class_names)}")
    if suppresses:
        effect.append(f"suppresses {join_digits(suppresses, class_names)}")
    worst = int(np.argmin(ablation))
    cost = -100 * ablation[worst]
    if cost >= 0.05:
        effect.append(f"removing it costs {cost:.1f} points on {name(worst)}")
    else:
        effect.append("removing it changes no class's accuracy by 0.05 points or more")
    first = "; ".join(parts)
    sentence = first[0].upper() + first[1:] + "; " + ", ".join(effect) + "."
    return sentence


def network_info(meta: dict, hidden: str, output: str, value_range: tuple[float, float]) -> dict:
    """How the network was read (ModelInfo.network): activations and where they came from, notes, warning."""
    keep = ("activation_source", "output_source", "notes", "inputs", "warning", "imported_test_accuracy")
    return {"activation": hidden, "output": output, "histogram_range": [rounded(v) for v in value_range],
            "saturation": [rounded(value_range[0] + t * (value_range[1] - value_range[0])) for t in (ON, OFF)],
            **{k: meta[k] for k in keep if k in meta}}


@dataclass(frozen=True)
class Forward:
    """The intact network on the test set, in float64."""
    A1: np.ndarray  # (N, H) hidden activations
    Z2: np.ndarray  # (N, K) output pre-activations
    A2: np.ndarray  # (N, K) outputs
    predicted: np.ndarray  # (N,)


def forward64(params: dict[str, np.ndarray], X: np.ndarray, hidden: str = "sigmoid",
              output: str = "sigmoid") -> Forward:
    p = {k: v.astype(np.float64) for k, v in params.items()}
    A1 = activations.apply(hidden, X.astype(np.float64) @ p["W1"].T + p["b1"])
    Z2 = A1 @ p["W2"].T + p["b2"]
    A2 = activations.apply(output, Z2)
    return Forward(A1, Z2, A2, Z2.argmax(axis=1))


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


def ablated_predictions(f: Forward, W2: np.ndarray, neurons: list[int], fill: np.ndarray) -> np.ndarray:
    """(N,) predictions with the activations of `neurons` pinned to fill[neurons], the rest intact."""
    idx = np.asarray(neurons, np.int64)
    shift = (fill[idx] - f.A1[:, idx]) @ W2[:, idx].T.astype(np.float64)  # (N, K)
    return (f.Z2 + shift).argmax(axis=1)


def random_sets(seed: int, n_neurons: int, k: int, draws: int) -> list[list[int]]:
    """`draws` sets of k distinct neurons each, the same for the same seed."""
    rng = np.random.default_rng([seed, 5])
    return [sorted(rng.choice(n_neurons, size=min(k, n_neurons), replace=False).tolist()) for _ in range(draws)]


def pushes(A1_row: np.ndarray, W2: np.ndarray, predicted: int, label: int, n: int) -> list[Push]:
    """The n hidden neurons with the largest W2[predicted, j] * a_j(x) on one example, largest first."""
    to_pred = W2[predicted].astype(np.float64) * A1_row
    to_true = W2[label].astype(np.float64) * A1_row
    order = np.argsort(-to_pred, kind="stable")[:n]
    return [Push(int(j), rounded(A1_row[j]), rounded(to_pred[j]), rounded(to_true[j])) for j in order]


@dataclass(frozen=True)
class Arrays:
    """Bulk arrays the figures need but atlas.json need not carry (build/arrays.npz)."""
    image_indices: np.ndarray  # (M,) test-set indices of the images below
    images: np.ndarray  # (M, rows, cols) uint8 pixels of every test image a page shows
    snapshot_epochs: np.ndarray  # (S,)
    snapshots: np.ndarray  # (S, H, rows, cols) float32 W1 during training
    patterns: np.ndarray  # (H, rows, cols) float32 mean top-activating image minus mean image
    templates: np.ndarray  # (K, rows, cols) W2[d] . diag(mean sigma' over all test images) . W1
    contrasts: np.ndarray  # (K, rows, cols) (W2[d] - W2[rival]) . diag(mean sigma' over d and rival) . W1
    preferred: np.ndarray  # (K, rows, cols) preferred input of each output unit
    gradient_x_input: np.ndarray  # (K, rows, cols) for each digit's worked example
    integrated_gradients: np.ndarray  # (K, rows, cols) for each digit's worked example, black baseline


def analyze(config: Config, model: Model, data: Dataset) -> tuple[Atlas, Arrays]:
    """Every statistic of the atlas, on the test set."""
    p = model.params
    X, y, K = data.test_images, data.test_labels, data.n_classes
    shape = data.image_shape
    hidden, output = model.meta.get("activation", "sigmoid"), model.meta.get("output", "sigmoid")
    f = forward64(p, X, hidden, output)
    lo, hi = activations.value_range(hidden, f.A1)  # histograms and saturation on this range, scaled to [0, 1]
    unit = (f.A1 - lo) / (hi - lo)  # (N, H); the activations themselves for sigmoid
    H = p["W1"].shape[0]
    means = class_means(f.A1, y, K)  # (H, K)
    contrib = contributions(p["W2"], means)  # (K, H)
    k = config.analysis.top_k
    tops = [top_positive(contrib[d], k) for d in range(K)]
    bottoms = [top_negative(contrib[d], k) for d in range(K)]
    accuracy = per_class_accuracy(f.predicted, y, K)
    mean_images = class_means(X, y, K).T  # (K, D)
    examples = typical_examples(X, y, mean_images)
    top, bottom = extremes(f.A1, min(EXTREMES, len(y)))
    hist = histograms(unit, y, K, HIST_BINS)
    above, below = saturation(unit)
    ablation = neuron_ablation(f, p["W2"], y, K)  # (H, K)
    overall_ablation = (ablation * np.bincount(y, minlength=K)).sum(axis=1) / len(y)
    similar_w = most_similar(p["W1"], SIMILAR)
    similar_a = most_similar(f.A1.T, SIMILAR)
    n_pattern = max(1, len(y) // 100)
    pattern = patterns(f.A1, X, extremes(f.A1, n_pattern)[0])

    def refs(indices) -> list[ImageRef]:
        return [ImageRef(int(i), int(y[i]), rounded(f.A1[i, j])) for i in indices]

    neurons = []
    for j in range(H):
        w_out = p["W2"][:, j]
        flag = saturation_flag(above[j], below[j], bool((unit[:, j] < OFF).all()))
        neurons.append(Neuron(
            id=j, bias=float(floats(p["b1"][j:j + 1])[0]),
            output_weights=floats(w_out),
            mean_activation=floats(means[j], STAT_DIGITS),
            contribution=floats(contrib[:, j], STAT_DIGITS),
            weights=floats(p["W1"][j].reshape(shape)),
            weight_max_abs=float(floats(np.abs(p["W1"][j]).max(keepdims=True))[0]),
            fires_most_for=int(np.argmax(means[j])),
            promotes=[int(d) for d in np.argsort(-w_out, kind="stable") if w_out[d] > 0],
            suppresses=[int(d) for d in np.argsort(w_out, kind="stable") if w_out[d] < 0],
            top_contributor_of=[Role(d, tops[d].index(j) + 1, rounded(contrib[d, j])) for d in range(K) if j in tops[d]],
            top_suppressor_of=[Role(d, bottoms[d].index(j) + 1, rounded(contrib[d, j])) for d in range(K) if j in bottoms[d]],
            top_images=refs(top[j]), bottom_images=refs(bottom[j]),
            histogram=hist[j].tolist(), histogram_peak=int(hist[j].sum(axis=0).max()),
            share_above=rounded(above[j]), share_below=rounded(below[j]), flag=flag,
            ablation=floats(ablation[j], STAT_DIGITS), ablation_overall=rounded(overall_ablation[j]),
            ablation_cost=rounded(max(0.0, -ablation[j].min())), ablation_cost_digit=int(np.argmin(ablation[j])),
            similar_by_weights=[Similar(i, rounded(r)) for i, r in similar_w[j]],
            similar_by_activation=[Similar(i, rounded(r)) for i, r in similar_a[j]],
            summary=summarize((means[j] - lo) / (hi - lo), w_out, ablation[j], flag, list(data.class_names)),
        ))
    confusion = confusion_matrix(y, f.predicted, K)
    fill = f.A1.mean(axis=0)
    draws = random_sets(config.train.seed, H, k, RANDOM_DRAWS)
    p64 = attribution.as64(p, hidden)
    eye = np.eye(K)
    sp = attribution.sigma_prime(p64, X.astype(np.float64))  # (N, H)
    mean_image = X.astype(np.float64).mean(axis=0)
    preferred_all = attribution.preferred_inputs(p64, mean_image, shape)  # (K, D)
    maps = {name: [] for name in ("templates", "contrasts", "preferred", "gradient_x_input", "integrated_gradients")}
    digits = []
    for d in range(K):
        e = examples[d]
        mine = y == d

        def accuracy_without(neurons: list[int]) -> float:
            return float((ablated_predictions(f, p["W2"], neurons, fill)[mine] == d).mean()) if neurons else accuracy[d]

        r = strongest_rival(confusion, d)
        pair = (y == d) | (y == r)
        separation = (p["W2"][d].astype(np.float64) - p["W2"][r]) * f.A1[pair].mean(axis=0)  # (H,)
        x = X[e].astype(np.float64)
        preferred = preferred_all[d]
        ig = attribution.integrated_gradients(p64, x, d)
        maps["templates"].append(attribution.linearised_map(p64, eye[d], sp.mean(axis=0)))
        maps["contrasts"].append(attribution.linearised_map(p64, eye[d] - eye[r], sp[pair].mean(axis=0)))
        maps["preferred"].append(preferred)
        maps["gradient_x_input"].append(x * attribution.input_gradient(p64, x[None, :], eye[d])[0])
        maps["integrated_gradients"].append(ig)
        z = attribution.logits(p64, np.stack([preferred, mean_image, x, np.zeros_like(x)]))[:, d]
        wrong = np.flatnonzero(mine & (f.predicted != d))
        digits.append(Digit(
            digit=d, count=int(mine.sum()), accuracy=rounded(accuracy[d]),
            top_contributors=[Contribution(j, rounded(contrib[d, j])) for j in tops[d]],
            top_suppressors=[Contribution(j, rounded(contrib[d, j])) for j in bottoms[d]],
            mean_image=floats(mean_images[d].reshape(shape), STAT_DIGITS),
            example=Example(index=e, label=int(y[e]), predicted=int(f.predicted[e]),
                            image=floats(X[e].reshape(shape)),
                            hidden_activation=floats(f.A1[e], STAT_DIGITS),
                            output=floats(f.A2[e], STAT_DIGITS)),
            ablate_top=rounded(accuracy_without(tops[d])),
            ablate_random=rounded(np.mean([accuracy_without(s) for s in draws])),
            ablate_suppressors=rounded(accuracy_without(bottoms[d])),
            mistaken_for=[Count(c, n) for c, n in ranked_counts(confusion[d], d)],
            mistaken_as=[Count(c, n) for c, n in ranked_counts(confusion[:, d], d)],
            rival=r,
            toward=[Score(j, rounded(separation[j])) for j in top_positive(separation, k)],
            away=[Score(j, rounded(separation[j])) for j in top_negative(separation, k)],
            mistakes=[Mistake(int(i), d, int(f.predicted[i]), rounded(f.A2[i, f.predicted[i]]), rounded(f.A2[i, d]),
                              pushes(f.A1[i], p["W2"], int(f.predicted[i]), d, PUSHES)) for i in wrong],
            preferred_logit=rounded(z[0]), start_logit=rounded(z[1]), example_logit=rounded(z[2]),
            baseline_logit=rounded(z[3]), example_ig_sum=rounded(ig.sum()),
        ))
    history = [HistoryRow(h.epoch, h.learning_rate, h.train_loss, h.test_loss, h.test_accuracy, h.seconds)
               for h in model.history]
    info = ModelInfo(
        run_id=run_id(data.sha256, config.to_dict(), p),
        sizes=[data.n_inputs, H, K], image_shape=list(shape),
        test_accuracy=rounded((f.predicted == y).mean()), test_loss=rounded(activations.loss(output, f.Z2, y).mean()),
        seed=config.train.seed, epochs=len(model.history),
        training_seconds=round(sum(h.seconds for h in model.history), 1),
        n_train=len(data.train_labels), n_test=len(y), data_sha256=dict(sorted(data.sha256.items())),
        config=config.to_dict(), histogram_bins=HIST_BINS, pattern_images=n_pattern,
        snapshot_epochs=sorted(model.snapshots), random_draws=RANDOM_DRAWS,
        class_names=list(data.class_names), noun=config.data.noun,
        source=model.meta.get("source", "trained by this atlas"),
        network=network_info(model.meta, hidden, output, (lo, hi)))
    shown = sorted({r.index for n in neurons for r in n.top_images + n.bottom_images} | set(examples)
                   | {m.index for dg in digits for m in dg.mistakes})
    raw = np.round(X[shown] * 255).astype(np.uint8).reshape(len(shown), *shape)
    epochs = sorted(model.snapshots)
    arrays = Arrays(
        image_indices=np.array(shown, np.int64), images=raw,
        snapshot_epochs=np.array(epochs, np.int64),
        snapshots=np.array([model.snapshots[e] for e in epochs], np.float32).reshape(len(epochs), H, *shape),
        patterns=pattern.astype(np.float32).reshape(H, *shape),
        **{name: np.array(v, np.float32).reshape(K, *shape) for name, v in maps.items()})
    return Atlas(FORMAT, info, history, neurons, digits, confusion.tolist()), arrays
