"""rt.info(): what this build is, what it chose on this CPU, what CUDA support is here."""

from __future__ import annotations

from typing import Any

from . import _core
from .cuda.device_probe import cuda_info
from .errors import IsaError


def info() -> dict[str, Any]:
    """Version, compiler, threads (hardware threads, workers started in the pool), CPU features (raw, and the usable feature
    sets kernels are chosen by), the ISA level in use, the kernel chosen per table entry,
    and "cuda": CuPy's and numba-cuda's versions, the driver's CUDA version and the
    devices it reports (name, compute capability, memory), asked of the driver library
    directly (``pyruntime.cuda.device_probe``: cheap, never raises).
    Raises IsaError if PYRUNTIME_ISA asks for something unusable."""
    d = _native_info()
    d["cuda"] = cuda_info()
    return d


def _native_info() -> dict[str, Any]:
    d = dict(_core.info())  # an unusable PYRUNTIME_ISA raises IsaError natively
    d["kernels"] = dict(d["kernels"])
    return d


def check_isa(isa: str | None) -> str:
    """Validate an ISA name for this CPU; None means the one in use."""
    if isa is None:
        return _native_info()["isa"]
    if isa not in _core.ISA_LEVELS:
        raise IsaError(f"unknown ISA {isa!r}: expected one of {', '.join(_core.ISA_LEVELS)}")
    if not _core.isa_supported(isa):
        raise IsaError(f"ISA {isa!r} is not supported by this CPU/OS; supported: "
                       f"{_native_info()['supported_isas']}")
    return isa
