"""rt.info(): what this build is and what it chose on this CPU."""

from __future__ import annotations

from typing import Any

from . import _core
from .errors import IsaError


def info() -> dict[str, Any]:
    """Version, compiler, OpenMP and threads, CPU features, the ISA in use, the kernel
    chosen per family. Raises IsaError if PYRUNTIME_ISA asks for something unusable."""
    try:
        d = dict(_core.info())
    except (RuntimeError, ValueError) as e:
        raise IsaError(str(e)) from None
    d["kernels"] = dict(d["kernels"])
    return d


def check_isa(isa: str | None) -> str:
    """Validate an ISA name for this CPU; None means the one in use."""
    if isa is None:
        return info()["isa"]
    if isa not in ("scalar", "avx2", "avx512"):
        raise IsaError(f"unknown ISA {isa!r}: expected 'scalar', 'avx2' or 'avx512'")
    if not _core.isa_supported(isa):
        raise IsaError(f"ISA {isa!r} is not supported by this CPU/OS; supported: "
                       f"{info()['supported_isas']}")
    return isa
