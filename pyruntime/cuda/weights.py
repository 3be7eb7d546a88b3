"""How the CUDA backend runs each stored weight format: the engine and the device dtype of
a Conv/Gemm weight, decided once at compile (the CPU backend's formats, not new ones).

    stored       Gemm / group-1 Conv (im2col)            depthwise Conv
    f32          cuBLAS fp32 GEMM (TF32 only if asked)   Numba depthwise, fp32
    f16          cuBLAS fp16 GEMM, fp32 accumulation     Numba depthwise, widened to fp32
    bf16         widened to fp32 at compile (exact; CuPy  Numba depthwise, widened to fp32
                 arrays have no bfloat16 dtype), cuBLAS fp32
    qc8          cuBLAS int8 gemmEx, int32 accumulation  Numba depthwise, dequantized fp32
    csr / bsr    batch 1 at density <= SPMV_MAX_DENSITY: the Numba sparse matrix-vector
                 kernel (int8 values dequantized); else dense in the values' float form
                 through cuBLAS

Depthwise weights are a few values per channel and the op is bound by activations, so
they are widened at compile. A sparse weight above the density limit, or at batch > 1,
loses to dense cuBLAS on a data-center GPU (cuSPARSE CSR loses to dense even at 90-95%
on an H200), so it is densified once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import formats
from ..errors import InputError
from ..graph import Weight

__all__ = ["GpuWeight", "choose", "SPMV_MAX_DENSITY"]

#: The densest sparse weight that runs on the batch-1 sparse kernel (the rest of the
#: values are zeros: 90% sparsity and above).
SPMV_MAX_DENSITY = 0.10

_DENSE = {"f32": ("cublas_gemm_f32", "f32"), "f16": ("cublas_gemm_f16", "f16"),
          "bf16": ("cublas_gemm_f32", "f32"), "qc8": ("cublas_gemmex_int8", "int8")}


@dataclass(frozen=True)
class GpuWeight:
    """engine: what runs the op; dtype: the weight's device dtype; why: one line for
    `plan_summary()`."""
    engine: str
    dtype: str
    why: str


def density(w: Weight) -> float:
    """Stored values over the dense size (a bsr block counts whole)."""
    n = 1
    for d in w.shape:
        n *= int(d)
    if n == 0:
        return 0.0
    stored = int(w.arrays["values"].size)
    return stored / n


def choose(w: Weight, op: str, depthwise: bool = False, batch: int | None = None,
           tf32: bool = False) -> GpuWeight:
    """The engine and device dtype for weight `w` of a Conv/Gemm (`op`); `batch`: the
    compiled batch size when fixed (None: any, so never the batch-1 sparse kernel)."""
    if op not in ("Conv", "Gemm"):
        raise InputError(f"cuda weights: expected a Conv or Gemm weight, got op {op!r}")
    fmt = w.format
    if fmt not in formats.FORMATS:
        raise InputError(f"cuda weights: unknown format {fmt!r}")
    if depthwise:
        if op != "Conv":
            raise InputError("cuda weights: only a Conv is depthwise")
        return GpuWeight("numba_dwconv", "f32",
                         "depthwise" + ("" if fmt == "f32" else f": {fmt} widened to fp32 at compile"))
    if fmt in ("csr", "bsr"):
        d = density(w)
        int8 = w.arrays["values"].dtype.kind == "i"
        if batch == 1 and op == "Gemm" and d <= SPMV_MAX_DENSITY:
            return GpuWeight("numba_spmv", "f32",
                             f"batch 1 at density {d:.3f}: sparse kernel"
                             + (" (int8 values dequantized)" if int8 else ""))
        why = ("batch > 1" if batch != 1 else ("a Conv" if op == "Conv" else f"density {d:.3f}"))
        return GpuWeight("cublas_gemm_f32", "f32", f"{fmt} densified at compile ({why})")
    engine, dtype = _DENSE[fmt]
    why = {"f32": "fp32" + (" with TF32" if tf32 else ""), "f16": "fp16, fp32 accumulation",
           "bf16": "bf16 widened to fp32 at compile", "qc8": "int8, int32 accumulation"}[fmt]
    return GpuWeight(engine, dtype, why)
