"""Graph -> Graph transforms. Each returns a new Graph and never mutates its input.

- `fusion`: the optimizer `rt.compile` runs (drop no-ops, fold BatchNorm, fuse
  activations and residual adds into the Conv/Gemm epilogue).
- `prune`: magnitude pruning of the Conv/Gemm kernels (`rt.prune`) and the sparsity
  report (`rt.sparsity`). `passes.prune` is the function; import the module's other
  names with `from pyruntime.passes.prune import ...`.
- `quantize`: post-training quantization to int8 (dynamic, or static with `calibrate`'s
  activation ranges), fp16 or bf16 (`rt.quantize`); `quant_report`: per-layer error
  (`rt.quantize_report`).
"""

from __future__ import annotations

from .fusion import drop_identity, fold_batchnorm, fuse_activations, fuse_residual_add, optimize
from .prune import SPARSE_STORE_MIN, prune, sparsity
from .quant_report import quantize_report
from .quantize import quantize

__all__ = ["drop_identity", "fold_batchnorm", "fuse_activations", "fuse_residual_add",
           "optimize", "prune", "sparsity", "SPARSE_STORE_MIN", "quantize",
           "quantize_report"]
