"""Device functions: the activations and the bias/residual/activation epilogue, shared by
every kernel that fuses it. All arithmetic stays float32 (constants are np.float32)."""

from __future__ import annotations

import math

import numpy as np

from ..numba_compat import cuda


@cuda.jit(device=True)
def activate(v, act, lo, hi):
    """act codes as launch.ACTS: 0 none, 1 relu, 2 clip(lo, hi), 3 sigmoid, 4 tanh, 5 gelu
    (erf form; gelu(-inf) = 0). NaN propagates through relu/clip as on the CPU."""
    if act == 1:
        if v < np.float32(0.0):
            v = np.float32(0.0)
    elif act == 2:
        if v < lo:
            v = lo
        elif v > hi:
            v = hi
    elif act == 3:
        v = np.float32(1.0) / (np.float32(1.0) + math.exp(-v))
    elif act == 4:
        v = math.tanh(v)
    elif act == 5:
        if v == -math.inf:
            v = np.float32(0.0)
        else:
            v = np.float32(0.5) * v * (np.float32(1.0) + math.erf(v * np.float32(0.7071067811865476)))
    return v


@cuda.jit(device=True)
def epilogue(v, b, r, act, lo, hi, res_mode):
    """v + b, then the residual r added before (res_mode 1) or after (2) the activation."""
    v = v + b
    if res_mode == 1:
        v = v + r
    v = activate(v, act, lo, hi)
    if res_mode == 2:
        v = v + r
    return v


@cuda.jit(device=True)
def round_clamp_u8(v, zp):
    """clamp(nearbyint(v) + zp, 0, 255) with round half to even (ONNX QuantizeLinear),
    exact for float32 v, in float32 and int32 only (no float64: tools/cuda_ptx_check.py);
    NaN gives 0 (the CPU leaves non-finite input undefined)."""
    zf = np.float32(zp)
    lo_b = np.float32(-1.0) - zf
    hi_b = np.float32(256.0) - zf
    if not (v > lo_b):  # also NaN
        v = lo_b
    if v > hi_b:
        v = hi_b
    r = np.float32(math.floor(v))  # |v| <= 511 here: exact
    d = v - r
    ri = np.int32(r)
    if d > np.float32(0.5) or (d == np.float32(0.5) and (ri & 1) != 0):
        ri += 1
    q = ri + np.int32(zp)
    if q < 0:
        q = 0
    if q > 255:
        q = 255
    return q
