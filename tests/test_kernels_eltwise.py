"""Elementwise kernels (every ISA): add, activations, epilogue, softmax, against float64
numpy references over wide ranges including +-inf, NaN, denormals and -0.0.

Documented NaN behaviour (all ISAs): every activation propagates NaN (relu(NaN) = NaN,
clip(NaN) = NaN); softmax of a row holding NaN or +inf is NaN for the whole row."""

from __future__ import annotations


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
ACTS = ["none", "relu", "clip", "sigmoid", "tanh", "gelu"]



def wide_inputs(rng) -> np.ndarray:
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-38, -1e-38,
                        1e-30, -1e-30, 1e-7, -1e-7, 0.625, -0.625, 88.7, 88.8, -88.7, -88.8,
                        -87.3, -103.9, -104.5, 89.0, 200.0, -200.0, 3.4e38, -3.4e38, 9.0,
                        -9.0, 3.9, -3.9, 4.1, -4.1, 0.5, -0.5, 1.0, -1.0], np.float64)
    grid = np.linspace(-110.0, 110.0, 44001)
    fine = np.linspace(-6.0, 6.0, 24001)
    logs = np.concatenate([np.logspace(-40, 38.5, 2000), -np.logspace(-40, 38.5, 2000)])
    return np.concatenate([special, grid, fine, logs, rng.standard_normal(1001) * 3]).astype(
        np.float32)


def assert_act_close(x, got, act, lo=-np.inf, hi=np.inf):
    want = ref_act(x, act, lo, hi)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan, err_msg=f"{act}: NaN pattern")
    g, w, xx = got[~nan].astype(np.float64), want[~nan], x[~nan].astype(np.float64)
    if act in ("none", "relu", "clip"):
        np.testing.assert_array_equal(g, w)
        return
    inf = np.isinf(w)
    np.testing.assert_array_equal(g[inf], w[inf])
    g, w, xx = g[~inf], w[~inf], xx[~inf]
    if act == "gelu":
        # erf is accurate to ~1e-7 absolute, so 1 + erf(x) is only that accurate: the
        # bound scales with |x| where the result is tiny.
        tol = 2e-6 * np.abs(w) + 2e-7 * np.maximum(np.abs(xx), 1.0)
    else:
        tol = 2e-6 * np.abs(w) + 1e-37
    err = np.abs(g - w)
    bad = err > tol
    assert not bad.any(), (f"{act}: {bad.sum()} outside tolerance, worst x="
                           f"{xx[bad][np.argmax(err[bad] / tol[bad])]}")


@pytest.mark.parametrize("act", ACTS)
def test_activation_wide_range(isa, rng, act):
    x = wide_inputs(rng)
    lo, hi = (-0.5, 6.0) if act == "clip" else (-np.inf, np.inf)
    assert_act_close(x, T.activation(x, act, lo, hi, isa=isa), act, lo, hi)


@pytest.mark.parametrize("act", ACTS)
def test_activation_sizes_inplace(isa, rng, act):
    for n in [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1031]:
        x = (rng.standard_normal(n) * 4).astype(np.float32)
        a = T.activation(x, act, -1.0, 2.5, isa=isa)
        b = T.activation(x, act, -1.0, 2.5, inplace=True, isa=isa)
        np.testing.assert_array_equal(a, b, err_msg=f"n={n}")
        assert_act_close(x, a, act, -1.0, 2.5)


def test_activation_special_values(isa):
    x = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], np.float32)
    nan, inf = np.nan, np.inf
    for act, want in [("relu", [nan, inf, 0.0, -0.0, 0.0]), ("clip", [nan, 6.0, -1.0, -0.0, 0.0]),
                      ("sigmoid", [nan, 1.0, 0.0, 0.5, 0.5]), ("tanh", [nan, 1.0, -1.0, -0.0, 0.0]),
                      ("gelu", [nan, inf, 0.0, -0.0, 0.0])]:
        got = T.activation(x, act, -1.0, 6.0, isa=isa)
        np.testing.assert_array_equal(got, np.array(want, np.float32), err_msg=act)
    # Signs of zero: relu keeps -0.0 (max(x, 0) with x second), tanh(-0.0) = -0.0.
    assert np.signbit(T.activation(x, "tanh", isa=isa)[3])


