"""The pages, figures and JSON of a deeper network's hidden layers (Atlas.layers): a page per layer and per
unit. Formats and ranks for the templates (unit.md.j2, layer.md.j2, _digit_layers.md.j2); computes nothing new.
A one-hidden-layer atlas has no Atlas.layers, so none of this runs for it."""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np

from . import atlas as atlas_mod
from . import figures
from .atlas import Atlas, Unit
from .formats import fixed, points, signed
from .names import Names

READS = 8  # incoming weights a unit page lists (largest |weight| first)
SHIFTS = 8  # next-layer units a unit page lists (largest shift first)


def figure_files(atlas: Atlas, arrays: dict[str, np.ndarray],
                 names: Names) -> tuple[dict[str, Callable[[], bytes]], dict[str, str]]:
    """Per unit: weights.png (its effective input map, own scale: the weights themselves in layer 1),
    preferred.png and, below layer 1, incoming.png (its weights on the layer below as that layer's grid);
    per layer: mean-D.png, its mean activation on each class as a grid; each as the call that draws it (as
    render.figure_files). And the printed scales."""
    files, scales = {}, {}
    lo, hi = atlas.model.network["histogram_range"]
    offset = 0
    for layer in atlas.layers:
        for u in layer.units:
            files[names.unit_fig(u.layer, u.id, "weights")] = partial(figures.diverging, np.array(u.effective_map),
                                                                      u.effective_max_abs)
            files[names.unit_fig(u.layer, u.id, "preferred")] = partial(figures.ink,
                                                                        arrays["unit_preferred"][offset + u.id])
            if u.layer > 1:
                path = names.unit_fig(u.layer, u.id, "incoming")
                files[path] = partial(figures.diverging_grid, np.array(u.incoming), u.incoming_max_abs)
                scales[path] = "±" + fixed(u.incoming_max_abs)
        offset += len(layer.units)
        means = np.array([u.mean_activation for u in layer.units])  # (H, K)
        for d in range(means.shape[1]):
            files[names.layer_fig(layer.layer, f"mean-{d}")] = partial(figures.activation_grid,
                                                                       (means[:, d] - lo) / (hi - lo))
    return files, scales


def unit_link(names: Names, root: str, layer: int, j: int) -> str:
    return f"[unit {names.nid(j)}]({root}{names.unit_page(layer, j)})"


def unit_rows(atlas: Atlas, u: Unit, names: Names, root: str, cls: list[str]) -> dict:
    """What a unit page's tables show, formatted: its reads, its class effects, its next-layer shifts."""
    L = len(atlas.layers)
    below = atlas.layers[u.layer - 2].units if u.layer > 1 else []
    reads = []
    if u.layer > 1:
        for i in np.argsort(-np.abs(u.incoming), kind="stable")[:READS]:
            reads.append({"unit": unit_link(names, root, u.layer - 1, int(i)), "weight": signed(u.incoming[i]),
                          "mean": fixed(below[i].activation_mean)})
    classes = [{"cls": cls[d], "d": d, "mean": fixed(u.mean_activation[d]), "effect": signed(-u.effect[d]),
                "accuracy": points(u.ablation[d]),
                "weight": signed(u.outgoing[d]) if u.layer == L else ""} for d in range(len(u.effect))]
    shifts = []
    if u.layer < L:
        for i in np.argsort(-np.array(u.next_shift), kind="stable")[:SHIFTS]:
            shifts.append({"unit": unit_link(names, root, u.layer + 1, int(i)), "weight": signed(u.outgoing[i]),
                           "shift": fixed(u.next_shift[i])})
    return {"reads": reads, "classes": classes, "shifts": shifts,
            "similar_w": [{"unit": unit_link(names, root, u.layer, s.neuron), "r": signed(s.correlation)}
                          for s in u.similar_by_weights],
            "similar_a": [{"unit": unit_link(names, root, u.layer, s.neuron), "r": signed(s.correlation)}
                          for s in u.similar_by_activation],
            "fires_most_for": int(np.argmax(u.mean_activation)), "effect_digit": int(np.argmax(u.effect))}


def layer_rows(atlas: Atlas, layer, names: Names, root: str, cls: list[str]) -> list[dict]:
    """The layer page's table of units, formatted."""
    rows = []
    for u in layer.units:
        d, e = int(np.argmax(u.mean_activation)), int(np.argmax(u.effect))
        rows.append({"unit": unit_link(names, root, u.layer, u.id), "id": u.id, "fires": cls[d],
                     "mean": fixed(u.mean_activation[d]), "effect": fixed(u.effect[e]), "effect_cls": cls[e],
                     "ablation": points(u.ablation_overall), "flag": u.flag})
    return rows


def pages(atlas: Atlas, names: Names, page, cls: list[str], root_of) -> None:
    """Call page(path, template, **context) for every layer page and unit page."""
    L = len(atlas.layers)
    for layer in atlas.layers:
        path = names.layer_page(layer.layer)
        grid_rows, grid_cols = figures.grid_shape(len(layer.units))
        page(path, "layer.md.j2", layer=layer, depth=L, rows=layer_rows(atlas, layer, names, root_of(path), cls),
             layer_grid_cols=grid_cols, layer_grid_rows=grid_rows)
        for u in layer.units:
            path = names.unit_page(u.layer, u.id)
            page(path, "unit.md.j2", u=u, depth=L, size=len(layer.units),
                 t=unit_rows(atlas, u, names, root_of(path), cls))


def data_files(atlas: Atlas, names: Names, frame) -> dict[str, bytes]:
    """One JSON per unit of every layer, beside its page (frame(page, kind, entry) makes its envelope)."""
    return {names.unit_json(u.layer, u.id): frame(names.unit_page(u.layer, u.id), "unit", atlas_mod.plain(u))
            for layer in atlas.layers for u in layer.units}


def probe_layers(atlas: Atlas, names: Names, url_root: str) -> list[dict]:
    """The probe page's grids of a deeper network's hidden layers before the last (whose grid is the one-layer
    probe's): per layer its columns and cells (unit id, name, link)."""
    return [{"layer": layer.layer, "size": len(layer.units), "cols": figures.grid_shape(len(layer.units))[1],
             "cells": [{"id": u.id, "name": f"layer {u.layer}, unit {names.nid(u.id)}",
                        "href": url_root + names.href(names.unit_page(u.layer, u.id))} for u in layer.units]}
            for layer in atlas.layers[:-1]]
