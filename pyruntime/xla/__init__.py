"""The XLA path: lower an `rt.Graph` to JAX, export it for CPU/GPU/TPU, load it back.

    import pyruntime as rt
    fn, params = rt.xla.lower(graph)          # fn(params, x): pure JAX, NCHW like Session
    rt.xla.export(graph, "model.pyrtx", platforms=("cpu", "cuda", "tpu"))  # batch symbolic
    model = rt.xla.load("model.pyrtx")       # runs on whatever JAX backend is present
    y = model(x)

JAX is optional (`pip install pyruntime[xla]`): importing this module never imports it;
calling these functions without it raises `rt.MissingDependencyError` naming the extra.
Exported artifacts hold their weights inside (StableHLO constants): one file per model.
"""

from __future__ import annotations

from .export import PLATFORMS, PlatformError, XlaModel, current_platform, export, load
from .to_jax import dense_weights, lower

__all__ = ["lower", "export", "load", "XlaModel", "PlatformError", "PLATFORMS",
           "current_platform", "dense_weights"]