@pytest.mark.parametrize("n", [0, 1, 3, 7, 8, 9, 16, 17, 33, 64, 1000, 4099])
@pytest.mark.parametrize("sa,sb", [(1, 1), (0, 1), (1, 0), (0, 0)])
def test_add(isa, rng, n, sa, sb):
    a = rng.standard_normal(n if sa else 1).astype(np.float32)
    b = rng.standard_normal(n if sb else 1).astype(np.float32)
    got = T.add(a, b, sa, sb, n=n if not (sa or sb) else None, isa=isa)
    want = (a.astype(np.float64) + b) if (sa or sb) else np.full(n, float(a[0]) + b[0])
    assert got.shape == (n,)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(got, (a + b) if (sa or sb) else np.full(n, a[0] + b[0]))


SHAPES = [(1, 1), (3, 7), (2, 8), (5, 17), (4, 33), (2, 100)]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("residual,raa", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_epilogue(isa, rng, act, residual, raa, with_bias):
    for rows, cols in SHAPES:
        for ld_pad in (0, 3):
            y = (rng.standard_normal((rows, cols)) * 2).astype(np.float32)
            b = rng.standard_normal(cols).astype(np.float32) if with_bias else None
            r = rng.standard_normal((rows, cols)).astype(np.float32) if residual else None
            got = T.epilogue(y, b, r, act, -0.5, 0.75, raa, ld_pad=ld_pad, isa=isa)
            v = y.astype(np.float64) + (b if b is not None else 0.0)
            if r is not None and not raa:
                v = v + r
            v = ref_act(v, act, -0.5, 0.75)
            if r is not None and raa:
                v = v + r
            np.testing.assert_allclose(got, v, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 7), (2, 8), (5, 17), (4, 33), (2, 1000),
                                       (1, 4099)])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_softmax(isa, rng, rows, cols, scale):
    x = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
    if cols > 1:
        x[0, 0] = -np.inf  # a zero probability, not a NaN
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=1, keepdims=True))
    want = e / e.sum(axis=1, keepdims=True)
    got = T.softmax(x, isa=isa)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(T.softmax(x, inplace=True, isa=isa), got)
    assert np.all(np.isfinite(got))


def test_softmax_nan_rows(isa):
    x = np.array([[1.0, np.nan, 2.0], [1.0, np.inf, 2.0], [0.0, 1.0, 2.0]], np.float32)
    got = T.softmax(x, isa=isa)
    assert np.isnan(got[0]).all() and np.isnan(got[1]).all()
    assert np.isfinite(got[2]).all()


def test_errors():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(rt.InputError, match="unknown activation"):
        T.activation(x, "swish")
    with pytest.raises(rt.InputError, match="sa and sb"):
        T.add(x.ravel(), x.ravel(), 2, 1)
    with pytest.raises(rt.ShapeError, match="b must hold 12"):
        T.add(x.ravel(), np.zeros(5, np.float32))
    with pytest.raises(rt.ShapeError, match="bias"):
        T.epilogue(x, np.zeros(3, np.float32))
    with pytest.raises(rt.ShapeError, match="residual"):
        T.epilogue(x, None, np.zeros((4, 3), np.float32))
    with pytest.raises(rt.ShapeError, match="2-D"):
        T.softmax(np.zeros(5, np.float32))
    with pytest.raises(rt.IsaError):
        T.softmax(x, isa="neon")


def test_clip_bounds_crossed(isa, rng):
    """lo > hi gives hi everywhere, as np.clip / min(max(x, lo), hi)."""
    x = (rng.standard_normal(37) * 5).astype(np.float32)
    np.testing.assert_array_equal(T.activation(x, "clip", 2.0, 1.0, isa=isa),
                                  np.clip(x, 2.0, 1.0))
