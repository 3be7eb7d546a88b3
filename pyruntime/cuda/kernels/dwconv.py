"""Depthwise 2-D convolution, NHWC, channel multiplier 1, with the fused epilogue.

Layouts (C-contiguous float32):
    x        [N, H, W, C]
    w        [KH, KW, C]    (ONNX's [C, 1, KH, KW] through ``dw_weight_hwc``: adjacent
                             threads own adjacent channels, so x, w and y reads coalesce)
    bias     [C]            optional
    residual [N, OH, OW, C] optional, added before or after the activation
    y        [N, OH, OW, C]
y[n, oh, ow, c] = epilogue(sum over taps inside the image of x[n, oh*sh - pt + kh*dh,
ow*sw - pl + kw*dw, c] * w[kh, kw, c]); padded taps add nothing. One thread per output
element (grid-stride loop), float32 accumulation in (kh, kw) order."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..numba_compat import cuda
from . import launch
from .act import epilogue as _epi


def dw_weight_hwc(w: np.ndarray) -> np.ndarray:
    """Host side: ONNX depthwise weight [C, 1, KH, KW] -> [KH, KW, C] float32."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 4 or w.shape[1] != 1:
        raise launch.ShapeError(f"depthwise weight: expected [C, 1, KH, KW], got {list(w.shape)}")
    return np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))


@cuda.jit
def _dwconv(x, w, bias, res, y, KH, KW, sh, sw, pt, pl, dh, dw,
            has_bias, act, lo, hi, res_mode):
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
        acc = np.float32(0.0)
        for kh in range(KH):
            ih = oh * sh - pt + kh * dh
            if ih >= 0 and ih < H:
                for kw in range(KW):
                    iw = ow * sw - pl + kw * dw
                    if iw >= 0 and iw < W:
                        acc += x[n, ih, iw, c] * w[kh, kw, c]
        b = bias[c] if has_bias else np.float32(0.0)
        r = res[n, oh, ow, c] if res_mode != 0 else np.float32(0.0)
        y[n, oh, ow, c] = _epi(acc, b, r, act, lo, hi, res_mode)


def dwconv2d_nhwc(x: Any, w: Any, out_hw: tuple[int, int], strides=(1, 1), pads=(0, 0),
                  dilations=(1, 1), bias: Any = None, act: str = "none",
                  lo: float = -np.inf, hi: float = np.inf, residual: Any = None,
                  residual_after_act: bool = False, out: Any = None, stream: Any = 0,
                  threads: int = launch.THREADS, blocks: int | None = None):
    """Depthwise conv (module doc). out_hw = (OH, OW) from the shape rules
    (``shapes.window_out``); pads = (top, left): bottom/right padding is implied by OH/OW.
    Returns y [N, OH, OW, C]."""
    x = launch.as_device(x, "x", np.float32, ndim=4)
    N, H, W, C = x.shape
    w = launch.as_device(w, "w", np.float32, (None, None, C))
    OH, OW = (int(v) for v in out_hw)
    y = launch.output(out, "out", np.float32, (N, OH, OW, C), stream)
    b = launch.as_device(bias, "bias", np.float32, (C,)) if bias is not None else w.reshape(w.size)
    res_mode = launch.residual_mode(residual, residual_after_act)
    r = (launch.as_device(residual, "residual", np.float32, (N, OH, OW, C))
         if residual is not None else y)
    code, lo32, hi32 = launch.act_args(act, lo, hi)
    total = N * OH * OW * C
    if total:
        g, t = launch.grid(total, threads, blocks)
        _dwconv[g, t, stream](x, w, b, r, y, w.shape[0], w.shape[1], int(strides[0]),
                              int(strides[1]), int(pads[0]), int(pads[1]), int(dilations[0]),
                              int(dilations[1]), bias is not None, code, lo32, hi32, res_mode)
    return y
