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
    runtimes = []
    for dist in ("nvidia-cuda-runtime-cu13", "nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime"):
        try:
            runtimes.append(md.version(dist))
        except md.PackageNotFoundError:
            pass
    assert d["runtime"] == (runtimes[0] if runtimes else None)
    assert isinstance(d["simulator"], bool)
    assert d["device_visible"] == bool(d["devices"])
    # no driver library on this machine (read independently of the probe): said, not raised
    have_driver = any(os.path.exists(os.path.join(p, "libcuda.so.1"))
                      for p in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib",
                                "/usr/local/cuda/lib64", "/usr/lib/wsl/lib"))
    if not have_driver:
        assert not d["device_visible"] and d["driver"] is None and "libcuda" in d["error"]


def test_info_does_not_import_numba_or_cupy():
    """The probe asks the driver library directly: rt.info() stays cheap and leaves the
    simulator mode of a later numba import alone."""
    r = run_python("import sys, pyruntime as rt; rt.info(); "
                   "print(any(m.split('.')[0] in ('numba', 'cupy') for m in sys.modules))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


class FakeDriver:
    """The CUDA driver calls the probe makes, answering through their ctypes pointers."""

    def __init__(self, fail: str | None = None):
        self.fail = fail

    def __getattr__(self, fn):
        def call(*args):
            if fn == self.fail:
                return 100  # CUDA_ERROR_NO_DEVICE
            out = {"cuDriverGetVersion": [13000], "cuDeviceGetCount": [2], "cuDeviceGet": [None],
                   "cuDeviceTotalMem_v2": [141 * 2 ** 30]}.get(fn)
            if fn == "cuDeviceGetName":
                args[0].value = b"Fake H200"
            elif fn == "cuDeviceGetAttribute":
                args[0]._obj.value = 9 if args[1] == 75 else 0
            elif out is not None and out[0] is not None:
                args[0]._obj.value = out[0]
            return 0
        return call


def test_info_cuda_reads_the_driver(monkeypatch):
    from pyruntime.cuda import device_probe
    monkeypatch.setattr(device_probe, "_driver_lib", lambda: FakeDriver())
    d = device_probe.cuda_info()
    assert d["driver"] == "13.0" and d["device_visible"] and "error" not in d
    assert d["devices"] == [{"id": i, "name": "Fake H200", "compute_capability": "9.0",
                             "memory_gib": 141.0} for i in range(2)]


@pytest.mark.parametrize("fail", ["cuInit", "cuDeviceGetCount", "cuDeviceGetName"])
def test_info_cuda_never_raises_on_a_failing_driver(monkeypatch, fail):
    from pyruntime.cuda import device_probe
    monkeypatch.setattr(device_probe, "_driver_lib", lambda: FakeDriver(fail))
    d = device_probe.cuda_info()
    assert not d["device_visible"] and d["devices"] == []
    assert f"{fail} failed with CUDA error 100" in d["error"]
