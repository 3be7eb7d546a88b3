"""Pruning benchmarks: pyruntime's sparse kernels beside its own dense kernels (and
onnxruntime on the dense model), in the same run.

    python bench/sparse.py --threads 2            # everything (about 3 minutes)
    python bench/sparse.py --quick                # fewer sparsities and rounds

Cases:
1. A Dense 4096 x 4096 layer at batch 1 and 64, pruned to 50 .. 98% (unstructured, and
   (16, 1) blocks: 16 output channels x 1 input), compiled with sparse="sparse" against
   the unpruned layer with sparse="dense". The speed-up is the median over rounds of
   (dense block time / sparse block time in the same round); engines alternate in blocks
   of calls with a pause between blocks. "auto" says what rt.compile picks by itself.
2. MobileNetV2-style 1x3x224x224, batch 1, its 1x1 convs pruned to 90% ((16, 1) blocks
   and unstructured): the pruned model against our dense model and onnxruntime's.
3. Model files (rt.save) of the pruned models against the dense ones.
From the 4096 x 4096 runs it prints the rates the cost model in cpp/runtime/sparse.cpp
uses (per thread). Outputs are checked against the dense engine before timing.
Writes bench/results/sparse.json and a plot bench/results/sparse_speedup.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

import pyruntime as rt
from pyruntime import zoo

from run import (check_close, cpu_name, gemm_graph, measured_peaks,  # bench/run.py
                 ort_session, time_alternating)

try:
    from tqdm import tqdm
except ImportError:  # progress bars are optional
    tqdm = None

RESULTS = Path(__file__).resolve().parent / "results"
N = 4096


def prune_layer(g: rt.Graph, sparsity: float, block: tuple | None) -> rt.Graph:
    kw = {"structure": "block", "block": block} if block else {}
    return rt.prune(g, sparsity, scope="layer", min_params=0, **kw)


def paired_speedup(samples: dict[str, list[float]], base: str, other: str) -> float:
    """Median over rounds of base time / other time (same round)."""
    return statistics.median(b / o for b, o in zip(samples[base], samples[other]))


def layer_cases(sparsities, batches, threads, blocks, progress) -> list[dict]:
    dense_g = gemm_graph(N, N)
    rows = []
    cases = [(s, b, blk) for blk in (None, (16, 1)) for s in sparsities for b in batches]
    it = tqdm(cases, desc="4096x4096 layer", disable=not progress) if tqdm else cases
    for sp, batch, block in it:
        g = prune_layer(dense_g, sp, block)
        sparse = rt.compile(g, threads=threads, sparse="sparse")
        auto = rt.compile(g, threads=threads).plan_summary()[0]["kernel"]
        # the dense engine runs the pruned weights too: same outputs, same zeros
        dense_p = rt.compile(g, threads=threads, sparse="dense")
        x = np.random.default_rng(batch).standard_normal((batch, N)).astype(np.float32)
        check_close(sparse.run(x), dense_p.run(x))
        # blocks of at least 0.1 s each: a fast engine's block is not dominated by waking
        # the workers after the pause
        t = time_alternating({"dense": lambda: dense_p.run(x), "sparse": lambda: sparse.run(x)},
                             blocks=blocks, calls=5, pause=0.1, min_block_s=0.1)
        nnz = int(np.count_nonzero(g.weights["W"].numpy()))
        ts = statistics.median(t["sparse"])
        rows.append({
            "case": "gemm4096", "batch": batch, "sparsity": sp,
            "structure": "unstructured" if block is None else f"block{block[0]}x{block[1]}",
            "dense_ms": statistics.median(t["dense"]) * 1e3, "sparse_ms": ts * 1e3,
            "speedup": paired_speedup(t, "dense", "sparse"),
            "sparse_gflops": 2.0 * nnz * batch / ts / 1e9, "nonzeros": nnz,
            "kernel": sparse.plan_summary()[0]["kernel"], "auto": auto})
    return rows


def pointwise_weights(g: rt.Graph) -> list[str]:
    return [n.inputs[1] for n in g.nodes
            if n.op == "Conv" and tuple(g.weights[n.inputs[1]].shape[2:]) == (1, 1)]


def mobilenet_cases(threads, blocks, progress) -> list[dict]:
    g = zoo.mobilenetv2_style()
    pw = pointwise_weights(g)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    dense = rt.compile(g, threads=threads)
    ort = ort_session(g, threads)
    rows = []
    variants = [((16, 1), "block16x1"), ((4, 1), "block4x1"), (None, "unstructured")]
    it = tqdm(variants, desc="MobileNetV2", disable=not progress) if tqdm else variants
    for block, label in it:
        kw = {"structure": "block", "block": block} if block else {}
        p = rt.prune(g, {w: 0.9 for w in pw}, **kw)
        sparse = rt.compile(p, threads=threads)
        check_close(sparse.run(x), rt.compile(p, threads=threads, sparse="dense").run(x))
        t = time_alternating({"dense": lambda: dense.run(x), "sparse": lambda: sparse.run(x),
                              "onnxruntime": lambda: ort(x)}, blocks=blocks, calls=20,
                             pause=0.3, min_block_s=0.1)
        steps = sparse.plan_summary()
        rows.append({
            "case": "mobilenetv2_224_b1", "structure": label, "pruned": "1x1 convs to 90%",
            "dense_ms": statistics.median(t["dense"]) * 1e3,
            "sparse_ms": statistics.median(t["sparse"]) * 1e3,
            "onnxruntime_dense_ms": statistics.median(t["onnxruntime"]) * 1e3,
            "speedup_vs_dense": paired_speedup(t, "dense", "sparse"),
            "speedup_vs_onnxruntime": paired_speedup(t, "onnxruntime", "sparse"),
            "sparse_steps": sum("f32_spmm" in s["kernel"] for s in steps),
            "overall_sparsity": rt.sparsity(p)["overall"]["sparsity"]})
    return rows


def file_sizes() -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as d:
        for name, g, prune in [
                ("mlp_4096", gemm_graph(N, N), lambda g: prune_layer(g, 0.9, None)),
                ("mlp_4096_block16", gemm_graph(N, N), lambda g: prune_layer(g, 0.9, (16, 1))),
                ("mobilenetv2_all_90", zoo.mobilenetv2_style(),
                 lambda g: rt.prune(g, 0.9, scope="layer"))]:
            a, b = os.path.join(d, "dense.pyrt"), os.path.join(d, "pruned.pyrt")
            rt.save(g, a)
            rt.save(prune(g), b)
            out.append({"model": name, "dense_bytes": os.path.getsize(a),
                        "pruned_bytes": os.path.getsize(b),
                        "ratio": os.path.getsize(b) / os.path.getsize(a)})
    return out


def model_rates(rows: list[dict], threads: int) -> dict:
    """The cost model's per-thread rates, from the unstructured 90% rows (cpp/runtime/
    sparse.cpp: bytes/ns, dense MAC/ns, sparse tile MAC/ns at full tiles, row MAC/ns)."""
    def pick(batch):
        return next((r for r in rows if r["structure"] == "unstructured" and
                     r["sparsity"] == 0.9 and r["batch"] == batch), None)
    b1, b64 = pick(1), pick(64)
    if not (b1 and b64):
        return {}
    return {"bw_bytes_per_ns": 4.0 * N * N / (b1["dense_ms"] * 1e6) / threads,
            "dense_mac_per_ns": N * N * 64 / (b64["dense_ms"] * 1e6) / threads,
            "spmm_mac_per_ns": b64["nonzeros"] * 64 / (b64["sparse_ms"] * 1e6) / threads
            / (64 / 80),
            "spmv_mac_per_ns": b1["nonzeros"] / (b1["sparse_ms"] * 1e6) / threads}


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for structure, style in (("unstructured", "-o"), ("block16x1", "--s")):
        for batch in sorted({r["batch"] for r in rows}):
            pts = sorted((r["sparsity"], r["speedup"]) for r in rows
                         if r["structure"] == structure and r["batch"] == batch)
            if pts:
                ax.plot([100 * p for p, _ in pts], [s for _, s in pts], style,
                        label=f"{structure}, batch {batch}")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel("speed-up over our dense kernel")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer sparsities and rounds")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--json", default=str(RESULTS / "sparse.json"))
    ap.add_argument("--plot", default=str(RESULTS / "sparse_speedup.png"))
    a = ap.parse_args(argv)
    progress = not a.no_progress
    sparsities = [0.5, 0.9, 0.98] if a.quick else [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]
    blocks = 3 if a.quick else 7
    info = rt.info()
    machine = {"cpu": cpu_name(), "threads": a.threads, "isa": info["isa"],
               "features": info["usable_features"]}
    peak = measured_peaks(a.threads)["gflops"]
    print(f"{machine['cpu']}, {a.threads} threads, kernels {machine['isa']}, "
          f"peak {peak:.0f} GFLOP/s")
    layer = layer_cases(sparsities, [1, 64], a.threads, blocks, progress)
    print(f"\nDense {N}x{N} layer: speed-up of the sparse kernel over our dense kernel "
          f"(median of paired rounds)")
    print(f"{'structure':>13} {'batch':>5} {'sparsity':>8} {'dense ms':>9} {'sparse ms':>9} "
          f"{'speed-up':>8} {'GFLOP/s':>8} {'% peak':>6}  auto picks")
    for r in layer:
        r["fraction_of_peak"] = r["sparse_gflops"] / peak
        auto = "sparse" if "f32_spmm" in r["auto"] else "dense"
        if "; dense " in r["auto"]:  # "...; dense <kernel> from A rows[ to B]"
            auto = "dense from " + r["auto"].split(" from ")[1]
        print(f"{r['structure']:>13} {r['batch']:5d} {100 * r['sparsity']:7.0f}% "
              f"{r['dense_ms']:9.3f} {r['sparse_ms']:9.3f} {r['speedup']:7.2f}x "
              f"{r['sparse_gflops']:8.1f} {100 * r['fraction_of_peak']:5.1f}%  {auto}")
    mnv2 = mobilenet_cases(a.threads, 3 if a.quick else 7, progress)
    print("\nMobileNetV2-style 224x224 batch 1, 1x1 convs pruned to 90%")
    for r in mnv2:
        print(f"  {r['structure']:>13}: sparse {r['sparse_ms']:.3f} ms, our dense "
              f"{r['dense_ms']:.3f} ms ({r['speedup_vs_dense']:.2f}x), onnxruntime dense "
              f"{r['onnxruntime_dense_ms']:.3f} ms ({r['speedup_vs_onnxruntime']:.2f}x)")
    files = file_sizes()
    print("\nModel files (rt.save)")
    for f in files:
        print(f"  {f['model']:>20}: {f['dense_bytes'] / 1e6:8.2f} MB dense, "
              f"{f['pruned_bytes'] / 1e6:8.2f} MB pruned 90% ({f['ratio']:.3f}x)")
    rates = model_rates(layer, a.threads)
    if rates:
        print("\ncost-model rates per thread (cpp/runtime/sparse.cpp): " +
              ", ".join(f"{k} {v:.1f}" for k, v in rates.items()))
    RESULTS.mkdir(exist_ok=True)
    out = {"machine": machine, "peak_gflops": peak, "layer_4096": layer, "mobilenetv2": mnv2,
           "files": files, "rates_per_thread": rates}
    Path(a.json).write_text(json.dumps(out, indent=1))
    try:
        plot(layer, Path(a.plot), f"{N}x{N} Dense layer, {machine['cpu']}, {a.threads} threads")
        print(f"wrote {a.json} and {a.plot}")
    except ImportError:
        print(f"wrote {a.json} (matplotlib is not installed: no plot)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
