"""pyruntime benchmarks: every case beside its baseline in the same run.

Run (numpy's BLAS needs these two variables unset to use its fast kernel; unset them in
this command only, never in tests or CI):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py --threads 2

Engines are timed in alternating blocks of calls with a pause between blocks, so
spinning worker threads of one engine (onnxruntime, OpenMP) cannot steal the cores of
the other; medians are reported. Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

import pyruntime as rt
from pyruntime import _core
from pyruntime.graph import Graph, Node, ValueInfo, Weight

try:
    from tqdm import tqdm
except ImportError:  # progress bars are optional
    tqdm = None


# ----------------------------------------------------------------------------- timing
def time_alternating(engines: dict[str, Callable[[], object]], *, blocks: int, calls: int,
                     pause: float = 0.3, min_block_s: float = 0.0) -> dict[str, float]:
    """Median seconds per call of each engine, timed in alternating blocks of calls.

    The pause between blocks outlasts the other engines' spinning workers: OpenBLAS
    threads spin about 2**28 cycles (~0.1 s) after a call, onnxruntime's and OpenMP's
    less, so each block starts with the cores free."""
    for fn in engines.values():  # warm up: plans, caches, thread pools
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in engines}
    for b in range(blocks):
        order = list(engines.items())
        if b % 2:
            order.reverse()
        for name, fn in order:
            time.sleep(pause)
            samples[name].append(block_seconds(fn, calls, min_block_s))
    return {k: statistics.median(v) for k, v in samples.items()}


def block_seconds(fn: Callable[[], object], calls: int, min_s: float = 0.0) -> float:
    """Seconds per call over one block of at least `calls` calls and `min_s` seconds."""
    n = 0
    t0 = time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if n >= calls and dt >= min_s:
            return dt / n


# ------------------------------------------------------------------------ baselines
def ort_session(graph: Graph, threads: int):
    import onnxruntime as ort
    from pyruntime.onnx import to_onnx

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(to_onnx(graph).SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl not installed"}]
    return [{k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for d in threadpool_info() if d.get("user_api") == "blas"]


def measured_peaks(threads: int) -> dict[str, float]:
    isas = [i for i in ("avx512", "avx2") if _core.isa_supported(i)]
    peak = max(_core.testing.peak_gflops(isas[0], threads, 30_000_000) for _ in range(3)) \
        if isas else float("nan")
    a = np.ones(64 * 1024 * 1024 // 4, dtype=np.float32)  # 64 MiB, far beyond L3
    b = np.empty_like(a)
    best = min(_t(lambda: np.copyto(b, a)) for _ in range(5))
    return {"gflops": peak, "gbps": 2 * a.nbytes / best / 1e9, "isa": isas[0] if isas else "scalar"}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _t(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------- graphs
def gemm_graph(k: int, n: int, seed: int = 0) -> Graph:
    w = np.random.default_rng(seed).standard_normal((k, n)).astype(np.float32)
    return Graph([ValueInfo("x", (None, k))], ["y"], [Node("Gemm", ["x", "W"], ["y"], name="gemm")],
                 {"W": Weight.f32(w)}, name=f"gemm_{k}x{n}")


def dwconv_graph(c: int, hw: int, k: int, stride: int, seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    p = k // 2
    node = Node("Conv", ["x", "W", "B"], ["y"], {"strides": (stride, stride), "pads": (p, p, p, p),
                "dilations": (1, 1), "group": c}, name="dw")
    return Graph([ValueInfo("x", (None, c, hw, hw))], ["y"], [node],
                 {"W": Weight.f32(rng.standard_normal((c, 1, k, k)) * 0.3),
                  "B": Weight.f32(rng.standard_normal(c))}, name=f"dw{k}x{k}_s{stride}_{c}x{hw}")


def graph_flops(graph: Graph, batch: int) -> float:
    """Multiply-adds x 2 of Conv and Gemm nodes (the work that matters)."""
    from pyruntime.shapes import infer_shapes

    shapes = infer_shapes(graph)
    total = 0.0
    for node in graph.nodes:
        w = graph.weights.get(node.inputs[1]) if len(node.inputs) > 1 else None
        if node.op == "Conv" and w is not None:
            o, ipg, kh, kw = w.shape
            _, _, oh, ow = shapes[node.outputs[0]]
            total += 2.0 * batch * oh * ow * o * ipg * kh * kw
        elif node.op == "Gemm" and w is not None:
            k, n = w.shape
            total += 2.0 * batch * k * n
    return total


# -------------------------------------------------------------------------- cases
def run_cases(threads: int, quick: bool, progress: bool) -> tuple[list[dict], dict]:
    from pyruntime import zoo

    rng = np.random.default_rng(0)
    peaks = measured_peaks(threads)
    blocks = 5 if quick else 11
    rows: list[dict] = []
    cases = []

    def gemm_case(m: int, k: int, n: int):
        g = gemm_graph(k, n)
        w = g.weights["W"].numpy()
        x = rng.standard_normal((m, k)).astype(np.float32)
        sess = rt.compile(g, threads=threads)
        out = np.empty((m, n), np.float32)
        res = time_alternating({"pyruntime": lambda: sess.run(x),
                                "numpy": lambda: np.matmul(x, w, out=out)},
                               blocks=blocks, calls=3, min_block_s=0.05)
        fl = 2.0 * m * k * n
        return dict(case=f"gemm {m}x{k}x{n}", baseline="numpy BLAS", flops=fl,
                    bytes=4.0 * (m * k + k * n + m * n), **_times(res, "numpy"))

    def dw_case(c: int, hw: int, k: int, s: int):
        g = dwconv_graph(c, hw, k, s)
        x = rng.standard_normal((1, c, hw, hw)).astype(np.float32)
        sess = rt.compile(g, threads=threads)
        ort = ort_session(g, threads)
        res = time_alternating({"pyruntime": lambda: sess.run(x), "onnxruntime": lambda: ort(x)},
                               blocks=blocks, calls=5, min_block_s=0.05)
        oh = (hw + 2 * (k // 2) - k) // s + 1
        return dict(case=f"dwconv {k}x{k} s{s} {c}x{hw}x{hw}", baseline="onnxruntime",
                    flops=2.0 * c * oh * oh * k * k, bytes=4.0 * c * (hw * hw + oh * oh),
                    **_times(res, "onnxruntime"))

    def model_case(name: str, g: Graph, x: np.ndarray):
        sess = rt.compile(g, threads=threads)
        ort = ort_session(g, threads)
        ours, theirs = sess.run(x), ort(x)
        err = float(np.max(np.abs(ours - theirs)) / (np.max(np.abs(theirs)) + 1e-30))
        res = time_alternating({"pyruntime": lambda: sess.run(x), "onnxruntime": lambda: ort(x)},
                               blocks=blocks, calls=5, min_block_s=0.1)
        return dict(case=name, baseline="onnxruntime", flops=graph_flops(g, x.shape[0]),
                    bytes=float("nan"), max_rel_diff=err, **_times(res, "onnxruntime"))

    cases.append(lambda: gemm_case(256, 1024, 1024))
    cases.append(lambda: gemm_case(64, 1024, 1024))
    cases.append(lambda: gemm_case(1, 1024, 1024))
    cases.append(lambda: gemm_case(1, 4096, 4096))
    cases.append(lambda: dw_case(96, 112, 3, 1))
    cases.append(lambda: dw_case(144, 56, 3, 2))
    cases.append(lambda: dw_case(240, 28, 5, 1))
    mlp = zoo.mlp()
    cases.append(lambda: model_case("MLP 784-512-256-10 b1", mlp,
                                    rng.standard_normal((1, 784)).astype(np.float32)))
    cases.append(lambda: model_case("MLP 784-512-256-10 b64", mlp,
                                    rng.standard_normal((64, 784)).astype(np.float32)))
    mnv2 = zoo.mobilenetv2_style()
    cases.append(lambda: model_case("MobileNetV2-style 1x3x224x224", mnv2,
                                    rng.standard_normal((1, 3, 224, 224)).astype(np.float32)))
    it = tqdm(cases, desc="bench", disable=not progress) if tqdm else cases
    for case in it:
        row = case()
        row["gflops"] = row["flops"] / row["pyruntime_s"] / 1e9
        row["frac_peak_flops"] = row["gflops"] / peaks["gflops"]
        row["gbps"] = row["bytes"] / row["pyruntime_s"] / 1e9
        row["frac_peak_bw"] = row["gbps"] / peaks["gbps"]
        rows.append(row)
    return rows, peaks


def _times(res: dict[str, float], base: str) -> dict:
    return {"pyruntime_s": res["pyruntime"], "baseline_s": res[base],
            "ratio": res["pyruntime"] / res[base]}


def print_table(rows: list[dict], meta: dict) -> None:
    print(f"\nmachine: {meta['cpu']}, {meta['threads']} threads, ISA {meta['isa']}; "
          f"measured peak {meta['peak_gflops']:.1f} GFLOP/s ({meta['peak_isa']} FMA), "
          f"copy bandwidth {meta['peak_gbps']:.1f} GB/s")
    print(f"numpy BLAS: {meta['blas']}")
    print(f"\n{'case':34} {'baseline':12} {'ours ms':>9} {'base ms':>9} {'time ratio':>10} "
          f"{'GFLOP/s':>8} {'%peak':>6} {'GB/s':>6}")
    for r in rows:
        gbps = f"{r['gbps']:6.1f}" if np.isfinite(r["gbps"]) else "     -"
        print(f"{r['case']:34} {r['baseline']:12} {r['pyruntime_s'] * 1e3:9.3f} "
              f"{r['baseline_s'] * 1e3:9.3f} {r['ratio']:10.2f} {r['gflops']:8.1f} "
              f"{100 * r['frac_peak_flops']:6.1f} {gbps}")
    print("time ratio = pyruntime time / baseline time (lower is better; < 1 = faster).")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="fewer blocks (noisier)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(limits=args.threads, user_api="blas")
    except ImportError:
        limits = None
    rows, peaks = run_cases(args.threads, args.quick, not args.no_progress)
    info = rt.info()
    meta = dict(cpu=cpu_name(), threads=args.threads,
                isa=info["isa"], kernels=info["kernels"], peak_gflops=peaks["gflops"],
                peak_isa=peaks["isa"], peak_gbps=peaks["gbps"], blas=blas_info(),
                env_openblas={k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
                python=sys.version.split()[0], numpy=np.__version__)
    print_table(rows, meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench_{time.strftime('%Y%m%d_%H%M%S')}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    print(f"\nwrote {path}")
    del limits
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
