"""Sentences the pages print, written from the atlas's facts: each claim names the statistic it rests on.

The analysis stage returns numbers; this module (part of the render stage) turns them into words, so a
change of wording never reruns the analysis. Class names arrive already escaped for Markdown.
"""

from __future__ import annotations

from collections import Counter

from .atlas import Neuron
from .formats import signed

BROAD = 4  # a neuron whose mean activation is >= 0.5 on this many classes or more "fires broadly"
EFFECT_SHOWN = 0.05  # margin effects smaller than this (in logit units) are "no measurable effect"


def join(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def majority(refs) -> tuple[int, int]:
    """The commonest label among image references and how many carry it (ties: the lower label)."""
    counts = Counter(r.label for r in refs)
    label = min(counts, key=lambda c: (-counts[c], c))
    return label, counts[label]


def neuron_summary(n: Neuron, cls: list[str], median_weight: float, nouns: str = "classes",
                   act: dict | None = None) -> str:
    """One or two sentences on what fires the neuron, on which evidence, and what removing it does.

    cls: the classes' display names; median_weight: the median over neurons of max |w|, against which a
    near-constant neuron's weights are measured; nouns: what the classes are called ("digits"); act: the
    activation's thresholds as formats.activation_words gives them (sigmoid's by default).
    """
    act = act or {"below": "0.01", "saturated": "0.9995"}
    K = len(cls)
    if n.flag == "dead":
        return f"Dead: below {act['below']} on every test image, so it passes nothing on to the outputs."
    if n.flag == "near-constant":
        ratio = median_weight / n.weight_max_abs if n.weight_max_abs > 0 else float("inf")
        return (f"Near-constant: its activation stays at {n.activation_mean:.3f} ± {n.activation_std:.3f} over the "
                f"test images and its largest weight is {n.weight_max_abs:.3f}, {ratio:.0f}× below the median "
                f"neuron's, so its weight map (on its own scale) shows noise, not a feature it detects.")
    parts = []
    if n.flag:
        parts.append(n.flag[0].upper() + n.flag[1:])
    if len(n.fires_for) >= BROAD:
        parts.append(f"fires broadly: mean activation in the upper half of its range on {len(n.fires_for)} of {K} {nouns} "
                     f"(highest {join([cls[d] for d in n.fires_for[:3]])})")
    elif n.fires_for:
        means = ", ".join(f"{n.mean_activation[d]:.2f}" for d in n.fires_for)
        parts.append(f"on average fires for {join([cls[d] for d in n.fires_for])} (mean {means})")
    else:  # "weakly" only where the range is the function's own, not ReLU's largest activation anywhere
        best = n.fires_most_for
        how = "fires weakly on average, most" if act.get("hidden") != "relu" else "on average fires most"
        parts.append(f"{how} for {cls[best]} (mean {n.mean_activation[best]:.2f})")
    saturated = sum(n.saturated)
    if n.top_images_sampled:
        label = max(range(K), key=lambda c: (n.saturated[c], -c))
        which = (f"all of them {cls[label]}" if n.saturated[label] == saturated
                 else f"most of them {cls[label]} ({n.saturated[label]:,})")
        parts.append(f"{saturated:,} test images saturate it (≥ {act['saturated']}), {which}")
    elif n.top_images:
        label, count = majority(n.top_images)
        shown = len(n.top_images)
        agree = f"{count} of its {shown} strongest responses are {cls[label]}"
        parts.append(agree if label == n.fires_most_for or len(n.fires_for) >= BROAD else "but " + agree)
    if n.silent_for:
        quiet = "silent on average" if act.get("hidden") != "relu" else "lowest on average"
        parts.append(f"{quiet} for {join([cls[d] for d in n.silent_for[:3]])}")
    first = "; ".join(parts)
    worst = max(range(K), key=lambda d: (n.effect[d], -d))
    best = min(range(K), key=lambda d: (n.effect[d], d))
    if n.effect[worst] >= EFFECT_SHOWN:
        effect = f"Pinning it to its mean lowers the margin of {cls[worst]} most ({signed(-n.effect[worst], 2)})"
        if n.effect[best] <= -EFFECT_SHOWN:
            effect += f" and raises that of {cls[best]} most ({signed(-n.effect[best], 2)})"
    else:
        effect = f"Pinning it to its mean changes no class's margin by {EFFECT_SHOWN} or more"
    return first[0].upper() + first[1:] + ". " + effect + "."
