"""Every setting of the atlas: frozen dataclasses loaded from a TOML file, overridden and validated once."""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DataConfig:
    dir: str = "data/mnist"
    # SHA-256 of each decompressed IDX file; an empty table skips the check (other datasets).
    sha256: dict[str, str] = field(default_factory=dict)
    # Use only the first N images (0 = all): for quick experiments and tests, never the published atlas.
    train_limit: int = 0
    test_limit: int = 0


@dataclass(frozen=True)
class NetworkConfig:
    hidden: int = 100


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


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    site: SiteConfig = field(default_factory=SiteConfig)
    # Directory that relative paths in the file are resolved from (the config file's own).
    root: Path = field(default=REPO, compare=False)

    def path(self, value: str) -> Path:
        """A path setting resolved against the config file's directory."""
        return (self.root / value).resolve()

    @property
    def build_dir(self) -> Path:
        return self.path(self.site.build_dir)

    @property
    def site_dir(self) -> Path:
        return self.path(self.site.site_dir)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (no root), in a stable order, for atlas.json and fingerprints."""
        return {f.name: dataclasses.asdict(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "root"}


SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Config) if f.name != "root"}
SCHEDULES = ("constant", "cosine")


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
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}: '{name}' must be {kind.__name__}, got {type(value).__name__} {value!r}")
    if kind is list and not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"{where}: '{name}' must be a list of integers, got {value!r}")
    if kind is dict and not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"{where}: '{name}' must map file names to SHA-256 strings")
    return value


def _check_ranges(config: Config, where: str) -> None:
    def need(ok: bool, key: str, rule: str, value: Any) -> None:
        if not ok:
            raise ConfigError(f"{where}: '{key}' must be {rule}, got {value!r}")

    d, n, t, a = config.data, config.network, config.train, config.analysis
    need(d.train_limit >= 0, "data.train_limit", ">= 0 (0 = all images)", d.train_limit)
    need(d.test_limit >= 0, "data.test_limit", ">= 0 (0 = all images)", d.test_limit)
    need(n.hidden >= 1, "network.hidden", ">= 1", n.hidden)
    need(t.epochs >= 1, "train.epochs", ">= 1", t.epochs)
    need(t.batch_size >= 1, "train.batch_size", ">= 1", t.batch_size)
    need(t.learning_rate > 0, "train.learning_rate", "> 0", t.learning_rate)
    need(t.l2 >= 0, "train.l2", ">= 0", t.l2)
    need(0 < t.final_lr_fraction <= 1, "train.final_lr_fraction", "in (0, 1]", t.final_lr_fraction)
    need(t.schedule in SCHEDULES, "train.schedule", " or ".join(repr(s) for s in SCHEDULES), t.schedule)
    need(all(e >= 1 for e in t.snapshot_epochs), "train.snapshot_epochs", "a list of epochs >= 1", t.snapshot_epochs)
    need(a.top_k >= 1, "analysis.top_k", ">= 1", a.top_k)


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a TOML config (or the defaults when path is None), apply `section.key=value` overrides, validate."""
    where = "defaults"
    raw: dict[str, Any] = {}
    root = REPO
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
    for text in overrides:
        section, name, value = _parse_override(text)
        raw.setdefault(section, {})
        if isinstance(raw[section], dict):
            raw[section][name] = value
    sections = {}
    for section, table in raw.items():
        if section not in SECTIONS:
            raise ConfigError(f"{where}: unknown section [{section}]{_suggest(section, SECTIONS)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: '{section}' must be a table [{section}]")
        defaults = SECTIONS[section]()
        known = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(defaults)}
        values = {}
        for name, value in table.items():
            if name not in known:
                raise ConfigError(f"{where}: unknown key '{section}.{name}'{_suggest(name, known)}")
            values[name] = _coerce(where, f"{section}.{name}", value, known[name])
        sections[section] = dataclasses.replace(defaults, **values)
    config = Config(**sections, root=root)
    _check_ranges(config, where)
    return config
