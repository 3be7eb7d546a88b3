"""int8 GEMM (qs8_qc8w_gemm) against our fp32 GEMM, kernel level, in the same run.

    python bench/qgemm.py                # all sizes (about a minute)
    python bench/qgemm.py --rounds 5
    python bench/qgemm.py --only __avx2 --sizes 256,1024,1024   # one kernel, one size

Pairs: the best int8 kernel of a level against that level's fp32 kernel
(_core.testing.qgemm / _core.testing.gemm), and the int8 kernels without VNNI
(vpmaddubsw on a - 128: `__avx2`, `__avx512`) against the fp32 kernel of their level. Both run on one thread: _core.testing.gemm has
no thread pool, so the int8 side does not get one either (qgemm_parallel's split is the
same grid as gemm_parallel's). Each block of calls packs once and runs `repeat` times;
the time of one run is (t(repeat) - t(1)) / (repeat - 1), so packing is not counted.
Engines alternate in blocks with a pause between; the speed-up is the median of the
per-round ratios. quantize_rows (dynamic quantization of A) is timed on its own and is
not in the GEMM figure.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from pyruntime import _core

T = _core.testing
SIZES = ((256, 1024, 1024), (1, 4096, 4096), (1, 1024, 1024))


def per_run(call, repeat: int) -> float:
    """Seconds of one kernel run: a block of `repeat` runs minus a block of one."""
    t0 = time.perf_counter()
    call(1)
    t1 = time.perf_counter()
    call(repeat)
    t2 = time.perf_counter()
    return max((t2 - t1) - (t1 - t0), 1e-12) / (repeat - 1)


def compare(M, K, N, variant, f32_isa, rounds, rng):
    A = rng.integers(0, 256, (M, K), dtype=np.uint8)
    B = rng.integers(-127, 128, (K, N), dtype=np.int8)
    Af = rng.standard_normal((M, K)).astype(np.float32)
    Bf = rng.standard_normal((K, N)).astype(np.float32)
    ws = np.full(N, 0.01, np.float32)
    repeat = max(8, int(2e9 / (M * K * N)))  # runs well above the packing time
    q = lambda r: T.qgemm(A, B, 0.02, 3, ws, variant=variant, repeat=r)  # noqa: E731
    f = lambda r: T.gemm(Af, Bf, isa=f32_isa, repeat=r)  # noqa: E731
    q(2), f(2)  # warm up
    ratios, tq, tf = [], [], []
    for _ in range(rounds):
        a = per_run(q, repeat)
        time.sleep(0.05)
        b = per_run(f, repeat)
        time.sleep(0.05)
        tq.append(a), tf.append(b), ratios.append(b / a)
    ops = 2.0 * M * K * N
    x = rng.standard_normal((M, K)).astype(np.float32)
    t0 = time.perf_counter()
    for _ in range(20):
        T.quantize_rows(x, variant=variant)
    tquant = (time.perf_counter() - t0) / 20
    return {"int8_gops": ops / statistics.median(tq) / 1e9, "f32_gflops": ops / statistics.median(tf) / 1e9,
            "ratio": statistics.median(ratios), "int8_us": statistics.median(tq) * 1e6,
            "quantize_us": tquant * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", default=None,
                    help="time only the int8 variants whose name contains this (e.g. __avx2)")
    ap.add_argument("--sizes", default=None, help="M,K,N;M,K,N... instead of the default sizes")
    args = ap.parse_args()
    sizes = SIZES if not args.sizes else tuple(tuple(int(x) for x in s.split(",")) for s in args.sizes.split(";"))
    rng = np.random.default_rng(0)
    variants = {v["name"]: v for v in T.qgemm_variants() if v["runs"]}
    pairs = []
    if _core.isa_supported("avx512"):
        pairs.append((T.qgemm_config("avx512")["name"], "avx512"))
    if _core.isa_supported("avx2"):
        pairs.append((T.qgemm_config("avx2")["name"], "avx2"))
    # The kernels without VNNI (vpmaddubsw on a - 128) against the fp32 kernel of their
    # level: on a VNNI machine the tables hold the VNNI kernels instead.
    for suffix, f32_isa in (("__avx512", "avx512"), ("__avx2", "avx2")):
        if not _core.isa_supported(f32_isa):
            continue
        for plain in (n for n in variants if n.endswith(suffix)):
            if (plain, f32_isa) not in pairs:
                pairs.append((plain, f32_isa))
    if args.only:
        pairs = [p for p in pairs if args.only in p[0]]
    info = _core.info() if hasattr(_core, "info") else {}
    print("cpu features:", " ".join(info.get("cpu_features", [])))
    print(f"{'M x K x N':>18} {'int8 kernel':>34} {'GOPS':>7} {'fp32':>7} {'GFLOPS':>7} "
          f"{'int8/fp32':>9} {'int8 us':>9} {'quant us':>9}")
    for M, K, N in sizes:
        for variant, f32_isa in pairs:
            r = compare(M, K, N, variant, f32_isa, args.rounds, rng)
            print(f"{M:>5} x{K:>5} x{N:>5} {variant:>34} {r['int8_gops']:7.1f} {f32_isa:>7} "
                  f"{r['f32_gflops']:7.1f} {r['ratio']:8.2f}x {r['int8_us']:9.1f} {r['quantize_us']:9.1f}")


if __name__ == "__main__":
    main()
