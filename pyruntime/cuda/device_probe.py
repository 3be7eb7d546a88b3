"""rt.info()'s "cuda" section: what this machine offers the CUDA backend. Never raises:
a missing package, driver or device is reported, not thrown."""

from __future__ import annotations

import importlib.metadata
from typing import Any


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cuda_info() -> dict[str, Any]:
    """{"numba_cuda": version or None, "simulator": numba.cuda is the CUDA simulator
    (NUMBA_ENABLE_CUDASIM=1), "device_visible": a real CUDA device answers
    numba.cuda.is_available(), and "error" when the probe failed}. Imports numba.cuda
    (about a second, once per process; the simulator mode is then fixed for the process)."""
    d: dict[str, Any] = {"numba_cuda": _version("numba-cuda"), "simulator": False,
                         "device_visible": False}
    if d["numba_cuda"] is None:
        return d
    try:
        from .numba_compat import cuda, simulator
        d["simulator"] = simulator()
        d["device_visible"] = (not d["simulator"]) and bool(cuda.is_available())
    except Exception as e:  # a broken install or driver: report, never raise
        d["error"] = f"{type(e).__name__}: {e}"
    return d
