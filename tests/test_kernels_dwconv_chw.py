"""Planar (NCHW) depthwise conv kernels, f32_dwconv2d_chw, at every ISA against the
float64 reference of test_kernels_dwconv (run on the NHWC view of the same data)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import _core

from conftest import SUPPORTED_ISAS, isa_w16_params
from test_kernels_dwconv import FAST, GENERIC, ref_dwconv

T = _core.testing


@pytest.fixture(params=isa_w16_params())
def isa(request) -> str:
    return request.param


def ref_chw(x, w, bias=None, residual=None, strides=(1, 1), pads=(0, 0, 0, 0),
            dilations=(1, 1), act="none", lo=-np.inf, hi=np.inf, raa=False):
    """x (C, H, W) -> (C, OH, OW) in float64, through the NHWC reference."""
    r = None if residual is None else residual.transpose(1, 2, 0)
    y = ref_dwconv(x.transpose(1, 2, 0), w, bias, r, strides, pads, dilations, act, lo, hi, raa)
    return y.transpose(2, 0, 1)


def check(isa, rng, C, H, W, K, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1),
          with_bias=True, residual=False, act="none", lo=-np.inf, hi=np.inf, raa=False,
          row_split=1, plane_split=1):
    KH, KW = K
    x = rng.standard_normal((C, H, W)).astype(np.float32)
    w = rng.standard_normal((C, 1, KH, KW)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32) if with_bias else None
    shape = ref_chw(x, w, None, None, strides, pads, dilations).shape
    r = rng.standard_normal(shape).astype(np.float32) if residual else None
    want = ref_chw(x, w, b, r, strides, pads, dilations, act, lo, hi, raa)
    got = T.dwconv_chw(x, w, bias=b, residual=r, strides=strides, pads=pads,
                       dilations=dilations, act=act, lo=lo, hi=hi, residual_after_act=raa,
                       isa=isa, row_split=row_split, plane_split=plane_split)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * math.sqrt(KH * KW) * 3,
                               err_msg=f"C={C} H={H} W={W} K={K} s={strides} p={pads} "
                                       f"d={dilations} act={act} residual={residual}")
    return got


# Widths around the vector width (1, primes, 15/16/17, 31/33) and the stride-2 split.
WIDTHS = [1, 2, 3, 5, 7, 8, 13, 15, 16, 17, 23, 31, 32, 33, 47, 64, 67]


@pytest.mark.parametrize("K,s,p", FAST)
def test_fast_shapes_widths(isa, rng, K, s, p):
    for W in WIDTHS:
        if W + p[1] + p[3] < K[1]:
            continue
        check(isa, rng, 3, 9, W, K, s, p)


@pytest.mark.parametrize("H", [1, 2, 5, 7, 13, 28])
@pytest.mark.parametrize("K,s,p", FAST)
def test_fast_shapes_heights(isa, rng, K, s, p, H):
    if H + p[0] + p[2] < K[0]:
        pytest.skip("kernel larger than padded input")
    check(isa, rng, 5, H, 19, K, s, p)


@pytest.mark.parametrize("K,s,p,d", GENERIC + [((1, 7), (1, 3), (0, 3, 0, 3), (1, 1)),
                                               ((7, 1), (2, 1), (3, 0, 3, 0), (1, 1)),
                                               ((3, 3), (4, 4), (5, 6, 5, 6), (1, 1)),
                                               ((2, 2), (1, 1), (0, 0, 0, 0), (5, 7))])
def test_generic_shapes(isa, rng, K, s, p, d):
    for C, W in [(1, 10), (4, 17), (3, 37)]:
        check(isa, rng, C, 13, W, K, s, p, d)


@pytest.mark.parametrize("act", ["none", "relu", "clip", "sigmoid", "tanh", "gelu"])
@pytest.mark.parametrize("residual,raa", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("K,s,p", [FAST[0], FAST[1], ((3, 2), (1, 1), (1, 0, 1, 1))])
def test_epilogue_variants(isa, rng, act, residual, raa, K, s, p):
    check(isa, rng, 4, 7, 21, K, s, p, residual=residual, act=act, lo=-0.5, hi=0.75, raa=raa)
    check(isa, rng, 3, 5, 6, K, s, p, with_bias=False, residual=residual, act=act, lo=-0.5,
          hi=0.75, raa=raa)


@pytest.mark.parametrize("K,s,p", FAST + [((3, 3), (1, 1), (2, 2, 2, 2))])
def test_splits_are_exact(isa, rng, K, s, p):
    """Planes and output rows run as separate calls give bitwise the same result."""
    x = rng.standard_normal((7, 14, 29)).astype(np.float32)
    w = rng.standard_normal((7, 1) + K).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    full = T.dwconv_chw(x, w, b, strides=s, pads=p, act="clip", lo=0, hi=6, isa=isa)
    for rs, ps in [(2, 1), (3, 2), (7, 7), (50, 3)]:
        part = T.dwconv_chw(x, w, b, strides=s, pads=p, act="clip", lo=0, hi=6, isa=isa,
                            row_split=rs, plane_split=ps)
        np.testing.assert_array_equal(part, full)


def test_batched_planes_use_channel_p_mod_c(isa, rng):
    x = rng.standard_normal((3, 5, 8, 11)).astype(np.float32)
    w = rng.standard_normal((5, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    r = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)
    got = T.dwconv_chw(x, w, b, residual=r, strides=(2, 2), pads=(1, 1, 1, 1), act="relu",
                       isa=isa, plane_split=4)
    for n in range(3):
        want = ref_chw(x[n], w, b, r[n], (2, 2), (1, 1, 1, 1), act="relu")
        np.testing.assert_allclose(got[n], want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("C,HW,K,s", [(4, 112, 3, 1), (6, 56, 3, 2), (5, 28, 5, 1),
                                      (3, 57, 5, 2)])
def test_bench_sized(isa, rng, C, HW, K, s):
    check(isa, rng, C, HW, HW, (K, K), (s, s), (K // 2,) * 4, act="clip", lo=0.0, hi=6.0)


def test_nan_inf_propagate(isa, rng):
    x = rng.standard_normal((2, 9, 20)).astype(np.float32)
    x[0, 4, 7] = np.nan
    x[1, 2, 19] = np.inf
    w = np.abs(rng.standard_normal((2, 1, 3, 3))).astype(np.float32) + 0.1
    got = T.dwconv_chw(x, w, pads=(1, 1, 1, 1), isa=isa)
    want = ref_chw(x, w, pads=(1, 1, 1, 1))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-5, atol=1e-4)


def test_matches_nhwc_kernel(rng):
    """Both layouts of the same layer agree at every ISA."""
    x = rng.standard_normal((37, 11, 12)).astype(np.float32)
    w = rng.standard_normal((37, 1, 3, 3)).astype(np.float32)
    for i in SUPPORTED_ISAS:
        a = T.dwconv_chw(x, w, pads=(1, 1, 1, 1), strides=(2, 2), isa=i)
        b = T.dwconv(x.transpose(1, 2, 0).copy(), w, pads=(1, 1, 1, 1), strides=(2, 2), isa=i)
        np.testing.assert_allclose(a, b.transpose(2, 0, 1), rtol=1e-5, atol=1e-5)


def test_errors():
    x = np.zeros((4, 5, 5), np.float32)
    w = np.zeros((4, 1, 3, 3), np.float32)
    with pytest.raises(rt.ShapeError, match=r"w must be \[C=4"):
        T.dwconv_chw(x, np.zeros((3, 1, 3, 3), np.float32))
    with pytest.raises(rt.ShapeError, match="NCHW"):
        T.dwconv_chw(np.zeros((5, 5), np.float32), w)
    with pytest.raises(rt.ShapeError, match="larger than the padded input"):
        T.dwconv_chw(np.zeros((4, 2, 2), np.float32), w)
    with pytest.raises(rt.ShapeError, match="residual"):
        T.dwconv_chw(x, w, residual=np.zeros((5, 5, 4), np.float32))
    with pytest.raises(rt.InputError, match="plane_split"):
        T.dwconv_chw(x, w, plane_split=0)
