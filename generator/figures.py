"""Every image of the atlas, one function per kind of figure; each returns PNG bytes.

Images are colour-mapped arrays scaled up by whole pixels (no matplotlib figure per image: a
figure costs 30-60 ms, a colour-mapped array under 1 ms), written by Pillow without timestamps,
so the same numbers give the same bytes.
"""

from __future__ import annotations

import io
import math

import matplotlib
import numpy as np
from PIL import Image

# One colour convention for the whole site.
DIVERGING = matplotlib.colormaps["RdBu_r"]  # weights and products: red > 0, white = 0, blue < 0
INK = matplotlib.colormaps["gray_r"]  # images: 0 = white paper, 1 = black ink
ACTIVATION = matplotlib.colormaps["viridis"]  # activations in [0, 1]: dark = silent, yellow = firing
EMPTY = (0.85, 0.85, 0.85, 1.0)  # grid cells with no neuron behind them


def png(rgba: np.ndarray, scale: int) -> bytes:
    """(rows, cols, 4) floats in [0, 1] -> PNG bytes, each value drawn as a scale x scale block."""
    pixels = np.round(rgba[..., :3] * 255).astype(np.uint8)
    pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def diverging(values: np.ndarray, vmax: float, scale: int = 10) -> bytes:
    """A signed map on the symmetric scale [-vmax, vmax]: red positive, blue negative, white zero."""
    vmax = vmax if vmax > 0 else 1.0
    return png(DIVERGING(0.5 + 0.5 * np.clip(np.asarray(values) / vmax, -1, 1)), scale)


def ink(image: np.ndarray, scale: int = 10) -> bytes:
    """An input image, dark ink on white, on the fixed scale [0, 1]."""
    return png(INK(np.clip(np.asarray(image), 0, 1)), scale)


def grid_shape(n: int) -> tuple[int, int]:
    """Rows and columns of the near-square grid that shows n neurons (10 x 10 for 100)."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def activation_grid(values: np.ndarray, scale: int = 20) -> bytes:
    """Hidden activations in a row-major grid (neuron 0 top left), on the fixed scale [0, 1]."""
    values = np.asarray(values, dtype=np.float64)
    rows, cols = grid_shape(len(values))
    rgba = np.tile(np.array(EMPTY), (rows * cols, 1))
    rgba[: len(values)] = ACTIVATION(np.clip(values, 0, 1))
    return png(rgba.reshape(rows, cols, 4), scale)


def colour_bar(cmap, width: int = 256, height: int = 12) -> bytes:
    """A horizontal gradient of a colour map, low values on the left."""
    row = cmap(np.linspace(0, 1, width))[None, :, :]
    return png(np.repeat(row, height, axis=0), 1)
