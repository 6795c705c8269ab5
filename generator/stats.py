"""Statistics of activations over a test set: pure functions of arrays, used for every hidden layer."""

from __future__ import annotations

import numpy as np

STAT_DIGITS = 6  # decimals kept for statistics (activations, contributions, accuracies)
HIST_BINS = 20  # activation histogram bins over the activation's range (activations.value_range)
ON, OFF = 0.99, 0.01  # saturation thresholds, as fractions of that range ([0, 1] for sigmoid)
MOSTLY = 0.95  # share of images beyond a threshold that flags a neuron "nearly always" on or off
NEAR_CONSTANT = 0.01  # activation standard deviation over the test set below which a neuron is "near-constant"
EXTREMES = 16  # top- and least-activating test images shown per neuron
SIMILAR = 5  # similar neurons listed per neuron
SATURATED = 0.9995  # activations shown as 1.000 (three decimals): a saturated neuron's top images tie there
SILENCED = 0.0005  # activations shown as 0.000


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
                   highest: bool, order: np.ndarray | None = None) -> tuple[list[int], bool]:
    """The n test images a neuron page shows at one end of a neuron's range, and whether they are a sample.

    z (N,) pre-activations, which order images the same way as the activations but keep apart the ones
    the activation saturates to the same shown value; tied (N,) marks the images at that end's saturated
    value. When at most n images are tied: the n with the highest (or lowest) z, ties to the lower index.
    When more are tied, the top n by activation would be an arbitrary pick among them, so the page shows a
    sample of the tied set instead: seats per class proportional to the class's share of the tied set
    (largest_remainder), each class's images by z; the whole sample ordered by z. `order`: the images by z
    (highest first when `highest`, ties to the lower index), when sorted already.
    """
    order = np.argsort(-z if highest else z, kind="stable") if order is None else order
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
