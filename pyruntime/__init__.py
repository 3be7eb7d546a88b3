"""pyruntime: a compiled inference runtime that makes trained networks smaller and
faster to serve. See README.md for the tour; DESIGN.md for the map."""

from __future__ import annotations

from .errors import (
    DTypeError,
    Error,
    GraphError,
    InputError,
    IsaError,
    MissingDependencyError,
    ModelFormatError,
    ShapeError,
    UnsupportedOpError,
    WeightShapeError,
)
from .graph import Graph, Node, ValueInfo, Weight
from .info import info
from .fileformat import load, save
from .onnx_import import load_onnx
from .session import Session, compile
from . import nn, passes, serve, zoo

__version__ = "0.1.0"

__all__ = [
    "DTypeError", "Error", "GraphError", "InputError", "IsaError", "MissingDependencyError",
    "ModelFormatError", "ShapeError", "UnsupportedOpError", "WeightShapeError", "Graph", "Node", "ValueInfo",
    "Weight", "info", "load", "save", "load_onnx", "Session", "compile", "nn", "passes", "serve", "zoo",
    "__version__",
]
