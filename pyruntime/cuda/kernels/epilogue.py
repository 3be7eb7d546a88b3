"""The bias / activation / residual epilogue on an [M, N] row-major float32 matrix (a cuBLAS
GEMM's output), as its own kernel:

    v = x[m, n] + bias[n]
    if residual before act: v += residual[m, n]
    v = act(v)                                   (clip clamps to [lo, hi])
    if residual after act:  v += residual[m, n]
    y[m, n] = v

x, y, residual: C-contiguous [M, N]; y may be x (in place). The CPU's ``Epilogue``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..numba_compat import cuda
from . import launch
from .act import epilogue as _epi


@cuda.jit
def _bias_act(x, bias, res, y, M, N, has_bias, act, lo, hi, res_mode):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, M * N, stride):
        m = i // N
        n = i - m * N
        b = bias[n] if has_bias else np.float32(0.0)
        r = res[m, n] if res_mode != 0 else np.float32(0.0)
        y[m, n] = _epi(x[m, n], b, r, act, lo, hi, res_mode)


def bias_act(x: Any, bias: Any = None, act: str = "none", lo: float = -np.inf,
             hi: float = np.inf, residual: Any = None, residual_after_act: bool = False,
             out: Any = None, stream: Any = 0, threads: int = launch.THREADS,
             blocks: int | None = None):
    """y = epilogue(x) (see the module doc); returns y (``out`` when given, may be x)."""
    x = launch.as_device(x, "x", np.float32, ndim=2)
    M, N = x.shape
    b = launch.as_device(bias, "bias", np.float32, (N,)) if bias is not None else x.reshape(M * N)
    res_mode = launch.residual_mode(residual, residual_after_act)
    r = launch.as_device(residual, "residual", np.float32, (M, N)) if residual is not None else x
    y = launch.output(out, "out", np.float32, (M, N), stream)
    code, lo32, hi32 = launch.act_args(act, lo, hi)
    if M * N:
        g, t = launch.grid(M * N, threads, blocks)
        _bias_act[g, t, stream](x, b, r, y, M, N, bias is not None, code, lo32, hi32, res_mode)
    return y
