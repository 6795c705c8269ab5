"""The probe's data files (the network as little-endian float32, the test images as grey PNG sheets, their
labels and predictions, the site's colour maps) and the NumPy reference of its drawing preparation.

The page (templates/probe.md.j2, templates/static/probe.js) runs the network in the browser from these
files; a script can do the same (the API page documents them). Same atlas, same bytes.
"""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image

from . import figures

FORMAT = 1  # of probe/network.json; bumped when a field changes meaning
SHEET = 1000  # test images per PNG sheet: the probe fetches only the sheet of the image it shows
SHEET_COLUMNS = 40  # images per row of a sheet
SUPERSAMPLE = 4  # samples per pixel side when a drawing is rasterised
PEN = 1.3  # radius of a drawn stroke, in pixels of the prepared image
BOX = 20 / 28  # MNIST's digits were fitted into 20 x 20 pixels of 28 x 28
MIN_EXTENT = 0.05  # a drawing smaller than this share of the drawing area (a dot) is not blown up further


def activations(model) -> tuple[str, str]:
    """The names of the hidden and output activation functions of the atlas's network, as the analysis
    used them (ModelInfo.network; probe.js knows sigmoid, relu, tanh and softmax)."""
    return model.network["activation"], model.network["output"]


def f32(array) -> bytes:
    """Little-endian float32, row-major."""
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


