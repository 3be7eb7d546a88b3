"""Batch-1 sparse matrix-vector product y = x @ W (+ the epilogue) for W [K, N] stored CSR
by output column, i.e. CSR of W^T [N, K]:

    indptr  [N + 1] int32 or int64   nonzeros of output column n: indptr[n] .. indptr[n+1]
    indices [nnz]   uint16 or int32  their input index k, any order (uint16 when K <= 65536:
                                     2 bytes less per nonzero)
    values  [nnz]   float32          W[k, n]
    x [K] float32, y [N] float32:
    y[n] = epilogue(sum_j values[j] * x[indices[j]])   (bias[n], act, residual[n])

This is exactly the project's ``csr`` weight format of a 2-D Gemm weight with its default
axis 1 (``formats.encode_csr``; ``csr_by_column`` builds it from a dense matrix): the
arrays upload as they are. One warp (32 lanes) owns one output: its lanes read the
column's values/indices consecutively (coalesced), gather x (small, cache-resident), and
reduce through shared memory; a block of `threads` holds threads // 32 outputs, blocks
stride over the outputs. No atomics, no result depends on the grid.
At 90-95% sparsity a 4096 x 4096 layer streams 6 bytes per nonzero (uint16 indices:
2.5-5.0 MB) against 64 MB dense."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ...errors import InputError
from ..numba_compat import cuda
from . import launch
from .act import epilogue as _epi

LANES = 32  # threads per output (one warp)
THREADS = 128


def csr_by_column(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Host side: (indptr int32 [N+1], indices [nnz], values float32 [nnz]) of a dense [K, N]
    matrix, by output column (the module doc's layout); indices uint16 when K <= 65536,
    else int32, as ``formats.encode_csr`` stores them."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise launch.ShapeError(f"w: expected [K, N], got {list(w.shape)}")
    wt = w.T
    nz = wt != 0
    indptr = np.zeros(w.shape[1] + 1, dtype=np.int32)
    np.cumsum(nz.sum(axis=1), out=indptr[1:])
    n_idx, k_idx = np.nonzero(nz)
    idx = k_idx.astype(np.uint16 if w.shape[0] <= 1 << 16 else np.int32)
    return indptr, idx, np.ascontiguousarray(wt[n_idx, k_idx])


@functools.lru_cache(maxsize=None)
def _spmv_kernel(tpb: int):
    opb = tpb // LANES  # outputs per block

    @cuda.jit
    def kernel(x, indptr, indices, values, bias, res, y, has_bias, act, lo, hi, res_mode):
        part = cuda.shared.array(tpb, np.float32)
        N = y.shape[0]
        t = cuda.threadIdx.x
        lane = t % LANES
        for n0 in range(cuda.blockIdx.x * opb, N, cuda.gridDim.x * opb):
            n = n0 + t // LANES
            s = np.float32(0.0)
            if n < N:
                for j in range(indptr[n] + lane, indptr[n + 1], LANES):
                    s += values[j] * x[indices[j]]
            part[t] = s
            cuda.syncthreads()
            h = LANES // 2
            while h > 0:
                if lane < h:
                    part[t] += part[t + h]
                cuda.syncthreads()
                h //= 2
            if lane == 0 and n < N:
                b = bias[n] if has_bias else np.float32(0.0)
                r = res[n] if res_mode != 0 else np.float32(0.0)
                y[n] = _epi(part[t], b, r, act, lo, hi, res_mode)
            cuda.syncthreads()  # part is reused by the next outputs

    return kernel


def spmv(x: Any, indptr: Any, indices: Any, values: Any, bias: Any = None, act: str = "none",
         lo: float = -np.inf, hi: float = np.inf, residual: Any = None,
         residual_after_act: bool = False, out: Any = None, stream: Any = 0,
         threads: int = THREADS, blocks: int | None = None):
    """y [N] = epilogue(x [K] @ W) with W CSR by output column (module doc). x may be [1, K]
    (then y is [1, N]). threads: a multiple of 32, a power of two."""
    x = launch.as_device(x, "x", np.float32)
    if x.ndim == 2 and x.shape[0] == 1:
        x2 = True
        x = x.reshape(x.shape[1])
    elif x.ndim == 1:
        x2 = False
    else:
        raise launch.ShapeError(f"x: expected [K] or [1, K] (batch 1), got {list(x.shape)}")
    ip = launch.as_device(indptr, "indptr", indptr.dtype, ndim=1)
    if np.dtype(ip.dtype) not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise launch.DTypeError(f"indptr: expected int32 or int64, got {np.dtype(ip.dtype)}")
    N = ip.shape[0] - 1
    if N < 0:
        raise launch.ShapeError("indptr: expected N + 1 >= 1 entries, got 0")
    ix = launch.as_device(indices, "indices", indices.dtype, ndim=1)
    if np.dtype(ix.dtype) not in (np.dtype(np.uint16), np.dtype(np.int32)):
        raise launch.DTypeError(f"indices: expected uint16 or int32, got {np.dtype(ix.dtype)}")
    v = launch.as_device(values, "values", np.float32, (ix.shape[0],))
    if threads < LANES or threads & (threads - 1):
        raise InputError(f"threads: expected a power of two >= {LANES}, got {threads}")
    b = launch.as_device(bias, "bias", np.float32, (N,)) if bias is not None else v
    res_mode = launch.residual_mode(residual, residual_after_act)
    y_shape = (1, N) if x2 else (N,)
    y = launch.output(out, "out", np.float32, y_shape, stream).reshape(N)
    r = (launch.as_device(residual, "residual", np.float32, y_shape).reshape(N)
         if residual is not None else y)
    code, lo32, hi32 = launch.act_args(act, lo, hi)
    if N:
        opb = threads // LANES
        g = min(-(-N // opb), launch.MAX_BLOCKS) if blocks is None else blocks
        _spmv_kernel(int(threads))[g, threads, stream](x, ip, ix, v, b, r, y, bias is not None,
                                                        code, lo32, hi32, res_mode)
    return y.reshape(*y_shape)
