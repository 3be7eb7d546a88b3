"""16-bit weight GEMM (f16w_gemm, bf16w_gemm) beside our f32 GEMM: paired per-round ratios.

    python bench/gemm16.py [--threads 2] [--rounds 15] [--isa avx512]

Every engine runs `_core.testing.gemm` on the same A and B (B rounded to the weight type
by its packer, once per block), the grid split into 8 column blocks on `threads` threads
of the executor's pool. Each round times every engine in a block of `repeat` calls
(order rotating per round, a short pause before each block), measured by the binding
without the packing (`testing.gemm_last_seconds`). The table shows, per shape, the
median over rounds of engine / f32 throughput ratios (paired within a round) with their
range, and the median GB/s of weights read (GEMV) or GFLOP/s (GEMM). The plain AVX-512
bf16 kernel and the AVX512-BF16 (vdpbf16ps) one are both shown where the CPU has them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import numpy as np

from pyruntime import _core

T = _core.testing
SHAPES = [(1, 4096, 4096, 40), (1, 1024, 1024, 400), (256, 1024, 1024, 6)]  # M, K, N, repeat


def engines(isa: str) -> list[tuple[str, str, str]]:
    """(label, entry, variant) for f32 and every runnable 16-bit variant at `isa`."""
    out = [("f32", "f32_gemm", "")]
    for entry in ("f16w_gemm", "bf16w_gemm"):
        for v in T.gemm_variants(entry):
            if v["runnable"] and v["level"] == isa:
                out.append((v["name"], entry, v["name"]))
    return out


def cpu_line() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    except OSError:
        return "lscpu unavailable"
    model = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("Model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in lines if l.startswith("Flags")), [])
    keep = [f for f in flags if f.startswith(("avx", "f16c", "fma", "amx"))]
    return f"{model}; flags: {' '.join(keep)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--isa", default="avx512" if _core.isa_supported("avx512") else "avx2")
    ap.add_argument("--pause", type=float, default=0.05)
    args = ap.parse_args()
    print(cpu_line())
    print(f"isa={args.isa} threads={args.threads} rounds={args.rounds}")
    rng = np.random.default_rng(0)
    eng = engines(args.isa)
    for M, K, N, repeat in SHAPES:
        A = rng.standard_normal((M, K)).astype(np.float32)
        B = rng.standard_normal((K, N)).astype(np.float32)
        C = np.empty((M, N), np.float32)
        secs: dict[str, list[float]] = {e[0]: [] for e in eng}
        for r in range(args.rounds):
            order = eng[r % len(eng):] + eng[:r % len(eng)]
            for label, entry, variant in order:
                time.sleep(args.pause)
                T.gemm(A, B, out=C, entry=entry, variant=variant, isa=args.isa,
                       threads=args.threads, n_split=8, repeat=repeat)
                secs[label].append(T.gemm_last_seconds() / repeat)
        base = secs["f32"]
        print(f"\n{M}x{K}x{N} (M x K x N), f32 median {statistics.median(base) * 1e6:.1f} us")
        for label, entry, _ in eng:
            ratios = [b / s for b, s in zip(base, secs[label])]
            t = statistics.median(secs[label])
            wbytes = K * N * (4 if entry == "f32_gemm" else 2)
            rate = (f"{wbytes / t / 1e9:6.1f} GB/s of weights" if M <= 3
                    else f"{2 * M * K * N / t / 1e9:6.1f} GFLOP/s")
            print(f"  {label:32s} x{statistics.median(ratios):5.2f} "
                  f"[{min(ratios):.2f}, {max(ratios):.2f}]  {rate}")


if __name__ == "__main__":
    main()
