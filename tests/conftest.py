"""Shared test fixtures: the ISAs this machine can run, seeded RNGs."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from pyruntime import _core

ALL_ISAS = ("scalar", "avx2", "avx512")
#: Every ISA this CPU/OS supports; kernel tests run each of them.
SUPPORTED_ISAS = tuple(i for i in ALL_ISAS if _core.isa_supported(i))


def isa_params():
    """pytest params over all ISAs; unsupported ones are skipped with a reason."""
    return [pytest.param(i, marks=pytest.mark.skipif(i not in SUPPORTED_ISAS,
                                                     reason=f"CPU lacks {i}"))
            for i in ALL_ISAS]


@pytest.fixture(params=isa_params())
def isa(request) -> str:
    return request.param


@pytest.fixture(autouse=True, scope="session")
def _split_every_step():
    """Every step a Session with threads > 1 may split is split in tests (in real use the
    cost model keeps steps estimated under a few microseconds on one thread): the
    parallel paths of every step and the worker pool then run in every test that uses
    threads > 1, including the sanitizer lanes. Results never depend on the split."""
    old = _core.testing.min_parallel_us()
    _core.testing.set_min_parallel_us(0)
    yield
    _core.testing.set_min_parallel_us(old)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def isa_w16_params():
    """isa_params() plus "avx2w16": the 16-lane (AVX-512) template logic built from AVX2
    halves, so width-16 tails and blocking are tested on machines without AVX-512."""
    return isa_params() + [pytest.param(
        "avx2w16", marks=pytest.mark.skipif("avx2" not in SUPPORTED_ISAS, reason="CPU lacks avx2"))]


_erf = np.vectorize(math.erf, otypes=[np.float64])


def ref_act(v: np.ndarray, act: str, lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """float64 reference of the fused activations (NaN propagates; gelu(-inf) = 0)."""
    v = np.asarray(v, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if act == "none":
            return v
        if act == "relu":
            return np.where(v < 0, 0.0, v)
        if act == "clip":
            return np.clip(v, lo, hi)
        if act == "sigmoid":
            return 1.0 / (1.0 + np.exp(-v))
        if act == "tanh":
            return np.tanh(v)
        if act == "gelu":
            g = 0.5 * v * (1.0 + _erf(v / math.sqrt(2.0)))
            return np.where(v == -np.inf, 0.0, g)
    raise AssertionError(act)


def check_float(y: np.ndarray, ref_tol: tuple) -> None:
    """A float32 kernel output against (float64 reference, per-element bound); the first
    element off is named."""
    ref, tol = ref_tol
    assert y.dtype == np.float32 and y.shape == ref.shape
    bad = ~(np.abs(y.astype(np.float64) - ref) <= tol)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{bad.sum()} of {bad.size} off; first at {i}: got {y[i]!r}, "
                             f"want {ref[i]!r} (tol {tol[i]:.3g})")


def check_u8(q: np.ndarray, v: np.ndarray, out_scale: float, out_zp: int) -> None:
    """A uint8 kernel output against the float64 values v requantized: within one step,
    exact away from rounding edges."""
    x = v / np.float64(out_scale)
    want = np.clip(np.rint(x) + out_zp, 0, 255)
    near_edge = np.abs(np.abs(x - np.floor(x)) - 0.5) < 1e-3
    assert q.dtype == np.uint8 and q.shape == want.shape
    d = np.abs(q.astype(np.int64) - want.astype(np.int64))
    assert (d <= 1).all(), f"max step error {d.max()}"
    assert (d[~near_edge] == 0).all(), f"{(d[~near_edge] != 0).sum()} off away from edges"


def run_python(code: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -c code` in a child process. Its cwd is this folder, so it imports the
    package under test, never a source checkout that lacks the compiled module."""
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=os.path.dirname(os.path.abspath(__file__)))


def cuda_kernels_or_skip():
    """numba_compat for a test module of the CUDA backend: under Numba's CUDA simulator
    (NUMBA_ENABLE_CUDASIM=1 unless the environment says otherwise: set before numba.cuda
    is first imported) or on a visible GPU; else the whole module skips with one reason."""
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    try:
        from pyruntime.cuda import numba_compat
    except ImportError as e:  # rt.MissingDependencyError: numba / numba-cuda not installed
        pytest.skip(f"numba-cuda not installed: {e}", allow_module_level=True)
    if not numba_compat.simulator() and not numba_compat.cuda.is_available():
        pytest.skip("numba.cuda was imported without NUMBA_ENABLE_CUDASIM=1 and no GPU is "
                    "visible", allow_module_level=True)
    return numba_compat
