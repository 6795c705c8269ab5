"""Importing a network trained elsewhere: tell the file's format by its content, read it, and fit it to the data.

The readers, one per format, are in generator/readers/. Never unpickles: npz with allow_pickle=False,
PyTorch through torch.load(weights_only=True), pickles refused. Every problem is a one-line WeightsError
(exit 6) naming the file, or a ConfigError (exit 2) when a setting contradicts the file.
"""

from __future__ import annotations

import hashlib
import io
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import activations, network
from .errors import ConfigError, WeightsError
from .readers import frameworks, keras, nielsen, onnx_file
from .readers.common import FORMATS, Layers, assemble

MAX_WEIGHTS_BYTES = 1 << 30  # a one-hidden-layer network of 10,000 units on 28x28 images is 31 MB


@dataclass(frozen=True)
class Imported:
    params: dict[str, np.ndarray]  # W1 (H1, D), b1 (H1,), ..., W{L+1} (K, HL), b{L+1} (K,), float32, as stored
    source: str  # what the home page says about where the weights came from, with the notes
    sha256: str  # of the file's bytes
    hidden: str | None = None  # hidden activation the file records ("relu"), None when it records none
    output: str | None = None  # output activation the file records ("softmax"), None when it records none
    notes: tuple[str, ...] = ()  # "matrices stored as (in, out), transposed", "no biases in the file, ..."
    input_scale: float = 1.0  # the file's own input scaling (Keras Rescaling): it sees raw * scale + offset
    input_offset: float = 0.0
    external: tuple[tuple[str, str], ...] = ()  # (name, sha256) of each file beside it that holds weights (ONNX)
    input_norm: tuple[float, float] | None = None  # the file's own (mean, std) on pixel / pixel_max, if it has one
    input_norm_source: str = ""  # where it says so: "the file's mean and std arrays"


def _refuse(path: Path, what: str) -> WeightsError:
    return WeightsError(f"{path}: {what}; the atlas reads {FORMATS}")


PICKLE_WHY = ("the atlas never unpickles a file, since loading a pickle runs whatever code it names; save the arrays "
              "instead: np.savez('net.npz', weights_0=W1, biases_0=b1, weights_1=W2, biases_1=b2), or Nielsen's "
              "network2 net.save('net.json')")


def sniff(path: Path, raw: bytes, n_inputs: int | None = None) -> Layers:
    """The file's layers, by its content: zip (npz, .keras, PyTorch), HDF5, safetensors, JSON, ONNX."""
    if raw[:4] == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(io.BytesIO(raw))
            names = archive.namelist()
        except zipfile.BadZipFile as e:
            raise WeightsError(f"{path}: a damaged zip archive ({e}); export the network again") from None
        if "config.json" in names and "model.weights.h5" in names:
            return keras.keras_archive(path, archive)
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return frameworks.torch_state_dict(path, raw)
        if names and all(n.endswith(".npy") for n in names):
            return nielsen.npz(path)
        raise _refuse(path, f"a zip archive of {', '.join(names[:3]) or 'nothing'}, none of the known kinds")
    if raw[:8] == keras.HDF5_MAGIC:
        return keras.weights_h5(path, raw)
    if raw[:6] == b"\x93NUMPY":
        raise _refuse(path, "a single NumPy array (.npy), which holds one matrix, not a network: save the four arrays "
                            "in one file, np.savez('net.npz', weights_0=W1, biases_0=b1, weights_1=W2, biases_1=b2);")
    if raw[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, 16)
        except zlib.error:
            head = b""
        if head[:1] == b"\x80":
            raise WeightsError(f"{path}: a gzip'd Python pickle; {PICKLE_WHY}")
        raise _refuse(path, "a gzip file of an unknown kind")
    if frameworks.is_safetensors(raw):  # before the pickle test: a header of 128 + 256k bytes begins with 0x80
        return frameworks.safetensors(path, raw)
    if frameworks.is_torch_legacy(raw):  # torch.save's legacy (pre-1.6) format, by its magic number, any name
        return frameworks.torch_state_dict(path, raw)
    if raw[:1] == b"\x80":
        if path.suffix.lower() in (".pt", ".pth"):  # torch.save's legacy (pre-1.6) format is a pickle
            return frameworks.torch_state_dict(path, raw)
        raise WeightsError(f"{path}: a Python pickle; {PICKLE_WHY}")
    if raw.lstrip()[:1] in (b"{", b"[") or path.suffix.lower() == ".json":
        return nielsen.network2_json(path, raw)
    if onnx_file.looks_like_onnx(raw) or path.suffix.lower() == ".onnx":
        return onnx_file.onnx_model(path, raw)
    raise _refuse(path, "a file of an unknown kind")


