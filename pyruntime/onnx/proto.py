"""The ONNX side of the importer: loading and decoding ModelProtos, and the schema facts
the converters check against (ops, arity, attribute names and types).

Everything a stranger's bytes can say is checked here or in the converters; a model that
does not follow the ONNX spec is a ModelFormatError, a valid one that pyruntime cannot
express an `Unsupported` (collected, then reported in one UnsupportedOpError).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, ModelFormatError

__all__ = ["SUPPORTED_OPS", "KNOWN_ATTRS", "ARITY", "ATTR_TYPES", "OP_ATTR_TYPES",
           "NO_FOLD", "BATCH", "QUANT_OPS", "SHAPE_MOVES", "FLT_MAX", "Unsupported", "import_onnx",
           "load_proto", "node_label", "pair"]

#: ONNX ops (default domain) the importer understands, in at least some variants.
SUPPORTED_OPS = (
    "Add", "AveragePool", "BatchNormalization", "Clip", "Constant", "Conv", "Dropout",
    "Flatten", "Gelu", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Identity", "MatMul",
    "MaxPool", "Relu", "Reshape", "Sigmoid", "Softmax", "Tanh",
)
#: Quantized ONNX (pyruntime/onnx/convert_quant.py): QDQ, QOperator and dynamic forms.
#: Cast and Mul are read only inside quantize_dynamic's pattern; QLinearAdd,
#: QLinearGlobalAveragePool, QLinearAveragePool and QGemm are onnxruntime's com.microsoft
#: ops.
QUANT_OPS = ("ConvInteger", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
             "QLinearConv", "QLinearMatMul", "QuantizeLinear")

# Attributes each op may carry (anything else is reported, never silently ignored).
KNOWN_ATTRS: dict[str, set[str]] = {
    "Add": {"broadcast", "axis", "consumed_inputs"},
    "AveragePool": {"auto_pad", "ceil_mode", "count_include_pad", "dilations",
                    "kernel_shape", "pads", "strides"},
    "BatchNormalization": {"epsilon", "momentum", "spatial", "is_test", "training_mode",
                           "consumed_inputs"},
    "Clip": {"min", "max", "consumed_inputs"},
    "Constant": {"value", "value_float", "value_floats", "value_int", "value_ints",
                 "value_string", "value_strings", "sparse_value"},
    "Conv": {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
    "Dropout": {"ratio", "is_test", "seed", "consumed_inputs"},
    "Flatten": {"axis"},
    "Gelu": {"approximate"},
    "Gemm": {"alpha", "beta", "transA", "transB", "broadcast"},
    "GlobalAveragePool": set(),
    "GlobalMaxPool": set(),
    "Identity": set(),
    "MatMul": set(),
    "MaxPool": {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads",
                "storage_order", "strides"},
    "Relu": {"consumed_inputs"},
    "Reshape": {"shape", "allowzero", "consumed_inputs"},
    "Sigmoid": {"consumed_inputs"},
    "Softmax": {"axis"},
    "Tanh": {"consumed_inputs"},
    "Shape": {"start", "end"},   # only feeding Reshape targets (see _shape_of)
    "Pad": {"mode", "pads", "value"},   # only merged into a following Conv/pool
    "QuantizeLinear": {"axis", "saturate", "block_size", "output_dtype"},
    "DequantizeLinear": {"axis", "block_size", "output_dtype"},
    "QLinearConv": {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
    "ConvInteger": {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
    "QLinearMatMul": set(), "MatMulInteger": set(), "DynamicQuantizeLinear": set(),
    "Cast": {"to", "saturate"}, "Mul": set(),
    "QLinearAdd": set(), "QLinearGlobalAveragePool": {"channels_last"},
    "QLinearAveragePool": {"auto_pad", "ceil_mode", "channels_last", "count_include_pad",
                           "kernel_shape", "pads", "strides"},
    "QGemm": {"alpha", "transA", "transB"},
}

# How many inputs each op takes in ONNX (min, max), "" placeholders included.
ARITY: dict[str, tuple[int, int]] = {
    "Add": (2, 2), "AveragePool": (1, 1), "BatchNormalization": (5, 5), "Clip": (1, 3),
    "Constant": (0, 0), "Conv": (2, 3), "Dropout": (1, 3), "Flatten": (1, 1), "Gelu": (1, 1),
    "Gemm": (2, 3), "GlobalAveragePool": (1, 1), "GlobalMaxPool": (1, 1), "Identity": (1, 1), "MatMul": (2, 2),
    "MaxPool": (1, 1), "Relu": (1, 1), "Reshape": (1, 2), "Sigmoid": (1, 1),
    "Softmax": (1, 1), "Tanh": (1, 1), "Shape": (1, 1), "Pad": (1, 4),
    "QuantizeLinear": (2, 3), "DequantizeLinear": (2, 3), "QLinearConv": (8, 9),
    "QLinearMatMul": (8, 8), "MatMulInteger": (2, 4), "ConvInteger": (2, 4),
    "DynamicQuantizeLinear": (1, 1), "Cast": (1, 1), "Mul": (2, 2), "QLinearAdd": (7, 8),
    "QLinearGlobalAveragePool": (4, 5), "QLinearAveragePool": (4, 5), "QGemm": (6, 9),
}

# The ONNX type of every attribute we read (a wrong type is a malformed model).
ATTR_TYPES: dict[str, str] = {
    "alpha": "FLOAT", "beta": "FLOAT", "transA": "INT", "transB": "INT", "broadcast": "INT",
    "axis": "INT", "epsilon": "FLOAT", "momentum": "FLOAT", "spatial": "INT",
    "is_test": "INT", "training_mode": "INT", "consumed_inputs": "INTS", "min": "FLOAT",
    "max": "FLOAT", "value": "TENSOR", "value_float": "FLOAT", "value_floats": "FLOATS",
    "value_int": "INT", "value_ints": "INTS", "value_string": "STRING",
    "value_strings": "STRINGS", "sparse_value": "SPARSE_TENSOR", "auto_pad": "STRING",
    "dilations": "INTS", "group": "INT", "kernel_shape": "INTS", "pads": "INTS",
    "strides": "INTS", "ratio": "FLOAT", "seed": "INT", "approximate": "STRING",
    "ceil_mode": "INT", "count_include_pad": "INT", "storage_order": "INT",
    "shape": "INTS", "allowzero": "INT", "start": "INT", "end": "INT",
    "mode": "STRING", "to": "INT", "saturate": "INT", "block_size": "INT",
    "output_dtype": "INT", "channels_last": "INT",
}
OP_ATTR_TYPES: dict[tuple[str, str], str] = {("Pad", "value"): "FLOAT"}

# Ops whose outputs are random or otherwise must not be constant-folded.
NO_FOLD = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
            "Multinomial", "Bernoulli"}

FLT_MAX = float(np.finfo(np.float32).max)

# Inside shape tensors (Shape of a run-time tensor), the symbolic batch size is this
# sentinel. Only data-movement ops may touch such tensors (they carry it through
# unchanged); Reshape then reads it back as "copy dim 0" (ONNX's 0).
BATCH = -(2 ** 62)
SHAPE_MOVES = {"Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Identity", "Reshape",
                "Cast", "Flatten"}


class Unsupported(Exception):
    """This node (variant) cannot be expressed; collected, then reported."""


def import_onnx() -> Any:
    try:
        import onnx  # noqa: PLC0415
        import onnx.numpy_helper  # noqa: F401, PLC0415
        import onnx.shape_inference  # noqa: F401, PLC0415
    except ImportError as e:
        raise MissingDependencyError(
            f"load_onnx needs the 'onnx' package ({e}); install it with "
            "`pip install pyruntime[onnx]`") from None
    return onnx


def load_proto(onnx: Any, model: Any) -> Any:
    """A ModelProto from a ModelProto, bytes, or a path; decode failures -> ModelFormatError."""
    if isinstance(model, onnx.ModelProto):
        proto = model
    elif isinstance(model, (bytes, bytearray, memoryview)):
        try:
            proto = onnx.load_model_from_string(bytes(model))
        except Exception as e:  # DecodeError and friends from protobuf
            raise ModelFormatError(f"bytes are not a valid ONNX model: {e}") from None
    elif isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ONNX model file not found: {path!r}")
        try:
            proto = onnx.load(path)
        except Exception as e:  # DecodeError, missing external data, ...
            raise ModelFormatError(f"{path!r} is not a valid ONNX model: "
                                   f"{type(e).__name__}: {e}") from None
    else:
        raise TypeError(f"load_onnx expects a path, bytes or onnx.ModelProto, "
                        f"got {type(model).__name__}")
    if not proto.HasField("graph") or len(proto.graph.output) == 0:
        raise ModelFormatError("not an ONNX model: it has no graph or the graph has no outputs")
    return proto


def node_label(node: Any, index: int) -> str:
    name = node.name or f"#{index}"
    return f"{node.op_type} node {name!r}"


def pair(v: Any, what: str) -> tuple[int, int]:
    v = tuple(int(x) for x in v)
    if len(v) != 2:
        raise Unsupported(f"{what} has {len(v)} values; only 2-D (2 values) is supported")
    return v
