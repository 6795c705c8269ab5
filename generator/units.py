"""The units of every hidden layer of a deeper network (Atlas.layers): what each looks for, seen from the
input (effective input map, preferred input, top and bottom images) and from the layer below (incoming
weights), and what it does downstream (pinning effects on the classes, shift of the next layer's units).

A unit of the first hidden layer reads the pixels: its effective input map is its weight row, exactly.
One layer further down the weights read units, not pixels, so the picture of what a unit responds to is the
gradient of its pre-activation with respect to the input, averaged over the test images.
"""

from __future__ import annotations

import numpy as np

from . import activations, attribution, effects, network
from .atlas import ImageRef, Layer, LayerTop, Score, Similar, Unit, floats
from .stats import (EXTREMES, OFF, SATURATED, SILENCED, SIMILAR, STAT_DIGITS, class_means, most_similar, rounded,
                    saturation, saturation_flag, shown_extremes)

# A unit's preferred input: gradient ascent on its pre-activation from the mean image, pulled towards the
# mean image and smoothed (attribution.preferred_inputs' objective, for one unit).
PREFERRED_PENALTY, PREFERRED_SMOOTH, PREFERRED_STEPS, PREFERRED_RATE = 0.5, 1.0, 200, 0.05


def effective_maps(p: dict, X: np.ndarray, layer: int, hidden: str) -> np.ndarray:
    """(H_layer, D) each unit's mean input gradient of its pre-activation over the images X; W1 itself for
    layer 1 (in float32 the gradient of w . x + b is w, on every image)."""
    if layer == 1:
        return np.asarray(p["W1"], np.float64).copy()
    return network.unit_input_gradients(p, X, layer, hidden) / len(X)


def preferred_units(p: dict, layer: int, hidden: str, start: np.ndarray, shape) -> np.ndarray:
    """(H_layer, D) for each unit of `layer`, the input in [0, 1] that maximises its pre-activation minus
    PREFERRED_PENALTY/2 |x - start|^2 minus the smoothness term, by projected gradient ascent; deterministic."""
    H = p[f"W{layer}"].shape[0]
    x = np.tile(start.astype(np.float64), (H, 1))
    for _ in range(PREFERRED_STEPS):
        grad = (network.unit_gradients(p, x, layer, hidden) - PREFERRED_PENALTY * (x - start)
                - PREFERRED_SMOOTH * attribution.laplacian(x, shape))
        x = np.clip(x + PREFERRED_RATE * grad, 0.0, 1.0)
    return x


def pre_activations_at(p: dict, X: np.ndarray, layer: int, hidden: str) -> np.ndarray:
    """(U,) unit u's pre-activation in `layer` at X[u]."""
    below = {k: v for k, v in p.items() if int(k[1:]) <= layer}
    z = network.from_layer(below, np.asarray(X, np.float64), 0, hidden)[2]  # (U, U)
    return z[np.arange(len(X)), np.arange(len(X))]


def layer_effects(p: dict, f, layer: int, y: np.ndarray, K: int, hidden: str) -> tuple[np.ndarray, np.ndarray]:
    """(H, K) margin effects and (H, K) accuracy changes of pinning each unit of `layer` (not the last) to its
    mean. Pinning unit j moves the next layer's pre-activations by (fill_j - a_j) W[:, j], a rank-one update,
    so each unit costs the layers after the next one, not the whole rest of the network."""
    A, Z_next, W_next = f.acts[layer - 1], f.zs[layer], p[f"W{layer + 1}"]
    fill = A.mean(axis=0)

    def pinned(j: int) -> np.ndarray:
        a = activations.apply(hidden, Z_next + np.outer(fill[j] - A[:, j], W_next[:, j]))
        return network.from_layer(p, a, layer + 1, hidden)[2]

    return effects.pinned_through(A.shape[1], pinned, y, K, f.logits)