def companion_files(path: Path) -> list[Path]:
    """The other files a weights file keeps its weights in (an ONNX model's external data, NAME.onnx.data),
    resolved beside it; [] for a self-contained file. Part of the training fingerprint, so a changed .data
    file is read again."""
    try:
        with path.open("rb") as f:
            head = f.read(1)
        if not (onnx_file.looks_like_onnx(head) or path.suffix.lower() == ".onnx"):
            return []
        return onnx_file.external_files(path, path.read_bytes())
    except OSError:
        return []


def files_sha256(path: Path) -> str:
    """SHA-256 of the weights file's bytes, and of each companion file's (name and bytes) after them."""
    digest = hashlib.sha256(path.read_bytes())
    for other in companion_files(path):
        digest.update(b"\0" + other.name.encode() + b"\0")
        digest.update(other.read_bytes() if other.is_file() else b"(missing)")
    return digest.hexdigest()


def import_network(path: Path, n_inputs: int | None = None) -> Imported:
    """Read a trained network of any depth from a file in any supported format (see FORMATS).

    n_inputs (pixels per image), when known, settles which layout square-ish matrices are in.
    """
    try:
        size = path.stat().st_size
        if size > MAX_WEIGHTS_BYTES:
            raise WeightsError(f"{path}: {size:,} bytes, more than the {MAX_WEIGHTS_BYTES:,} a one-hidden-layer "
                               "network of 10,000 units needs; is this the right file?")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(f"{path}: weights file not found") from None
    except OSError as e:
        raise WeightsError(f"{path}: cannot read ({e.strerror})") from None
    layers = sniff(path, raw, n_inputs)
    params, notes = assemble(path, layers, n_inputs)
    notes = [*layers.notes, *notes]
    source = f"{layers.kind} from {path.name}" + "".join(f"; {n}" for n in notes)
    external = tuple((p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in companion_files(path))
    return Imported(params, source, hashlib.sha256(raw).hexdigest(), layers.hidden, layers.output, tuple(notes),
                    layers.input_scale, layers.input_offset, external, layers.input_norm, layers.input_norm_source)


def check_shapes(imported: Imported, path: Path, n_inputs: int, n_classes: int) -> None:
    """The imported network must read this dataset's images and name its classes."""
    W1, W2 = imported.params["W1"], imported.params[f"W{network.depth(imported.params) + 1}"]
    if W1.shape[1] != n_inputs:
        side = math.isqrt(W1.shape[1])
        raise WeightsError(f"{path}: the network takes {W1.shape[1]} inputs"
                           f"{f' ({side}x{side} images)' if side * side == W1.shape[1] else ''}, "
                           f"the data has {n_inputs} pixels per image; pass the dataset it was trained on with --data")
    if W2.shape[0] != n_classes:
        raise WeightsError(f"{path}: the network has {W2.shape[0]} outputs, the data has {n_classes} classes; pass the "
                           "dataset it was trained on with --data, or keep its classes with data.classes")


def resolve_activations(config, path: Path, imported: Imported) -> dict[str, str]:
    """The hidden and output activations: the file's where it records them, else the config's.

    A setting that contradicts the file is a ConfigError. Returns the model meta's fields: activation,
    output, activation_source, output_source ("read from the file", "set by network.activation" or
    "assumed (not in the file)").
    """
    meta = {}
    for key, field, found, allowed in (("network.activation", "activation", imported.hidden, activations.HIDDEN),
                                       ("network.output", "output", imported.output, activations.OUTPUT)):
        setting = getattr(config.network, field)
        explicit = key in config.origins
        if found is not None:
            if found not in allowed:
                raise WeightsError(f"{path}: the file's {field} is {found!r}; the atlas explains "
                                   f"{' or '.join(allowed)} for {key}")
            if explicit and setting != found:
                raise ConfigError(f"{config.where(key)}: '{key}' is {setting!r} but {path.name} records {found!r}; "
                                  f"drop the setting or set it to {found!r}")
            meta[field], meta[f"{field}_source"] = found, "read from the file"
        else:
            meta[field] = setting
            meta[f"{field}_source"] = f"set by {key}" if explicit else "assumed (not in the file)"
    return meta


def fold_inputs(params: dict[str, np.ndarray], mean: float, std: float) -> dict[str, np.ndarray]:
    """The network on x in [0, 1] for one trained on (x - mean) / std: W1 / std, b1 - (mean / std) * sum_i W1[:, i].

    Exactly the same pre-activations (up to float32 rounding), so the whole analysis works on the
    images as stored and shown; computed in float64, returned as float32.
    """
    if mean == 0.0 and std == 1.0:
        return params
    W1 = params["W1"].astype(np.float64)
    return {**params, "W1": (W1 / std).astype(np.float32),
            "b1": (params["b1"] - (mean / std) * W1.sum(axis=1)).astype(np.float32)}


def normalised_inputs(d) -> str | None:
    """What model meta["inputs"] says of the data config d's normalisation, folded into W1 and b1 (by
    `fold_inputs`, for imported and trained networks alike); None for pixel / pixel_max itself."""
    if (d.mean, d.std) == (0.0, 1.0):
        return None
    return (f"(pixel / {d.pixel_max:g} - {d.mean:g}) / {d.std:g}, folded into W1 and b1 "
            "so the weights shown act on pixel / pixel_max")


def accuracy(params: dict[str, np.ndarray], hidden: str, X: np.ndarray, y: np.ndarray) -> float:
    """Share of (N, D) images X whose largest output (before the output activation, same argmax) is y."""
    return float((network.forward(params, X, hidden).predicted == y).mean())


# Normalisations tried when nothing records one: PyTorch's MNIST example's Normalize((0.1307,), (0.3081,)) and
# the [-1, 1] of Normalize((0.5,), (0.5,)), both on pixel / pixel_max.
NORMALISATIONS = ((0.1307, 0.3081), (0.5, 0.5))
# A reading beats the configured one "clearly" when it classifies at least this share of the test images, and this
# many images, more, and is itself well above chance (a near-chance reading explains nothing). The readings are
# compared on the same images, so this is not sampling noise but how well a wrong reading of a correctly read
# network can do by accident: on 26 real MNIST networks (PyTorch, Keras, ONNX, Nielsen; sigmoid, ReLU, tanh; with
# and without Normalize) every other reading scored at least 0.6 points below the right one (a sigmoid net read as
# tanh comes closest), while the wrong readings users make cost 1.4 (a ReLU net without its Normalize) to 26 points.
CLEAR_SHARE, CLEAR_IMAGES = 0.01, 20


def reading_accuracies(params: dict[str, np.ndarray], hiddens, norms, X: np.ndarray, y: np.ndarray,
                       chunk: int = 2000) -> dict:
    """{(hidden, (mean, std)): test images classified right} of the unfolded `params` read with each hidden
    activation and each input normalisation (x - mean) / std of the (N, D) images X. X @ W1.T is computed once per
    chunk of images; each normalisation is an affine map of it, so the cost is one product with W1 and the layers
    above per reading, and the memory a chunk's (chunk, H1) arrays."""
    p = network.as64(params)
    row_sums = p["W1"].sum(axis=1)  # (H1,)
    counts = {(hidden, norm): 0 for norm in norms for hidden in hiddens}
    for start in range(0, len(y), chunk):
        XW = np.asarray(X[start:start + chunk], np.float64) @ p["W1"].T  # (n, H1)
        labels = y[start:start + chunk]
        for mean, std in norms:
            z1 = XW / std - (mean / std) * row_sums + p["b1"]  # (n, H1): W1 ((x - mean) / std) + b1
            for hidden in hiddens:
                _, _, logits = network.from_layer(p, activations.apply(hidden, z1), 1, hidden)
                counts[(hidden, (mean, std))] += int((logits.argmax(axis=1) == labels).sum())
    return counts


def _flags(hidden: str | None, norm: tuple[float, float] | None) -> str:
    parts = [f"--set network.activation={hidden}"] if hidden else []
    if norm is not None:
        parts.append(f"--set data.mean={norm[0]:g} --set data.std={norm[1]:g}")
    return " ".join(parts)


def _reading(hidden: str, norm: tuple[float, float]) -> str:
    return f"{hidden} hidden units on " + ("pixel / pixel_max" if norm == (0.0, 1.0)
                                           else f"(pixel / pixel_max - {norm[0]:g}) / {norm[1]:g}")


def check_reading(config, path: Path, imported: Imported, meta: dict, norm: tuple[float, float], file_norm: bool,
                  X: np.ndarray, y: np.ndarray) -> str | None:
    """Try the other readings of the file: the hidden activations (unless the file records its own) and
    NORMALISATIONS (unless the file records its inputs' scaling). When the best of them beats the configured reading
    clearly and differs only in what the user left to the defaults, raise ConfigError (exit 2) naming the settings to
    pass; when it differs in a setting the user made, return a warning for stdout and the home page (the user
    decided; the atlas says it loudly). None when the configured reading stands."""
    hidden = meta["activation"]
    hidden_free = meta["activation_source"].startswith("assumed")
    norm_free = not file_norm and "data.mean" not in config.origins and "data.std" not in config.origins
    from_file = meta["activation_source"] == "read from the file"
    hiddens = [hidden] + ([] if from_file else [h for h in activations.HIDDEN if h != hidden])
    norms = [norm] + ([] if file_norm else [n for n in NORMALISATIONS if n != norm])
    counts = reading_accuracies(imported.params, hiddens, norms, X, y)
    base, n = counts[(hidden, norm)], len(y)
    n_classes = imported.params[f"W{network.depth(imported.params) + 1}"].shape[0]

    def clear(count: int) -> bool:
        return count - base >= max(CLEAR_IMAGES, CLEAR_SHARE * n) and count > 2 * n / n_classes

    # Of the readings that do about as well as the best one (a sigmoid net read as tanh comes within a point),
    # the one that changes the fewest settings: a Normalize'd sigmoid net is asked for its normalisation only.
    top = max(counts.values())
    near = [k for k, v in counts.items() if top - v < max(CLEAR_IMAGES, CLEAR_SHARE * n) and clear(v)]
    if not near:
        return None
    h, m = min(near, key=lambda k: ((k[0] != hidden) + (k[1] != norm), -counts[k]))
    best = counts[(h, m)]
    flags = _flags(h if h != hidden else None, m if m != norm else None)
    if (hidden_free or h == hidden) and (norm_free or m == norm):  # only what the user left to the defaults
        what = " and ".join(w for w, changed in (("its hidden activation", h != hidden), ("its input normalisation",
                                                                                        m != norm)) if changed)
        keep = _flags(hidden if h != hidden else None, norm if m != norm else None)
        raise ConfigError(f"{path}: the file does not record {what}; read with {_reading(hidden, norm)} it classifies "
                          f"{100 * base / n:.1f}% of the test images, but {100 * best / n:.1f}% with {_reading(h, m)}: "
                          f"pass {flags} (or {keep} to keep the assumption)")
    return (f"test accuracy {100 * base / n:.1f}% read with {_reading(hidden, norm)} as set, but "
            f"{100 * best / n:.1f}% with {_reading(h, m)}: the settings are probably not the ones the network was "
            f"trained with; try {flags}")


def load_network(config, data) -> tuple[dict[str, np.ndarray], dict, list[str]]:
    """The network of network.weights, fitted to `data`: (params on pixel/pixel_max inputs, model meta, lines
    for stdout). The meta records the source, the activations and where they came from, the notes (transposed,
    no biases), the input normalisation folded into W1 and b1, and a warning when accuracy is near chance."""
    path = config.path(config.network.weights)
    imported = import_network(path, data.n_inputs)
    check_shapes(imported, path, data.n_inputs, data.n_classes)
    meta = resolve_activations(config, path, imported)
    d = config.data
    mean, std = d.mean, d.std
    lines = []
    file_norm = imported.input_norm is not None or (imported.input_scale, imported.input_offset) != (1.0, 0.0)
    if file_norm:  # the file records its inputs' scaling: it wins, and a setting must agree with it
        if imported.input_norm is not None:  # (x - mean) / std of x = pixel / pixel_max
            mean, std = imported.input_norm
            said = f"(pixel / {d.pixel_max:g} - {mean:g}) / {std:g} ({imported.input_norm_source})"
        else:  # raw * scale + offset = (x - mean) / std
            std = 1 / (d.pixel_max * imported.input_scale)
            mean = -imported.input_offset * std
            sign = "-" if imported.input_offset < 0 else "+"
            said = (f"pixel * {imported.input_scale:g} {sign} {abs(imported.input_offset):g} (the file's Rescaling "
                    "layer)")
        explicit = [k for k in ("data.mean", "data.std") if k in config.origins]
        if explicit and not (math.isclose(d.mean, mean, rel_tol=1e-4, abs_tol=1e-6)
                             and math.isclose(d.std, std, rel_tol=1e-4, abs_tol=1e-6)):
            raise ConfigError(f"{config.where(explicit[0])}: {path.name} scales its inputs itself, as {said}, which "
                              f"data.mean {d.mean:g} and data.std {d.std:g} contradict; drop data.mean and data.std")
        meta["inputs"] = f"{said}, folded into W1 and b1 so the weights shown act on pixel / pixel_max"
        lines.append(f"train: inputs scaled as the file says: {meta['inputs']}")
    elif normalised_inputs(d):
        meta["inputs"] = normalised_inputs(d)
        lines.append(f"train: inputs normalised as {meta['inputs']}")
    params = fold_inputs(imported.params, mean, std)
    for field, key in (("activation", "network.activation"), ("output", "network.output")):
        lines.append(f"train: {field} {meta[field]}: {meta[field + '_source']}"
                     + (f" (set {key} if it is not {meta[field]})" if meta[f"{field}_source"].startswith("assumed")
                        else ""))
    for note in imported.notes:
        lines.append(f"train: {note}")
    acc, chance = accuracy(params, meta["activation"], data.test_images, data.test_labels), 1 / data.n_classes
    better = check_reading(config, path, imported, meta, (mean, std), file_norm, data.test_images, data.test_labels)
    meta.update(source=imported.source, weights_sha256=imported.sha256, notes=list(imported.notes),
                imported_test_accuracy=round(acc, 6))
    if imported.external:
        meta["external_data_sha256"] = dict(imported.external)
    if better:
        meta["warning"] = better
        lines.append(f"WARNING: {meta['warning']}")
    elif acc < 2 * chance:
        meta["warning"] = (f"test accuracy {100 * acc:.1f}% is near chance ({100 * chance:.1f}%): the network is "
                           f"probably read wrongly; no other activation or normalisation does clearly better, so "
                           f"check that it was trained on this dataset, with its classes in this order (data.classes, "
                           f"data.class_names), and data.pixel_max; network.activation is {meta['activation']} "
                           f"({meta['activation_source']})")
        lines.append(f"WARNING: {meta['warning']}")
    return params, meta, lines
