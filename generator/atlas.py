"""The atlas's typed data model and its JSON form (build/atlas.json), read by people's scripts."""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .output import npz_bytes

FORMAT = 3  # bump when a field changes meaning or disappears
# Format 3 (from 2): networks of any depth. model.sizes lists every layer; `layers` holds each hidden layer's
# units of a deeper network (Unit: incoming and outgoing weights, effective input map, effect, ablation,
# next-layer shift, similarity), [] for one hidden layer; digits[].layers their top units per layer. For a
# deeper network `neurons` describes the last hidden layer, the one the outputs read (its `weights` are its
# effective input maps), and digits[] and mistakes rest on it; one hidden layer reads as in format 2.
# Format 2 (from 1): a class's top_contributors/top_suppressors are ranked by measured effect (`effect`, the
# drop of its margin when the neuron is pinned to its mean), no longer by `contribution`, which stays beside
# it with `discriminative`; ablate_random is the median over draws from outside the top k (random_baseline
# gives its 5-95% range); mistakes[].pushes are ranked by net push and list only neurons that pushed the
# predicted class harder than the true one; top_images/bottom_images of a saturated neuron are a sample of
# its tied set by class; image indices are the source test set's (MNIST's) indices; toward/away are ranked by
# (W2[d] - W2[rival]) x (mean on d - mean on rival); flag may be "near-constant"; the neuron's one-sentence
# summary is written by the render stage and served in neurons/NNN.json, not in atlas.json.


@dataclass(frozen=True)
class Contribution:
    neuron: int
    contribution: float  # W2[digit, neuron] * mean activation of neuron over test images of digit (raw share)
    discriminative: float  # W2[digit, neuron] * (mean on digit - mean on all test images)
    effect: float  # mean drop of the digit's margin over its test images when the neuron is pinned to its mean
    accuracy_change: float  # change of the digit's test accuracy under the same pinning (a share)


@dataclass(frozen=True)
class Role:
    digit: int
    rank: int  # 1 = strongest, by effect
    contribution: float
    effect: float  # margin drop when pinned (Contribution.effect)


@dataclass(frozen=True)
class ImageRef:
    index: int  # index in the source test set (MNIST's t10k files), also for a class subset
    label: int
    activation: float  # the neuron's activation on it
    pre_activation: float  # the neuron's input before the sigmoid, w . x + b: orders images that saturate


@dataclass(frozen=True)
class Similar:
    neuron: int
    correlation: float  # Pearson correlation


@dataclass(frozen=True)
class Example:
    index: int  # index in the source test set
    label: int
    predicted: int
    image: list[list[float]]  # (rows, cols) pixels in [0, 1]
    hidden_activation: list[float]  # (H,)
    output: list[float]  # (K,) sigmoid outputs


@dataclass(frozen=True)
class Neuron:
    id: int
    bias: float
    output_weights: list[float]  # (K,) W2[:, id]
    mean_activation: list[float]  # (K,) mean activation over the test images of each class
    contribution: list[float]  # (K,) output_weights * mean_activation: its raw share of each class's logit
    discriminative: list[float]  # (K,) output_weights * (mean_activation - mean over all test images)
    effect: list[float]  # (K,) mean drop of each class's margin when it is pinned to its mean (effects.py)
    effect_largest: float  # max of effect: the most one class's margin drops when it is pinned
    effect_largest_digit: int  # the class that drop is on
    activation_mean: float  # mean activation over all test images: the value it is pinned to
    activation_std: float  # standard deviation of its activation over the test images
    weights: list[list[float]]  # (rows, cols) W1[id] as an image
    weight_max_abs: float  # max |W1[id]|: the symmetric colour scale of its weight map
    fires_most_for: int  # class with the largest mean activation
    fires_for: list[int]  # classes with mean activation >= 0.5, highest first
    silent_for: list[int]  # classes with mean activation < 0.1, lowest first
    promotes: list[int]  # classes with a positive outgoing weight, strongest first
    suppresses: list[int]  # classes with a negative outgoing weight, strongest first
    top_contributor_of: list[Role]
    top_suppressor_of: list[Role]
    top_images: list[ImageRef]  # highest pre-activation first; a sample by class if top_images_sampled
    bottom_images: list[ImageRef]  # lowest pre-activation first; a sample by class if bottom_images_sampled
    saturated: list[int]  # (K,) test images of each class with activation >= 0.9995 (shown as 1.000)
    silenced: list[int]  # (K,) test images of each class with activation <= 0.0005 (shown as 0.000)
    top_images_sampled: bool  # more images saturate it than are shown: top_images samples them by class
    bottom_images_sampled: bool  # the same for the silenced images
    histogram: list[list[int]]  # (K, bins) test images per class in equal activation bins over [0, 1]
    histogram_peak: int  # images in the fullest bin, all classes together
    share_above: float  # share of test images with activation > 0.99
    share_below: float  # share of test images with activation < 0.01
    flag: str  # "dead", "near-constant", "nearly always off", "nearly always on" or ""
    ablation: list[float]  # (K,) change in per-class test accuracy when replaced by its mean activation
    ablation_overall: float  # change in overall test accuracy, same ablation
    ablation_cost: float  # largest drop of one class's accuracy under that ablation (>= 0)
    ablation_cost_digit: int  # the class that drop is on
    similar_by_weights: list[Similar]  # highest weight-map correlation first
    similar_by_activation: list[Similar]  # highest activation correlation over the test set first


