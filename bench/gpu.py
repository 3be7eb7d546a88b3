"""GPU benchmarks (issue 13), each case beside its baseline in the same run: our cuBLAS
GEMMs through CuPy (pyruntime/cuda/blas.py) against CuPy's own matmul, the batch-1
sparse kernel against dense cuBLAS, torch where installed. GPU time by CUDA events,
median of repeats after a warm-up. Needs CuPy and a CUDA device.

    python bench/gpu.py [--json PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

try:
    import cupy as cp
except ImportError:
    sys.exit("bench/gpu.py needs CuPy and a CUDA device")

from pyruntime.cuda import blas
from pyruntime.cuda.device_probe import cuda_info
from pyruntime.cuda.kernels import csr_by_column, spmv


def gpu_time(fn, reps: int, warm: int = 3) -> float:
    """Median seconds of fn() on the current stream, by CUDA events."""
    for _ in range(warm):
        fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(reps):
        s, e = cp.cuda.Event(), cp.cuda.Event()
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(cp.cuda.get_elapsed_time(s, e) / 1e3)
    return statistics.median(times)


def gemm_cases(n: int, reps: int) -> dict:
    rng = np.random.default_rng(0)
    a16 = cp.asarray(rng.standard_normal((n, n)).astype(np.float16))
    b16 = cp.asarray(rng.standard_normal((n, n)).astype(np.float16))
    flop = 2.0 * n ** 3
    out = {}
    t_ours = gpu_time(lambda: blas.gemm(a16, b16), reps)
    t_cupy = gpu_time(lambda: cp.matmul(a16, b16), reps)
    out["fp16_gemm"] = {"n": n, "ours_tflops": flop / t_ours / 1e12,
                        "cupy_matmul_tflops": flop / t_cupy / 1e12, "ratio_to_cupy": t_cupy / t_ours}
    a8 = cp.asarray(rng.integers(-128, 128, (n, n)).astype(np.int8))
    bt8 = blas.pack_int8(rng.integers(-127, 128, (n, n)).astype(np.int8))
    t8 = gpu_time(lambda: blas.gemm_int8(a8, bt8), reps)
    out["int8_gemm"] = {"n": n, "ours_tops": flop / t8 / 1e12}
    try:
        import torch
        ta, tb = torch.as_tensor(a16, device="cuda"), torch.as_tensor(b16, device="cuda")
        tt = gpu_time(lambda: torch.matmul(ta, tb), reps)
        out["fp16_gemm"]["torch_tflops"] = flop / tt / 1e12
    except Exception as e:  # torch missing or without CUDA
        out["fp16_gemm"]["torch"] = f"not run: {type(e).__name__}"
    return out


def spmv_case(n: int, sparsity: float, reps: int) -> dict:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((n, n)).astype(np.float32)
    w[rng.random((n, n)) < sparsity] = 0.0
    ip, ix, v = (cp.asarray(t) for t in csr_by_column(w))
    x = cp.asarray(rng.standard_normal((1, n)).astype(np.float32))
    wd = cp.asarray(w)
    y = spmv(x, ip, ix, v)
    ref = x @ wd
    err = float(cp.abs(y - ref).max() / cp.abs(ref).max())
    t_sp = gpu_time(lambda: spmv(x, ip, ix, v), reps)
    t_dense = gpu_time(lambda: x @ wd, reps)
    return {"n": n, "sparsity": sparsity, "ours_us": t_sp * 1e6, "dense_cublas_us": t_dense * 1e6,
            "speedup": t_dense / t_sp, "rel_err": err}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    args = ap.parse_args(argv)
    reps = 5 if args.quick else 20
    res = {"cuda": cuda_info(), "cupy": cp.__version__}
    res["gemm"] = gemm_cases(2048 if args.quick else 8192, reps)
    res["spmv"] = [spmv_case(4096, s, reps * 5) for s in (0.9, 0.95)]
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
