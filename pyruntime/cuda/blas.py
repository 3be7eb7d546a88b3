"""Dense GEMM on the GPU through cuBLAS, called through CuPy's bindings: C = A @ B on
row-major CuPy arrays, fp32 (TF32 only when asked), fp16 and bf16 with fp32 accumulation
(tensor cores), int8 with int32 accumulation (`cublasGemmEx`, CUBLAS_COMPUTE_32I).

Row-major C[M, N] = A[M, K] @ B[K, N] is, to column-major cuBLAS, C^T = B^T A^T: the call
passes B then A with m = N, n = M. int8 runs only in cuBLAS's fast "TN" form (op(A) = T,
op(B) = N, column-major), so int8 weights are stored transposed, Bt[N, K] row-major (what
`pack_int8` makes once at compile): then C^T = Bt' A^T with Bt' the column-major [K, N]
view of Bt, transposed. CuPy's own `matmul` on int8 runs a generic kernel tens of times
slower (24.7 against 1,530 TOPS on an H200, measured from outside).

Needs CuPy and a GPU; importing this module imports CuPy (MissingDependencyError without).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DTypeError, InputError, MissingDependencyError, ShapeError

try:
    import cupy as cp
    from cupy.cuda import cublas, device
except ImportError as e:  # pragma: no cover - exercised only without CuPy
    raise MissingDependencyError(
        "the CUDA GEMMs need CuPy (pip install 'pyruntime[cuda]', or 'pyruntime[cuda13]' "
        f"for CUDA 13): {e}") from e

__all__ = ["gemm", "gemm_int8", "pack_int8"]

# cudaDataType / cublasComputeType_t values (library_types.h, cublas_api.h)
_R_32F, _R_16F, _R_16BF, _R_8I, _R_32I = 0, 2, 14, 3, 10
_COMPUTE_32F, _COMPUTE_32F_FAST_TF32, _COMPUTE_32I = 68, 77, 72
_GEMM_DEFAULT_TENSOR_OP = 99
_TYPES = {np.dtype(np.float32): _R_32F, np.dtype(np.float16): _R_16F}


def _bf16_type() -> Any:
    try:
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    except ImportError:
        return None


def _check(a: Any, b: Any, bt: bool) -> tuple[int, int, int]:
    for name, x in (("A", a), ("B", b)):
        if not isinstance(x, cp.ndarray) or x.ndim != 2:
            raise ShapeError(f"gemm: {name} must be a 2-D CuPy array, got "
                             f"{type(x).__name__} {getattr(x, 'shape', '')}")
        if not x.flags.c_contiguous:
            raise InputError(f"gemm: {name} must be C-contiguous (row-major)")
    M, K = a.shape
    N, Kb = (b.shape if bt else b.shape[::-1])
    if Kb != K:
        raise ShapeError(f"gemm: A is {list(a.shape)}, so B must be "
                         f"{[N, K] if bt else [K, N]}; got {list(b.shape)}")
    return M, N, K


def _handle() -> Any:
    """CuPy's cuBLAS handle for this device, on CuPy's current stream (the stream a CUDA
    graph is being captured on, when one is)."""
    handle = device.get_cublas_handle()
    cublas.setStream(handle, cp.cuda.get_current_stream().ptr)
    return handle


def _scalars(dtype: Any, one: float, zero: float) -> tuple[Any, Any]:
    return np.array(one, dtype=dtype), np.array(zero, dtype=dtype)


def gemm(a: Any, b: Any, out: Any = None, tf32: bool = False) -> Any:
    """C[M, N] float32 = A[M, K] @ B[K, N]; A and B both float32, both float16 or both
    bfloat16 (accumulation in fp32 for every type; TF32 inputs only with tf32=True)."""
    M, N, K = _check(a, b, bt=False)
    if a.dtype != b.dtype:
        raise DTypeError(f"gemm: A and B must have one dtype, got {a.dtype} and {b.dtype}")
    bf16 = _bf16_type()
    if a.dtype in _TYPES:
        t = _TYPES[a.dtype]
    elif bf16 is not None and a.dtype == bf16:
        t = _R_16BF
    else:
        raise DTypeError(f"gemm: expected float32, float16 or bfloat16, got {a.dtype}")
    c = cp.empty((M, N), dtype=cp.float32) if out is None else out
    if c.shape != (M, N) or c.dtype != cp.float32 or not c.flags.c_contiguous:
        raise ShapeError(f"gemm: out must be a C-contiguous float32 [{M}, {N}] array")
    if M == 0 or N == 0:
        return c
    if K == 0:
        c.fill(0)
        return c
    compute = _COMPUTE_32F_FAST_TF32 if (tf32 and t == _R_32F) else _COMPUTE_32F
    alpha, beta = _scalars(np.float32, 1.0, 0.0)
    handle = _handle()
    cublas.gemmEx(handle, cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_N, N, M, K,
                  alpha.ctypes.data, b.data.ptr, t, N, a.data.ptr, t, K,
                  beta.ctypes.data, c.data.ptr, _R_32F, N, compute, _GEMM_DEFAULT_TENSOR_OP)
    return c


def pack_int8(w: np.ndarray) -> Any:
    """An int8 weight W[K, N] (host) as the device's Bt[N, K] row-major, once at compile."""
    w = np.asarray(w)
    if w.dtype != np.int8 or w.ndim != 2:
        raise DTypeError(f"pack_int8: expected a 2-D int8 array, got {w.dtype} {w.shape}")
    return cp.asarray(np.ascontiguousarray(w.T))


def gemm_int8(a: Any, bt: Any, out: Any = None) -> Any:
    """C[M, N] int32 = A[M, K] @ Bt[N, K]^T, A and Bt int8, exact int32 accumulation.
    cuBLAS's int8 kernels want K, and the leading dimensions, multiples of 4: the caller
    pads K with zeros (pack_int8 a K-padded weight, A's pad columns zero)."""
    M, N, K = _check(a, bt, bt=True)
    if a.dtype != cp.int8 or bt.dtype != cp.int8:
        raise DTypeError(f"gemm_int8: A and Bt must be int8, got {a.dtype} and {bt.dtype}")
    if K % 4:
        raise ShapeError(f"gemm_int8: K must be a multiple of 4 (pad with zeros), got {K}")
    c = cp.empty((M, N), dtype=cp.int32) if out is None else out
    if c.shape != (M, N) or c.dtype != cp.int32 or not c.flags.c_contiguous:
        raise ShapeError(f"gemm_int8: out must be a C-contiguous int32 [{M}, {N}] array")
    if M == 0 or N == 0:
        return c
    alpha, beta = _scalars(np.int32, 1, 0)
    handle = _handle()
    cublas.gemmEx(handle, cublas.CUBLAS_OP_T, cublas.CUBLAS_OP_N, N, M, K,
                  alpha.ctypes.data, bt.data.ptr, _R_8I, K, a.data.ptr, _R_8I, K,
                  beta.ctypes.data, c.data.ptr, _R_32I, N, _COMPUTE_32I, _GEMM_DEFAULT_TENSOR_OP)
    return c