def layer_units(p: dict, f, layer: int, effect: np.ndarray, ablation: np.ndarray, maps: np.ndarray,
                preferred: np.ndarray, X: np.ndarray, y: np.ndarray, ids: np.ndarray, K: int, shape,
                hidden: str, value_range: tuple[float, float]) -> tuple[Layer, set]:
    """Layer `layer` of the float64 params p as Unit records, and the test positions its pages show.

    f: network.Forward on the test images; effect/ablation (H, K) from layer_effects; maps (H, D) the
    effective input maps; preferred (H, D) the preferred inputs.
    """
    L = network.depth(p)
    A, Z = f.acts[layer - 1], f.zs[layer - 1]  # (N, H)
    lo, hi = value_range
    unit = (A - lo) / (hi - lo)
    W_in, W_out = p[f"W{layer}"], p[f"W{layer + 1}"]
    fill = A.mean(axis=0)
    means = class_means(A, y, K)  # (H, K)
    spread = unit.std(axis=0)
    above, below = saturation(unit)
    counts = np.bincount(y, minlength=K)
    overall = (ablation * counts).sum(axis=1) / len(y)
    shift = (effects.next_layer_shift(A, fill, W_out, p[f"b{layer + 1}"], lambda z: activations.apply(hidden, z))
             if layer < L else None)
    similar_w, similar_a = most_similar(W_in, SIMILAR), most_similar(A.T, SIMILAR)
    reached = pre_activations_at(p, preferred, layer, hidden)
    n = min(EXTREMES, len(y))
    units, shown = [], set()
    for j in range(A.shape[1]):
        top, top_s = shown_extremes(Z[:, j], unit[:, j] >= SATURATED, y, K, n, highest=True)
        bottom, bottom_s = shown_extremes(Z[:, j], unit[:, j] <= SILENCED, y, K, n, highest=False)
        shown.update(top, bottom)

        def refs(indices):
            return [ImageRef(int(ids[i]), int(y[i]), rounded(A[i, j]), rounded(Z[i, j])) for i in indices]

        m = maps[j].astype(np.float32)
        units.append(Unit(
            layer=layer, id=j, bias=float(floats(p[f"b{layer}"][j:j + 1].astype(np.float32))[0]),
            incoming=floats(W_in[j].astype(np.float32)),
            incoming_max_abs=float(floats(np.abs(W_in[j]).max(keepdims=True).astype(np.float32))[0]),
            outgoing=floats(W_out[:, j].astype(np.float32)),
            effective_map=floats(m.reshape(shape)),
            effective_max_abs=float(floats(np.abs(m).max(keepdims=True))[0]),
            mean_activation=floats(means[j], STAT_DIGITS),
            activation_mean=rounded(fill[j]), activation_std=rounded(spread[j]),
            flag=saturation_flag(above[j], below[j], bool((unit[:, j] < OFF).all()), spread[j]),
            top_images=refs(top), bottom_images=refs(bottom), top_images_sampled=top_s, bottom_images_sampled=bottom_s,
            effect=floats(effect[j], STAT_DIGITS), ablation=floats(ablation[j], STAT_DIGITS),
            ablation_overall=rounded(overall[j]),
            next_shift=[] if shift is None else floats(shift[j], STAT_DIGITS),
            similar_by_weights=[Similar(i, rounded(r)) for i, r in similar_w[j]],
            similar_by_activation=[Similar(i, rounded(r)) for i, r in similar_a[j]],
            preferred_pre_activation=rounded(reached[j]), top_pre_activation=rounded(Z[:, j].max()),
        ))
    return Layer(layer, units), shown


def layer_tops(effects_by_layer: list[np.ndarray], K: int, k: int) -> list[list[LayerTop]]:
    """For each class, its top k units of every layer by effect (largest margin drop when pinned), and its
    top k suppressors (most negative), each (H, K) effect matrix one layer."""
    return [[LayerTop(layer, [Score(j, rounded(e[j, d])) for j in effects.ranked(e[:, d], min(k, len(e)))],
                      [Score(j, rounded(e[j, d])) for j in effects.ranked(e[:, d], min(k, len(e)), sign=-1)])
             for layer, e in enumerate(effects_by_layer, start=1)] for d in range(K)]
