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


def run_python(code: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -c code` in a child process. Its cwd is this folder, so it imports the
    package under test, never a source checkout that lacks the compiled module."""
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=os.path.dirname(os.path.abspath(__file__)))
