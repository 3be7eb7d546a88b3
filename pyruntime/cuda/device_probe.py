"""rt.info()'s "cuda" section: what this machine offers the CUDA backend. Never raises:
a missing package, driver or device is reported, not thrown.

The devices come from the CUDA driver library itself (libcuda, through ctypes: a few
milliseconds, no numba or CuPy import, so `rt.info()` stays cheap and the simulator mode
of a later numba import is left alone); package versions from their metadata.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import os
import sys
from typing import Any

# cuDeviceGetAttribute's compute capability attributes (cuda.h)
_CC_MAJOR, _CC_MINOR = 75, 76
_CUPY_DISTS = ("cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "cupy")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cupy() -> str | None:
    for dist in _CUPY_DISTS:
        v = _version(dist)
        if v is not None:
            return f"{v} ({dist})"
    return None


def _driver_lib() -> ctypes.CDLL:
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    found = ctypes.util.find_library("cuda")
    if found:
        names.append(found)
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise OSError("no CUDA driver library (libcuda) on this machine")


def _devices(lib: ctypes.CDLL) -> tuple[int, list[dict[str, Any]]]:
    """(driver version, devices) from the driver API; raises on a failing call."""
    def call(fn: str, *args: Any) -> None:
        rc = getattr(lib, fn)(*args)
        if rc != 0:
            raise RuntimeError(f"{fn} failed with CUDA error {rc}")

    call("cuInit", 0)
    ver = ctypes.c_int(0)
    call("cuDriverGetVersion", ctypes.byref(ver))
    n = ctypes.c_int(0)
    call("cuDeviceGetCount", ctypes.byref(n))
    out = []
    for i in range(n.value):
        dev = ctypes.c_int(0)
        call("cuDeviceGet", ctypes.byref(dev), i)
        name = ctypes.create_string_buffer(256)
        call("cuDeviceGetName", name, 256, dev)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        call("cuDeviceGetAttribute", ctypes.byref(major), _CC_MAJOR, dev)
        call("cuDeviceGetAttribute", ctypes.byref(minor), _CC_MINOR, dev)
        mem = ctypes.c_size_t(0)
        call("cuDeviceTotalMem_v2", ctypes.byref(mem), dev)
        out.append({"id": i, "name": name.value.decode(errors="replace"),
                    "compute_capability": f"{major.value}.{minor.value}",
                    "memory_gib": round(mem.value / 2 ** 30, 1)})
    return ver.value, out


def cuda_info() -> dict[str, Any]:
    """{"numba_cuda", "cupy": versions or None; "runtime": the CUDA runtime installed
    for them (the nvidia-cuda-runtime wheel's version) or None; "simulator": NUMBA_ENABLE_CUDASIM=1 asks
    numba for the CUDA simulator; "driver": the driver's CUDA version ("13.0") or None;
    "devices": [{id, name, compute_capability, memory_gib}]; "device_visible": any
    device; "error": why the driver could not be asked, when it could not}."""
    runtime = next((v for v in map(_version, ("nvidia-cuda-runtime-cu13",
                                              "nvidia-cuda-runtime-cu12",
                                              "nvidia-cuda-runtime")) if v), None)
    d: dict[str, Any] = {"numba_cuda": _version("numba-cuda"), "cupy": _cupy(),
                         "runtime": runtime,
                         "simulator": os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1",
                         "driver": None, "devices": [], "device_visible": False}
    try:
        ver, devs = _devices(_driver_lib())
        d["driver"] = f"{ver // 1000}.{ver % 1000 // 10}"
        d["devices"] = devs
        d["device_visible"] = bool(devs)
    except Exception as e:  # no driver, no device, a broken install: report, never raise
        d["error"] = f"{type(e).__name__}: {e}"
    return d
