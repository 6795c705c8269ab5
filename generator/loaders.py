"""Reading what the stages need: the configured dataset, a trained model, an analysis, the section
configs. Each loader raises the one-line, user-facing error (ConfigError, DataError, BuildError) that
says what to run; the CLI only turns it into an exit code."""

from __future__ import annotations

import dataclasses

import numpy as np

from . import atlas as atlas_mod
from .config import Config, load_config
from .data import Dataset, load_dataset, select_classes
from .errors import BuildError, ConfigError, DataError
from .network import depth, hidden_sizes
from .train import Model, load_model


def load_data(config: Config, train_images: bool = True, train_pixels: bool = False) -> Dataset:
    """The configured dataset: its class subset, its class names, checked against the settings. With
    `train_images` False, without the training images' pixels; with `train_pixels`, the training images as
    stored, for the training's sparse inputs (data.load_dataset).

    Raises DataError for missing or bad files (data.py), ConfigError for data.classes or
    data.class_names that do not fit the data."""
    d = config.data
    data = load_dataset(config.path(d.dir), d.sha256, d.train_limit, d.test_limit, d.pixel_max, d.transpose,
                        train_images, list(d.classes) if d.classes else None,  # converts only the subset's images
                        train_pixels)
    if d.classes:
        missing = [c for c in d.classes if c >= data.n_classes]
        if missing:
            raise ConfigError(f"{config.where('data.classes')}: 'data.classes' names label(s) {missing} that "
                              f"{d.dir} does not have (labels 0..{data.n_classes - 1})")
        data = select_classes(data, d.classes)
    if d.class_names:
        if len(d.class_names) != data.n_classes:
            raise ConfigError(f"{config.where('data.class_names')}: 'data.class_names' has {len(d.class_names)} "
                              f"names, the data has {data.n_classes} classes; give one name per class")
        data = dataclasses.replace(data, class_names=tuple(d.class_names))
    return data


def load_trained(config: Config) -> Model:
    """build/model.npz of the train stage. Raises BuildError when it is missing or unreadable, and
    ConfigError when analysis.top_k exceeds its hidden neurons (it may come from another config)."""
    path = config.model_path
    if not path.is_file():
        raise BuildError(f"{path}: no trained model; run 'python -m generator train' (or make site) first")
    try:
        model = load_model(path)
    except Exception as e:  # a zip, npy or JSON problem: whatever np.load finds, the file is not a model
        raise BuildError(f"{path}: not a readable model file ({type(e).__name__}: {e}); "
                         "rerun 'python -m generator train'") from e
    hidden, k = min(hidden_sizes(model.params)), config.analysis.top_k  # the smallest hidden layer's units
    if k > hidden and "weights_sha256" not in model.meta:  # trained with another config (an import may be smaller)
        raise ConfigError(f"{config.where('analysis.top_k')}: 'analysis.top_k' must be in 1..{hidden} "
                          f"(the hidden neurons of {path}), got {k}")
    return model


def check_model_fits(config: Config, model: Model, data: Dataset) -> None:
    """Raises DataError when the model's inputs or outputs differ from the data's pixels or classes."""
    W1, W2 = model.params["W1"], model.params[f"W{depth(model.params) + 1}"]  # W2 for one hidden layer
    if W1.shape[1] != data.n_inputs or W2.shape[0] != data.n_classes:
        raise DataError(f"{config.model_path}: model is {W1.shape[1]}-{W2.shape[0]} but the data "
                        f"in {config.data.dir} is {data.n_inputs}-{data.n_classes}; retrain with this config")


def load_analysis(config: Config, config_arg: str = "") -> tuple[atlas_mod.Atlas, dict[str, np.ndarray]]:
    """atlas.json and arrays.npz of the analyze stage. Raises BuildError saying what to run when they are
    missing or malformed; config_arg (' --config FILE') goes into that command."""
    path = config.atlas_path
    if not path.is_file():
        raise BuildError(f"{path}: no atlas; run 'python -m generator analyze{config_arg}' first")
    try:
        return atlas_mod.load_atlas(path), atlas_mod.load_arrays(config.arrays_path)
    except Exception as e:  # malformed JSON or fields: the files were not written by analyze
        raise BuildError(f"{path}: not a readable atlas ({type(e).__name__}: {e}); "
                         f"rerun 'python -m generator analyze{config_arg}'") from e


def load_atlas_only(config: Config) -> atlas_mod.Atlas:
    """atlas.json alone (the site stage needs its facts, not the arrays). Raises BuildError."""
    path = config.atlas_path
    try:
        return atlas_mod.load_atlas(path)
    except Exception as e:  # missing or malformed: the site cannot say which run it shows
        raise BuildError(f"{path}: not a readable atlas ({type(e).__name__}: {e}); "
                         "rerun 'python -m generator analyze'") from e


def section_configs(config: Config) -> list[Config]:
    """The configs of the atlases published as sections of this one (site.sections). Raises ConfigError
    for a section config without site.section (and whatever load_config raises)."""
    sections = []
    for rel in config.site.sections:
        section = load_config(config.path(rel))
        if not section.site.section:
            raise ConfigError(f"{config.path(rel)}: 'site.section' must name the section's directory (e.g. "
                              f"'tiny'), since {config.where('site.sections')} publishes it as a section")
        sections.append(section)
    return sections
