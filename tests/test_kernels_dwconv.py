"""Depthwise conv kernels (every ISA) against an independent float64 numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import _core

from conftest import SUPPORTED_ISAS, isa_w16_params, ref_act

T = _core.testing


@pytest.fixture(params=isa_w16_params())
def isa(request) -> str:
    """Every ISA plus avx2w16 (see conftest.isa_w16_params)."""
    return request.param



def ref_dwconv(x, w, bias=None, residual=None, strides=(1, 1), pads=(0, 0, 0, 0),
               dilations=(1, 1), act="none", lo=-np.inf, hi=np.inf, residual_after_act=False):
    """x (H, W, C), w (C, 1, KH, KW): float64 by padding and strided slicing."""
    x = x.astype(np.float64)
    H, W, C = x.shape
    KH, KW = w.shape[2:]
    sh, sw = strides
    pt, pl, pb, pr = pads
    dh, dw = dilations
    OH = (H + pt + pb - dh * (KH - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
    xp = np.pad(x, ((pt, pb), (pl, pr), (0, 0)))
    y = np.zeros((OH, OW, C))
    for kh in range(KH):
        for kw in range(KW):
            patch = xp[kh * dh: kh * dh + sh * (OH - 1) + 1: sh,
                       kw * dw: kw * dw + sw * (OW - 1) + 1: sw, :]
            y += patch * w[:, 0, kh, kw].astype(np.float64)
    if bias is not None:
        y += bias
    if residual is not None and not residual_after_act:
        y += residual
    y = ref_act(y, act, lo, hi)
    if residual is not None and residual_after_act:
        y += residual
    return y


def check(isa, rng, H, W, C, K, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1),
          with_bias=True, residual=None, act="none", lo=-np.inf, hi=np.inf, raa=False,
          row_split=1):
    KH, KW = K
    x = rng.standard_normal((H, W, C)).astype(np.float32)
    w = rng.standard_normal((C, 1, KH, KW)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32) if with_bias else None
    want = ref_dwconv(x, w, b, None, strides, pads, dilations)
    r = None
    if residual:
        r = rng.standard_normal(want.shape).astype(np.float32)
    want = ref_dwconv(x, w, b, r, strides, pads, dilations, act, lo, hi, raa)
    got = T.dwconv(x, w, bias=b, residual=r, strides=strides, pads=pads, dilations=dilations,
                   act=act, lo=lo, hi=hi, residual_after_act=raa, isa=isa, row_split=row_split)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * math.sqrt(KH * KW) * 3,
                               err_msg=f"H={H} W={W} C={C} K={K} s={strides} p={pads} "
                                       f"d={dilations} act={act} residual={residual}")
    return got


CHANNELS = [1, 3, 7, 8, 15, 16, 17, 31, 33, 67]
FAST = [((3, 3), (1, 1), (1, 1, 1, 1)), ((3, 3), (2, 2), (0, 0, 1, 1)),
        ((3, 3), (2, 2), (1, 1, 1, 1)), ((5, 5), (1, 1), (2, 2, 2, 2)),
        ((5, 5), (2, 2), (2, 2, 2, 2)), ((3, 3), (1, 1), (0, 0, 0, 0)),
        ((3, 3), (1, 1), (3, 3, 4, 3)), ((5, 5), (1, 1), (4, 5, 6, 1)),
        ((5, 5), (2, 2), (1, 2, 3, 0))]


@pytest.mark.parametrize("K,s,p", FAST)
def test_fast_shapes_channels(isa, rng, K, s, p):
    for C in CHANNELS:
        check(isa, rng, 9, 11, C, K, s, p)


@pytest.mark.parametrize("HW", [1, 2, 5, 7, 13, 14, 28])
@pytest.mark.parametrize("K,s,p", FAST)
def test_fast_shapes_spatial(isa, rng, K, s, p, HW):
    W = HW + 1 if HW > 1 else 1
    if HW + p[0] + p[2] < K[0] or W + p[1] + p[3] < K[1]:
        pytest.skip("kernel larger than padded input")
    check(isa, rng, HW, W, 19, K, s, p)


GENERIC = [((1, 1), (1, 1), (0, 0, 0, 0), (1, 1)), ((2, 3), (1, 2), (1, 0, 0, 2), (1, 1)),
           ((3, 3), (1, 1), (2, 2, 2, 2), (2, 2)), ((3, 3), (3, 3), (1, 1, 1, 1), (1, 1)),
           ((7, 7), (1, 1), (3, 3, 3, 3), (1, 1)), ((5, 5), (3, 1), (2, 2, 2, 2), (1, 1)),
           ((3, 5), (2, 1), (1, 2, 1, 2), (2, 1)), ((4, 4), (2, 2), (1, 1, 2, 2), (1, 1))]


@pytest.mark.parametrize("K,s,p,d", GENERIC)
def test_generic_shapes(isa, rng, K, s, p, d):
    for C in [1, 8, 17, 33, 70]:
        check(isa, rng, 13, 10, C, K, s, p, d)


@pytest.mark.parametrize("act", ["none", "relu", "clip", "sigmoid", "tanh", "gelu"])
@pytest.mark.parametrize("residual,raa", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("K,s,p", [FAST[0], FAST[1], ((3, 2), (1, 1), (1, 0, 1, 1))])
def test_epilogue_variants(isa, rng, act, residual, raa, K, s, p):
    check(isa, rng, 7, 9, 21, K, s, p, residual=residual, act=act, lo=-0.5, hi=0.75, raa=raa)
    check(isa, rng, 5, 6, 16, K, s, p, with_bias=False, residual=residual, act=act, lo=-0.5,
          hi=0.75, raa=raa)


@pytest.mark.parametrize("K,s,p", FAST + [((3, 3), (1, 1), (2, 2, 2, 2))])
def test_row_split_is_exact(isa, rng, K, s, p):
    """Running the output rows as several [oh0, oh1) calls gives bitwise the same result."""
    x = rng.standard_normal((14, 13, 35)).astype(np.float32)
    w = rng.standard_normal((35, 1) + K).astype(np.float32)
    b = rng.standard_normal(35).astype(np.float32)
    full = T.dwconv(x, w, b, strides=s, pads=p, act="clip", lo=0, hi=6, isa=isa)
    for split in (2, 3, 7, 50):
        part = T.dwconv(x, w, b, strides=s, pads=p, act="clip", lo=0, hi=6, isa=isa,
                        row_split=split)
        np.testing.assert_array_equal(part, full)


def test_batched_input(isa, rng):
    x = rng.standard_normal((3, 6, 7, 12)).astype(np.float32)
    w = rng.standard_normal((12, 1, 3, 3)).astype(np.float32)
    r = rng.standard_normal((3, 3, 4, 12)).astype(np.float32)
    got = T.dwconv(x, w, residual=r, strides=(2, 2), pads=(1, 1, 1, 1), isa=isa)
    for n in range(3):
        want = ref_dwconv(x[n], w, None, r[n], (2, 2), (1, 1, 1, 1))
        np.testing.assert_allclose(got[n], want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("H,C,s", [(56, 144, 2), (28, 96, 1)])
def test_mobilenet_sized(isa, rng, H, C, s):
    check(isa, rng, H, H, C, (3, 3), (s, s), (1, 1, 1, 1), act="clip", lo=0.0, hi=6.0)


def test_all_isas_agree(rng):
    x = rng.standard_normal((11, 12, 37)).astype(np.float32)
    w = rng.standard_normal((37, 1, 3, 3)).astype(np.float32)
    outs = [T.dwconv(x, w, pads=(1, 1, 1, 1), isa=i) for i in SUPPORTED_ISAS + ("avx2w16",)
            if i != "avx2w16" or "avx2" in SUPPORTED_ISAS]
    for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], rtol=1e-5, atol=1e-5)


def test_errors(rng):
    x = np.zeros((5, 5, 4), np.float32)
    w = np.zeros((4, 1, 3, 3), np.float32)
    with pytest.raises(rt.ShapeError, match=r"w must be \[C=4"):
        T.dwconv(x, np.zeros((3, 1, 3, 3), np.float32))
    with pytest.raises(rt.ShapeError, match="NHWC"):
        T.dwconv(np.zeros((5, 5), np.float32), w)
    with pytest.raises(rt.ShapeError, match="larger than the padded input"):
        T.dwconv(np.zeros((2, 2, 4), np.float32), w)
    with pytest.raises(rt.ShapeError, match="bias"):
        T.dwconv(x, w, bias=np.zeros(5, np.float32))
    with pytest.raises(rt.ShapeError, match="residual"):
        T.dwconv(x, w, residual=np.zeros((5, 5, 4), np.float32))
    with pytest.raises(rt.InputError, match="strides"):
        T.dwconv(x, w, strides=(0, 1))
    with pytest.raises(rt.InputError, match="pads"):
        T.dwconv(x, w, pads=(1, 1))
    with pytest.raises(rt.InputError, match="unknown activation"):
        T.dwconv(x, w, act="swish")
    with pytest.raises(rt.IsaError):
        T.dwconv(x, w, isa="sse9")


def test_concurrent_calls_match_serial(isa, rng):
    """The binding releases the GIL and the kernels keep no shared state."""
    from concurrent.futures import ThreadPoolExecutor
    xs = [rng.standard_normal((15, 14, 40)).astype(np.float32) for _ in range(6)]
    w = rng.standard_normal((40, 1, 3, 3)).astype(np.float32)
    run = lambda x: T.dwconv(x, w, act="gelu", strides=(2, 2), pads=(1, 1, 1, 1), isa=isa)
    serial = [run(x) for x in xs]
    with ThreadPoolExecutor(4) as ex:
        for got, want in zip(ex.map(run, xs * 3), serial * 3):
            np.testing.assert_array_equal(got, want)
