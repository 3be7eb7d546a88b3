"""Sparse weights with int8 values (qc8w_spmm) against the same pattern with float32
values (f32_spmm), in the same run.

    python bench/qsparse.py --threads 2           # about a minute
    python bench/qsparse.py --quick

A Dense 4096 x 4096 layer at batch 1, pruned to 90% (unstructured, and (16, 1) blocks),
then rt.quantize(..., "int8"): the int8 csr/bsr layer against a float32 layer holding
its dense view (the same zeros, so f32_spmm stores the same pairs), both compiled with
sparse="sparse". Engines alternate in blocks (bench/run.py time_alternating); the
speed-up is the median over rounds of (float block time / int8 block time). Outputs are
checked against each other before timing. Writes bench/results/qsparse.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

import pyruntime as rt
from pyruntime import formats
from pyruntime.graph import Graph, Weight

from run import check_close, cpu_name, gemm_graph, time_alternating  # bench/run.py

SIZE = 4096


def layers(block: tuple[int, int] | None) -> tuple[Graph, Graph]:
    """(int8 csr/bsr layer, float32 layer with the same values and zeros)."""
    g = gemm_graph(SIZE, SIZE)
    kw = {"structure": "block", "block": block} if block else {}
    q = rt.quantize(rt.prune(g, 0.9, min_params=0, **kw), "int8")
    view = formats.dense_f32(q.weights["W"])
    f = Graph(q.inputs, q.outputs, q.nodes, {"W": Weight.f32(np.asarray(view, np.float32))},
              name="f32_view")
    return q, f


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    blocks, calls = (6, 200) if args.quick else (16, 400)
    x = np.random.default_rng(0).standard_normal((1, SIZE)).astype(np.float32)
    out = {"cpu": cpu_name(), "threads": args.threads, "size": SIZE, "batch": 1, "cases": []}
    print(f"{out['cpu']}, threads {args.threads}, {SIZE}x{SIZE} at 90% zeros, batch 1")
    for name, block in (("unstructured", None), ("16x1 blocks", (16, 1))):
        q, f = layers(block)
        sq = rt.compile(q, threads=args.threads, sparse="sparse")
        sf = rt.compile(f, threads=args.threads, sparse="sparse")
        kq, kf = sq.plan_summary()[0]["kernel"], sf.plan_summary()[0]["kernel"]
        auto = rt.compile(q, threads=args.threads).plan_summary()[0]["kernel"]
        err = check_close(sq.run(x), sf.run(x))
        t = time_alternating({"int8": lambda: sq.run(x), "f32": lambda: sf.run(x)},
                             blocks=blocks, calls=calls)
        ratios = [b / a for a, b in zip(t["int8"], t["f32"])]
        case = {"pattern": name, "int8_kernel": kq, "f32_kernel": kf, "auto": auto,
                "int8_us": 1e6 * statistics.median(t["int8"]),
                "f32_us": 1e6 * statistics.median(t["f32"]),
                "speedup": statistics.median(ratios), "speedup_min": min(ratios),
                "speedup_max": max(ratios), "max_rel_diff": err,
                "int8_weight_bytes": sq._plan.packed_weight_bytes(),
                "f32_weight_bytes": sf._plan.packed_weight_bytes()}
        out["cases"].append(case)
        print(f"{name:>13}: int8 {case['int8_us']:8.1f} us  f32 {case['f32_us']:8.1f} us  "
              f"speed-up {case['speedup']:.2f}x (rounds {case['speedup_min']:.2f}.."
              f"{case['speedup_max']:.2f})  weights {case['int8_weight_bytes'] / 2**20:.1f} vs "
              f"{case['f32_weight_bytes'] / 2**20:.1f} MiB\n{'':15}{kq}\n{'':15}auto: {auto}")
    path = Path(__file__).parent / "results" / "qsparse.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
