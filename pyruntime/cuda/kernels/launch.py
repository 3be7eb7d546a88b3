"""What every launcher shares: device-array checks, output allocation, grid sizes and the
activation codes (the same numbers as the CPU's ``_core.Act``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import DTypeError, InputError, ShapeError
from ..numba_compat import cuda

#: Activation name -> code passed to the kernels (equal to ``_core.Act``; a test checks).
ACTS = {"none": 0, "relu": 1, "clip": 2, "sigmoid": 3, "tanh": 4, "gelu": 5}
#: Residual modes of the epilogue: where a residual is added, if at all.
RES_NONE, RES_BEFORE_ACT, RES_AFTER_ACT = 0, 1, 2

#: Default threads per block of the elementwise kernels (grid-stride loops: any value
#: works; tests use small ones so the simulator runs few Python threads).
THREADS = 256
MAX_BLOCKS = 65535


def as_device(x: Any, name: str, dtype: Any, shape: tuple | None = None, ndim: int | None = None):
    """x as a numba device array (numba device arrays pass through; anything else with
    ``__cuda_array_interface__``, e.g. a CuPy array, is wrapped without a copy), checked
    for dtype, C-contiguity and shape (None entries match any size)."""
    if hasattr(x, "__cuda_array_interface__") and not _is_numba_device_array(x):
        x = cuda.as_cuda_array(x)
    elif not _is_numba_device_array(x):
        raise DTypeError(f"{name}: expected a device array (numba device array or an object "
                         f"with __cuda_array_interface__), got {type(x).__name__}")
    if np.dtype(x.dtype) != np.dtype(dtype):
        raise DTypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {np.dtype(x.dtype)}")
    if not _c_contiguous(x):
        raise InputError(f"{name}: expected a C-contiguous array, got strides {x.strides}")
    if ndim is not None and x.ndim != ndim:
        raise ShapeError(f"{name}: expected {ndim} dimensions, got shape {tuple(x.shape)}")
    if shape is not None and (len(shape) != x.ndim or any(
            s is not None and s != d for s, d in zip(shape, x.shape))):
        want = "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"
        raise ShapeError(f"{name}: expected shape {want}, got {list(x.shape)}")
    return x


def _is_numba_device_array(x: Any) -> bool:
    return bool(cuda.devicearray.is_cuda_ndarray(x))


def _c_contiguous(x: Any) -> bool:
    if 0 in tuple(x.shape):
        return True
    expect = np.dtype(x.dtype).itemsize
    for d, s in zip(reversed(x.shape), reversed(x.strides)):
        if d != 1 and s != expect:
            return False
        expect *= d
    return True


def output(out: Any, name: str, dtype: Any, shape: tuple, stream: Any):
    """`out` checked, or a new device array on `stream` when None."""
    if out is None:
        return cuda.device_array(shape, dtype=dtype, stream=stream)
    return as_device(out, name, dtype, shape)


def grid(total: int, threads: int, blocks: int | None) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over `total` items."""
    if threads < 1 or (blocks is not None and blocks < 1):
        raise InputError(f"threads and blocks must be >= 1, got {threads}, {blocks}")
    if blocks is None:
        blocks = min(max(1, -(-total // threads)), MAX_BLOCKS)
    return blocks, threads


def act_args(act: str, lo: float, hi: float) -> tuple[int, np.float32, np.float32]:
    """(code, lo, hi) for the kernels; lo/hi are Clip's bounds (ignored by the others)."""
    if act not in ACTS:
        raise InputError(f"activation: expected one of {', '.join(ACTS)}, got {act!r}")
    return ACTS[act], np.float32(lo), np.float32(hi)


def residual_mode(residual: Any, residual_after_act: bool) -> int:
    if residual is None:
        return RES_NONE
    return RES_AFTER_ACT if residual_after_act else RES_BEFORE_ACT
