"""int8 kernels: quantize, dynamic per-row quantize, dequantize, and the requantize epilogue
after an int8 GEMM (cuBLAS gemmEx, int32 accumulators). Same arithmetic as the CPU's
``QGemmConfig`` (cpp/include/pyrt/kernels.h): float32 throughout, x * (1/scale) by the
float32 reciprocal, round half to even, clamp to [0, 255].

quantize          x [any shape] float32 -> q uint8 same shape:
                  q = clamp(nearbyint(x * (1/scale)) + zp, 0, 255)  (ONNX QuantizeLinear)
quantize_rows     x [M, K] float32 -> q [M, K] uint8, scale [M] float32, zp [M] int32:
                  lo = min(0, min x[m]), hi = max(0, max x[m]), scale = (hi - lo) / 255
                  (1 when hi == lo), zp = clamp(nearbyint(-lo / scale), 0, 255), q as above.
                  One thread block per row (grid-stride over rows), a shared-memory
                  min/max reduction, then the block quantizes the row.
dequantize        q [M, K] uint8 -> y [M, K] float32, y = (q - zp) * scale with one
                  (scale, zp) or one per row (arrays [M], as quantize_rows gives).
requantize        acc [M, N] int32 (A uint8 [M, K] @ B int8 [K, N]) -> [M, N] float32 or uint8:
                  v = (a_scale[m] * w_scale[n]) * float(acc - a_zp[m] * colsum[n]) + bias[n],
                  residual before/after the activation, then float, or uint8 with
                  (out_scale, out_zp). a_scale / a_zp: arrays [M] (per row, dynamic) or [1]
                  (per tensor, static); colsum[n] = sum_k B[k, n] (int32, computed once on
                  the host at compile, ``colsum``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ...errors import InputError
from ..numba_compat import cuda
from . import launch
from .act import epilogue as _epi
from .act import round_clamp_u8


def colsum(w_int8: np.ndarray) -> np.ndarray:
    """Host side: int32 column sums of an int8 weight [K, N]."""
    return np.asarray(w_int8).astype(np.int32).sum(axis=0, dtype=np.int32)


def _scale_zp(scale: float, zp: int) -> tuple[np.float32, np.float32, np.int32]:
    s = np.float32(scale)
    if not (np.isfinite(s) and s > 0):
        raise InputError(f"scale: expected a finite positive float32, got {scale!r}")
    if not 0 <= int(zp) <= 255:
        raise InputError(f"zero point: expected 0..255, got {zp!r}")
    return s, np.float32(1.0) / s, np.int32(zp)


# ------------------------------------------------------------------- quantize (static)
@cuda.jit
def _quantize(x, q, inv, zp):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, x.shape[0], stride):
        q[i] = round_clamp_u8(x[i] * inv, zp)


def quantize(x: Any, scale: float, zero_point: int, out: Any = None, stream: Any = 0,
             threads: int = launch.THREADS, blocks: int | None = None):
    """q = clamp(nearbyint(x * (1/scale)) + zero_point, 0, 255), uint8, x's shape."""
    x = launch.as_device(x, "x", np.float32)
    _, inv, zp = _scale_zp(scale, zero_point)
    q = launch.output(out, "out", np.uint8, tuple(x.shape), stream)
    n = int(np.prod(x.shape, dtype=np.int64))
    if n:
        g, t = launch.grid(n, threads, blocks)
        _quantize[g, t, stream](x.reshape(n), q.reshape(n), inv, zp)
    return q


# ----------------------------------------------------------- quantize_rows (dynamic)
@functools.lru_cache(maxsize=None)
def _quantize_rows_kernel(tpb: int):
    """The per-row kernel for blocks of `tpb` threads (a power of two: the shared arrays and
    the reduction tree are sized at compile time)."""

    @cuda.jit
    def kernel(x, q, scale, zp):
        smin = cuda.shared.array(tpb, np.float32)
        smax = cuda.shared.array(tpb, np.float32)
        sprm = cuda.shared.array(2, np.float32)  # inv scale, zp (as float)
        M, K = x.shape
        t = cuda.threadIdx.x
        for m in range(cuda.blockIdx.x, M, cuda.gridDim.x):
            mn = np.float32(0.0)
            mx = np.float32(0.0)
            for k in range(t, K, tpb):
                v = x[m, k]
                if v < mn:
                    mn = v
                if v > mx:
                    mx = v
            smin[t] = mn
            smax[t] = mx
            cuda.syncthreads()
            s = tpb // 2
            while s > 0:
                if t < s:
                    if smin[t + s] < smin[t]:
                        smin[t] = smin[t + s]
                    if smax[t + s] > smax[t]:
                        smax[t] = smax[t + s]
                cuda.syncthreads()
                s //= 2
            if t == 0:
                lo = smin[0]
                hi = smax[0]
                sc = (hi - lo) / np.float32(255.0)
                if hi == lo:
                    sc = np.float32(1.0)
                z = round_clamp_u8(-lo / sc, 0)
                scale[m] = sc
                zp[m] = z
                sprm[0] = np.float32(1.0) / sc
                sprm[1] = np.float32(z)
            cuda.syncthreads()
            inv = sprm[0]
            zr = np.int32(sprm[1])
            for k in range(t, K, tpb):
                q[m, k] = round_clamp_u8(x[m, k] * inv, zr)
            cuda.syncthreads()  # the shared arrays are reused by the next row

    return kernel


