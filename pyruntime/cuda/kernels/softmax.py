"""Softmax over the last axis of x [M, N] float32: y[m] = exp(x[m] - max x[m]) / sum, one
thread per row (classifier heads: M is the batch, N at most a few thousand). As numpy
would: a row holding NaN or +Inf gives NaN in every element of that row."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..numba_compat import cuda
from . import launch


@cuda.jit
def _softmax(x, y):
    M, N = x.shape
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for m in range(start, M, stride):
        hi = np.float32(-math.inf)
        bad = False
        for n in range(N):
            v = x[m, n]
            if v != v or v == np.float32(math.inf):
                bad = True
            elif v > hi:
                hi = v
        if bad:
            for n in range(N):
                y[m, n] = np.float32(math.nan)
            continue
        total = np.float32(0.0)
        for n in range(N):
            e = math.exp(x[m, n] - hi)
            y[m, n] = e
            total += e
        inv = np.float32(1.0) / total
        for n in range(N):
            y[m, n] = y[m, n] * inv


def softmax(x: Any, out: Any = None, stream: Any = 0, threads: int = launch.THREADS,
            blocks: int | None = None):
    """y [M, N] = softmax of every row of x [M, N] (module doc)."""
    x = launch.as_device(x, "x", np.float32, ndim=2)
    M, N = x.shape
    y = launch.output(out, "out", np.float32, (M, N), stream)
    if M * N:
        g, t = launch.grid(M, threads, blocks)
        _softmax[g, t, stream](x, y)
    return y
