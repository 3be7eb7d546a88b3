"""Pooling kernels (every ISA) against an independent float64 numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import _core

from conftest import isa_w16_params

T = _core.testing


@pytest.fixture(params=isa_w16_params())
def isa(request) -> str:
    """Every ISA plus avx2w16 (see conftest.isa_w16_params)."""
    return request.param


def out_size(n, pa, pz, e, s, ceil):
    """ONNX output size; with ceil_mode a window may start inside the padded input and
    run past it, but never start inside the bottom/right padding."""
    if not ceil:
        return (n + pa + pz - e) // s + 1
    o = -(-(n + pa + pz - e) // s) + 1
    return o - 1 if (o - 1) * s >= n + pa else o


def windows(x, kernel, strides, pads, dilations, fill, ceil=False):
    """Yields (patch, inside, in_pad) for each tap: the padded, strided view of x, a mask
    of taps inside the image and one of taps inside the padded image (ceil mode's last
    window may run past it)."""
    H, W, C = x.shape
    KH, KW = kernel
    sh, sw = strides
    pt, pl, pb, pr = pads
    dh, dw = dilations
    OH = out_size(H, pt, pb, dh * (KH - 1) + 1, sh, ceil)
    OW = out_size(W, pl, pr, dw * (KW - 1) + 1, sw, ceil)
    eh = max(0, (OH - 1) * sh + dh * (KH - 1) + 1 - (H + pt + pb))   # overhang rows
    ew = max(0, (OW - 1) * sw + dw * (KW - 1) + 1 - (W + pl + pr))
    xp = np.pad(x.astype(np.float64), ((pt, pb + eh), (pl, pr + ew), (0, 0)),
                constant_values=fill)
    inside = np.pad(np.ones((H, W)), ((pt, pb + eh), (pl, pr + ew)))
    in_pad = np.pad(np.ones((H + pt + pb, W + pl + pr)), ((0, eh), (0, ew)))
    for kh in range(KH):
        for kw in range(KW):
            sl = (slice(kh * dh, kh * dh + sh * (OH - 1) + 1, sh),
                  slice(kw * dw, kw * dw + sw * (OW - 1) + 1, sw))
            yield xp[sl], inside[sl], in_pad[sl]


def ref_maxpool(x, kernel, strides, pads, dilations):
    out = None
    for patch, *_ in windows(x, kernel, strides, pads, dilations, -np.inf):
        out = patch.copy() if out is None else np.fmax(out, patch)
    # NaN anywhere in a window propagates (np.fmax ignored it above).
    nan = None
    for patch, *_ in windows(np.isnan(x).astype(np.float64), kernel, strides, pads, dilations, 0):
        nan = patch if nan is None else np.maximum(nan, patch)
    return np.where(nan > 0, np.nan, out)


def ref_avgpool(x, kernel, strides, pads, dilations, count_include_pad, ceil=False):
    total = count = None
    for patch, inside, in_pad in windows(x, kernel, strides, pads, dilations, 0.0, ceil):
        c = in_pad if count_include_pad else inside
        total = patch.copy() if total is None else total + patch
        count = c.copy() if count is None else count + c
    return total / np.maximum(count, 1)[:, :, None]


CASES = [((2, 2), (2, 2), (0, 0, 0, 0), (1, 1)), ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
         ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1)), ((3, 2), (1, 3), (0, 1, 2, 1), (1, 1)),
         ((3, 3), (2, 1), (2, 2, 2, 2), (2, 2)), ((1, 1), (2, 2), (0, 0, 0, 0), (1, 1)),
         ((5, 5), (3, 3), (2, 2, 1, 1), (1, 1)), ((2, 3), (1, 1), (0, 0, 1, 1), (3, 2))]


CHANNELS = [1, 3, 8, 16, 17, 31, 33, 70]


@pytest.mark.parametrize("kernel,strides,pads,dil", CASES)
def test_maxpool(isa, rng, kernel, strides, pads, dil):
    for C in CHANNELS:
        x = rng.standard_normal((9, 8, C)).astype(np.float32)
        got = T.maxpool(x, kernel, strides, pads, dil, isa=isa)
        np.testing.assert_array_equal(got, ref_maxpool(x, kernel, strides, pads, dil))


@pytest.mark.parametrize("cip", [False, True])
@pytest.mark.parametrize("kernel,strides,pads,dil", CASES)
def test_avgpool(isa, rng, kernel, strides, pads, dil, cip):
    for C in CHANNELS:
        x = rng.standard_normal((9, 8, C)).astype(np.float32)
        got = T.avgpool(x, kernel, strides, pads, dil, count_include_pad=cip, isa=isa)
        np.testing.assert_allclose(got, ref_avgpool(x, kernel, strides, pads, dil, cip),
                                   rtol=1e-5, atol=1e-6, err_msg=f"C={C}")


@pytest.mark.parametrize("cip", [False, True])
@pytest.mark.parametrize("kernel,strides,pads,dil", CASES + [
    ((2, 4), (2, 1), (0, 0, 0, 3), (1, 1)), ((3, 3), (2, 2), (0, 0, 1, 0), (1, 1)),
    # dilated windows that ceil_mode runs past the padding (ONNX AveragePool-19)
    ((2, 2), (1, 1), (0, 0, 0, 0), (2, 2)), ((3, 2), (2, 3), (1, 0, 2, 1), (2, 3)),
    ((2, 3), (3, 2), (1, 1, 1, 2), (3, 2))])
def test_avgpool_ceil_mode_divides_by_taps_inside_the_padded_input(isa, rng, kernel, strides,
                                                                   pads, dil, cip):
    """ceil_mode's last window may run past the bottom/right padding: count_include_pad
    then counts only its taps inside the padded input (ONNX, onnxruntime)."""
    for H, W in [(9, 8), (3, 1), (10, 7)]:
        for C in (1, 17):
            if H + pads[0] + pads[2] < dil[0] * (kernel[0] - 1) + 1 or \
                    W + pads[1] + pads[3] < dil[1] * (kernel[1] - 1) + 1:
                continue          # the kernel is larger than the padded input
            x = rng.standard_normal((H, W, C)).astype(np.float32)
            want = ref_avgpool(x, kernel, strides, pads, dil, cip, ceil=True)
            got = T.avgpool(x, kernel, strides, pads, dil, count_include_pad=cip, isa=isa,
                            ceil_mode=True)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{H}x{W}x{C}")


@pytest.mark.parametrize("HW", [1, 2, 5, 7, 13, 14, 28])
def test_spatial_sizes_and_row_split(isa, rng, HW):
    x = rng.standard_normal((HW, HW + 2, 19)).astype(np.float32)
    k, s, p = (3, 3), (2, 2), (1, 1, 1, 1)
    mx = T.maxpool(x, k, s, p, isa=isa)
    av = T.avgpool(x, k, s, p, isa=isa)
    np.testing.assert_array_equal(mx, ref_maxpool(x, k, s, p, (1, 1)))
    np.testing.assert_allclose(av, ref_avgpool(x, k, s, p, (1, 1), False), rtol=1e-5, atol=1e-6)
    for split in (2, 3, 40):
        np.testing.assert_array_equal(T.maxpool(x, k, s, p, isa=isa, row_split=split), mx)
        np.testing.assert_array_equal(T.avgpool(x, k, s, p, isa=isa, row_split=split), av)


def test_maxpool_nan_and_inf(isa, rng):
    """Documented: NaN in a window gives NaN; +-inf behave as numbers."""
    x = rng.standard_normal((6, 6, 20)).astype(np.float32)
    x[0, 0, 0] = np.nan
    x[3, 4, 1] = np.nan
    x[2, 2, 2] = np.inf
    x[5, 5, 3] = -np.inf
    x[:, :, 19] = -np.inf
    got = T.maxpool(x, (3, 3), (2, 2), (1, 1, 1, 1), isa=isa)
    want = ref_maxpool(x, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1))
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[0, 0, 0]) and np.isposinf(got[1, 1, 2])


@pytest.mark.parametrize("HW", [(1, 1), (2, 3), (7, 7), (14, 13)])
def test_global_avgpool(isa, rng, HW):
    for C in [1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 67, 1280]:
        x = (rng.standard_normal(HW + (C,)) + 3.0).astype(np.float32)
        got = T.global_avgpool(x, isa=isa)
        np.testing.assert_allclose(got, x.astype(np.float64).mean(axis=(0, 1)), rtol=1e-5,
                                   atol=1e-6, err_msg=f"C={C}")


def test_large(isa, rng):
    x = rng.standard_normal((112, 112, 24)).astype(np.float32)
    k, s, p = (3, 3), (2, 2), (0, 0, 1, 1)
    np.testing.assert_array_equal(T.maxpool(x, k, s, p, isa=isa), ref_maxpool(x, k, s, p, (1, 1)))
    np.testing.assert_allclose(T.global_avgpool(x, isa=isa), x.astype(np.float64).mean((0, 1)),
                               rtol=1e-5, atol=1e-6)


def test_errors():
    x = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(rt.ShapeError, match="HWC"):
        T.maxpool(np.zeros((4, 4), np.float32), (2, 2))
    with pytest.raises(rt.ShapeError, match="larger than the padded input"):
        T.avgpool(x, (5, 5))
    with pytest.raises(rt.InputError, match="kernel"):
        T.maxpool(x, (0, 2))
    with pytest.raises(rt.InputError, match="strides"):
        T.maxpool(x, (2, 2), (1,))
    with pytest.raises(rt.InputError, match="pads"):
        T.avgpool(x, (2, 2), (1, 1), (-1, 0, 0, 0))
    with pytest.raises(rt.ShapeError):
        T.global_avgpool(np.zeros((0, 4, 3), np.float32))
    with pytest.raises(rt.IsaError):
        T.global_avgpool(x, isa="avx1024")
