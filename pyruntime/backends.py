"""`rt.compile(graph, device=...)`: pick the backend for a device and build its Session.

Every backend returns a Session with the same interface (`run`, `inputs`, `outputs`,
`plan_summary()`); this module is the one place that maps device names to backends.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import InputError
from .graph import Graph
from .shapes import validate

__all__ = ["compile", "DEVICES"]

#: Device name -> (backend module, its compile function). A backend module is imported
#: only when its device is asked for.
DEVICES = {"cpu": ("pyruntime.cpu.session", "compile_cpu"),
           "cuda": ("pyruntime.cuda.session", "compile_cuda")}


SPARSE_MODES = ("auto", "dense", "sparse")


def compile(graph: Graph, device: str = "cpu", threads: int | None = None,
            isa: str | None = None, sparse: str = "auto", device_id: int = 0,
            tf32: bool = False) -> Any:
    """Validate `graph`, optimize it and compile it for `device` ("cpu" or "cuda").
    CPU: `threads=None` uses every core this process may run on; `isa=None` the best
    kernels this CPU has (or PYRUNTIME_ISA); `sparse="auto"` runs a Gemm/Conv weight with
    zeros on the sparse kernel where the cost model says it is faster, "dense" never,
    "sparse" always. CUDA (pyruntime.cuda.session): GPU `device_id`; `tf32=True` lets
    fp32 GEMMs round their inputs to TF32; a missing CuPy, driver or GPU is a typed error
    (MissingDependencyError, DeviceError)."""
    if not isinstance(graph, Graph):
        raise InputError(f"compile: expected a pyruntime.Graph, got {type(graph).__name__}")
    dev = device.lower() if isinstance(device, str) else None
    if dev not in DEVICES:
        raise InputError(f"device {device!r} is not available: expected one of "
                         f"{sorted(DEVICES)}")
    if sparse not in SPARSE_MODES:
        raise InputError(f"sparse must be one of {SPARSE_MODES}, got {sparse!r}")
    validate(graph)
    module, fn = DEVICES[dev]
    if dev == "cuda":
        if threads is not None or isa is not None or sparse != "auto":
            raise InputError("threads, isa and sparse choose CPU kernels; device='cuda' "
                             "takes device_id and tf32")
        return getattr(importlib.import_module(module), fn)(graph, device_id=device_id,
                                                            tf32=tf32)
    if device_id != 0 or tf32:
        raise InputError("device_id and tf32 apply to device='cuda'")
    return getattr(importlib.import_module(module), fn)(graph, threads=threads, isa=isa,
                                                        sparse=sparse)
