"""Every image of the atlas, one function per kind of figure; each returns PNG bytes.

Images are colour-mapped arrays (no matplotlib figure per image: a figure costs 30-60 ms, a
colour-mapped array well under 1 ms), written by Pillow without timestamps, so the same numbers
give the same bytes.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from .colour_maps import ColourMap

# One colour convention for the whole site (matplotlib's maps, looked up without matplotlib: colour_maps.py).
DIVERGING = ColourMap("RdBu_r")  # weights and products: red > 0, white = 0, blue < 0
INK = ColourMap("gray_r")  # images: 0 = white paper, 1 = black ink
ACTIVATION = ColourMap("viridis")  # activations in [0, 1]: dark = silent, yellow = firing
EMPTY = (0.85, 0.85, 0.85, 1.0)  # grid cells with no neuron behind them


def png(rgba: np.ndarray, scale: int = 1) -> bytes:
    """(rows, cols, 4) floats in [0, 1] -> PNG bytes, each value drawn as a scale x scale block.

    Pages draw images at native size and let the browser enlarge them (CSS image-rendering: pixelated),
    so files stay small and quick to write.
    """
    pixels = np.round(rgba[..., :3] * 255).astype(np.uint8)
    pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def diverging(values: np.ndarray, vmax: float, scale: int = 1) -> bytes:
    """A signed map on the symmetric scale [-vmax, vmax]: red positive, blue negative, white zero."""
    vmax = vmax if vmax > 0 else 1.0
    return png(DIVERGING(0.5 + 0.5 * np.clip(np.asarray(values) / vmax, -1, 1)), scale)


def ink(image: np.ndarray, scale: int = 1) -> bytes:
    """An input image, dark ink on white, on the fixed scale [0, 1]."""
    return png(INK(np.clip(np.asarray(image), 0, 1)), scale)


def grid_shape(n: int) -> tuple[int, int]:
    """Rows and columns of the near-square grid that shows n neurons (10 x 10 for 100)."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def activation_grid(values: np.ndarray, scale: int = 1) -> bytes:
    """Hidden activations in a row-major grid (neuron 0 top left), on the fixed scale [0, 1]."""
    values = np.asarray(values, dtype=np.float64)
    rows, cols = grid_shape(len(values))
    rgba = np.tile(np.array(EMPTY), (rows * cols, 1))
    rgba[: len(values)] = ACTIVATION(np.clip(values, 0, 1))
    return png(rgba.reshape(rows, cols, 4), scale)


def activation_hex(values) -> list[str]:
    """Activations as viridis colours '#rrggbb' on the fixed scale [0, 1], the activation grids' colours."""
    rgb = np.round(ACTIVATION(np.clip(np.asarray(values, np.float64), 0, 1))[:, :3] * 255).astype(int)
    return [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb]


def colour_bar(cmap, width: int = 256, height: int = 12) -> bytes:
    """A horizontal gradient of a colour map, low values on the left."""
    row = cmap(np.linspace(0, 1, width))[None, :, :]
    return png(np.repeat(row, height, axis=0), 1)


DIGIT_COLOURS = ColourMap("tab10")  # one colour per class, the same in every chart
DIGIT_HEX = [DIGIT_COLOURS.hex_colour(k) for k in range(10)]


def stacked_bars(counts: np.ndarray, height: int = 60, bar: int = 4) -> bytes:
    """Counts (K, bins) as a bar chart stacked by class (class k in DIGIT_COLOURS(k), class 0 at the bottom).

    The tallest bar fills `height` pixels; each bin is `bar` pixels wide with one white pixel between
    bins. Drawn as pixels, not as a matplotlib figure (1 ms instead of 30-60 ms): the page prints the
    axis labels beside it.
    """
    K, bins = counts.shape
    rgba = np.ones((height, bins * (bar + 1), 4))
    tops = np.round(np.cumsum(counts, axis=0) / max(counts.sum(axis=0).max(), 1) * height).astype(int)  # (K, bins)
    for b in range(bins):
        low = 0
        for k in range(K):
            high = tops[k, b]
            if high > low:
                rgba[height - high:height - low, b * (bar + 1):b * (bar + 1) + bar] = DIGIT_COLOURS(k % 10)
            low = high
    return png(rgba, 1)


ERRORS = ColourMap("Oranges")  # counts of mistakes: white = none, dark orange = the most


def confusion(matrix: np.ndarray) -> bytes:
    """Confusion counts (K, K), rows true and columns predicted: off-diagonal cells shaded by count on a
    square-root scale up to the largest off-diagonal count; the diagonal (correct) in neutral grey."""
    matrix = np.asarray(matrix, np.float64)
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    rgba = ERRORS(np.sqrt(off / max(off.max(), 1)))
    rgba[np.eye(len(matrix), dtype=bool)] = EMPTY
    return png(rgba)


def diverging_grid(values: np.ndarray, vmax: float, scale: int = 1) -> bytes:
    """Weights on a layer's units in that layer's row-major grid (unit 0 top left), red/blue on ±vmax."""
    values = np.asarray(values, dtype=np.float64)
    rows, cols = grid_shape(len(values))
    rgba = np.tile(np.array(EMPTY), (rows * cols, 1))
    rgba[: len(values)] = DIVERGING(0.5 + 0.5 * np.clip(values / (vmax or 1.0), -1, 1))
    return png(rgba.reshape(rows, cols, 4), scale)
