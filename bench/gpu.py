"""GPU benchmarks (issue 13), each case beside its baseline in the same run: our cuBLAS
GEMMs through CuPy (pyruntime/cuda/blas.py) against CuPy's own matmul, the batch-1
sparse kernel against dense cuBLAS, torch where installed; whole models through
rt.compile(device="cuda") (MLP 784-512-256-10 and MobileNetV2-style 224, batch 1: wall
time per run with a device input and output, captured graph against the same plan run
step by step from Python, p50 and p99, outputs against the CPU Session) and the XLA
artifact on the GPU against the CPU Session. GPU time by CUDA events, median of repeats
after a warm-up. Needs CuPy and a CUDA device.

    python bench/gpu.py [--json PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
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


def wall_us(fn, reps: int, warm: int = 5) -> dict:
    """p50 / p99 wall microseconds of fn() (which synchronizes)."""
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e6)
    ts.sort()
    return {"p50_us": ts[len(ts) // 2], "p99_us": ts[min(len(ts) - 1, int(len(ts) * 0.99))]}


def model_cases(reps: int) -> dict:
    import pyruntime as rt
    from pyruntime import zoo
    from pyruntime.cuda.session import compile_cuda

    rng = np.random.default_rng(2)
    out = {}
    cases = {"mlp_784_512_256_10_b1": (zoo.mlp((784, 512, 256, 10)), (1, 784)),
             "mobilenetv2_224_b1": (zoo.mobilenetv2_style(), (1, 3, 224, 224))}
    for name, (g, shape) in cases.items():
        x = rng.standard_normal(shape).astype(np.float32)
        cpu = rt.compile(g).run(x)
        row = {}
        for dtype in ("fp32", "fp16", "int8"):
            gq = g if dtype == "fp32" else rt.quantize(
                g, dtype, **({"calibration": [x], "progress": False} if dtype == "int8" else {}))
            ref = cpu if dtype == "fp32" else rt.compile(gq).run(x)
            for capture in (True, False):
                s = compile_cuda(gq, capture=capture)
                xd = cp.asarray(x)
                y = cp.asnumpy(s.run(xd))
                r = {"rel_err_vs_cpu_same_model": float(np.abs(y - ref).max() / np.abs(ref).max()),
                     "rel_err_vs_cpu_fp32": float(np.abs(y - cpu).max() / np.abs(cpu).max()),
                     "captured": s.captured().get(1)}
                r.update(wall_us(lambda: s.run(xd), reps))
                r["host_io"] = wall_us(lambda: s.run(x), max(reps // 2, 5))
                row[f"{dtype}_{'graph' if capture else 'eager'}"] = r
                s.close()
        out[name] = row
    try:  # the XLA artifact on this GPU against the CPU Session
        g, shape = cases["mlp_784_512_256_10_b1"]
        x = rng.standard_normal((4, 784)).astype(np.float32)
        with tempfile.TemporaryDirectory() as d:
            rt.xla.export(g, Path(d) / "m.pyrtx", platforms=("cpu", "cuda"))
            art = rt.xla.load(Path(d) / "m.pyrtx")
            y = np.asarray(art.run(x))
        ref = rt.compile(g).run(x)
        from pyruntime.xla.export import current_platform
        out["xla_artifact_gpu"] = {"platform": current_platform(),
                                   "rel_err_vs_cpu": float(np.abs(y - ref).max() / np.abs(ref).max())}
    except Exception as e:
        out["xla_artifact_gpu"] = {"error": f"{type(e).__name__}: {e}"[:300]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    args = ap.parse_args(argv)
    reps = 5 if args.quick else 20
    res = {"cuda": cuda_info(), "cupy": cp.__version__}
    res["gemm"] = gemm_cases(2048 if args.quick else 8192, reps)
    res["spmv"] = [spmv_case(4096, s, reps * 5) for s in (0.9, 0.95)]
    try:
        res["models"] = model_cases(50 if args.quick else 200)
    except Exception as e:  # report, keep the GEMM figures
        import traceback
        res["models"] = {"error": traceback.format_exc()[-2000:]}
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
