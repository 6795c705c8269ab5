"""What hidden neurons do to the decision, measured: margins under mean-pinning, and pushes on one image.

The atlas judges a neuron by the effect of removing its information, not by a formula that might track
it: each hidden activation a_j is *pinned* to its mean over all test images (mean ablation), the output
layer is re-evaluated, and the change of the class *margin* is measured. The margin of an image of class
d is m(x) = z_d(x) - max_{k != d} z_k(x), where z = W2 a + b2 are the output pre-activations (logits):
positive when the image is classified correctly, and larger the more confidently. The margin moves with
every image, unlike accuracy, whose smallest step is one image.

Shapes: A1 (N, H) hidden activations, Z2 (N, K) logits, W2 (K, H), y (N,) integer labels, fill (H,).
All arithmetic in float64; no randomness except `random_baseline`, which takes an explicit seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def margins(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, K) logits, (N,) labels -> (N,) z_y - max_{k != y} z_k (negative when misclassified)."""
    rows = np.arange(len(y))
    others = Z.astype(np.float64, copy=True)
    others[rows, y] = -np.inf
    return Z[rows, y] - others.max(axis=1)


def pinned_logits(Z2: np.ndarray, A1: np.ndarray, W2: np.ndarray, neurons, fill: np.ndarray) -> np.ndarray:
    """(N, K) logits with the activations of `neurons` pinned to fill[neurons], the rest of the network intact.

    Only the output layer sees the hidden activations, so z changes by W2[:, S] (fill[S] - a_S(x)).
    """
    idx = np.asarray(neurons, np.int64)
    return Z2 + (fill[idx] - A1[:, idx]) @ W2[:, idx].T.astype(np.float64)


