"""The int8 depthwise steps (qu8_dwconv) of MobileNetV2-style 224 at batch 1.

    python bench/qdwconv.py --threads 2 [--blocks 10] [--layers] [--json out.json]

Prints, for the int8 static model (rt.quantize with 4 random calibration images): the
median seconds of its qdwconv steps and of all steps (sess.profile, 20 runs), and the
int8 and fp32 models' latencies timed in alternating blocks (bench/run.py) with the
median of paired per-round ratios. Run it with two builds on PYTHONPATH to compare them
(each run prints which kernel its qdwconv steps use). --layers also prints, per depthwise
layer, the median seconds of its qdwconv step and of the fp32 model's f32_dwconv step
(compiled without fused blocks, so the depthwise conv is a step of its own), profiled
in alternating rounds, and the median of the paired per-round ratios."""

from __future__ import annotations

import argparse
import json
import statistics

import numpy as np

import pyruntime as rt
from pyruntime import zoo

from run import cpu_name, time_alternating  # bench/run.py


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--json", default=None)
    ap.add_argument("--layers", action="store_true")
    a = ap.parse_args()
    g = zoo.mobilenetv2_style()
    rng = np.random.default_rng(1)
    cal = [rng.standard_normal((1, 3, 224, 224)).astype(np.float32) for _ in range(4)]
    x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    q = rt.quantize(g, "int8", calibration=cal, progress=False)
    sq = rt.compile(q, threads=a.threads)
    sf = rt.compile(g, threads=a.threads)
    rows = sq.profile(x, repeat=20)
    dw = [r for r in rows if r["op"] == "qdwconv"]
    out = {"cpu": cpu_name(), "threads": a.threads,
           "qdwconv_kernel": sorted({r["kernel"] for r in dw}),
           "qdwconv_steps": len(dw),
           "qdwconv_ms": 1e3 * sum(r["seconds"] for r in dw),
           "profile_total_ms": 1e3 * sum(r["seconds"] for r in rows)}
    s = time_alternating({"int8": lambda: sq.run(x), "fp32": lambda: sf.run(x)},
                         blocks=a.blocks, calls=a.calls)
    out["int8_ms"] = 1e3 * statistics.median(s["int8"])
    out["fp32_ms"] = 1e3 * statistics.median(s["fp32"])
    out["int8_over_fp32"] = statistics.median(i / f for i, f in zip(s["int8"], s["fp32"]))
    if a.layers:
        out["layers"] = layers(g, sq, x, a.threads, a.blocks)
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f)


def layers(g, sq, x, threads, rounds):
    """Per depthwise layer: int8 qdwconv vs fp32 dwconv seconds, paired per round."""
    from pyruntime.cpu.session import compile_cpu
    from pyruntime.passes import optimize
    su = compile_cpu(optimize(g), threads=threads, fuse_blocks=False)
    qi = {r["node"]: r for r in sq.profile(x, repeat=1) if r["op"] == "qdwconv"}
    per = {n: ([], []) for n in qi}
    for _ in range(rounds):
        q = {r["node"]: r["seconds"] for r in sq.profile(x, repeat=10) if r["op"] == "qdwconv"}
        f = {r["node"]: r["seconds"] for r in su.profile(x, repeat=10) if r["op"] == "dwconv"}
        for n in per:
            if n in f:
                per[n][0].append(q[n])
                per[n][1].append(f[n])
    rows = []
    for n, (qs, fs) in per.items():
        if not qs:
            continue
        rows.append({"node": n, "int8_us": 1e6 * statistics.median(qs),
                     "fp32_us": 1e6 * statistics.median(fs),
                     "int8_over_fp32": statistics.median(i / f for i, f in zip(qs, fs))})
        print(f"{n:40s} int8 {rows[-1]['int8_us']:8.1f} us  fp32 {rows[-1]['fp32_us']:8.1f} us  "
              f"ratio {rows[-1]['int8_over_fp32']:.2f}")
    return rows


if __name__ == "__main__":
    main()
