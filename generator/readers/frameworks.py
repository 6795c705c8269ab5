"""PyTorch's files: safetensors (read without torch) and torch.save'd state_dicts (.pt/.pth)."""

from __future__ import annotations

import io
import json
import pickletools
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from .common import Layers, state_dict_layers


def is_safetensors(raw: bytes) -> bool:
    """safetensors: an 8-byte little-endian header length, then that many bytes of JSON starting with '{'."""
    if len(raw) < 10:
        return False
    n = int.from_bytes(raw[:8], "little")
    return 2 <= n <= len(raw) - 8 and raw[8:9] == b"{"


def safetensors(path: Path, raw: bytes) -> Layers:
    """A safetensors file of a state_dict ('0.weight' (out, in), '0.bias', '2.weight', ...), via its NumPy API."""
    from safetensors.numpy import load
    try:
        header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
        dtypes = {k: v.get("dtype") for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
    except (ValueError, AttributeError):
        raise WeightsError(f"{path}: not a valid safetensors header; save it again with safetensors' save_file") from None
    odd = sorted(k for k, d in dtypes.items() if d not in ("F16", "F32", "F64", "BF16"))
    if odd:
        raise WeightsError(f"{path}: tensor '{odd[0]}' holds {dtypes[odd[0]]}, not floats; save the float weights")
    if any(d == "BF16" for d in dtypes.values()):
        raise WeightsError(f"{path}: bfloat16 tensors, which NumPy cannot read; save them as float32 "
                           "(model.float().state_dict())")
    try:
        tensors = load(raw)
    except Exception as e:  # the package raises its own SafetensorError for any malformed file
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    return state_dict_layers(path, tensors, "a PyTorch state_dict in safetensors")


# torch.save's legacy (pre-1.6, _use_new_zipfile_serialization=False) format: a pickle (protocol 2) that starts
# with the magic number 0x1950a86a20f9469cfc6c as a LONG1.
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
CHECKPOINT_KEYS = ("model_state_dict", "state_dict", "model")  # where training checkpoints keep the weights


def is_torch_legacy(raw: bytes) -> bool:
    return raw.startswith(TORCH_LEGACY_MAGIC)


def torch_zip_kind(archive: zipfile.ZipFile) -> tuple[str, str]:
    """What a torch.save / torch.jit.save zip holds, told without unpickling (pickletools only lists the opcodes):
    ("torchscript", ""), ("model", "the class it names"), ("checkpoint", "the key of its weights") or
    ("state_dict", "")."""
    names = archive.namelist()
    if any("/code/" in n or n.endswith("constants.pkl") for n in names):
        return "torchscript", ""
    pkl = next((n for n in names if n == "data.pkl" or n.endswith("/data.pkl")), None)
    try:
        ops = list(pickletools.genops(archive.read(pkl))) if pkl else []
    except Exception:  # a damaged pickle: torch.load will say so
        return "state_dict", ""
    for op, arg, _ in ops:
        if op.name == "GLOBAL" and not str(arg).startswith(("torch._utils ", "torch ", "collections OrderedDict",
                                                             "torch._tensor ", "__builtin__ set")):
            return "model", str(arg).replace(" ", ".")
    strings = [arg for op, arg, _ in ops if "UNICODE" in op.name]
    key = next((k for k in CHECKPOINT_KEYS if k in strings), None)
    return ("checkpoint", key) if key else ("state_dict", "")


def convert_hint(path: Path, key: str = "") -> str:
    out = path.with_suffix(".safetensors").name
    load = f"torch.load('{path.name}', weights_only=True)" + (f"['{key}']" if key else "")
    return (f"convert it where torch is installed: python -c \"import torch; from safetensors.torch import save_file; "
            f"save_file({load}, '{out}')\" and pass --weights {out}")


def _refuse_kind(path: Path, kind: str, detail: str) -> WeightsError | None:
    """The one-line refusal of a PyTorch file that is not a state_dict, or None for one that is."""
    out = path.with_suffix(".safetensors").name
    if kind == "torchscript":
        return WeightsError(
            f"{path}: a TorchScript archive (torch.jit.save), which holds code the atlas does not run; export a "
            f"state_dict where torch is installed: python -c \"import torch; from safetensors.torch import save_file; "
            f"save_file(torch.jit.load('{path.name}').state_dict(), '{out}')\" and pass --weights {out}")
    if kind == "model":
        return WeightsError(
            f"{path}: a whole pickled model (torch.save(model), class {detail}), which the atlas never unpickles; in "
            f"the script that defines the model, save its weights: from safetensors.torch import save_file; "
            f"save_file(model.state_dict(), '{out}'), and pass --weights {out}")
    return None


def torch_state_dict(path: Path, raw: bytes = b"") -> Layers:
    """A torch.save'd state_dict (or a training checkpoint holding one under model_state_dict, state_dict or
    model), loaded with torch.load(weights_only=True) (tensors only, no code). Whole models and TorchScript
    archives are told from the zip's members and pickle opcodes, without loading them, and refused in one line."""
    kind, detail = "state_dict", ""
    if raw[:4] == b"PK\x03\x04":
        kind, detail = torch_zip_kind(zipfile.ZipFile(io.BytesIO(raw)))
    refusal = _refuse_kind(path, kind, detail)
    if refusal:
        raise refusal
    try:
        import torch
    except ImportError:
        raise WeightsError(f"{path}: a PyTorch checkpoint, and torch is not installed here; "
                           f"{convert_hint(path, detail)}") from None
    try:
        with warnings.catch_warnings():  # torch's UserWarnings would add lines to the one-line error
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # weights_only refuses pickled classes: a whole model, an optimizer...
        raise WeightsError(f"{path}: torch.load(weights_only=True) refused it: it holds Python objects besides "
                           "tensors (a whole model?); save torch.save(model.state_dict(), ...) instead") from None

    def tensors_only(value) -> bool:
        return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())

    if isinstance(state, dict) and not tensors_only(state):
        # a training checkpoint: {'epoch', 'model_state_dict', 'optimizer_state_dict', 'loss'}, Lightning's 'state_dict'
        key = next((k for k in CHECKPOINT_KEYS if tensors_only(state.get(k))), None)
        if key is None:
            raise WeightsError(f"{path}: a dict of {', '.join(map(repr, list(state)[:5]))}, with no state_dict of "
                               f"tensors under {', '.join(CHECKPOINT_KEYS)}; save model.state_dict()")
        state, label = state[key], f"a PyTorch state_dict (the checkpoint's '{key}')"
    else:
        label = "a PyTorch state_dict"
    if not tensors_only(state):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state_dict of tensors; "
                           "save model.state_dict()")
    tensors = {k: v.detach().to(torch.float64).numpy() for k, v in state.items()}
    return state_dict_layers(path, {k: np.asarray(v) for k, v in tensors.items()}, label)
