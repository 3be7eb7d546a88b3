"""rt.info() and run-time ISA dispatch, including PYRUNTIME_ISA forcing (in subprocesses,
since the choice is made once per process)."""

from __future__ import annotations

import os
import subprocess

import pytest

import pyruntime as rt
from pyruntime import _core
from conftest import ALL_ISAS, SUPPORTED_ISAS, run_python


def test_info_fields():
    d = rt.info()
    for key in ("version", "compiler", "openmp", "max_threads", "cpu_features", "isa",
                "best_isa", "supported_isas", "kernels"):
        assert key in d, key
    assert d["version"] == rt.__version__
    assert d["isa"] in SUPPORTED_ISAS
    assert d["max_threads"] >= 1
    assert set(d["kernels"]) >= {"gemm", "dwconv", "pool", "eltwise"}
    for family, name in d["kernels"].items():
        # spec names end with their ISA, e.g. f32_gemm_6x16__avx2
        assert name.startswith("f32_") and "__" in name, (family, name)


def test_best_isa_is_the_widest_supported():
    d = rt.info()
    assert d["best_isa"] == SUPPORTED_ISAS[-1]
    assert list(d["supported_isas"]) == list(SUPPORTED_ISAS)


@pytest.mark.parametrize("isa", SUPPORTED_ISAS)
def test_kernel_names_per_isa(isa):
    names = _core.kernels_for(isa)
    for family, name in names.items():
        # a family without a kernel at this ISA falls back to a lower one
        lower = ALL_ISAS[: ALL_ISAS.index(isa) + 1]
        assert name.rsplit("__", 1)[-1] in lower, (family, name)


def _info_in_subprocess(env_isa: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYRUNTIME_ISA=env_isa)
    code = "import pyruntime as rt, json; print(json.dumps(rt.info()['isa']))"
    return run_python(code, env=env)


@pytest.mark.parametrize("isa", SUPPORTED_ISAS)
def test_forced_isa_is_used(isa):
    r = _info_in_subprocess(isa)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f'"{isa}"'


def test_forcing_an_unsupported_or_unknown_isa_is_a_clear_error():
    missing = [i for i in ALL_ISAS if i not in SUPPORTED_ISAS]
    for bad in missing + ["sse9"]:
        r = _info_in_subprocess(bad)
        assert r.returncode != 0
        assert "IsaError" in r.stderr and "PYRUNTIME_ISA" in r.stderr, r.stderr
        assert bad in r.stderr


def test_peak_probe_is_positive():
    if "avx2" not in SUPPORTED_ISAS:
        pytest.skip("no AVX2")
    assert _core.testing.peak_gflops("avx2", 1, 200000) > 0.1