ROW_THREADS = 128


def quantize_rows(x: Any, out: Any = None, scale_out: Any = None, zp_out: Any = None,
                  stream: Any = 0, threads: int = ROW_THREADS, blocks: int | None = None):
    """Dynamic per-row quantization of x [M, K] (module doc): returns (q, scale, zp).
    threads: a power of two, the block size (one block per row)."""
    x = launch.as_device(x, "x", np.float32, ndim=2)
    M, K = x.shape
    if threads < 1 or threads & (threads - 1):
        raise InputError(f"threads: expected a power of two, got {threads}")
    q = launch.output(out, "out", np.uint8, (M, K), stream)
    sc = launch.output(scale_out, "scale_out", np.float32, (M,), stream)
    zp = launch.output(zp_out, "zp_out", np.int32, (M,), stream)
    if M:
        g = min(M, launch.MAX_BLOCKS) if blocks is None else blocks
        _quantize_rows_kernel(int(threads))[g, threads, stream](x, q, sc, zp)
    return q, sc, zp


# ------------------------------------------------------------------------ dequantize
@cuda.jit
def _dequantize(q, scale, zp, y, stride_m):
    M, K = q.shape
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, M * K, stride):
        m = i // K
        k = i - m * K
        j = m * stride_m
        y[m, k] = np.float32(np.int32(q[m, k]) - zp[j]) * scale[j]


def dequantize(q: Any, scale: Any, zero_point: Any, out: Any = None, stream: Any = 0,
               threads: int = launch.THREADS, blocks: int | None = None):
    """y [M, K] float32 = (q - zp) * scale; scale/zero_point: device arrays [M] (float32,
    int32: per row) or [1] (per tensor)."""
    q = launch.as_device(q, "q", np.uint8, ndim=2)
    M, K = q.shape
    s = launch.as_device(scale, "scale", np.float32, ndim=1)
    z = launch.as_device(zero_point, "zero_point", np.int32, ndim=1)
    stride_m = _row_stride("scale", s.shape[0], M)
    if z.shape[0] != s.shape[0]:
        raise launch.ShapeError(f"zero_point: expected {s.shape[0]} values like scale, got {z.shape[0]}")
    y = launch.output(out, "out", np.float32, (M, K), stream)
    if M * K:
        g, t = launch.grid(M * K, threads, blocks)
        _dequantize[g, t, stream](q, s, z, y, stride_m)
    return y


def _row_stride(name: str, n: int, M: int) -> int:
    if n == M:
        return 1 if M != 1 else 0
    if n == 1:
        return 0
    raise launch.ShapeError(f"{name}: expected 1 (per tensor) or {M} (per row) values, got {n}")


# ------------------------------------------------------------------------ requantize
@cuda.jit(device=True)
def _requant_value(acc, a_scale, a_zp, w_scale, csum, bias, res, m, n, sa, has_bias,
                   act, lo, hi, res_mode):
    j = m * sa
    v = np.float32(acc[m, n] - a_zp[j] * csum[n]) * (a_scale[j] * w_scale[n])
    b = bias[n] if has_bias else np.float32(0.0)
    r = res[m, n] if res_mode != 0 else np.float32(0.0)
    return _epi(v, b, r, act, lo, hi, res_mode)


@cuda.jit
def _requant_f32(acc, a_scale, a_zp, w_scale, csum, bias, res, y, sa, has_bias,
                 act, lo, hi, res_mode):
    M, N = y.shape
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, M * N, stride):
        m = i // N
        n = i - m * N
        y[m, n] = _requant_value(acc, a_scale, a_zp, w_scale, csum, bias, res, m, n, sa,
                                 has_bias, act, lo, hi, res_mode)


@cuda.jit
def _requant_u8(acc, a_scale, a_zp, w_scale, csum, bias, res, y, sa, has_bias,
                act, lo, hi, res_mode, inv, out_zp):
    M, N = y.shape
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, M * N, stride):
        m = i // N
        n = i - m * N
        v = _requant_value(acc, a_scale, a_zp, w_scale, csum, bias, res, m, n, sa,
                           has_bias, act, lo, hi, res_mode)
        y[m, n] = round_clamp_u8(v * inv, out_zp)


