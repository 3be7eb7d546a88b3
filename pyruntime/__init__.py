"""pyruntime: a compiled inference runtime that makes trained networks smaller and
faster to serve. See README.md for the tour; docs/DESIGN.md for the map."""

from __future__ import annotations

from .errors import (
    DTypeError,
    DeviceError,
    Error,
    GraphError,
    InputError,
    IsaError,
    MissingDependencyError,
    ModelFormatError,
    ShapeError,
    UnsupportedOpError,
    WeightFormatError,
    WeightShapeError,
)
from .graph import Graph, Node, ValueInfo, Weight
from .info import info
from .fileformat import load, save
from .onnx import load_onnx, to_onnx
from .cpu import Session
from .backends import compile
from .passes import prune, quantize, quantize_report, sparsity
from . import formats, nn, passes, serve, train, xla, zoo
from .train import distill
from .compression import compress
from . import compression

__version__ = "0.1.0"

__all__ = [
    "DTypeError", "DeviceError", "Error", "GraphError", "InputError", "IsaError", "MissingDependencyError",
    "ModelFormatError", "ShapeError", "UnsupportedOpError", "WeightFormatError",
    "WeightShapeError",
    "Graph", "Node", "ValueInfo", "Weight",
    "info", "load", "save", "load_onnx", "to_onnx", "Session", "compile", "distill",
    "prune", "sparsity", "quantize", "quantize_report", "compress", "compression",
    "formats", "nn", "passes", "serve", "train", "xla", "zoo",
    "__version__",
]
