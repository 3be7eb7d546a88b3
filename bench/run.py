"""pyruntime benchmarks: every case beside its baseline in the same run.

Run (numpy's BLAS needs these two variables unset to use its fast kernel; unset them in
this command only, never in tests or CI):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py --threads 2

Engines are timed in alternating blocks of calls with a pause between blocks, so
spinning worker threads of one engine cannot steal the cores of the other. Each round
times one block of each engine; the time ratio reported is the median over rounds of
(pyruntime block time / baseline block time in the same round), so a slow period of the
machine hits both sides of a ratio. Before anything is timed, every case's output is
checked against its baseline's (np.allclose, rtol=1e-4, atol=1e-4 * max|baseline|); a
case that differs is not timed and the run exits with status 1.

Bounds, measured here before the cases: the peak FLOP/s is the best of repeated FMA
probes (16 independent AVX-512 or 12 AVX2 chains in registers, all threads at once,
each thread timing itself; the best ISA); the read rate is the best of repeated reads
of a buffer as large as the case's bytes, on the same threads (so it is the rate of the
cache level that holds that much). No case can exceed either: a row that does means a
probe or a FLOP count is wrong, and the run exits with status 1.
Prints a table and writes JSON to bench/results/. `--plot` also writes two PNGs next
to the JSON (matplotlib, Agg): the ratio per case with its quartiles, and a roofline of
this machine's measured peak FLOP/s and memory bandwidth (a large numpy copy: bytes read
+ written per second, one thread) with each case placed at its FLOPs / bytes (model
cases at weights + input + output bytes: a lower bound on their traffic).
`python bench/run.py --plot-json bench/results/bench_X.json` redraws a saved run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

import pyruntime as rt
from pyruntime import _core
from pyruntime.timing import alternate, cpu_name  # noqa: F401  (bench scripts import cpu_name from here)
from pyruntime.graph import Graph, Node, ValueInfo, Weight

try:
    from tqdm import tqdm
except ImportError:  # progress bars are optional
    tqdm = None


# ----------------------------------------------------------------------------- timing
def time_alternating(engines: dict[str, Callable[[], object]], *, blocks: int, calls: int,
                     pause: float = 0.3, min_block_s: float = 0.0) -> dict[str, list[float]]:
    """Seconds per call of each engine in every round: one block per engine per round,
    the order reversed every other round.

    The pause between blocks outlasts the other engines' spinning workers: OpenBLAS
    threads spin about 2**28 cycles (~0.1 s) after a call, onnxruntime's and pyruntime's
    less, so each block starts with the cores free."""
    samples = alternate(engines, rounds=blocks, calls=calls, pause=pause,
                        min_block_s=min_block_s)
    return {k: v.blocks for k, v in samples.items()}


class Mismatch(Exception):
    """A case's output differs from its baseline's: it is not timed."""


RTOL = 1e-4  # and atol = RTOL * max|baseline|


def check_close(ours: np.ndarray, base: np.ndarray) -> float:
    """Raises Mismatch unless np.allclose(ours, base, RTOL, RTOL * max|base|); returns
    the largest difference relative to max|base|."""
    ours, base = np.asarray(ours, np.float64), np.asarray(base, np.float64)
    if ours.shape != base.shape:
        raise Mismatch(f"shape {ours.shape} != baseline {base.shape}")
    scale = float(np.max(np.abs(base))) if base.size else 0.0
    err = float(np.max(np.abs(ours - base))) / (scale + 1e-30) if base.size else 0.0
    if not np.allclose(ours, base, rtol=RTOL, atol=RTOL * scale):
        raise Mismatch(f"max |difference| {err:.2e} of max|baseline| {scale:.3g}")
    return err


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
    """onnxruntime on the graph's ONNX export, as a function of one input."""
    from pyruntime.baselines import ort_session as make

    sess = make(graph, threads)
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
    """The best of repeated FMA probes over the ISAs this CPU has (on Zen 4, 512-bit
    operations run as two 256-bit halves, so either ISA may give the higher rate)."""
    isas = [i for i in ("avx512", "avx2") if _core.isa_supported(i)]
    best, best_isa = float("nan"), "scalar"
    for isa in isas:
        for _ in range(5):
            g = _core.testing.peak_gflops(isa, threads, 5_000_000)
            if not g <= best:  # also replaces the initial NaN
                best, best_isa = g, isa
    return {"gflops": best, "isa": best_isa}


