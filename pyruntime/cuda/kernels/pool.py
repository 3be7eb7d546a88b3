"""Pooling, NHWC float32 (C-contiguous), ONNX semantics:

    x [N, H, W, C] -> y [N, OH, OW, C]; window (kh, kw) reads x[n, oh*sh - pt + kh*dh,
    ow*sw - pl + kw*dw, c].
max: over the taps inside the image (padding never wins; a window with none gives -inf).
avg: the sum over the taps inside the image divided by their count or, with
count_include_pad, by the taps inside the padded image (rows [-pt, H + pb), columns
[-pl, W + pr)): KH*KW except for a window that ceil mode lets run past the padding.
OH/OW come from the shape rules (``shapes.window_out``, ceil_mode included): the kernels
take the output size and never decide the geometry.
global average pool: x [N, H, W, C] -> y [N, C], the mean over H*W.
One thread per output element (grid-stride), c fastest: reads coalesce across channels."""

from __future__ import annotations

from typing import Any

import math

import numpy as np

from ..numba_compat import cuda
from . import launch


@cuda.jit
def _pool(x, y, KH, KW, sh, sw, pt, pl, pb, pr, dh, dw, is_max, count_include_pad):
    N, H, W, C = x.shape
    OH = y.shape[1]
    OW = y.shape[2]
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, N * OH * OW * C, stride):
        c = i % C
        p = i // C
        ow = p % OW
        p = p // OW
        oh = p % OH
        n = p // OH
        acc = np.float32(-math.inf) if is_max else np.float32(0.0)
        cnt_h = 0
        cnt_w = 0
        pad_h = 0
        pad_w = 0
        for kw in range(KW):
            iw = ow * sw - pl + kw * dw
            if iw >= 0 and iw < W:
                cnt_w += 1
            if iw >= -pl and iw < W + pr:
                pad_w += 1
        for kh in range(KH):
            ih = oh * sh - pt + kh * dh
            if ih >= -pt and ih < H + pb:
                pad_h += 1
            if ih >= 0 and ih < H:
                cnt_h += 1
                for kw in range(KW):
                    iw = ow * sw - pl + kw * dw
                    if iw >= 0 and iw < W:
                        v = x[n, ih, iw, c]
                        if is_max:
                            if v > acc or v != v:  # NaN propagates
                                acc = v
                        else:
                            acc += v
        if not is_max:
            cnt = pad_h * pad_w if count_include_pad else cnt_h * cnt_w
            acc = acc / np.float32(cnt)
        y[n, oh, ow, c] = acc


@cuda.jit
def _global_avg(x, y):
    N, H, W, C = x.shape
    HW = H * W
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, N * C, stride):
        n = i // C
        c = i - n * C
        acc = np.float32(0.0)
        for p in range(HW):
            h = p // W
            acc += x[n, h, p - h * W, c]
        y[n, c] = acc / np.float32(HW)


def _pool_launch(x, kernel_hw, out_hw, strides, pads, dilations, is_max, count_include_pad,
                 out, stream, threads, blocks):
    x = launch.as_device(x, "x", np.float32, ndim=4)
    N, H, W, C = x.shape
    KH, KW = (int(v) for v in kernel_hw)
    OH, OW = (int(v) for v in out_hw)
    if len(pads) != 4:
        raise launch.ShapeError(f"pads: expected (top, left, bottom, right), got {tuple(pads)}")
    pt, pl, pb, pr = (int(v) for v in pads)
    y = launch.output(out, "out", np.float32, (N, OH, OW, C), stream)
    total = N * OH * OW * C
    if total:
        g, t = launch.grid(total, threads, blocks)
        _pool[g, t, stream](x, y, KH, KW, int(strides[0]), int(strides[1]), pt, pl, pb, pr,
                            int(dilations[0]), int(dilations[1]), is_max, bool(count_include_pad))
    return y


def maxpool_nhwc(x: Any, kernel_hw, out_hw, strides=(1, 1), pads=(0, 0, 0, 0),
                 dilations=(1, 1), out: Any = None, stream: Any = 0,
                 threads: int = launch.THREADS, blocks: int | None = None):
    """Max pool (module doc); pads = (top, left, bottom, right). Returns y [N, OH, OW, C]."""
    return _pool_launch(x, kernel_hw, out_hw, strides, pads, dilations, True, False,
                        out, stream, threads, blocks)


def avgpool_nhwc(x: Any, kernel_hw, out_hw, strides=(1, 1), pads=(0, 0, 0, 0),
                 dilations=(1, 1), count_include_pad: bool = False, out: Any = None,
                 stream: Any = 0, threads: int = launch.THREADS, blocks: int | None = None):
    """Average pool (module doc); pads = (top, left, bottom, right). Returns y [N, OH, OW, C]."""
    return _pool_launch(x, kernel_hw, out_hw, strides, pads, dilations, False,
                        count_include_pad, out, stream, threads, blocks)


def global_avgpool_nhwc(x: Any, out: Any = None, stream: Any = 0,
                        threads: int = launch.THREADS, blocks: int | None = None):
    """y [N, C] = mean of x [N, H, W, C] over H and W."""
    x = launch.as_device(x, "x", np.float32, ndim=4)
    N, H, W, C = x.shape
    y = launch.output(out, "out", np.float32, (N, C), stream)
    if N * C and H * W:
        g, t = launch.grid(N * C, threads, blocks)
        _global_avg[g, t, stream](x, y)
    return y