@dataclass(frozen=True)
class Count:
    digit: int
    count: int


@dataclass(frozen=True)
class Score:
    neuron: int
    score: float


@dataclass(frozen=True)
class Push:
    neuron: int
    activation: float  # a_j(x) on the example
    to_predicted: float  # W2[predicted, j] * a_j(x)
    to_true: float  # W2[label, j] * a_j(x)
    net: float  # to_predicted - to_true: how far it moved the image towards the wrong answer


@dataclass(frozen=True)
class Mistake:
    index: int  # test image
    label: int
    predicted: int
    output_predicted: float  # sigmoid output of the predicted class
    output_true: float  # sigmoid output of the true class
    logit_gap: float  # z_predicted - z_true (> 0): the sum of every neuron's net push plus bias_gap
    bias_gap: float  # b2[predicted] - b2[true]
    pushes: list[Push]  # the neurons with the largest positive net push, largest first
    hidden_activation: list[float]  # (H,)
    output: list[float]  # (K,) sigmoid outputs


@dataclass(frozen=True)
class RandomBaseline:
    """Pinning k random neurons drawn from outside a class's top k, `draws` times (effects.random_baseline)."""
    draws: int  # 0 when fewer than k neurons lie outside the top k: no baseline
    pool: int  # neurons drawn from
    margin_low: float  # 5th percentile of the mean margin change
    margin_median: float
    margin_high: float  # 95th percentile
    accuracy_low: float
    accuracy_median: float
    accuracy_high: float
    top_outside: bool  # the top k's margin change lies below margin_low: they matter more than random neurons


@dataclass(frozen=True)
class LayerTop:
    """A class's top units in one hidden layer of a deeper network, ranked by effect (Contribution.effect)."""
    layer: int  # 1 = the first hidden layer
    top: list[Score]  # largest margin drop when pinned first (score = that drop)
    bottom: list[Score]  # most negative first: pinning them raises the class's margin


@dataclass(frozen=True)
class Digit:
    digit: int
    count: int  # test images of this class
    accuracy: float  # share of them classified correctly
    top_contributors: list[Contribution]  # largest positive effect first: pinning them lowers the margin most
    top_suppressors: list[Contribution]  # most negative effect first: pinning them raises the margin most
    mean_image: list[list[float]]  # (rows, cols)
    example: Example  # the test image of this class closest to the class mean
    ablate_top: float  # accuracy on this class with its top-k contributors pinned together to their means
    ablate_random: float  # the same for k random neurons from outside the top k, median over the draws
    ablate_suppressors: float  # the same for its top-k suppressors
    margin: float  # mean margin z_d - max_{k != d} z_k over the class's test images, intact network
    margin_top: float  # mean margin change with its top-k contributors pinned together
    margin_suppressors: float  # the same with its top-k suppressors pinned together
    random_baseline: RandomBaseline  # k random neurons from outside the top k, pinned together
    mistaken_for: list[Count]  # what its misclassified images were called, most frequent first
    mistaken_as: list[Count]  # which other classes' images were called this one, most frequent first
    rival: int  # the class it is confused with most (both directions together)
    toward: list[Score]  # neurons ranked by (W2[d, j] - W2[rival, j]) * (mean on d - mean on rival)
    away: list[Score]  # most negative of the same: push to the rival
    mistakes: list[Mistake]  # every misclassified test image of this class
    preferred_logit: float  # z2[d] at the preferred input
    median_logit: float  # median z2[d] over the class's real test images: what the preferred input must reach
    preferred_penalty: float  # pull towards the mean image the preferred input was found with
    preferred_smoothness: float  # its smoothness weight
    start_logit: float  # z2[d] at the mean image the ascent started from
    example_logit: float  # z2[d] at the worked example
    baseline_logit: float  # z2[d] at the all-black image
    example_ig_sum: float  # sum of the integrated-gradients attributions (completeness: = logit difference)
    layers: list[LayerTop]  # a deeper network's top units in every hidden layer, first first; [] for one layer