def class_mean(values: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """(N,) values -> (K,) their mean over the images of each class (0 for a class with no image)."""
    return np.bincount(y, values, n_classes) / np.maximum(np.bincount(y, minlength=n_classes), 1)


def margin_effects(Z2: np.ndarray, A1: np.ndarray, W2: np.ndarray, fill: np.ndarray, y: np.ndarray,
                   n_classes: int) -> np.ndarray:
    """(H, K): mean drop of the margin of class d's test images when neuron j alone is pinned to fill[j].

    effect[j, d] = mean over images x of class d of m(x) - m_pinned_j(x). Positive: the neuron's
    information helps classify d (removing it lowers d's margin); negative: it works against d.
    Costs H evaluations of the output layer (N x K each).
    """
    return pinned_each(Z2, A1, W2, fill, y, n_classes)[0]


def pinned_each(Z2: np.ndarray, A1: np.ndarray, W2: np.ndarray, fill: np.ndarray, y: np.ndarray,
                n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Each neuron j alone pinned to fill[j]: (H, K) margin effects (as margin_effects) and (H, K) int64 test
    images of each class still classified correctly (ties in the argmax to the lower class), from the same
    pinned logits."""
    base = margins(Z2, y)
    W2 = W2.astype(np.float64)
    effect, correct = np.empty((A1.shape[1], n_classes)), np.empty((A1.shape[1], n_classes), np.int64)
    for j in range(A1.shape[1]):
        pinned = Z2 + np.outer(fill[j] - A1[:, j], W2[:, j])
        effect[j] = class_mean(base - margins(pinned, y), y, n_classes)
        correct[j] = np.bincount(y[pinned.argmax(axis=1) == y], minlength=n_classes)
    return effect, correct


def logit_terms(W2: np.ndarray, class_means: np.ndarray, overall_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two first-order terms of neuron j's push on logit d, each (K, H).

    raw[d, j] = W2[d, j] * mean_d(a_j): the question's contribution, the neuron's average share of z_d on
    images of d. It includes a constant share, W2[d, j] * mean_all(a_j), paid on every image of every class.
    discriminative[d, j] = W2[d, j] * (mean_d(a_j) - mean_all(a_j)): raw minus that constant share, which is
    exactly the mean change of z_d on images of d when a_j is pinned to its overall mean.
    class_means (H, K), overall_mean (H,).
    """
    W2 = W2.astype(np.float64)
    return W2 * class_means.T, W2 * (class_means.T - overall_mean)


def ranked(scores: np.ndarray, k: int, sign: int = 1) -> list[int]:
    """Indices of the k entries with the largest sign*score that are strictly positive, largest first.

    Ties go to the lower index. sign=-1 ranks the most negative entries.
    """
    order = np.argsort(-sign * scores, kind="stable")
    return [int(i) for i in order[:k] if sign * scores[i] > 0]


@dataclass(frozen=True)
class Pinning:
    """Test images of one class with a set of hidden neurons pinned together to their means."""
    margin_change: float  # mean over the class's images of m_pinned - m (negative: the class lost margin)
    accuracy: float  # share of the class's images still classified correctly


def pin(Z2, A1, W2, fill, y, d: int, neurons) -> Pinning:
    """The margin change and accuracy on the images of class d with `neurons` pinned together."""
    mine = y == d
    return pin_class(Z2[mine], A1[mine], W2, fill, y[mine], d, neurons)


def pin_class(Z2, A1, W2, fill, y, d: int, neurons, base: np.ndarray | None = None) -> Pinning:
    """`pin` on the rows of class d alone (Z2, A1, y of its images only); base, their intact margins, when
    known already."""
    base = margins(Z2, y) if base is None else base
    Z = pinned_logits(Z2, A1, W2, neurons, fill) if len(neurons) else Z2
    return Pinning(float((margins(Z, y) - base).mean()), float((Z.argmax(axis=1) == d).mean()))


def random_baseline(Z2, A1, W2, fill, y, d: int, exclude: list[int], k: int, draws: int,
                    seed) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Pinning k distinct random neurons drawn from those not in `exclude`, `draws` times with
    np.random.default_rng(seed): (draws made, neurons drawn from, (3,) percentiles 5/50/95 of the margin
    change, (3,) the same of the accuracy), NumPy's linear interpolation. No draws (0 and zeros) when the
    pool has fewer than k neurons or k is 0."""
    pool = np.setdiff1d(np.arange(A1.shape[1]), np.asarray(exclude, np.int64))
    if len(pool) < k or k == 0:
        return 0, len(pool), np.zeros(3), np.zeros(3)
    rng = np.random.default_rng(seed)
    mine = y == d  # the class's rows and margins once, not once per draw (they were most of its time)
    Z, A, labels = Z2[mine], A1[mine], y[mine]
    base = margins(Z, labels)
    results = [pin_class(Z, A, W2, fill, labels, d, np.sort(rng.choice(pool, size=k, replace=False)), base)
               for _ in range(draws)]
    return (draws, len(pool), np.percentile([r.margin_change for r in results], [5, 50, 95]),
            np.percentile([r.accuracy for r in results], [5, 50, 95]))


def net_pushes(a: np.ndarray, W2: np.ndarray, predicted: int, label: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's hidden activations a (H,) -> each neuron's push towards the predicted class, towards the
    true class, and the net push (W2[predicted, j] - W2[label, j]) * a_j, each (H,).

    The net pushes add up, with b2[predicted] - b2[label], to z_predicted - z_label: how far the image is
    on the wrong side.
    """
    W2 = W2.astype(np.float64)
    to_pred, to_true = W2[predicted] * a, W2[label] * a
    return to_pred, to_true, to_pred - to_true


def pinned_through(H: int, pinned, y: np.ndarray, n_classes: int, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pinning, one unit at a time, in a hidden layer of H units that does not feed the outputs directly.

    pinned(j) -> (N, K) the logits with unit j pinned to its mean and the rest of the network re-run;
    base (N, K) the intact logits. Returns (H, K) margin effects (as margin_effects: mean drop of each
    class's margin) and (H, K) accuracy changes (as the atlas's ablation: share of each class still right,
    minus the intact share).
    """
    m0 = margins(base, y)
    right0 = class_mean((base.argmax(axis=1) == y).astype(np.float64), y, n_classes)
    effect, accuracy = np.empty((H, n_classes)), np.empty((H, n_classes))
    for j in range(H):
        Z = pinned(j)
        effect[j] = class_mean(m0 - margins(Z, y), y, n_classes)
        accuracy[j] = class_mean((Z.argmax(axis=1) == y).astype(np.float64), y, n_classes) - right0
    return effect, accuracy


def next_layer_shift(A: np.ndarray, fill: np.ndarray, W_next: np.ndarray, b_next: np.ndarray, act) -> np.ndarray:
    """(H, H_next): mean over the images of |change| of each unit of the next layer's activation when unit j of
    this layer is pinned to fill[j]; act is the hidden activation function. What a unit's removal does to the
    layer that reads it."""
    Z = A @ W_next.T + b_next  # (N, H_next)
    out = np.empty((A.shape[1], W_next.shape[0]))
    base = act(Z)
    for j in range(A.shape[1]):
        out[j] = np.abs(act(Z + np.outer(fill[j] - A[:, j], W_next[:, j])) - base).mean(axis=0)
    return out
