"""The Numba CUDA kernels (pyruntime/cuda/kernels) against the float64 reference, under the
CUDA simulator (no GPU in CI): small sizes that hurt (1, primes, sizes that are not a
multiple of the block or the grid), small grids so the grid-stride loops wrap.

NUMBA_ENABLE_CUDASIM is set (unless already set) before numba.cuda is first imported;
numba_compat re-reads numba's config, so a numba imported earlier does not matter. Run with
NUMBA_ENABLE_CUDASIM=0 on a machine with a GPU to run the same tests on it."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import _core, reference
from pyruntime.shapes import pool_extent, window_out

from conftest import check_float, check_u8, cuda_kernels_or_skip, ref_act

numba_compat = cuda_kernels_or_skip()

from pyruntime.cuda import kernels as K  # noqa: E402
from pyruntime.cuda.kernels import launch  # noqa: E402

cuda = numba_compat.cuda
U = 2.0 ** -24  # float32 unit roundoff
ACTS = [("none", -np.inf, np.inf), ("relu", -np.inf, np.inf), ("clip", 0.0, 6.0),
        ("sigmoid", -np.inf, np.inf), ("tanh", -np.inf, np.inf), ("gelu", -np.inf, np.inf)]


def dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def host(d):
    return d.copy_to_host()


def f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def epi_ref(s, mag, n_terms, bias, res, act, lo, hi, after):
    """float64 epilogue of the exact sums s and its bound: a float32 sum of n_terms products
    (|error| <= n u sum|terms| = n u mag), the bias / residual adds and the activation
    (Lipschitz <= 1.13, its own few ulps), with a factor 2 to spare."""
    v = s + (0 if bias is None else bias)
    m = mag + (0 if bias is None else np.abs(bias))
    if res is not None:
        m = m + np.abs(res)
        if not after:
            v = v + res
    y = ref_act(v, act, lo, hi)
    if res is not None and after:
        y = y + res
    tol = 2 * ((n_terms + 3) * U * m + 8 * U * np.abs(y)) + 1e-30
    return y, tol


# ------------------------------------------------------------------------- plumbing
def test_act_codes_match_the_cpu():
    assert launch.ACTS == {k: int(v) for k, v in _core.Act.__members__.items()}


def test_numpy_shim_and_simulator_flag():
    assert hasattr(np, "row_stack")
    assert numba_compat.simulator() == (os.environ["NUMBA_ENABLE_CUDASIM"] == "1")


def test_launchers_check_their_arguments():
    x = dev(np.zeros((2, 3), np.float32))
    with pytest.raises(rt.DTypeError, match="device array"):
        K.bias_act(np.zeros((2, 3), np.float32))
    with pytest.raises(rt.DTypeError, match="float32"):
        K.bias_act(dev(np.zeros((2, 3), np.float64)))
    with pytest.raises(rt.ShapeError, match=r"bias: expected shape \[3\], got \[2\]"):
        K.bias_act(x, bias=dev(np.zeros(2, np.float32)))
    with pytest.raises(rt.InputError, match="activation"):
        K.bias_act(x, act="swish")
    with pytest.raises(rt.InputError, match="scale"):
        K.quantize(x, 0.0, 0)
    with pytest.raises(rt.ShapeError, match="per row"):
        K.dequantize(dev(np.zeros((3, 2), np.uint8)), dev(np.ones(2, np.float32)),
                     dev(np.zeros(2, np.int32)))


# ------------------------------------------------------------------------- epilogue
@pytest.mark.parametrize("act,lo,hi", ACTS)
@pytest.mark.parametrize("res", ["none", "before", "after"])
def test_bias_act(rng, act, lo, hi, res):
    for M, N in ((1, 1), (7, 13)):
        x = f32(rng, M, N, scale=3)
        b = f32(rng, N)
        r = f32(rng, M, N) if res != "none" else None
        y = K.bias_act(dev(x), dev(b), act, lo, hi, None if r is None else dev(r),
                       res == "after", threads=32, blocks=2)
        check_float(host(y), epi_ref(x.astype(np.float64), np.abs(x), 0, b, r, act, lo, hi,
                                     res == "after"))


def test_bias_act_in_place_without_bias(rng):
    x = f32(rng, 3, 37)
    d = dev(x)
    y = K.bias_act(d, act="relu", out=d, threads=32, blocks=1)
    assert y is d
    np.testing.assert_array_equal(host(d), np.maximum(x, 0))


# --------------------------------------------------------------------------- dwconv
DW_CASES = [  # N, H, W, C, KH, KW, strides, pads (t, l, b, r), dilations
    (1, 1, 1, 1, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1)),
    (2, 7, 5, 3, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1)),
    (1, 6, 11, 5, 5, 5, (1, 2), (2, 2, 2, 2), (2, 1)),
    (1, 9, 8, 17, 3, 3, (1, 1), (0, 1, 2, 1), (1, 1)),
]


@pytest.mark.parametrize("case", DW_CASES)
@pytest.mark.parametrize("act,lo,hi,res", [("clip", 0.0, 6.0, "none"), ("none", 0, 0, "before"),
                                           ("relu", 0, 0, "after")])
def test_dwconv(rng, case, act, lo, hi, res):
    N, H, W, C, KH, KW, s, p, d = case
    x = f32(rng, N, H, W, C)
    w = f32(rng, C, 1, KH, KW)
    b = f32(rng, C)
    OH, OW = window_out(H, KH, s[0], d[0], p[0], p[2]), window_out(W, KW, s[1], d[1], p[1], p[3])
    r = f32(rng, N, OH, OW, C) if res != "none" else None
    y = K.dwconv2d_nhwc(dev(x), dev(K.dw_weight_hwc(w)), (OH, OW), s, p[:2], d, bias=dev(b),
                        act=act, lo=lo, hi=hi, residual=None if r is None else dev(r),
                        residual_after_act=res == "after", threads=32, blocks=3)
    a = {"group": C, "pads": p, "strides": s, "dilations": d}
    nchw = x.transpose(0, 3, 1, 2).astype(np.float64)
    s_ref = reference._conv(nchw, w.astype(np.float64), a).transpose(0, 2, 3, 1)
    mag = reference._conv(np.abs(nchw), np.abs(w.astype(np.float64)), a).transpose(0, 2, 3, 1)
    check_float(host(y), epi_ref(s_ref, mag, KH * KW, b, r, act, lo, hi, res == "after"))


# --------------------------------------------------------------------------- im2col
@pytest.mark.parametrize("case", DW_CASES[1:])
def test_im2col_then_gemm_is_the_conv(rng, case):
    N, H, W, C, KH, KW, s, p, d = case
    O = 7
    x = f32(rng, N, H, W, C)
    w = f32(rng, O, C, KH, KW)
    OH, OW = window_out(H, KH, s[0], d[0], p[0], p[2]), window_out(W, KW, s[1], d[1], p[1], p[3])
    cols = host(K.im2col_nhwc(dev(x), (KH, KW), (OH, OW), s, p[:2], d, threads=64, blocks=5))
    # the copy is exact: rebuild it on the host
    xp = np.pad(x, ((0, 0), (p[0], KH * d[0] + s[0] * OH), (p[1], KW * d[1] + s[1] * OW), (0, 0)))
    want = np.stack([xp[:, kh * d[0]: kh * d[0] + s[0] * OH: s[0], kw * d[1]: kw * d[1] + s[1] * OW: s[1]]
                     for kh in range(KH) for kw in range(KW)], axis=3)
    np.testing.assert_array_equal(cols, want.reshape(N * OH * OW, KH * KW * C))
    y = cols.astype(np.float64) @ K.conv_weight_matrix(w).astype(np.float64)
    a = {"group": 1, "pads": p, "strides": s, "dilations": d}
    ref = reference._conv(x.transpose(0, 3, 1, 2).astype(np.float64), w.astype(np.float64), a)
    np.testing.assert_allclose(y.reshape(N, OH, OW, O), ref.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", DW_CASES[1:3])
def test_im2col_int8_fills_the_padding_and_leaves_extra_columns(rng, case):
    N, H, W, C, KH, KW, s, p, d = case
    x = rng.integers(-128, 128, (N, H, W, C), dtype=np.int8)
    OH, OW = window_out(H, KH, s[0], d[0], p[0], p[2]), window_out(W, KW, s[1], d[1], p[1], p[3])
    K4 = -(-(KH * KW * C) // 4) * 4 + 4
    out = np.full((N * OH * OW, K4), 99, np.int8)
    cols = host(K.im2col_nhwc(dev(x), (KH, KW), (OH, OW), s, p[:2], d, out=dev(out), fill=-37,
                              threads=64, blocks=3))
    xp = np.pad(x, ((0, 0), (p[0], KH * d[0] + s[0] * OH), (p[1], KW * d[1] + s[1] * OW), (0, 0)),
                constant_values=-37)
    want = np.stack([xp[:, kh * d[0]: kh * d[0] + s[0] * OH: s[0], kw * d[1]: kw * d[1] + s[1] * OW: s[1]]
                     for kh in range(KH) for kw in range(KW)], axis=3)
    np.testing.assert_array_equal(cols[:, :KH * KW * C], want.reshape(N * OH * OW, -1))
    assert (cols[:, KH * KW * C:] == 99).all()
    with pytest.raises(rt.InputError, match="fill"):
        K.im2col_nhwc(dev(x), (KH, KW), (OH, OW), s, p[:2], d, fill=200)


# ---------------------------------------------------------------------------- softmax
@pytest.mark.parametrize("M,N", [(1, 1), (3, 7), (2, 67)])
def test_softmax(rng, M, N):
    x = f32(rng, M, N) * 8
    y = host(K.softmax(dev(x), threads=32, blocks=1))
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=1, keepdims=True))
    ref = e / e.sum(axis=1, keepdims=True)
    # exp of a rounded difference (|x - max| <= 64: 64 U), the float32 sum (N U), the
    # reciprocal and the product (2 U)
    check_float(y, (ref, ref * (N + 70) * 2 * U + 1e-37))
    bad = x.copy()
    bad[0, 0] = np.nan
    if M > 1:
        bad[1, N - 1] = np.inf
    yb = host(K.softmax(dev(bad)))
    assert np.isnan(yb[:min(M, 2)]).all() and not np.isnan(yb[2:]).any()


# ---------------------------------------------------------------------------- pools
POOL_CASES = [  # N, H, W, C, kernel, strides, pads, dilations, ceil
    (1, 1, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 0),
    (1, 7, 7, 3, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
    (2, 5, 8, 5, (2, 3), (2, 3), (0, 1, 1, 0), (1, 1), 1),
    (1, 8, 6, 2, (3, 2), (2, 1), (1, 0, 1, 1), (2, 2), 0),
    (1, 6, 6, 3, (3, 3), (2, 2), (0, 0, 0, 0), (1, 1), 1),  # ceil overhang, no pads
]


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("kind", ["max", "avg", "avg_pad"])
def test_pool(rng, case, kind):
    N, H, W, C, k, s, p, d, ceil = case
    x = f32(rng, N, H, W, C)
    a = {"kernel_shape": k, "pads": p, "strides": s, "dilations": d, "ceil_mode": ceil,
         "count_include_pad": int(kind == "avg_pad")}
    OH, OW, _, _ = pool_extent(H, W, a)
    launcher = K.maxpool_nhwc if kind == "max" else K.avgpool_nhwc
    kw = {} if kind == "max" else {"count_include_pad": kind == "avg_pad"}
    y = host(launcher(dev(x), k, (OH, OW), s, p, d, threads=32, blocks=2, **kw))
    ref = reference._pool(x.transpose(0, 3, 1, 2).astype(np.float64), a, kind == "max")
    ref = ref.transpose(0, 2, 3, 1)
    if kind == "max":
        np.testing.assert_array_equal(y, ref.astype(np.float32))
    else:  # a float32 sum of at most KH*KW terms, one division
        mag = -reference._pool(-np.abs(x).transpose(0, 3, 1, 2).astype(np.float64), a, False)
        check_float(y, (ref, 2 * (k[0] * k[1] + 2) * U * mag.transpose(0, 2, 3, 1) + 1e-30))


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 7, 5, 13)])
def test_global_avgpool(rng, shape):
    x = f32(rng, *shape)
    y = host(K.global_avgpool_nhwc(dev(x), threads=32, blocks=1))
    hw = shape[1] * shape[2]
    ref = x.astype(np.float64).mean(axis=(1, 2))
    check_float(y, (ref, 2 * (hw + 2) * U * np.abs(x).astype(np.float64).mean(axis=(1, 2)) + 1e-30))


# --------------------------------------------------------------------------- int8
def rne_u8(v, zp):
    """float64 reference of clamp(round_half_even(v) + zp, 0, 255)."""
    return np.clip(np.rint(v) + zp, 0, 255).astype(np.uint8)


def test_quantize_ties_round_half_to_even():
    scale, zp = 0.25, 3  # a power of two: x / scale and x * (1/scale) are exact
    k = np.arange(-12, 262, dtype=np.float64)
    x = np.concatenate([(k + 0.5) * scale, k * scale, [-1e30, 1e30, 0.0, -0.0]]).astype(np.float32)
    q = host(K.quantize(dev(x), scale, zp, threads=32, blocks=3))
    np.testing.assert_array_equal(q, rne_u8(x.astype(np.float64) / scale, zp))


@pytest.mark.parametrize("shape", [(1,), (37,), (5, 13)])
def test_quantize(rng, shape):
    scale, zp = 0.0371, 117
    x = f32(rng, *shape, scale=4)
    q = host(K.quantize(dev(x), scale, zp, threads=32, blocks=1))
    assert q.shape == x.shape
    check_u8(q, x.astype(np.float64), scale, zp)  # exact except at rounding edges


def test_quantize_rows(rng):
    K_ = 37
    x = np.stack([f32(rng, K_, scale=2), np.abs(f32(rng, K_)) + 0.5, -np.abs(f32(rng, K_)) - 0.1,
                  np.zeros(K_, np.float32), np.full(K_, 3.0, np.float32)])
    x[0, 5] = 0.0
    for threads, blocks in ((32, 2), (128, None)):
        q, sc, zp = (host(a) for a in K.quantize_rows(dev(x), threads=threads, blocks=blocks))
        x64 = x.astype(np.float64)
        lo, hi = np.minimum(0, x64.min(axis=1)), np.maximum(0, x64.max(axis=1))
        want_sc = np.where(hi == lo, 1.0, (hi - lo) / 255)
        np.testing.assert_allclose(sc, want_sc, rtol=4 * U, atol=0)
        # zp and q from the kernel's own float32 scale: exact away from .5 ties
        assert sc.dtype == np.float32 and zp.dtype == np.int32
        check_u8(zp.astype(np.uint8)[:, None], (-lo / sc)[:, None], 1.0, 0)
        check_u8(q, x64 * (1 / sc.astype(np.float64))[:, None], 1.0, zp[:, None])
    assert sc[3] == 1.0 and zp[3] == 0 and (q[3] == 0).all()  # an all-zero row
    assert zp[1] == 0 and zp[2] == 255 and q[1].max() == 255 and q[2].min() == 0


def test_quantize_rows_one_element():
    q, sc, zp = (host(a) for a in K.quantize_rows(dev(np.array([[-2.0]], np.float32)), threads=32))
    assert zp[0] == 255 and q[0, 0] == 0 and sc[0] == np.float32(2.0) / np.float32(255.0)


@pytest.mark.parametrize("shape,extra", [((1,), 3), ((5, 13), 0), ((2, 3, 9), 3)])
def test_signed_is_q_minus_128(rng, shape, extra):
    q = rng.integers(0, 256, shape, dtype=np.uint8)
    q.reshape(-1)[:1] = 0
    q.reshape(-1)[-1:] = 255
    out = np.full((*shape[:-1], shape[-1] + extra), 7, np.int8)
    s, zs = K.signed(dev(q), out=dev(out), threads=32, blocks=2)
    s = host(s)
    assert zs is None
    np.testing.assert_array_equal(s[..., :shape[-1]].astype(np.int32), q.astype(np.int32) - 128)
    assert (s[..., shape[-1]:] == 7).all()
    zp = rng.integers(0, 256, 5).astype(np.int32)
    q2 = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    s2, z2 = K.signed(dev(q2), zero_point=dev(zp))
    np.testing.assert_array_equal(host(z2), zp - 128)
    # (q - zp) is unchanged: what the int8 GEMM and its requantize epilogue rely on
    np.testing.assert_array_equal(host(s2).astype(np.int32) - host(z2)[:, None],
                                  q2.astype(np.int32) - zp[:, None])


def test_dequantize(rng):
    q = rng.integers(0, 256, (5, 13), dtype=np.uint8)
    sc = np.array([0.5, 0.01, 1.0, 3.7, 0.003], np.float32)
    zp = np.array([0, 128, 255, 7, 42], np.int32)
    y = host(K.dequantize(dev(q), dev(sc), dev(zp), threads=32, blocks=1))
    np.testing.assert_array_equal(y, (q.astype(np.int32) - zp[:, None]).astype(np.float32) * sc[:, None])
    y = host(K.dequantize(dev(q), dev(sc[1:2]), dev(zp[1:2]), threads=32))
    np.testing.assert_array_equal(y, (q.astype(np.int32) - 128).astype(np.float32) * sc[1])


@pytest.mark.parametrize("per_row", [True, False])
@pytest.mark.parametrize("act,lo,hi,res,out_u8", [
    ("none", 0, 0, "none", False), ("gelu", 0, 0, "before", False),
    ("relu", 0, 0, "after", False), ("clip", 0.0, 6.0, "none", True),
    ("none", 0, 0, "before", True), ("sigmoid", 0, 0, "after", True)])
def test_requantize(rng, per_row, act, lo, hi, res, out_u8):
    M, Kd, N = 5, 29, 11
    a = rng.integers(0, 256, (M, Kd)).astype(np.uint8)
    w = rng.integers(-127, 128, (Kd, N)).astype(np.int8)
    acc = a.astype(np.int32) @ w.astype(np.int32)
    a_scale = (rng.random(M if per_row else 1) * 0.05 + 0.01).astype(np.float32)
    a_zp = rng.integers(0, 256, M if per_row else 1).astype(np.int32)
    w_scale = (rng.random(N) * 0.01 + 0.001).astype(np.float32)
    bias = f32(rng, N)
    r = f32(rng, M, N) if res != "none" else None
    out_scale, out_zp = 0.05, 10
    y = host(K.requantize(dev(acc), dev(a_scale), dev(a_zp), dev(w_scale), dev(K.colsum(w)),
                          dev(bias), act, lo, hi, None if r is None else dev(r), res == "after",
                          out_scale if out_u8 else None, out_zp, threads=32, blocks=2))
    s = ((acc - a_zp[:, None] * w.astype(np.int64).sum(0)) * a_scale.astype(np.float64)[:, None]
         * w_scale.astype(np.float64))
    ref, tol = epi_ref(s, np.abs(s), 3, bias, r, act, lo, hi, res == "after")
    if out_u8:
        check_u8(y, ref, out_scale, out_zp)
    else:
        check_float(y, (ref, tol))


def test_requantize_reads_n_columns_of_a_wider_acc(rng):
    """cuBLAS's int8 GEMM runs on N padded to a multiple of 4: the epilogue reads the
    first n columns of acc [M, N4] and writes y [M, n]; the padding is never read."""
    M, N = 3, 10
    acc = rng.integers(-5000, 5000, (M, 12)).astype(np.int32)
    acc[:, N:] = 2 ** 30  # would show in y if it were read
    args = (dev(np.full(1, 0.02, np.float32)), dev(np.full(1, 3, np.int32)),
            dev(np.full(N, 0.01, np.float32)), dev(np.arange(N, dtype=np.int32)))
    y = host(K.requantize(dev(acc), *args, n=N, threads=32, blocks=1))
    want = host(K.requantize(dev(np.ascontiguousarray(acc[:, :N])), *args))
    assert y.shape == (M, N)
    np.testing.assert_array_equal(y, want)
    with pytest.raises(rt.ShapeError, match="n: expected 0..12"):
        K.requantize(dev(acc), *args, n=13)


# ----------------------------------------------------------------------------- spmv
def sparse(rng, Kd, N, density):
    w = f32(rng, Kd, N)
    w[rng.random((Kd, N)) >= density] = 0
    w[:, N // 2] = 0  # an empty column
    return w


@pytest.mark.parametrize("Kd,N,density,threads,blocks", [
    (1, 1, 1.0, 32, None), (37, 13, 0.1, 32, 2), (61, 17, 0.05, 64, 3), (200, 9, 0.1, 128, None)])
def test_spmv(rng, Kd, N, density, threads, blocks):
    w = sparse(rng, Kd, N, density)
    x = f32(rng, Kd)
    ip, ix, v = K.csr_by_column(w)
    y = host(K.spmv(dev(x), dev(ip), dev(ix), dev(v), threads=threads, blocks=blocks))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    check_float(y, (x64 @ w64, 2 * (Kd + 2) * U * (np.abs(x64) @ np.abs(w64)) + 1e-30))


def test_spmv_from_the_csr_format_with_epilogue(rng):
    Kd, N = 97, 23
    w = sparse(rng, Kd, N, 0.08)
    wt = rt.formats.encode_csr(w)  # axis 1: CSR of W^T, the kernel's layout as stored
    assert wt.attrs["axis"] == 1
    arr = wt.arrays
    x = f32(rng, 1, Kd)
    b, r = f32(rng, N), f32(rng, 1, N)
    y = host(K.spmv(dev(x), dev(arr["indptr"]), dev(arr["indices"]), dev(arr["values"]),
                    bias=dev(b), act="relu", residual=dev(r), residual_after_act=True,
                    threads=32, blocks=4))
    assert y.shape == (1, N)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    check_float(y, epi_ref(x64 @ w64, np.abs(x64) @ np.abs(w64), Kd, b, r, "relu", 0, 0, True))