_read_rates: dict[int, float] = {}


def read_rate(threads: int, nbytes: float) -> float:
    """Best GB/s of `threads` threads reading a buffer of `nbytes` (its own size: a larger
    one may no longer fit the cache level that holds the case's data), NaN without AVX2."""
    if not np.isfinite(nbytes) or not _core.isa_supported("avx2"):
        return float("nan")
    kb = max(16, int(np.ceil(nbytes / 1024)))
    if kb not in _read_rates:
        _read_rates[kb] = max(_core.testing.read_gbps(threads, kb, 12) for _ in range(2))
    return _read_rates[kb]


def copy_gbps(mib: int = 256, repeats: int = 5) -> float:
    """Memory bandwidth: the best of `repeats` numpy copies of `mib` MiB (far past any
    cache), counted as bytes read + bytes written per second."""
    a = np.ones(mib << 18, np.float32)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * a.nbytes / best / 1e9


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
        err = check_close(sess.run(x), np.matmul(x, w))
        res = time_alternating({"pyruntime": lambda: sess.run(x),
                                "numpy": lambda: np.matmul(x, w, out=out)},
                               blocks=blocks, calls=3, min_block_s=0.05)
        fl = 2.0 * m * k * n
        return dict(case=f"gemm {m}x{k}x{n}", baseline="numpy BLAS", flops=fl,
                    bytes=4.0 * (m * k + k * n + m * n), max_rel_diff=err,
                    **_times(res, "numpy"))

    def dw_case(c: int, hw: int, k: int, s: int):
        g = dwconv_graph(c, hw, k, s)
        x = rng.standard_normal((1, c, hw, hw)).astype(np.float32)
        sess = rt.compile(g, threads=threads)
        ort = ort_session(g, threads)
        err = check_close(sess.run(x), ort(x))
        res = time_alternating({"pyruntime": lambda: sess.run(x), "onnxruntime": lambda: ort(x)},
                               blocks=blocks, calls=5, min_block_s=0.05)
        oh = (hw + 2 * (k // 2) - k) // s + 1
        return dict(case=f"dwconv {k}x{k} s{s} {c}x{hw}x{hw}", baseline="onnxruntime",
                    flops=2.0 * c * oh * oh * k * k, bytes=4.0 * c * (hw * hw + oh * oh),
                    max_rel_diff=err, **_times(res, "onnxruntime"))

    def model_case(name: str, g: Graph, x: np.ndarray):
        sess = rt.compile(g, threads=threads)
        ort = ort_session(g, threads)
        err = check_close(sess.run(x), ort(x))
        res = time_alternating({"pyruntime": lambda: sess.run(x), "onnxruntime": lambda: ort(x)},
                               blocks=blocks, calls=5, min_block_s=0.1)
        n_out = int(np.prod(sess.run(x).shape))
        min_bytes = sum(w.nbytes for w in g.weights.values()) + 4.0 * (x.size + n_out)
        return dict(case=name, baseline="onnxruntime", flops=graph_flops(g, x.shape[0]),
                    bytes=float("nan"), min_bytes=float(min_bytes), max_rel_diff=err,
                    **_times(res, "onnxruntime"))

    for m, k, n in ((256, 1024, 1024), (64, 1024, 1024), (1, 1024, 1024), (1, 4096, 4096)):
        cases.append((f"gemm {m}x{k}x{n}", lambda m=m, k=k, n=n: gemm_case(m, k, n)))
    for c, hw, k, st in ((96, 112, 3, 1), (144, 56, 3, 2), (240, 28, 5, 1)):
        cases.append((f"dwconv {k}x{k} s{st} {c}x{hw}x{hw}",
                      lambda c=c, hw=hw, k=k, st=st: dw_case(c, hw, k, st)))
    mlp = zoo.mlp()
    for b in (1, 64):
        name = f"MLP 784-512-256-10 b{b}"
        cases.append((name, lambda name=name, b=b: model_case(
            name, mlp, rng.standard_normal((b, 784)).astype(np.float32))))
    mnv2 = zoo.mobilenetv2_style()
    name = "MobileNetV2-style 1x3x224x224"
    cases.append((name, lambda name=name: model_case(
        name, mnv2, rng.standard_normal((1, 3, 224, 224)).astype(np.float32))))
    it = tqdm(cases, desc="bench", disable=not progress) if tqdm else cases
    for name, case in it:
        try:
            row = case()
        except Mismatch as e:
            rows.append({"case": name, "error": f"output differs from the baseline's: {e}; not timed"})
            continue
        row["gflops"] = row["flops"] / row["pyruntime_s"] / 1e9
        row["frac_peak_flops"] = row["gflops"] / peaks["gflops"]
        row["gbps"] = row["bytes"] / row["pyruntime_s"] / 1e9
        row["read_gbps"] = read_rate(threads, row["bytes"])
        row["frac_read"] = row["gbps"] / row["read_gbps"]
        rows.append(row)
    return rows, peaks


def _times(res: dict[str, list[float]], base: str) -> dict:
    """Medians of each side, and the median of the per-round paired ratios."""
    ours, theirs = res["pyruntime"], res[base]
    ratios = [a / b for a, b in zip(ours, theirs)]
    q1, q3 = np.percentile(ratios, [25, 75])
    return {"pyruntime_s": statistics.median(ours), "baseline_s": statistics.median(theirs),
            "ratio": statistics.median(ratios), "ratio_q1": float(q1), "ratio_q3": float(q3),
            "rounds": len(ratios)}


def bound_violations(rows: list[dict]) -> list[str]:
    """Rows faster than a measured bound: impossible unless a probe or count is wrong."""
    bad = []
    for r in rows:
        for key, what in (("frac_peak_flops", "peak FLOP/s"), ("frac_read", "read rate")):
            v = r.get(key, float("nan"))
            if np.isfinite(v) and v > 1.0:
                bad.append(f"{r['case']}: {100 * v:.0f}% of the measured {what}")
    return bad


def print_table(rows: list[dict], meta: dict) -> None:
    print(f"\nmachine: {meta['cpu']}, {meta['threads']} threads, ISA {meta['isa']}; "
          f"measured peak {meta['peak_gflops']:.1f} GFLOP/s ({meta['peak_isa']} FMA, best of "
          f"repeated probes on {meta['threads']} threads)")
    print(f"numpy BLAS: {meta['blas']}")
    print(f"memory bandwidth (numpy copy of 256 MiB, read + write): {meta['copy_gbps']:.1f} GB/s")
    print(f"\n{'case':34} {'baseline':12} {'ours ms':>9} {'base ms':>9} {'ratio':>6} "
          f"{'(q1-q3)':>11} {'GFLOP/s':>8} {'%peak':>6} {'GB/s':>6} {'%read':>6}")
    for r in rows:
        if "error" in r:
            print(f"{r['case']:34} NOT TIMED: {r['error']}")
            continue
        gbps = f"{r['gbps']:6.1f}" if np.isfinite(r["gbps"]) else "     -"
        read = f"{100 * r['frac_read']:6.1f}" if np.isfinite(r["frac_read"]) else "     -"
        print(f"{r['case']:34} {r['baseline']:12} {r['pyruntime_s'] * 1e3:9.3f} "
              f"{r['baseline_s'] * 1e3:9.3f} {r['ratio']:6.2f} "
              f"{r['ratio_q1']:5.2f}-{r['ratio_q3']:<5.2f} {r['gflops']:8.1f} "
              f"{100 * r['frac_peak_flops']:6.1f} {gbps} {read}")
    print("ratio = median over rounds of pyruntime block time / baseline block time in the same "
          "round (lower is better; < 1 = faster), q1-q3 its quartiles. %read = GB/s against "
          "the measured rate of reading as many bytes (from the cache level that holds them).")


# --------------------------------------------------------------------------- plots
def plot(rows: list[dict], meta: dict, stem: Path) -> list[Path]:
    """Write `<stem>_ratio.png` and `<stem>_roofline.png`; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if "error" not in r]
    paths = []
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ok) + 1.5))
    ys = np.arange(len(ok))
    ratio = np.array([r["ratio"] for r in ok])
    err = np.array([[r["ratio"] - r["ratio_q1"] for r in ok],
                    [r["ratio_q3"] - r["ratio"] for r in ok]])
    ax.barh(ys, ratio, xerr=err, color=["tab:green" if v < 1 else "tab:red" for v in ratio],
            capsize=3)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(ys, [f"{r['case']} (vs {r['baseline']})" for r in ok], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("pyruntime time / baseline time\n(median of paired rounds, bars q1-q3; "
                  "< 1 = faster)")
    ax.set_title(f"{meta['cpu']}, {meta['threads']} threads")
    ax.grid(True, axis="x", alpha=0.3)
    paths.append(_save(fig, Path(f"{stem}_ratio.png"), plt))

    fig, ax = plt.subplots(figsize=(8, 5.5))
    peak = meta["peak_gflops"]
    pts = []
    for r in ok:
        nb = r["bytes"] if np.isfinite(r["bytes"]) else r.get("min_bytes", float("nan"))
        if np.isfinite(nb) and nb > 0:
            pts.append((r["flops"] / nb, r["gflops"], r["case"], not np.isfinite(r["bytes"])))
    ai = [p[0] for p in pts] or [1.0]
    xs = np.logspace(np.log10(min(ai) / 4), np.log10(max(ai) * 4), 200)
    ax.plot(xs, np.full_like(xs, peak), "k-", lw=1.2,
            label=f"peak {peak:.0f} GFLOP/s ({meta['peak_isa']} FMA probe)")
    roofs = [("memory (numpy copy)", meta.get("copy_gbps"), "k--")]
    reads = meta.get("read_gbps_by_kib") or {}
    if reads:
        roofs.append(("best cache read (read probe)", max(reads.values()), "k:"))
    for name, bw, style in roofs:
        if bw:
            ax.plot(xs, np.minimum(peak, bw * xs), style, lw=1,
                    label=f"{name} {bw:.0f} GB/s")
    for x, y, case, lower in pts:
        ax.plot(x, y, "s" if lower else "o", ms=6)
        ax.annotate(case, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FLOPs per byte (squares: models, at weights + input + output bytes)")
    ax.set_ylabel("GFLOP/s (pyruntime)")
    ax.set_title(f"roofline: {meta['cpu']}, {meta['threads']} threads")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    paths.append(_save(fig, Path(f"{stem}_roofline.png"), plt))
    return paths


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="fewer blocks (noisier)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--plot", action="store_true",
                    help="also write PNGs next to the JSON: ratios and a roofline")
    ap.add_argument("--plot-json", metavar="JSON",
                    help="only redraw the PNGs of a saved run, next to its JSON")
    args = ap.parse_args(argv)
    if args.plot_json:
        saved = json.loads(Path(args.plot_json).read_text())
        for p in plot(saved["rows"], saved["meta"], Path(args.plot_json).with_suffix("")):
            print(f"wrote {p}")
        return 0
    try:
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(limits=args.threads, user_api="blas")
    except ImportError:
        limits = None
    rows, peaks = run_cases(args.threads, args.quick, not args.no_progress)
    info = rt.info()
    meta = dict(cpu=cpu_name(), threads=args.threads,
                isa=info["isa"], kernels=info["kernels"], peak_gflops=peaks["gflops"],
                peak_isa=peaks["isa"], read_gbps_by_kib=dict(_read_rates), blas=blas_info(),
                env_openblas={k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
                copy_gbps=copy_gbps(), python=sys.version.split()[0], numpy=np.__version__)
    print_table(rows, meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench_{time.strftime('%Y%m%d_%H%M%S')}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    print(f"\nwrote {path}")
    if args.plot:
        for p in plot(rows, meta, path.with_suffix("")):
            print(f"wrote {p}")
    del limits
    status = 0
    for r in rows:
        if "error" in r:
            print(f"ERROR {r['case']}: {r['error']}", file=sys.stderr)
            status = 1
    for msg in bound_violations(rows):
        print(f"ERROR {msg}: above a measured bound (a probe or a FLOP/byte count is wrong)",
              file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
