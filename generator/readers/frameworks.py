"""PyTorch's files: safetensors (read without torch) and torch.save'd state_dicts (.pt/.pth)."""

from __future__ import annotations

import json
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


def convert_hint(path: Path) -> str:
    out = path.with_suffix(".safetensors").name
    return (f"convert it where torch is installed: python -c \"import torch; from safetensors.torch import save_file; "
            f"save_file(torch.load('{path.name}', weights_only=True), '{out}')\" and pass --weights {out}")


def torch_state_dict(path: Path) -> Layers:
    """A torch.save'd state_dict, loaded with torch.load(weights_only=True) (tensors only, no code)."""
    try:
        import torch
    except ImportError:
        raise WeightsError(f"{path}: a PyTorch checkpoint, and torch is not installed here; "
                           f"{convert_hint(path)}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # weights_only refuses pickled classes: a whole model, an optimizer...
        raise WeightsError(f"{path}: torch.load(weights_only=True) refused it: it holds Python objects besides "
                           "tensors (a whole model?); save torch.save(model.state_dict(), ...) instead") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint that keeps the weights under 'state_dict'
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state_dict of tensors; "
                           "save model.state_dict()")
    tensors = {k: v.detach().to(torch.float64).numpy() for k, v in state.items()}
    return state_dict_layers(path, {k: np.asarray(v) for k, v in tensors.items()}, "a PyTorch state_dict")
