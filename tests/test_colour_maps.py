"""The site's colour maps (generator/colour_maps.py) against matplotlib's own, colour by colour and value by value."""

import subprocess
import sys

import matplotlib
import numpy as np
import pytest

from generator import colour_maps
from generator.colour_maps import TABLES, ColourMap
from generator.config import REPO


def eight_bit(rgba) -> np.ndarray:
    """RGBA floats as the site's PNGs and hex colours store them: RGB rounded to 8 bits, alpha as it is."""
    rgba = np.asarray(rgba, np.float64)
    return np.concatenate([np.round(rgba[..., :3] * 255), rgba[..., 3:]], axis=-1)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_each_table_is_matplotlibs_colours(name):
    cmap = matplotlib.colormaps[name]
    rgb = np.round(cmap(np.arange(cmap.N))[:, :3] * 255).astype(np.uint8)
    assert TABLES[name] == "".join(f"{r:02x}{g:02x}{b:02x}" for r, g, b in rgb)
    assert ColourMap(name).N == cmap.N


def test_the_module_holds_what_regenerating_it_prints():
    assert colour_maps.tables_source() in (REPO / "generator" / "colour_maps.py").read_text()


@pytest.mark.parametrize("name", sorted(TABLES))
def test_lookup_is_matplotlibs_for_every_kind_of_value(name):
    ours, theirs = ColourMap(name), matplotlib.colormaps[name]
    n = theirs.N
    steps = np.arange(n + 1) / n
    floats = np.concatenate([np.linspace(0, 1, 20001), steps, np.nextafter(steps, -1), np.nextafter(steps, 2),
                             [-0.5, 1.5, -np.inf, np.inf, np.nan, 1e-300, -0.0]])
    with np.errstate(invalid="ignore", over="ignore"):
        for x in (floats, floats.astype(np.float32), np.array([-3, 0, 5, n - 1, n, 300]), floats[:20776].reshape(-1, 7)):
            assert np.array_equal(eight_bit(ours(x)), eight_bit(theirs(x)), equal_nan=True), x.dtype
    for scalar in (0.25, np.float32(0.7), 3, np.nan):
        mine = ours(scalar)
        assert isinstance(mine, tuple) and np.array_equal(eight_bit(mine), eight_bit(theirs(scalar)))
    assert ours.hex_colour(1) == matplotlib.colors.to_hex(theirs(1))
    masked = np.ma.masked_array([0.1, 0.5, np.nan], [True, False, False])
    assert np.array_equal(eight_bit(ours(masked)), eight_bit(theirs(masked)))


def test_a_colour_or_map_that_does_not_exist_is_an_error():
    with pytest.raises(IndexError):
        ColourMap("tab10").hex_colour(10)
    with pytest.raises(IndexError):
        ColourMap("tab10").hex_colour(-1)
    with pytest.raises(ValueError, match="known: RdBu_r"):
        ColourMap("jet")


def test_drawing_a_figure_imports_no_matplotlib():
    """The render stage's modules look colours up in the tables: importing matplotlib took 0.75 s a render."""
    code = "import sys, generator.render, generator.probe; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
