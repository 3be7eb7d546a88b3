"""Graph -> Graph transforms. Each returns a new Graph and never mutates its input.

- `fusion`: the optimizer `rt.compile` runs (drop no-ops, fold BatchNorm, fuse
  activations and residual adds into the Conv/Gemm epilogue).
"""

from __future__ import annotations

from .fusion import drop_identity, fold_batchnorm, fuse_activations, fuse_residual_add, optimize

__all__ = ["drop_identity", "fold_batchnorm", "fuse_activations", "fuse_residual_add",
           "optimize"]
