"""Typed errors. Every error pyruntime raises on bad input is a subclass of `Error`
so callers can catch the library's failures without catching their own bugs."""

from __future__ import annotations


class Error(Exception):
    """Base class of all pyruntime errors."""


class ShapeError(Error, ValueError):
    """A tensor's rank or shape is not what the model or op expects."""


class DTypeError(Error, TypeError):
    """A tensor's dtype cannot be used here (and is not silently converted)."""


class InputError(Error, ValueError):
    """A run() argument is wrong in a way that is not shape or dtype: names, flags, values."""


class GraphError(Error, ValueError):
    """A Graph is malformed: dangling names, cycles, duplicate names, bad attributes."""


class WeightShapeError(GraphError, ShapeError):
    """A weight's shape does not fit its op or the tensor it is applied to.
    Both a malformed graph (GraphError) and a shape mismatch (ShapeError)."""


class WeightFormatError(GraphError):
    """A weight's arrays do not form a valid weight of its format (pyruntime.formats):
    wrong dtype, length or rank, an index out of range, row pointers that decrease, a
    block that does not divide the matrix, a scale that is not finite and positive."""


class ModelFormatError(Error, ValueError):
    """A model file (.pyrt or ONNX) is truncated, corrupted, foreign or inconsistent."""


class UnsupportedOpError(Error, NotImplementedError):
    """The model uses ops (or op variants) pyruntime cannot run. Lists every one."""


class IsaError(Error, RuntimeError):
    """A requested instruction set is unknown or not supported by this CPU/OS."""


class MissingDependencyError(Error, ImportError):
    """An optional dependency (an extra) is needed for this function."""


class DeviceError(Error, RuntimeError):
    """A requested device cannot be used: no driver, no GPU, an id out of range."""