def sheet_png(images: np.ndarray, columns: int) -> bytes:
    """(n, rows, cols) uint8 -> one grey PNG, image i at row i // columns, column i % columns; 0 = no ink."""
    n, rows, cols = images.shape
    lines = -(-n // columns)
    canvas = np.zeros((lines * rows, columns * cols), np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        canvas[r * rows:(r + 1) * rows, c * cols:(c + 1) * cols] = images[i]
    buffer = io.BytesIO()
    Image.fromarray(canvas, "L").save(buffer, format="PNG")
    return buffer.getvalue()


def lut(cmap) -> str:
    """A colour map (colour_maps.ColourMap) as its 256 hex colours, concatenated: colour i is what the site's
    figures draw for a value v in [0, 1] with min(255, floor(256 v)) = i (matplotlib's own lookup)."""
    return cmap.hex


def parameters(atlas, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The network's exact float32 parameters W1, b1, ..., W{L+1}, b{L+1}, from atlas.json's neurons (one
    hidden layer) or units (every layer of a deeper network) and the output biases in arrays.npz."""
    if not atlas.layers:
        return {"W1": np.array([n.weights for n in atlas.neurons], np.float32).reshape(len(atlas.neurons), -1),
                "b1": np.array([n.bias for n in atlas.neurons], np.float32),
                "W2": np.array([n.output_weights for n in atlas.neurons], np.float32).T,
                "b2": np.asarray(arrays["output_bias"], np.float32)}
    p = {}
    for layer in atlas.layers:
        p[f"W{layer.layer}"] = np.array([u.incoming for u in layer.units], np.float32)  # (H_l, H_{l-1})
        p[f"b{layer.layer}"] = np.array([u.bias for u in layer.units], np.float32)
    L = len(atlas.layers)
    p[f"W{L + 1}"] = np.array([u.outgoing for u in atlas.layers[-1].units], np.float32).T  # (K, H_L)
    p[f"b{L + 1}"] = np.asarray(arrays["output_bias"], np.float32)
    return p


def probe_files(atlas, arrays: dict[str, np.ndarray], names) -> dict[str, bytes]:
    """Every data file of the probe, by path: network.json (the manifest) and the files it names."""
    params = parameters(atlas, arrays)
    W1, W2 = params["W1"], params[f"W{len(atlas.layers or [0]) + 1}"]  # (H1, D), (K, H_L)
    images = np.asarray(arrays["test_images"], np.uint8)  # (N, rows, cols)
    labels, predicted = arrays["test_labels"], arrays["test_predicted"]
    ids = np.asarray(arrays["test_ids"], np.int64)  # (N,) the index pages and #test=N use: the source file's
    H, D = W1.shape
    K = W2.shape[0]
    label_type = "<u1" if K <= 256 else "<u2"
    hidden, output = activations(atlas.model)
    files = {**{names.probe_file(f"{name}.f32"): f32(value) for name, value in params.items()},
             names.probe_file("test-labels.u8"): np.asarray(labels, label_type).tobytes(),
             names.probe_file("test-predicted.u8"): np.asarray(predicted, label_type).tobytes()}
    # Where the test set is the whole source (MNIST), image n is #test=n and no file is needed; a subset
    # (tiny/'s 0s and 1s) lists the source index of each image, ascending.
    identity = bool((ids == np.arange(len(ids))).all())
    if not identity:
        files[names.probe_file("test-ids.u32")] = ids.astype("<u4").tobytes()
    sheets = []
    for start in range(0, len(images), SHEET):
        path = names.probe_file(f"test-{start // SHEET:03d}.png")
        files[path] = sheet_png(images[start:start + SHEET], SHEET_COLUMNS)
        sheets.append(path.rsplit("/", 1)[1])
    rows, cols = atlas.model.image_shape
    manifest = {
        # a deeper network's manifest is format 2: sizes lists every layer, parameters W1, b1, ... W{L+1}, b{L+1}
        "format": FORMAT if not atlas.layers else 2, "run_id": atlas.model.run_id,
        "sizes": [D, H, K] if not atlas.layers else atlas.model.sizes, "image_shape": [rows, cols],
        "hidden_activation": hidden, "output_activation": output,
        "class_names": atlas.model.class_names, "noun": atlas.model.noun,
        "parameters": {name: {"file": f"{name}.f32", "dtype": "float32", "byteorder": "little",
                              "shape": list(value.shape)} for name, value in params.items()},
        "test": {"count": len(images), "sheets": sheets, "per_sheet": SHEET, "columns": SHEET_COLUMNS,
                 "labels": {"file": "test-labels.u8", "dtype": "uint8" if K <= 256 else "uint16", "byteorder": "little"},
                 "predicted": {"file": "test-predicted.u8", "dtype": "uint8" if K <= 256 else "uint16",
                               "byteorder": "little"},
                 "ids": None if identity else {"file": "test-ids.u32", "dtype": "uint32", "byteorder": "little"}},
        "drawing": {"box": BOX, "pen": PEN, "supersample": SUPERSAMPLE, "min_extent": MIN_EXTENT},
        "colour_maps": {"diverging": lut(figures.DIVERGING), "ink": lut(figures.INK),
                        "activation": lut(figures.ACTIVATION)},
    }
    files[names.probe_file("network.json")] = (json.dumps(manifest, separators=(",", ":")) + "\n").encode()
    return files


def sizes(files: dict[str, bytes], names) -> dict[str, str]:
    """The API page's sizes of the probe's files: the parameter files together, one test sheet on average."""
    def size(n: float) -> str:
        return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB" if n >= 1e3 else f"{n:.0f} bytes"

    sheets = [v for k, v in files.items() if k.startswith(names.probe_file("test-")) and k.endswith(".png")]
    parameters = [v for k, v in files.items() if k.startswith(names.probe_file("")) and k.endswith(".f32")]
    return {"probe_parameters": size(sum(map(len, parameters))),
            "probe_sheet": size(sum(map(len, sheets)) / len(sheets)),
            "probe_labels": size(len(files[names.probe_file("test-labels.u8")]))}


# ---- the drawing's preparation, as MNIST's digits were prepared ----------------------------------------
# probe.js does the same operations in the same order on the same doubles, so the two agree to the bit.

def rasterise(segments: np.ndarray, shape: tuple[int, int], pen: float = PEN, s: int = SUPERSAMPLE) -> np.ndarray:
    """(M, 4) segments x0, y0, x1, y1 in pixel units -> (rows, cols) coverage in [0, 1]: the share of each
    pixel's s x s samples (at ((k + 0.5) / s)) within `pen` of a segment. A dot is a segment of length 0."""
    rows, cols = shape
    sx = (np.arange(cols * s) + 0.5) / s  # (cols*s,)
    sy = (np.arange(rows * s) + 0.5) / s  # (rows*s,)
    px, py = np.meshgrid(sx, sy)  # (rows*s, cols*s)
    inked = np.zeros(px.shape, bool)
    r2 = pen * pen
    for x0, y0, x1, y1 in segments:
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        if length2 > 0:
            t = np.clip(((px - x0) * dx + (py - y0) * dy) / length2, 0, 1)
        else:
            t = np.zeros_like(px)
        ex, ey = px - (x0 + t * dx), py - (y0 + t * dy)
        inked |= ex * ex + ey * ey <= r2
    return inked.reshape(rows, s, cols, s).sum(axis=(1, 3)) / (s * s)


def blur(image: np.ndarray) -> np.ndarray:
    """The separable [1, 2, 1] / 4 blur, rows then columns, zero outside the image."""
    p = np.pad(image, ((0, 0), (1, 1)))
    image = (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) * 0.25
    p = np.pad(image, ((1, 1), (0, 0)))
    return (p[:-2] + 2 * p[1:-1] + p[2:]) * 0.25


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(x, y) of the ink's centre of mass in pixel units (pixel (r, c) centred at (c + 0.5, r + 0.5)),
    summed pixel by pixel in row-major order as probe.js sums."""
    total = mx = my = 0.0
    rows, cols = image.shape
    for r in range(rows):
        for c in range(cols):
            v = float(image[r, c])
            total += v
            mx += v * (c + 0.5)
            my += v * (r + 0.5)
    return (mx / total, my / total) if total > 0 else (cols / 2, rows / 2)


def prepare(strokes: list[list[tuple[float, float]]], shape: tuple[int, int] = (28, 28), box: float = BOX,
            pen: float = PEN, s: int = SUPERSAMPLE, min_extent: float = MIN_EXTENT) -> np.ndarray:
    """Strokes (lists of (x, y) points in [0, 1] of the drawing area, y down) -> (rows, cols) image in [0, 1].

    As MNIST's digits: the drawing (its ink, pen included) fitted into a box of 20/28 of the image keeping
    its aspect ratio, anti-aliased (coverage of s x s samples per pixel, then a [1, 2, 1] blur), scaled to
    a darkest pixel of 1, and moved so that its centre of mass is the image's centre (rasterised again at
    the exact sub-pixel offset, not resampled). No ink gives a blank image.
    """
    rows, cols = shape
    points = [p for stroke in strokes for p in stroke]
    if not points:
        return np.zeros(shape)
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    extent = max(x1 - x0, y1 - y0, min_extent)
    side = box * min(rows, cols) - 2 * pen  # the centre line's box: the pen's ink fills the rest
    k = side / extent
    ox = cols / 2 - (x0 + x1) / 2 * k
    oy = rows / 2 - (y0 + y1) / 2 * k

    def segments(shift_x: float, shift_y: float) -> np.ndarray:
        out = []
        for stroke in strokes:
            pts = [(float(x) * k + ox + shift_x, float(y) * k + oy + shift_y) for x, y in stroke]
            if len(pts) == 1:
                pts = pts * 2
            out += [(a[0], a[1], b[0], b[1]) for a, b in zip(pts, pts[1:])]
        return np.array(out, np.float64).reshape(-1, 4)

    def draw(shift_x: float, shift_y: float) -> np.ndarray:
        image = blur(rasterise(segments(shift_x, shift_y), shape, pen, s))
        top = image.max()
        return image / top if top > 0 else image

    cx, cy = centre_of_mass(draw(0.0, 0.0))
    return draw(cols / 2 - cx, rows / 2 - cy)
