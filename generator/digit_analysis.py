"""Each class's numbers: its top units by measured effect, the evidence for them, rivals, mistakes, and the
pixel-level maps of its output unit (templates, preferred input, attributions).

Everything rests on the hidden layer that feeds the outputs (the only one for one hidden layer): `f` holds
its pre-activations Z1 and activations A1, W2 the output weights on it.
"""

from __future__ import annotations

import numpy as np

from . import attribution, effects, network
from .atlas import Contribution, Count, Digit, Example, LayerTop, Mistake, Push, RandomBaseline, Score, floats
from .stats import STAT_DIGITS, confusion_matrix, ranked_counts, rounded, strongest_rival

RANDOM_DRAWS = 200  # random neuron sets per digit: enough for a 5-95% range of the baseline
PUSHES = 5  # neurons listed per misclassified example
# Preferred inputs: (penalty, smoothness) tried strongest first; each class keeps the first whose preferred
# input scores at least the median logit of the class's real test images (the strongest that is typical).
PREFERRED_STRENGTHS = ((0.5, 2.0), (0.5, 1.0), (0.5, 0.5), (0.2, 0.2), (0.1, 0.1), (0.0, 0.0))
MAPS = ("templates", "contrasts", "preferred", "gradient_x_input", "integrated_gradients")


def preferred(p64: dict, mean_image: np.ndarray, shape, typical: np.ndarray) -> tuple[np.ndarray, list[tuple]]:
    """(K, D) preferred inputs and the (penalty, smoothness) each was found with: for each class the
    strongest regularisation in PREFERRED_STRENGTHS whose input reaches typical[d] (the median logit of
    the class's test images); the weakest when none does."""
    K = attribution.n_outputs(p64)
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


def digit_records(f, W2: np.ndarray, b2: np.ndarray, p64: dict, X: np.ndarray, y: np.ndarray, ids: np.ndarray,
                  shape, K: int, k: int, seed: int, means: np.ndarray, fill: np.ndarray, raw: np.ndarray,
                  disc: np.ndarray, effect: np.ndarray, ablation: np.ndarray, accuracy: np.ndarray,
                  mean_images: np.ndarray, examples: list[int], tops: list[list[int]], bottoms: list[list[int]],
                  layer_tops: list[list[LayerTop]]) -> tuple[list[Digit], np.ndarray, dict, set]:
    """(digits, confusion matrix, the class maps by name (K, D) each, test positions the pages show).

    f: analysis.Forward of the layer feeding the outputs; means (H, K) its class means, fill (H,) its
    overall means, raw/disc (K, H), effect/ablation (H, K), tops/bottoms each class's top k by effect,
    layer_tops each class's top units in every layer of a deeper network ([] each for one layer).
    """
    def contribution(d: int, j: int) -> Contribution:
        return Contribution(j, rounded(raw[d, j]), rounded(disc[d, j]), rounded(effect[j, d]), rounded(ablation[j, d]))

    confusion = confusion_matrix(y, f.predicted, K)
    eye = np.eye(K)
    X64 = X.astype(np.float64)
    if attribution.deep(p64):  # class sums of d logits / d z1, so each mean gradient costs one product with W1
        sums = network.jacobian_sums(attribution.weights(p64), X64, y, K, p64["activation"])  # (K, K, H1)
        counts = np.bincount(y, minlength=K)
    else:
        sp = attribution.sigma_prime(p64, X64)  # (N, H)

    def mean_gradient(direction: np.ndarray, classes: list[int]) -> np.ndarray:
        """(D,) mean input gradient of direction . z2 over the test images of `classes`: for one hidden
        layer in its closed form (direction @ W2) . diag(mean sigma') . W1, which keeps its bits."""
        if attribution.deep(p64):
            return (direction @ (sums[classes].sum(axis=0) / max(1, counts[classes].sum()))) @ p64["W1"]
        rows = np.isin(y, classes)
        return attribution.linearised_map(p64, direction, (sp if rows.all() else sp[rows]).mean(axis=0))
    mean_image = X.astype(np.float64).mean(axis=0)
    median_logit = np.array([np.median(f.Z2[y == d, d]) if (y == d).any() else 0.0 for d in range(K)])
    preferred_all, strengths = preferred(p64, mean_image, shape, median_logit)  # (K, D)
    margin = effects.margins(f.Z2, y)  # (N,)
    maps = {name: [] for name in MAPS}
    digits, shown = [], set()
    for d in range(K):
        e = examples[d]
        mine = y == d
        pinned_top = effects.pin(f.Z2, f.A1, W2, fill, y, d, tops[d])
        pinned_bottom = effects.pin(f.Z2, f.A1, W2, fill, y, d, bottoms[d])
        drawn, pool, margin_pct, accuracy_pct = effects.random_baseline(
            f.Z2, f.A1, W2, fill, y, d, tops[d], len(tops[d]), RANDOM_DRAWS, [seed, 5, d])
        baseline = RandomBaseline(drawn, pool, *map(rounded, margin_pct), *map(rounded, accuracy_pct),
                                  top_outside=bool(drawn and pinned_top.margin_change < margin_pct[0]))
        r = strongest_rival(confusion, d)
        separation = (W2[d] - W2[r]) * (means[:, d] - means[:, r])  # (H,)
        x = X[e].astype(np.float64)
        ig = attribution.integrated_gradients(p64, x, d)
        maps["templates"].append(mean_gradient(eye[d], list(range(K))))
        maps["contrasts"].append(mean_gradient(eye[d] - eye[r], [d, r]))
        maps["preferred"].append(preferred_all[d])
        maps["gradient_x_input"].append(x * attribution.input_gradient(p64, x[None, :], eye[d])[0])
        maps["integrated_gradients"].append(ig)
        z = attribution.logits(p64, np.stack([preferred_all[d], mean_image, x, np.zeros_like(x)]))[:, d]
        wrong = np.flatnonzero(mine & (f.predicted != d))
        shown.update(wrong.tolist())
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
            mistakes=[mistake(f, W2, b2, i, int(ids[i]), d) for i in wrong],
            preferred_logit=rounded(z[0]), median_logit=rounded(median_logit[d]),
            preferred_penalty=strengths[d][0], preferred_smoothness=strengths[d][1],
            start_logit=rounded(z[1]), example_logit=rounded(z[2]),
            baseline_logit=rounded(z[3]), example_ig_sum=rounded(ig.sum()), layers=layer_tops[d],
        ))
    return digits, confusion, maps, shown


def mistake(f, W2: np.ndarray, b2: np.ndarray, i: int, index: int, label: int) -> Mistake:
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
