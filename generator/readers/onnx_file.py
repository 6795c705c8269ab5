"""ONNX: a chain of Gemm (or MatMul + Add) nodes with Sigmoid, Relu, Tanh or Softmax between them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from .common import Layers, hidden_activation

ACTIVATIONS = {"Sigmoid": "sigmoid", "Relu": "relu", "Tanh": "tanh", "Softmax": "softmax", "LogSoftmax": "softmax"}
PASS_THROUGH = ("Flatten", "Reshape", "Identity", "Dropout", "Cast")


def looks_like_onnx(raw: bytes) -> bool:
    """An ONNX ModelProto begins with field 1 (ir_version, a varint): byte 0x08."""
    return raw[:1] == b"\x08"


def _parse(path: Path, raw: bytes):
    import onnx
    try:
        return onnx.load_model_from_string(raw)  # never reads external data: that is _load_external's job
    except Exception as e:  # protobuf's DecodeError and friends
        raise WeightsError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None


def _external_tensors(model) -> list:
    """The initializers and Constant values whose bytes live in another file (data_location EXTERNAL)."""
    from onnx import AttributeProto
    from onnx.external_data_helper import uses_external_data
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        tensors += [a.t for a in node.attribute if a.type == AttributeProto.TENSOR]
    return [t for t in tensors if uses_external_data(t)]


def _location(tensor) -> str:
    return next((e.value for e in tensor.external_data if e.key == "location"), "")


def external_files(path: Path, raw: bytes) -> list[Path]:
    """The external data files (torch.onnx.export's NAME.onnx.data) the model at `path` names, resolved against
    the model's own directory, never the current one; [] for a self-contained model or an unreadable file."""
    try:
        model = _parse(path, raw)
    except WeightsError:
        return []
    return sorted({path.parent / _location(t) for t in _external_tensors(model)})


def _load_external(path: Path, model) -> list[str]:
    """Read the weights a model keeps in external files from the files beside `path` (onnx's own loader, which
    refuses locations outside that directory), after checking each named file is there. Returns their names."""
    from onnx.external_data_helper import load_external_data_for_model
    tensors = _external_tensors(model)
    names = sorted({_location(t) for t in tensors})
    fix = (f"keep it beside {path.name} (torch.onnx.export writes both), or save one self-contained file with "
           f"onnx.save_model(onnx.load('{path.name}'), 'single.onnx', save_as_external_data=False)")
    for name in names:
        where = Path(name)
        if not name or where.is_absolute() or ".." in where.parts:
            raise WeightsError(f"{path}: its weights are stored in an external file named {name!r}, which is not "
                               "a file beside it; the atlas reads external data only from the model's own "
                               f"directory: {fix}")
        if not (path.parent / where).is_file():
            raise WeightsError(f"{path}: its weights are stored in the external file '{name}', which is not in "
                               f"{path.parent}; {fix}")
    if names:
        total = sum((path.parent / n).stat().st_size for n in names)
        if total > (1 << 30):
            raise WeightsError(f"{path}: its external data holds {total:,} bytes, more than the atlas reads for one "
                               "network; is this the right file?")
        try:
            load_external_data_for_model(model, str(path.parent))
        except Exception as e:  # onnx's ValidationError (unsafe location, not a regular file), bounds, OSError
            raise WeightsError(f"{path}: cannot read its external data {', '.join(names)} "
                               f"({' '.join(str(e).split())[:200]}); {fix}") from None
    return names


def onnx_model(path: Path, raw: bytes) -> Layers:
    """The linear layers (weights as (out, in)), in graph order, and the activation after each. Weights kept in
    an external data file (torch.onnx.export's default) are read from the file beside `path`."""
    import onnx
    from onnx import numpy_helper
    model = _parse(path, raw)
    external = _load_external(path, model)
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise WeightsError(f"{path}: the ONNX graph has {len(inputs)} inputs; expected one (the image)")
    current = inputs[0]
    weights, biases, acts = [], [], []

    def const(name: str, node) -> np.ndarray:
        if name not in consts:
            raise WeightsError(f"{path}: node '{node.name or node.op_type}' takes '{name}', which is not a stored "
                               "weight; the atlas reads fixed weights only")
        return consts[name].astype(np.float64)

    pending_matmul = None
    sub = div = None  # a normalisation (x - sub) / div before the first linear layer
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant" and "value" in attrs:
            consts[node.output[0]] = numpy_helper.to_array(attrs["value"])
            continue
        op = node.op_type
        if current not in node.input or op == "Shape":
            continue  # a side computation (e.g. the shape a Reshape takes)
        if op == "Gemm":
            if attrs.get("transA", 0):
                raise WeightsError(f"{path}: Gemm node '{node.name}' has transA=1; export the model again")
            B = const(node.input[1], node)
            W = B if attrs.get("transB", 0) else B.T  # (out, in)
            W = attrs.get("alpha", 1.0) * W
            C = const(node.input[2], node) * attrs.get("beta", 1.0) if len(node.input) > 2 and node.input[2] else None
            weights.append((node.input[1], W))
            biases.append((node.input[2] if C is not None else "bias", None if C is None
                           else np.broadcast_to(C.reshape(-1) if C.size > 1 else C, (W.shape[0],))))
            acts.append(None)
        elif op == "MatMul":
            weights.append((node.input[1], const(node.input[1], node).T))
            biases.append(("bias", None))
            acts.append(None)
            pending_matmul = node.output[0]
        elif op == "Add" and pending_matmul == current:
            other = node.input[1] if node.input[0] == current else node.input[0]
            C = const(other, node)
            biases[-1] = (other, np.broadcast_to(C.reshape(-1) if C.size > 1 else C, (weights[-1][1].shape[0],)))
        elif op in ("Sub", "Div") and not weights:  # (x - mean) / std inside the model, before the first layer
            other = node.input[1] if node.input[0] == current else None
            value = consts.get(other) if other else None
            if value is None or np.size(value) != 1 or (op == "Sub" and (sub is not None or div is not None)) or (
                    op == "Div" and div is not None):
                raise WeightsError(f"{path}: ONNX node '{node.name or op}' ({op}) normalises the input in a way the "
                                   "atlas does not fold (it folds one scalar Sub, then one scalar Div); export the "
                                   "model without the normalisation and pass --set data.mean=... --set data.std=...")
            if op == "Sub":
                sub = float(np.reshape(value, -1)[0])
            else:
                div = float(np.reshape(value, -1)[0])
                if not (math.isfinite(div) and div > 0):
                    raise WeightsError(f"{path}: ONNX node '{node.name or op}' divides the input by {div}; "
                                       "expected a positive std")
        elif op in ACTIVATIONS and weights and acts[-1] is None:
            acts[-1] = ACTIVATIONS[op]
        elif op in PASS_THROUGH and (not weights or op in ("Identity", "Dropout", "Cast")):
            pass
        else:
            raise WeightsError(f"{path}: ONNX node '{node.name or op}' ({op}) is not part of a Gemm/MatMul chain with "
                               "Sigmoid, Relu, Tanh or Softmax; the atlas explains chains of linear layers, so a network with this "
                               "node cannot be explained as it is")
        current = node.output[0]
        if op != "MatMul":
            pending_matmul = None
    kind = "an ONNX model" + (f" (weights in {', '.join(external)})" if external else "")
    layers = Layers(kind, weights, biases, layout="out_in")
    if sub is not None or div is not None:
        layers.input_norm = (sub or 0.0, div or 1.0)
        layers.input_norm_source = "the file's Sub and Div nodes before its first layer"
    if len(acts) >= 2:
        layers.hidden, layers.output = hidden_activation(path, acts[:-1], "linear layer"), acts[-1]
    return layers
