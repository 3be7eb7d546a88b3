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
    for key in ("version", "compiler", "threading", "max_threads", "pool_workers", "cpu_features", "isa",
                "best_isa", "supported_isas", "kernels"):
        assert key in d, key
    assert d["version"] == rt.__version__
    assert d["isa"] in SUPPORTED_ISAS
    assert d["max_threads"] >= 1
    assert set(d["kernels"]) >= {"f32_gemm", "f32_dwconv", "f32_pool", "f32_eltwise",
                                 "x32_transpose"}
    for entry, name in d["kernels"].items():
        # entries are named by what they compute, kernels by that plus tile and ISA,
        # e.g. f32_gemm -> f32_gemm_6x16__avx2
        assert name.startswith(entry) and "__" in name, (entry, name)


def test_best_isa_is_the_widest_supported():
    d = rt.info()
    assert d["best_isa"] == SUPPORTED_ISAS[-1]
    assert list(d["supported_isas"]) == list(SUPPORTED_ISAS)


#: Kernel name suffixes that name a feature within a level (VNNI, BF16 variants).
FEATURE_SUFFIX = {"avxvnni": "avx2", "avx512vnni": "avx512", "avx512bf16": "avx512"}


def _level(name: str) -> str:
    """The ISA level of a kernel by its name's suffix (`__avx512vnni` is avx512)."""
    suffix = name.rsplit("__", 1)[-1]
    return FEATURE_SUFFIX.get(suffix, suffix)


@pytest.mark.parametrize("isa", SUPPORTED_ISAS)
def test_kernel_names_per_isa(isa):
    names = _core.kernels_for(isa)
    for entry, name in names.items():
        # an entry without a kernel at this ISA falls back to a lower one
        lower = ALL_ISAS[: ALL_ISAS.index(isa) + 1]
        assert _level(name) in lower, (entry, name)


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


def _proc_cpu_flags() -> set[str]:
    """The kernel's view of the CPU (Linux): an independent reading of the same features."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    pytest.skip("no /proc/cpuinfo flags")


def test_features_are_checked_one_by_one_like_the_os_reports_them():
    flags = _proc_cpu_flags()
    usable = set(rt.info()["usable_features"])
    expect = {
        "avx2+fma": {"avx", "avx2", "fma"} <= flags,
        "f16c": "f16c" in flags,
        "avx512f/bw/dq/vl": {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags,
        "avx512vnni": {"avx512f", "avx512_vnni"} <= flags,
        "avx512bf16": {"avx512f", "avx512_bf16"} <= flags,
        "avxvnni": {"avx2", "avx_vnni"} <= flags,
    }
    for feature, present in expect.items():
        assert (feature in usable) == present, (feature, sorted(usable))


def test_each_entry_takes_the_last_variant_whose_features_are_usable():
    usable = set(rt.info()["usable_features"])
    variants = _core.kernel_variants()
    assert {v[0] for v in variants} == set(rt.info()["kernels"])
    for isa in SUPPORTED_ISAS:
        cap = ALL_ISAS.index(isa)
        want = {}
        for entry, level, needs in variants:
            if ALL_ISAS.index(level) <= cap and set(needs) <= usable:
                want[entry] = (level, needs)
        got = _core.kernels_for(isa)
        for entry, (level, needs) in want.items():
            assert _level(got[entry]) == level, (isa, entry, got[entry], level)
            # a variant that needs VNNI or BF16 says so in its name, and only then
            named = [f for f in needs if f in FEATURE_SUFFIX]
            assert got[entry].rsplit("__", 1)[-1] == (named[0] if named else level), \
                (isa, entry, got[entry], needs)


def test_an_unsupported_isa_is_an_isa_error_from_every_entry_point():
    missing = [i for i in ALL_ISAS if i not in SUPPORTED_ISAS] + ["sse9"]
    g = rt.zoo.mlp()
    for bad in missing:
        with pytest.raises(rt.IsaError, match=bad):
            _core.kernels_for(bad)
        with pytest.raises(rt.IsaError, match=bad):
            rt.compile(g, isa=bad)


def test_compile_does_not_relabel_other_native_errors_as_isa_errors(monkeypatch):
    """Only an unusable ISA is an IsaError; any other failure of the plan builder keeps
    its own type (it used to be relabelled IsaError, hiding real bugs)."""
    from pyruntime.cpu import plan_builder

    def broken(*args, **kwargs):
        raise RuntimeError("the plan builder broke")

    monkeypatch.setattr(plan_builder, "lower", broken)
    with pytest.raises(RuntimeError, match="plan builder broke") as e:
        rt.compile(rt.zoo.mlp())
    assert not isinstance(e.value, rt.IsaError)


def test_info_cuda_section():
    import importlib.metadata as md
    d = rt.info()["cuda"]
    try:
        want = md.version("numba-cuda")
    except md.PackageNotFoundError:
        want = None
    assert d["numba_cuda"] == want
    assert isinstance(d["simulator"], bool) and isinstance(d["device_visible"], bool)
    if d["simulator"]:  # the simulator is not a device
        assert not d["device_visible"]


def test_info_cuda_never_raises_on_a_broken_numba(tmp_path):
    """numba that fails to import (or a driver that fails): reported under "error"."""
    (tmp_path / "numba").mkdir()
    (tmp_path / "numba" / "__init__.py").write_text("raise ImportError('broken numba')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    r = run_python("import pyruntime as rt; d = rt.info()['cuda']; "
                   "print(d['device_visible'], d.get('error', 'no error'))", env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    assert out.startswith("False"), out
    # with numba-cuda installed the probe reports the failed import; without, no probe
    assert "broken numba" in out or "no error" in out, out
