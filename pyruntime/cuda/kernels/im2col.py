"""im2col for NHWC: a convolution becomes one GEMM (cuBLAS) followed by the epilogue.

    x    [N, H, W, C]                         float32 or int8, C-contiguous
    cols [N*OH*OW, L], L >= KH*KW*C           row r = (n, oh, ow), column (kh, kw, c), c fastest
    cols[(n, oh, ow), (kh, kw, c)] = x[n, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw, c], `fill`
    where the tap falls in the padding (0; an int8 image's zero point, so that a padded tap
    adds nothing). Columns past KH*KW*C (int8 GEMMs want K a multiple of 4) are not
    written: their weight rows are zero.
Then y[N*OH*OW, O] = cols @ Wm with Wm = ``conv_weight_matrix(w)`` [KH*KW*C, O] is the conv
output in NHWC. Group 1 only. A 1x1, stride 1, unpadded conv needs no im2col: x viewed as
[N*H*W, C] already is ``cols``. One thread per element of cols (grid-stride), c fastest, so
reads of x and writes of cols coalesce."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..numba_compat import cuda
from . import launch


def conv_weight_matrix(w: np.ndarray) -> np.ndarray:
    """Host side: ONNX conv weight [O, C, KH, KW] (group 1) -> [KH*KW*C, O] float32."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 4:
        raise launch.ShapeError(f"conv weight: expected [O, C, KH, KW], got {list(w.shape)}")
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]))


@cuda.jit
def _im2col(x, cols, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW, fill):
    N, H, W, C = x.shape
    KC = KW * C
    ncol = KH * KC
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, N * OH * OW * ncol, stride):
        row = i // ncol
        col = i - row * ncol
        kh = col // KC
        rem = col - kh * KC
        kw = rem // C
        c = rem - kw * C
        ow = row % OW
        p = row // OW
        oh = p % OH
        n = p // OH
        ih = oh * sh - pt + kh * dh
        iw = ow * sw - pl + kw * dw
        v = fill
        if ih >= 0 and ih < H and iw >= 0 and iw < W:
            v = x[n, ih, iw, c]
        cols[row, col] = v


def im2col_nhwc(x: Any, kernel_hw: tuple[int, int], out_hw: tuple[int, int], strides=(1, 1),
                pads=(0, 0), dilations=(1, 1), out: Any = None, stream: Any = 0,
                threads: int = launch.THREADS, blocks: int | None = None, fill: int = 0):
    """cols [N*OH*OW, L] (module doc); pads = (top, left), OH/OW from the shape rules.
    x float32 or int8 (then `fill`, in [-128, 127], is the padding's value); `out` may
    be wider than KH*KW*C (a new one is exactly that wide)."""
    x = _as_image(x)
    dt = np.dtype(x.dtype)
    N, H, W, C = x.shape
    KH, KW = (int(v) for v in kernel_hw)
    OH, OW = (int(v) for v in out_hw)
    K = KH * KW * C
    if dt == np.int8 and not -128 <= int(fill) <= 127:
        raise launch.InputError(f"fill: expected an int8 value, got {fill!r}")
    if out is None:
        cols = launch.output(None, "out", dt, (N * OH * OW, K), stream)
    else:
        cols = launch.as_device(out, "out", dt, (N * OH * OW, None))
        if cols.shape[1] < K:
            raise launch.ShapeError(f"out: expected at least {K} columns, got {cols.shape[1]}")
    total = N * OH * OW * KH * KW * C
    if total:
        g, t = launch.grid(total, threads, blocks)
        _im2col[g, t, stream](x, cols, KH, KW, int(strides[0]), int(strides[1]), int(pads[0]),
                              int(pads[1]), int(dilations[0]), int(dilations[1]), OH, OW,
                              dt.type(fill))
    return cols


def _as_image(x: Any):
    """x as a 4-D float32 or int8 device array."""
    dt = np.dtype(getattr(x, "dtype", np.float32))
    return launch.as_device(x, "x", dt if dt in (np.dtype(np.float32), np.dtype(np.int8))
                            else np.float32, ndim=4)
