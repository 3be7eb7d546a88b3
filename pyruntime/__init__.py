"""pyruntime: a compiled inference runtime that makes trained networks smaller and
faster to serve. See README.md for the tour; DESIGN.md for the map."""

from __future__ import annotations

import os as _os

# OpenMP worker threads sleep instead of spinning between parallel steps. Spinning wins a
# few microseconds per step on an idle machine but, when the cores are shared (a serving
# process with other work, a busy CI box), spinning workers starve the thread they wait
# for and a 2-thread MobileNet took 20x longer here. libgomp reads this when it loads, so
# it is set before the native core is imported; export OMP_WAIT_POLICY=ACTIVE to choose
# spinning on a dedicated machine.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
from . import nn, passes, serve, train, xla, zoo
from .train import distill

__version__ = "0.1.0"

__all__ = [
    "DTypeError", "Error", "GraphError", "InputError", "IsaError", "MissingDependencyError",
    "ModelFormatError", "ShapeError", "UnsupportedOpError", "WeightShapeError", "Graph", "Node", "ValueInfo",
    "Weight", "info", "load", "save", "load_onnx", "Session", "compile", "nn", "passes", "serve", "train", "xla", "zoo", "distill",
    "__version__",
]
