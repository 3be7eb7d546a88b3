"""f32 GEMM beside numpy's BLAS, 1 and 2 threads: paired per-round throughput ratios.

Run (numpy's OpenBLAS picks its kernel from OPENBLAS_CORETYPE when the process starts):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gemm_blas.py           # SkylakeX
    env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell python bench/gemm_blas.py --isa avx2

Each round times both engines in a block of calls (order alternating, a pause before
each block so the other engine's spinning threads have gone to sleep) and records
ours / numpy throughput; the table shows the median ratio and its range over rounds,
our median GFLOP/s and the fraction of the measured FMA peak (best of 3 probes).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import pyruntime as rt
from pyruntime import _core
from pyruntime.graph import Graph, Node, ValueInfo, Weight
from run import block_seconds  # bench/run.py (this script's directory is on sys.path)

SHAPES = {
    "main": [(256, 1024, 1024)],
    "all": [(256, 1024, 1024), (64, 1024, 1024), (1, 1024, 1024), (1, 4096, 4096),
            (12544, 16, 96), (3136, 144, 24), (784, 192, 64)],
}


def gemm_graph(k: int, n: int) -> tuple[Graph, np.ndarray]:
    w = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32)
    g = Graph([ValueInfo("x", (None, k))], ["y"], [Node("Gemm", ["x", "W"], ["y"], name="gemm")],
              {"W": Weight.f32(w)}, name=f"gemm_{k}x{n}")
    return g, w


def bench_shape(m: int, k: int, n: int, threads: int, isa: str | None, rounds: int,
                min_s: float, pause: float) -> dict:
    g, w = gemm_graph(k, n)
    x = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
    sess = rt.compile(g, threads=threads, isa=isa)
    out = np.empty((m, n), np.float32)
    ref = x.astype(np.float64) @ w.astype(np.float64)
    err = float(np.max(np.abs(sess.run(x) - ref)) / np.max(np.abs(ref)))
    assert err < 1e-4, f"pyruntime result off by {err:g}"

    def ours() -> object:
        return sess.run(x)

    def theirs() -> object:
        return np.matmul(x, w, out=out)

    for fn in (ours, theirs):
        for _ in range(3):
            fn()
    flops = 2.0 * m * k * n
    ratios, g_ours, g_blas = [], [], []
    for r in range(rounds):
        t = {}
        for name, fn in ((("ours", ours), ("blas", theirs)) if r % 2 == 0
                         else (("blas", theirs), ("ours", ours))):
            time.sleep(pause)
            t[name] = block_seconds(fn, 3, min_s)
        ratios.append(t["blas"] / t["ours"])
        g_ours.append(flops / t["ours"] / 1e9)
        g_blas.append(flops / t["blas"] / 1e9)
    return {"shape": f"{m}x{k}x{n}", "ratio": statistics.median(ratios), "rmin": min(ratios),
            "rmax": max(ratios), "ours": statistics.median(g_ours),
            "blas": statistics.median(g_blas)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--isa", default=None, help="pyruntime ISA (default: best)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--shapes", default="all", help="main | all | MxKxN[,MxKxN...]")
    ap.add_argument("--rounds", type=int, default=9, help="paired rounds per shape")
    ap.add_argument("--min-s", type=float, default=0.05, help="seconds per block")
    ap.add_argument("--pause", type=float, default=0.15)
    args = ap.parse_args()
    shapes = SHAPES.get(args.shapes) or [tuple(int(v) for v in s.split("x"))
                                         for s in args.shapes.split(",")]
    peak_isa = args.isa or rt.info()["isa"]
    for threads in (int(t) for t in args.threads.split(",")):
        with threadpool_limits(limits=threads, user_api="blas"):
            blas = [(d["architecture"], d["num_threads"]) for d in threadpool_info()
                    if d["user_api"] == "blas"]
            peak = max(_core.testing.peak_gflops(peak_isa, threads, 20_000_000) for _ in range(3))
            cfg = _core.testing.gemm_config(peak_isa)
            kernel = cfg["name"] + (f" (narrow N: {cfg['narrow']})" if cfg.get("narrow") else "")
            print(f"\n{threads} thread(s): ours {kernel}; numpy OpenBLAS {blas}; "
                  f"measured FMA peak {peak:.1f} GFLOP/s ({peak_isa}, best of 3)")
            print(f"{'shape':>16} {'ours GF/s':>9} {'blas GF/s':>9} {'ratio':>6} "
                  f"{'range':>11} {'%peak':>6}")
            for m, k, n in shapes:
                r = bench_shape(m, k, n, threads, args.isa, args.rounds, args.min_s, args.pause)
                print(f"{r['shape']:>16} {r['ours']:9.1f} {r['blas']:9.1f} {r['ratio']:6.2f} "
                      f"{r['rmin']:5.2f}-{r['rmax']:<5.2f} {100 * r['ours'] / peak:6.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