def requantize(acc: Any, a_scale: Any, a_zp: Any, w_scale: Any, colsum: Any,
               bias: Any = None, act: str = "none", lo: float = -np.inf, hi: float = np.inf,
               residual: Any = None, residual_after_act: bool = False,
               out_scale: float | None = None, out_zp: int = 0, out: Any = None,
               stream: Any = 0, threads: int = launch.THREADS, blocks: int | None = None,
               n: int | None = None):
    """The int32 -> float epilogue (module doc). Returns float32 [M, N], or uint8 when
    out_scale is given (q = clamp(nearbyint(v * (1/out_scale)) + out_zp, 0, 255)).
    `n`: the output columns N when acc is wider (cuBLAS's int8 GEMM wants its column
    count a multiple of 4: the caller pads the weight with zero columns); default all."""
    acc = launch.as_device(acc, "acc", np.int32, ndim=2)
    M, Nacc = acc.shape
    N = Nacc if n is None else int(n)
    if not 0 <= N <= Nacc:
        raise launch.ShapeError(f"n: expected 0..{Nacc} (acc's columns), got {n}")
    a_s = launch.as_device(a_scale, "a_scale", np.float32, ndim=1)
    a_z = launch.as_device(a_zp, "a_zp", np.int32, ndim=1)
    if a_z.shape[0] != a_s.shape[0]:
        raise launch.ShapeError(f"a_zp: expected {a_s.shape[0]} values like a_scale, got {a_z.shape[0]}")
    sa = _row_stride("a_scale", a_s.shape[0], M)
    ws = launch.as_device(w_scale, "w_scale", np.float32, (N,))
    cs = launch.as_device(colsum, "colsum", np.int32, (N,))
    b = launch.as_device(bias, "bias", np.float32, (N,)) if bias is not None else ws
    res_mode = launch.residual_mode(residual, residual_after_act)
    # without a residual the kernel gets acc's bytes viewed as float32: never read, and no
    # allocation (none may happen while a CUDA graph is being captured)
    r = (launch.as_device(residual, "residual", np.float32, (M, N)) if residual is not None
         else acc.view(np.float32))  # never read
    code, lo32, hi32 = launch.act_args(act, lo, hi)
    g, t = launch.grid(M * N, threads, blocks)
    if out_scale is None:
        y = launch.output(out, "out", np.float32, (M, N), stream)
        if M * N:
            _requant_f32[g, t, stream](acc, a_s, a_z, ws, cs, b, r, y, sa,
                                       bias is not None, code, lo32, hi32, res_mode)
        return y
    _, inv, oz = _scale_zp(out_scale, out_zp)
    y = launch.output(out, "out", np.uint8, (M, N), stream)
    if M * N:
        _requant_u8[g, t, stream](acc, a_s, a_z, ws, cs, b, r, y, sa, bias is not None,
                                  code, lo32, hi32, res_mode, inv, oz)
    return y


# ------------------------------------------------------------------------- signed
@cuda.jit
def _signed(q, s, zp, zs, K):
    M = q.shape[0]
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, M * K, stride):
        m = i // K
        k = i - m * K
        s[m, k] = np.int8(np.int32(q[m, k]) - 128)
    for i in range(start, zp.shape[0], stride):
        zs[i] = zp[i] - 128


def signed(q: Any, out: Any = None, zero_point: Any = None, zp_out: Any = None,
           stream: Any = 0, threads: int = launch.THREADS, blocks: int | None = None):
    """The int8 form cuBLAS's int8 GEMM takes: s = q - 128 for uint8 q [..., K] into
    out [..., L] int8 with L >= K (columns past K are not written: the weight rows they
    meet are zero); with `zero_point` (int32 [M], a dynamic quantization's), zp_out = zp -
    128 too, so that (q - zp) = (s - zp_out) exactly. Returns (out, zp_out)."""
    q = launch.as_device(q, "q", np.uint8)
    if q.ndim < 1:
        raise launch.ShapeError("q: expected at least one dimension")
    qs = tuple(q.shape)  # (the simulator's shape objects take no negative index)
    K = qs[-1]
    M = int(np.prod(qs[:-1], dtype=np.int64))
    if out is None:
        s = launch.output(None, "out", np.int8, qs, stream)
    else:
        s = launch.as_device(out, "out", np.int8, (*qs[:-1], None))
        if tuple(s.shape)[-1] < K:
            raise launch.ShapeError(f"out: expected at least {K} columns, got {tuple(s.shape)[-1]}")
    if zero_point is not None:
        z = launch.as_device(zero_point, "zero_point", np.int32, ndim=1)
        zs = launch.output(zp_out, "zp_out", np.int32, (z.shape[0],), stream)
    q2, s2 = q.reshape(M, K), s.reshape(M, tuple(s.shape)[-1])
    if zero_point is None:  # nothing to shift: an empty int32 view (no allocation)
        z = zs = s2.reshape(s2.size)[:0].view(np.int32)
    total = max(M * K, z.shape[0])
    if total:
        g, t = launch.grid(total, threads, blocks)
        _signed[g, t, stream](q2, s2, z, zs, K)
    return s, (zs if zero_point is not None else None)
