"""cuBLAS GEMMs through CuPy (pyruntime/cuda/blas.py) against float64 / int64 numpy: only
on a machine with CuPy and a CUDA device (tools/gpu_check.sh runs it there)."""

from __future__ import annotations

import numpy as np
import pytest

from pyruntime.cuda.device_probe import cuda_info

if not cuda_info()["device_visible"]:
    pytest.skip("no CUDA device (CuPy-dependent tests)", allow_module_level=True)
cp = pytest.importorskip("cupy", reason="no CUDA device (CuPy-dependent tests)")

import pyruntime as rt  # noqa: E402
from pyruntime.cuda import blas  # noqa: E402

RNG = np.random.default_rng(0)
SIZES = [(1, 1, 1), (1, 257, 31), (7, 64, 9), (64, 784, 512), (131, 1031, 257)]


@pytest.mark.parametrize("M,K,N", SIZES)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_gemm_matches_float64(M, K, N, dtype):
    a = RNG.standard_normal((M, K)).astype(dtype)
    b = RNG.standard_normal((K, N)).astype(dtype)
    c = cp.asnumpy(blas.gemm(cp.asarray(a), cp.asarray(b))).astype(np.float64)
    want = a.astype(np.float64) @ b.astype(np.float64)
    # inputs exact in their type; fp32 accumulation: K products' rounding
    mag = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    assert np.all(np.abs(c - want) <= 2.0 ** -22 * K * mag + 1e-30)


@pytest.mark.parametrize("M,K,N", [(1, 4, 1), (3, 260, 17), (64, 784, 512), (129, 1028, 255)])
def test_gemm_int8_exact(M, K, N):
    a = RNG.integers(-128, 128, (M, K)).astype(np.int8)
    w = RNG.integers(-127, 128, (K, N)).astype(np.int8)
    a[0, :] = 127
    w[:, 0] = -127  # extremes
    c = cp.asnumpy(blas.gemm_int8(cp.asarray(a), blas.pack_int8(w)))
    np.testing.assert_array_equal(c, a.astype(np.int64) @ w.astype(np.int64))


def test_bad_arguments_are_typed():
    a = cp.ones((2, 3), cp.float32)
    with pytest.raises(rt.ShapeError):
        blas.gemm(a, cp.ones((4, 2), cp.float32))
    with pytest.raises(rt.DTypeError):
        blas.gemm(a, cp.ones((3, 2), cp.float16))
    with pytest.raises(rt.ShapeError, match="multiple of 4"):
        blas.gemm_int8(cp.ones((2, 3), cp.int8), cp.ones((2, 3), cp.int8))
