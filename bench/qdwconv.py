"""The int8 depthwise steps (qu8_dwconv) of MobileNetV2-style 224 at batch 1.

    python bench/qdwconv.py --threads 2 [--blocks 10] [--json out.json]

Prints, for the int8 static model (rt.quantize with 4 random calibration images): the
median seconds of its qdwconv steps and of all steps (sess.profile, 20 runs), and the
int8 and fp32 models' latencies timed in alternating blocks (bench/run.py) with the
median of paired per-round ratios. Run it with two builds on PYTHONPATH to compare them
(each run prints which kernel its qdwconv steps use)."""

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
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
