"""The one check of model inputs: every Session kind (CPU, the XLA artifact, later CUDA)
and the load balancer accept the same arrays and reject the same ones with the same
typed errors, because they all go through `InputSpec`.

Rules (the Session docstring lists them for users):
- one bare array for a one-input model, else a dict {name: array} naming every input
  exactly (InputError listing the expected names);
- float32 is used as is; other integer and floating dtypes are converted (as numpy's
  astype rounds); bool, complex, object, string and structured arrays are DTypeError;
- the rank and every non-batch dim must match, and a fixed first dim exactly
  (ShapeError naming the input, the expected and the given shape); all inputs with a
  symbolic batch share one batch size;
- non-contiguous arrays are copied to a contiguous buffer, read-only ones read in place;
  a float32 copy past the memory cap is refused before it is made (a zero-stride view
  can claim any size).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from . import _core
from .errors import DTypeError, InputError, ShapeError

__all__ = ["IOInfo", "InputSpec", "as_array", "F32"]

F32 = np.dtype(np.float32)


class IOInfo(NamedTuple):
    """One model input or output: name, shape (None = any batch), dtype."""
    name: str
    shape: tuple
    dtype: np.dtype


def as_array(x: Any, what: str) -> np.ndarray:
    """`x` as a numpy array of an integer or floating dtype (not yet float32)."""
    if type(x) is not np.ndarray:
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise InputError(f"{what}: cannot convert {type(x).__name__} to an array: "
                             f"{e}") from None
    if x.dtype != F32 and x.dtype.kind not in "iuf":
        raise DTypeError(f"{what}: expected float32 (or another integer/float dtype, "
                         f"converted), got {x.dtype}")
    return x


class InputSpec:
    """The inputs of a compiled model and the checks every run and request goes through.

    `before_copy(x)`, when given, is called with an input that must be converted or
    copied, before the copy is made: a backend's own size checks (the CPU plan's working
    memory) then fail before anything large is allocated."""

    def __init__(self, inputs: Sequence[IOInfo],
                 before_copy: Callable[[np.ndarray], None] | None = None) -> None:
        self.inputs = list(inputs)
        self.names = [i.name for i in self.inputs]
        self._index = {n: i for i, n in enumerate(self.names)}
        # (rank, fixed first dim or None, tail dims) per input
        self._spec = [(len(i.shape), i.shape[0], tuple(i.shape[1:])) for i in self.inputs]
        #: Every input has a fixed first dim: the model runs exactly those shapes.
        self.static = all(i.shape[0] is not None for i in self.inputs)
        self._before_copy = before_copy

    def array(self, i: int, x: Any) -> np.ndarray:
        """Input `i` as a C-contiguous float32 array."""
        name = self.names[i]
        x = as_array(x, f"input {name!r}")
        self.check_shape(i, x.shape)
        if x.dtype != F32 or not x.flags.c_contiguous:
            if x.size > _core.MEMORY_CAP // F32.itemsize:
                raise ShapeError(f"batch {x.shape[0]} is too large: input {name!r} of shape "
                                 f"{x.shape} needs {x.size * 4 >> 20} MiB as float32, more "
                                 f"than the cap of {_core.MEMORY_CAP >> 20} MiB")
            if self._before_copy is not None:
                self._before_copy(x)
            x = np.ascontiguousarray(x, dtype=F32)
        if x.dtype is not F32:  # an equal float32 dtype object that is not numpy's own (a
            x = x.view(F32)     # deep-copied one): the native binding wants numpy's
        return x

    def check_shape(self, i: int, shape: Sequence[int]) -> None:
        """ShapeError unless `shape` fits input `i` (rank, every non-batch dim, a fixed
        first dim); for arrays of any kind (host or device)."""
        rank, first, tail = self._spec[i]
        shape = tuple(shape)
        if len(shape) != rank or shape[1:] != tail or (first is not None and shape[0] != first):
            raise ShapeError(f"input {self.names[i]!r}: expected shape {self.inputs[i].shape}, "
                             f"got {shape}")

    def items(self, feeds: Any) -> tuple[list[Any], bool]:
        """The fed objects in input order (not yet checked as arrays), and whether `feeds`
        was one bare array; names are checked here (InputError listing the expected)."""
        if isinstance(feeds, Mapping):
            unknown = [k for k in feeds if k not in self._index]
            missing = [n for n in self.names if n not in feeds]
            if unknown or missing:
                raise InputError(f"expected inputs {self.names}; "
                                 + (f"unknown {unknown}" if unknown else "")
                                 + ("; " if unknown and missing else "")
                                 + (f"missing {missing}" if missing else ""))
            return [feeds[n] for n in self.names], False
        if len(self.names) != 1:
            raise InputError(f"this model has {len(self.names)} inputs {self.names}: "
                             f"pass a dict {{name: array}}")
        return [feeds], True

    def ordered(self, feeds: Any) -> tuple[list[np.ndarray], bool]:
        """The checked arrays in input order, and whether `feeds` was one bare array
        (then a one-output model returns a bare array too)."""
        items, bare = self.items(feeds)
        arrays = [self.array(i, x) for i, x in enumerate(items)]
        self.batch(arrays)
        return arrays, bare

    def batch(self, arrays: Sequence[np.ndarray]) -> int:
        """The batch size the arrays share (their first dim; a static model: 1 run)."""
        sizes = {a.shape[0] for a, (_, first, _t) in zip(arrays, self._spec) if first is None}
        if len(sizes) > 1:
            raise ShapeError("all inputs must have the same batch size, got " + ", ".join(
                f"{n}: {a.shape[0]}" for n, a in zip(self.names, arrays)))
        return sizes.pop() if sizes else 1
