"""Every setting of the atlas: frozen dataclasses loaded from a TOML file, overridden and validated once."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

# Standard library only (and errors.py): the CLI loads the config before it imports NumPy, so that the train
# stage's second process (numba's compile, warm.KernelWarmer) starts first.

# The four standard MNIST file names, with or without .gz (data.py reads them; data.sha256 is keyed by them).
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
# The activations a network may use, by name (network.activation, network.output): activations.py has their maths.
HIDDEN = ("sigmoid", "relu", "tanh")
OUTPUT = ("sigmoid", "softmax")

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent
# The files the stages read at run time besides the code (templates/, mkdocs.yml, atlas.toml, configs/): the
# repository's own in a checkout; an installed package (`pip install .`) carries copies in generator/_share,
# laid out the same way (pyproject.toml maps them there).
SHARE = PACKAGE / "_share" if (PACKAGE / "_share" / "mkdocs.yml").is_file() else REPO


def default_root() -> Path:
    """Where relative paths of the built-in defaults resolve: the repository in a checkout, else the current
    directory, so an installed `neuron-atlas` reads data/mnist and writes build/ and site/ where it runs."""
    return REPO if SHARE == REPO else Path.cwd()


@dataclass(frozen=True)
class DataConfig:
    # A directory of IDX (MNIST, EMNIST, QMNIST) or CSV files, or a mnist.npz / mnist.pkl.gz. --data sets it.
    dir: str = "data/mnist"
    # SHA-256 of each decompressed IDX file; an empty table skips the check (other datasets).
    sha256: dict[str, str] = field(default_factory=dict)
    # Use only the first N images (0 = all): for quick experiments and tests, never the published atlas.
    train_limit: int = 0
    test_limit: int = 0
    # Keep only these class labels (empty = all); they become classes 0, 1, ... in this order.
    classes: list[int] = field(default_factory=list)
    # Display names of the (kept) classes, e.g. "T-shirt/top"; empty = the labels themselves.
    class_names: list[str] = field(default_factory=list)
    # What a class is called on the pages: "digit" for MNIST, "class" elsewhere.
    noun: str = "digit"
    # Images are stored and shown as pixel / pixel_max in [0, 1]; a network trained on normalised inputs
    # sees (pixel / pixel_max - mean) / std (PyTorch's MNIST example: mean 0.1307, std 0.3081).
    pixel_max: int = 255
    mean: float = 0.0
    std: float = 1.0
    # Transpose every image (EMNIST's files store them transposed; the atlas undoes that by itself).
    transpose: bool = False


@dataclass(frozen=True)
class NetworkConfig:
    # Units per hidden layer: an int for one hidden layer, a list ([30, 30]) for several, first layer first.
    hidden: int | tuple[int, ...] = 100
    # A network trained elsewhere to explain instead of training one ("" = train): Nielsen's network2 JSON,
    # an .npz, safetensors, Keras .keras/.weights.h5, ONNX or a PyTorch state_dict (README). --weights sets it.
    weights: str = ""
    # Hidden units' activation ("sigmoid", "relu", "tanh") and the output units' ("sigmoid", "softmax").
    # An imported file that records them wins; a setting that contradicts it is an error.
    activation: str = "sigmoid"
    output: str = "sigmoid"

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        """Units of each hidden layer, first first: (100,) for the default, (30, 30) for hidden = [30, 30]."""
        return (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 1
    epochs: int = 30
    batch_size: int = 10
    learning_rate: float = 0.5
    # "constant", or "cosine": from learning_rate down to learning_rate * final_lr_fraction.
    schedule: str = "cosine"
    final_lr_fraction: float = 0.02
    # Nielsen's lambda: each step scales the weights by 1 - learning_rate * l2 / n_train.
    l2: float = 5.0
    # Epochs after which W1 is kept for the "how it formed" figures; before training and the last are
    # always kept, epochs past the last are ignored.
    snapshot_epochs: list[int] = field(default_factory=lambda: [1, 2, 5])


@dataclass(frozen=True)
class AnalysisConfig:
    top_k: int = 5


@dataclass(frozen=True)
class SiteConfig:
    title: str = "MNIST Neuron Atlas"
    build_dir: str = "build"
    site_dir: str = "site"
    # Other atlases (their config files) published as sections of this site, e.g. the 0-vs-1 network.
    sections: list[str] = field(default_factory=list)
    # Where this atlas appears when another config lists it as a section: site/<section>/.
    section: str = ""


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    site: SiteConfig = field(default_factory=SiteConfig)
    # Directory that relative paths in the file are resolved from (the config file's own).
    root: Path = field(default=REPO, compare=False)
    # Where each setting that was not a default came from ("--set" or the file), for error messages.
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def path(self, value: str) -> Path:
        """A path setting resolved against the config file's directory."""
        return (self.root / value).resolve()

    @property
    def build_dir(self) -> Path:
        return self.path(self.site.build_dir)

    @property
    def site_dir(self) -> Path:
        return self.path(self.site.site_dir)

    # The files each stage writes, all under build_dir (README.md, "How it is built").
    @property
    def model_path(self) -> Path:
        return self.build_dir / "model.npz"

    @property
    def atlas_path(self) -> Path:
        return self.build_dir / "atlas.json"

    @property
    def arrays_path(self) -> Path:
        return self.build_dir / "arrays.npz"

    @property
    def docs_dir(self) -> Path:
        return self.build_dir / "docs"

    @property
    def mkdocs_path(self) -> Path:
        return self.build_dir / "mkdocs.yml"

    @property
    def timings_path(self) -> Path:
        return self.build_dir / "timings.json"

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (no root), in a stable order, for atlas.json and fingerprints."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def where(self, key: str) -> str:
        """Where setting `key` ('train.epochs') came from: '--set train.epochs', the file, or 'defaults'."""
        return self.origins.get(key, "defaults")


SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Config) if f.name not in ("root", "origins")}
SCHEDULES = ("constant", "cosine")
LIST_ITEMS = {"data.class_names": str, "site.sections": str}  # other list settings hold integers
# One page per hidden neuron; beyond this the site is unreadable and the weights alone need gigabytes.
MAX_HIDDEN = 10_000
IDX_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


def _suggest(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(options))})"


def _parse_override(text: str) -> tuple[str, str, Any]:
    """'train.epochs=5' -> ('train', 'epochs', 5); the value is read as TOML, else taken as a string."""
    key, sep, raw = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not name:
        raise ConfigError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. --set train.epochs=5")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, name, value


def _coerce(where: str, name: str, value: Any, default: Any) -> Any:
    """Check one value against the type of its default."""
    kind = type(default)
    if name == "network.hidden" and isinstance(value, list):  # several hidden layers; [n] is one layer, as n
        if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{where}: '{name}' must be an integer or a non-empty list of integers "
                              f"(units per hidden layer, e.g. [30, 30]), got {value!r}")
        return value[0] if len(value) == 1 else tuple(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}: '{name}' must be {kind.__name__}, got {type(value).__name__} {value!r}")
    item = LIST_ITEMS.get(name, int)
    if kind is list and not all(isinstance(v, item) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"{where}: '{name}' must be a list of {'integers' if item is int else 'strings'}, "
                          f"got {value!r}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{where}: '{name}' must be a finite number, got {value!r}")
    if kind is dict:
        for file, digest in value.items():
            if file not in IDX_NAMES:
                raise ConfigError(f"{where}: '{name}' names an unknown file '{file}'{_suggest(file, IDX_NAMES)}")
            if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
                raise ConfigError(f"{where}: '{name}.{file}' must be a SHA-256 of 64 lowercase hex digits, "
                                  f"got {digest!r}")
    return value


