"""Pure functions from a trained network and the test set to the atlas's numbers."""

from __future__ import annotations

import numpy as np

from . import kernels
from .atlas import (FORMAT, Atlas, Contribution, Digit, Example, HistoryRow, ModelInfo, Neuron, Role, floats)
from .config import Config
from .data import Dataset
from .train import Model

STAT_DIGITS = 6  # decimals kept for statistics (activations, contributions, accuracies)


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


def analyze(config: Config, model: Model, data: Dataset) -> Atlas:
    """Every statistic of the atlas, on the test set."""
    p = model.params
    X, y, K = data.test_images, data.test_labels, data.n_classes
    shape = data.image_shape
    A1, A2 = kernels.forward(p["W1"], p["b1"], p["W2"], p["b2"], X)  # (N, H), (N, K)
    predicted = A2.argmax(axis=1)
    means = class_means(A1, y, K)  # (H, K)
    contrib = contributions(p["W2"], means)  # (K, H)
    k = config.analysis.top_k
    tops = [top_positive(contrib[d], k) for d in range(K)]
    bottoms = [top_negative(contrib[d], k) for d in range(K)]
    accuracy = per_class_accuracy(predicted, y, K)
    mean_images = class_means(X, y, K).T  # (K, D)
    examples = typical_examples(X, y, mean_images)
    H = p["W1"].shape[0]

    def rounded(v):
        return round(float(v), STAT_DIGITS)

    neurons = []
    for j in range(H):
        w_out = p["W2"][:, j]
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
        ))
    digits = []
    for d in range(K):
        e = examples[d]
        digits.append(Digit(
            digit=d, count=int((y == d).sum()), accuracy=rounded(accuracy[d]),
            top_contributors=[Contribution(j, rounded(contrib[d, j])) for j in tops[d]],
            top_suppressors=[Contribution(j, rounded(contrib[d, j])) for j in bottoms[d]],
            mean_image=floats(mean_images[d].reshape(shape), STAT_DIGITS),
            example=Example(index=e, label=int(y[e]), predicted=int(predicted[e]),
                            image=floats(X[e].reshape(shape)),
                            hidden_activation=floats(A1[e].astype(np.float64), STAT_DIGITS),
                            output=floats(A2[e].astype(np.float64), STAT_DIGITS)),
        ))
    history = [HistoryRow(h.epoch, h.learning_rate, h.train_loss, h.test_loss, h.test_accuracy, h.seconds)
               for h in model.history]
    last = model.history[-1]
    info = ModelInfo(
        sizes=[data.n_inputs, H, K], image_shape=list(shape),
        test_accuracy=rounded((predicted == y).mean()), test_loss=rounded(last.test_loss),
        seed=config.train.seed, epochs=len(model.history),
        training_seconds=round(sum(h.seconds for h in model.history), 1),
        n_train=len(data.train_labels), n_test=len(y), data_sha256=dict(sorted(data.sha256.items())),
        config=config.to_dict())
    return Atlas(FORMAT, info, history, neurons, digits)