@dataclass(frozen=True)
class Unit:
    """One unit of one hidden layer of a network with more than one hidden layer (Atlas.layers)."""
    layer: int  # 1 = the first hidden layer
    id: int  # its index in its layer
    bias: float
    incoming: list[float]  # (H_{layer-1},) its weights on the layer below, exact; (D,) pixel weights for layer 1
    incoming_max_abs: float
    outgoing: list[float]  # (H_{layer+1},) the next layer's weights on it; (K,) the output weights for the last
    effective_map: list[list[float]]  # (rows, cols) d(pre-activation)/d(input), mean over the test images
    effective_max_abs: float  # max |effective_map|: its symmetric colour scale
    mean_activation: list[float]  # (K,) mean activation over the test images of each class
    activation_mean: float  # over all test images: the value it is pinned to
    activation_std: float
    flag: str  # as Neuron.flag
    top_images: list[ImageRef]  # as Neuron.top_images
    bottom_images: list[ImageRef]
    top_images_sampled: bool
    bottom_images_sampled: bool
    effect: list[float]  # (K,) mean drop of each class's margin when it is pinned to its mean, the rest re-run
    ablation: list[float]  # (K,) change in per-class test accuracy under the same pinning
    ablation_overall: float  # change in overall test accuracy
    next_shift: list[float]  # (H_{layer+1},) mean |change| of each next-layer unit's activation when it is
    #                          pinned; [] for the last hidden layer, whose effect on the outputs is `effect`
    similar_by_weights: list[Similar]  # by incoming weights (Pearson)
    similar_by_activation: list[Similar]
    preferred_pre_activation: float  # its pre-activation at its preferred input (a figure, preferred.png)
    top_pre_activation: float  # its largest pre-activation over the test images, for comparison


@dataclass(frozen=True)
class Layer:
    """One hidden layer of a deeper network."""
    layer: int  # 1 = the first hidden layer
    units: list[Unit]


@dataclass(frozen=True)
class HistoryRow:
    epoch: int
    learning_rate: float
    train_loss: float
    test_loss: float
    test_accuracy: float
    seconds: float


@dataclass(frozen=True)
class ModelInfo:
    run_id: str  # provenance.run_id: names this network (data, settings, trained weights) in links and citations
    sizes: list[int]  # [inputs, hidden, outputs]; [inputs, hidden 1, ..., hidden L, outputs] for L layers
    image_shape: list[int]  # [rows, cols]
    test_accuracy: float
    test_loss: float
    seed: int
    epochs: int
    training_seconds: float
    n_train: int
    n_test: int
    data_sha256: dict[str, str]
    config: dict
    histogram_bins: int
    pattern_images: int  # top-activating images averaged into each neuron's pattern
    snapshot_epochs: list[int]  # epochs whose W1 the "how it formed" figures show (0 = before training)
    random_draws: int  # random neuron sets drawn for each class's random baseline
    weight_max_abs: float  # max |W1| over every neuron: the shared colour scale of the weights-shared maps
    weight_max_abs_median: float  # median over neurons of their own max |W1|
    near_constant_std: float  # activation spread below which a neuron is flagged near-constant
    class_names: list[str]  # display name of each class index ("0".."9" for MNIST)
    noun: str  # what a class is called on the pages: "digit", or "class"
    source: str  # where the weights came from: "trained by this atlas", or the imported file
    # How the network is read: activation and output ("sigmoid", "relu", ...), activation_source and
    # output_source ("read from the file", "assumed (not in the file)", ...), histogram_range [low, high]
    # that the histogram bins span, saturation [above, below] thresholds; for an imported network also
    # notes ("matrices stored as (in, out), transposed", "no biases in the file, taken as 0"), inputs (the
    # normalisation folded into W1, b1) and warning (accuracy near chance).
    network: dict