def _check_ranges(config: Config) -> None:
    def need(ok: bool, key: str, rule: str, value: Any) -> None:
        if not ok:
            raise ConfigError(f"{config.where(key)}: '{key}' must be {rule}, got {value!r}")

    d, n, t, a, site = config.data, config.network, config.train, config.analysis, config.site
    need(d.train_limit >= 0, "data.train_limit", ">= 0 (0 = all images)", d.train_limit)
    need(d.test_limit >= 0, "data.test_limit", ">= 0 (0 = all images)", d.test_limit)
    need(d.dir.strip() != "", "data.dir", "a directory", d.dir)
    need(n.activation in HIDDEN, "network.activation", " or ".join(map(repr, HIDDEN)), n.activation)
    need(n.output in OUTPUT, "network.output", " or ".join(map(repr, OUTPUT)), n.output)
    need(1 <= d.pixel_max <= 65535, "data.pixel_max", "in 1..65535 (the largest pixel value the images can hold)",
         d.pixel_max)
    need(d.std > 0, "data.std", "> 0", d.std)
    need(all(1 <= h <= MAX_HIDDEN for h in n.hidden_sizes), "network.hidden",
         f">= 1 and <= {MAX_HIDDEN}" + ("" if isinstance(n.hidden, int) else " in every layer"),
         n.hidden if isinstance(n.hidden, int) else list(n.hidden))
    need(t.seed >= 0, "train.seed", ">= 0", t.seed)
    need(t.epochs >= 1, "train.epochs", ">= 1", t.epochs)
    need(t.batch_size >= 1, "train.batch_size", ">= 1 (and at most the number of training images)", t.batch_size)
    need(t.learning_rate > 0, "train.learning_rate", "> 0", t.learning_rate)
    need(t.l2 >= 0, "train.l2", ">= 0", t.l2)
    need(0 < t.final_lr_fraction <= 1, "train.final_lr_fraction", "in (0, 1]", t.final_lr_fraction)
    need(t.schedule in SCHEDULES, "train.schedule", " or ".join(repr(s) for s in SCHEDULES), t.schedule)
    need(all(e >= 1 for e in t.snapshot_epochs), "train.snapshot_epochs", "a list of epochs >= 1", t.snapshot_epochs)
    need(all(c >= 0 for c in d.classes) and len(set(d.classes)) == len(d.classes), "data.classes",
         "distinct labels >= 0 (empty = all)", d.classes)
    need(len(d.classes) != 1, "data.classes", "at least two labels (empty = all)", d.classes)
    need(not d.class_names or not d.classes or len(d.class_names) == len(d.classes), "data.class_names",
         f"one name per kept class ({len(d.classes)} in data.classes)", d.class_names)
    need(all(name.strip() and name.isprintable() for name in d.class_names), "data.class_names",
         "non-empty one-line names", d.class_names)
    need(d.noun.strip() != "" and d.noun.isprintable(), "data.noun", "one printable word, e.g. 'class'", d.noun)
    need(re.fullmatch(r"([a-z0-9][a-z0-9-]*)?", site.section) is not None, "site.section",
         "a lower-case URL path segment such as 'tiny' (or empty)", site.section)
    need(1 <= a.top_k <= min(n.hidden_sizes), "analysis.top_k",
         f"in 1..{min(n.hidden_sizes)} (network.hidden{'' if isinstance(n.hidden, int) else ', its smallest layer'})",
         a.top_k)
    need(site.title.strip() != "" and site.title.isprintable(), "site.title", "one line of printable text", site.title)
    need(site.build_dir.strip() != "", "site.build_dir", "a directory", site.build_dir)
    need(site.site_dir.strip() != "", "site.site_dir", "a directory", site.site_dir)
    # site/ is replaced whole on every build, and build/ gets a generated mkdocs.yml and docs/:
    # neither may be a directory that holds the sources, the config, the data or each other.
    keep = {"the repository": REPO, "the config file's directory": config.root}
    for key, target in (("site.build_dir", config.build_dir), ("site.site_dir", config.site_dir)):
        for what, path in keep.items():
            need(not path.is_relative_to(target), key, f"a directory that does not contain {what} ({path})",
                 getattr(site, key.split(".")[1]))
        keep = {**keep, "the data": config.path(d.dir), "site.build_dir": config.build_dir}
    docs = config.docs_dir
    need(not config.site_dir.is_relative_to(docs), "site.site_dir", f"outside the generated pages ({docs})",
         site.site_dir)


def check_against_data(config: Config, n_train: int) -> None:
    """The settings that training checks, right after loading the data: a batch must fit in the training
    images. (The kernels train every activation, output, input normalisation and depth the config accepts.)"""
    b = config.train.batch_size
    if b > n_train:
        raise ConfigError(f"{config.where('train.batch_size')}: 'train.batch_size' must be in 1..{n_train} "
                          f"(the number of training images), got {b}")


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a TOML config (or the defaults when path is None), apply `section.key=value` overrides, validate."""
    where = "defaults"
    raw: dict[str, Any] = {}
    root = default_root()
    if path is not None:
        path = Path(path)
        where = str(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found; pass an existing file with --config") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        root = path.resolve().parent
    origins = {f"{section}.{name}": where for section, table in raw.items() if isinstance(table, dict)
               for name in table}
    texts = {}
    for text in overrides:
        section, name, value = _parse_override(text)
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{where}: '{section}' must be a table [{section}], so --set {section}.{name} "
                              "cannot apply")
        raw[section][name] = value
        origins[f"{section}.{name}"] = f"--set {section}.{name}"
        texts[f"{section}.{name}"] = text.partition("=")[2].strip()
    sections = {}
    for section, table in raw.items():
        if section not in SECTIONS:
            origin = next((o for k, o in origins.items() if k.startswith(f"{section}.")), where)
            raise ConfigError(f"{origin}: unknown section [{section}]{_suggest(section, SECTIONS)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: '{section}' must be a table [{section}], got {type(table).__name__} "
                              f"{table!r}")
        defaults = SECTIONS[section]()
        known = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(defaults)}
        values = {}
        for name, value in table.items():
            key = f"{section}.{name}"
            if name not in known:
                raise ConfigError(f"{origins.get(key, where)}: unknown key '{key}'{_suggest(name, known)}")
            if isinstance(known[name], str) and not isinstance(value, str) and key in texts:
                value = texts[key]  # --set site.title=2024 means the text, not the number
            values[name] = _coerce(origins.get(key, where), key, value, known[name])
        sections[section] = dataclasses.replace(defaults, **values)
    config = Config(**sections, root=root, origins=origins)
    _check_ranges(config)
    return config
