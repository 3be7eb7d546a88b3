"""pyruntime: a compiled inference runtime that makes trained networks smaller and
faster to serve. See README.md for the tour; docs/DESIGN.md for the map."""

from __future__ import annotations

import os as _os

# OpenMP workers spin briefly, then sleep. A run's steps follow each other within
# microseconds, so a short spin keeps the workers hot through a run (sleeping between
# steps cost a MobileNet 50% here: every region paid a wake-up); sleeping soon after a
# run keeps idle workers from starving other threads when cores are shared (libgomp's
# default spins ~10x longer; spinning forever starved the thread they waited for and a
# 2-thread MobileNet took 20x longer on a busy 2-core box). libgomp reads this when it
# loads, so it is set before the native core is imported; set OMP_WAIT_POLICY or
# GOMP_SPINCOUNT yourself to choose otherwise.
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "30000")

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
    WeightFormatError,
    WeightShapeError,
)
from .graph import Graph, Node, ValueInfo, Weight
from .info import info
from .fileformat import load, save
from .onnx import load_onnx, to_onnx
from .cpu import Session
from .backends import compile
from . import formats, nn, passes, serve, train, xla, zoo
from .train import distill

__version__ = "0.1.0"

__all__ = [
    "DTypeError", "Error", "GraphError", "InputError", "IsaError", "MissingDependencyError",
    "ModelFormatError", "ShapeError", "UnsupportedOpError", "WeightFormatError",
    "WeightShapeError",
    "Graph", "Node", "ValueInfo", "Weight",
    "info", "load", "save", "load_onnx", "to_onnx", "Session", "compile", "distill",
    "formats", "nn", "passes", "serve", "train", "xla", "zoo",
    "__version__",
]