@dataclass(frozen=True)
class Atlas:
    format: int
    model: ModelInfo
    history: list[HistoryRow]
    neurons: list[Neuron]
    digits: list[Digit]
    confusion: list[list[int]]  # (K, K) test images of class row predicted as class column
    layers: list[Layer]  # every hidden layer of a deeper network, first first; [] for one hidden layer


@functools.cache
def _fields(kind) -> tuple[tuple[str, object], ...]:
    """(name, type) of each field of dataclass `kind`; resolving the hints compiles every annotation, so once
    per class (uncached it was a third of loading atlas.json)."""
    hints = typing.get_type_hints(kind)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(kind))


def _same(value):
    return value


@functools.cache
def _builder(kind):
    """A function that rebuilds a `kind` (a dataclass or a type hint) from parsed JSON, following the type
    hints; made once per hint, so reading a list of floats is one call, not a call per float (per value,
    the hints' inspection was most of loading atlas.json)."""
    if dataclasses.is_dataclass(kind):
        fields = [(name, _builder(hint)) for name, hint in _fields(kind)]
        return lambda value: kind(**{name: build(value[name]) for name, build in fields})
    if typing.get_origin(kind) is list:
        (item,) = typing.get_args(kind)
        build = _builder(item)
        return _same if build is _same else lambda value: [build(v) for v in value]
    return _same


def _build(kind, value):
    """Rebuild dataclasses from parsed JSON, following the type hints."""
    return _builder(kind)(value)


_SCALARS = frozenset({int, float, str, bool, type(None)})


@functools.cache
def _names(kind: type) -> tuple[str, ...] | None:
    """The field names of dataclass `kind` in order; None for any other type."""
    return tuple(f.name for f in dataclasses.fields(kind)) if dataclasses.is_dataclass(kind) else None


def plain(value):
    """`value` with every dataclass as a dict of its fields in order (dataclasses.asdict without its deep
    copies, which made it most of writing atlas.json); lists, dicts and scalars pass through.

    Dispatches on the exact type first: scalars, most of an atlas's half a million values, return without a
    call of their own, and a class is asked whether it is a dataclass once (is_dataclass per value and a call
    per float were half of plain's time, which was a second of each of analyze and render)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list or kind is tuple:
        return [v if type(v) in _SCALARS else plain(v) for v in value]
    names = _names(kind)
    if names is not None:
        return {name: plain(getattr(value, name)) for name in names}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def to_json(atlas: Atlas) -> bytes:
    """Stable JSON: keys in field order, floats in their shortest round-trip form, one trailing newline."""
    return (json.dumps(plain(atlas), ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def from_json(data: bytes) -> Atlas:
    return _build(Atlas, json.loads(data))


def load_atlas(path: Path) -> Atlas:
    return from_json(path.read_bytes())


def arrays_bytes(arrays) -> bytes:
    """build/arrays.npz: the bulk arrays of an analysis (any dataclass of NumPy arrays)."""
    return npz_bytes({f.name: getattr(arrays, f.name) for f in dataclasses.fields(arrays)})


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def floats(array: np.ndarray, digits: int | None = None) -> list:
    """A float array as nested lists of Python floats; float32 values keep their shortest float32 form.

    `digits` rounds to that many decimals instead (statistics whose last bits mean nothing).
    """
    array = np.asarray(array)
    if digits is not None:
        return np.round(array.astype(np.float64), digits).tolist()
    if array.dtype == np.float32:
        flat = [float(np.format_float_positional(v, unique=True, trim="0")) for v in array.ravel()]
        return np.array(flat, dtype=np.float64).reshape(array.shape).tolist()
    return array.astype(np.float64).tolist()
