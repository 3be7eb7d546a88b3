"""`pyruntime bench MODEL... [--batch 1,64] [--threads N] [--device cpu|cuda]
[--baseline onnxruntime|none] [--json PATH] [--plot PATH.png]`: latency and throughput of
each model at each batch size beside onnxruntime, timed in alternating blocks
(pyruntime/timing.py). A .pyrt model's baseline runs its ONNX export (rt.to_onnx).

--json writes {"schema": "pyruntime-bench/1", "machine": {...}, "records": [...]}, one
record per model, batch size and engine: model, path, batch, engine, p50_ms, p99_ms,
mean_ms, throughput_rows_s, calls; ours also ratio_to_baseline (median over rounds of our
block mean over the baseline's: < 1 is faster) and max_rel_diff (largest output difference
over the baseline's largest magnitude)."""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .common import int_list, load_model, model_path, positive_int

SCHEMA = "pyruntime-bench/1"


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", parents=parents, help="latency and throughput beside a baseline",
                       description=__doc__.split("\n\n")[0].split(":", 1)[1].strip())
    p.add_argument("models", nargs="+", type=model_path, metavar="MODEL")
    p.add_argument("--batch", type=int_list(1), default=[1, 64],
                   help="batch sizes, comma-separated (default 1,64)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads for every engine (default: every core)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--baseline", choices=("onnxruntime", "none"), default="onnxruntime")
    p.add_argument("--rounds", type=positive_int, default=5,
                   help="rounds of alternating blocks (default 5)")
    p.add_argument("--calls", type=positive_int, default=20, help="calls per block (default 20)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH")
    p.add_argument("--plot", type=Path, default=None, metavar="PATH.png")
    p.set_defaults(run=run)


def _threads(n: int | None) -> int:
    if n is not None:
        return n
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _feeds(sess: Any, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for i in sess.inputs:
        shape = tuple(batch if (d is None and k == 0) else d for k, d in enumerate(i.shape))
        out[i.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def _ort(path: Path, graph: Any, threads: int) -> Callable[[dict], Any]:
    """onnxruntime on the ONNX file itself, or on a .pyrt model's ONNX export."""
    from ..baselines import ort_session
    sess = ort_session(path.read_bytes() if path.suffix.lower() == ".onnx" else graph, threads)
    return lambda feeds: sess.run(None, feeds)


def _first(y: Any) -> np.ndarray:
    if isinstance(y, dict):
        y = next(iter(y.values()))
    if isinstance(y, (list, tuple)):
        y = y[0]
    return np.asarray(y if isinstance(y, np.ndarray) else getattr(y, "get", lambda: y)())


def run(args: argparse.Namespace) -> int:
    from .. import backends
    from ..timing import alternate, cpu_name, paired_ratio
    threads = _threads(args.threads)
    rng = np.random.default_rng(0)
    records: list[dict] = []
    jobs = [(p, b) for p in args.models for b in args.batch]
    bar = None
    if not args.quiet:
        try:
            from tqdm import tqdm
            engines = 1 + (args.baseline != "none")
            bar = tqdm(total=len(jobs) * args.rounds * engines, desc="bench", unit="block")
        except ImportError:
            bar = None
    graphs = {p: load_model(p) for p in args.models}
    for path, batch in jobs:
        g = graphs[path]
        sess = (backends.compile(g, device="cuda") if args.device == "cuda"
                else backends.compile(g, threads=threads))
        feeds = _feeds(sess, batch, rng)
        one = len(feeds) == 1
        x = next(iter(feeds.values())) if one else feeds
        engines: dict[str, Callable[[], object]] = {"pyruntime": lambda: sess.run(x)}
        base = None
        if args.baseline == "onnxruntime":
            base = _ort(path, g, threads)
            engines["onnxruntime"] = lambda: base(feeds)
        samples = alternate(engines, rounds=args.rounds, calls=args.calls,
                            progress=bar.update if bar is not None else None)
        diff = None
        if base is not None:
            ours, ref = _first(sess.run(x)), _first(base(feeds))
            diff = float(np.max(np.abs(ours - ref)) / (np.max(np.abs(ref)) + 1e-30)) \
                if ref.size else 0.0
        for name, s in samples.items():
            mean = sum(s.calls) / len(s.calls)
            rec = {"model": path.name, "path": str(path), "batch": batch, "engine": name,
                   "device": args.device if name == "pyruntime" else "cpu",
                   "p50_ms": s.p(50) * 1e3, "p99_ms": s.p(99) * 1e3, "mean_ms": mean * 1e3,
                   "throughput_rows_s": batch / mean, "calls": len(s.calls)}
            if name == "pyruntime" and base is not None:
                rec["ratio_to_baseline"] = paired_ratio(s, samples["onnxruntime"])
                rec["max_rel_diff"] = diff
            records.append(rec)
    if bar is not None:
        bar.close()
    if not args.quiet:
        _print(records)
    machine = {"cpu": cpu_name(), "threads": threads, "python": platform.python_version()}
    if args.json is not None:
        args.json.write_text(json.dumps({"schema": SCHEMA, "machine": machine,
                                         "records": records}, indent=1))
    if args.plot is not None:
        _plot(records, machine, args.plot)
    return 0


def _print(records: list[dict]) -> None:
    print(f"{'model':<24} {'batch':>5} {'engine':<12} {'p50 ms':>9} {'p99 ms':>9} "
          f"{'rows/s':>10} {'ratio':>6}")
    for r in records:
        ratio = f"{r['ratio_to_baseline']:.2f}" if "ratio_to_baseline" in r else ""
        print(f"{r['model']:<24} {r['batch']:>5} {r['engine']:<12} {r['p50_ms']:>9.3f} "
              f"{r['p99_ms']:>9.3f} {r['throughput_rows_s']:>10.0f} {ratio:>6}")


def _plot(records: list[dict], machine: dict, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        from ..errors import MissingDependencyError
        raise MissingDependencyError(f"--plot needs matplotlib (pip install matplotlib): {e}") \
            from None
    cases = sorted({(r["model"], r["batch"]) for r in records}, key=lambda c: (c[0], c[1]))
    engines = sorted({r["engine"] for r in records}, key=lambda e: e != "pyruntime")
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(cases)), 3.2))
    w = 0.8 / len(engines)
    for k, eng in enumerate(engines):
        by = {(r["model"], r["batch"]): r for r in records if r["engine"] == eng}
        xs = [i + k * w for i, c in enumerate(cases) if c in by]
        p50 = [by[c]["p50_ms"] for c in cases if c in by]
        p99 = [by[c]["p99_ms"] - by[c]["p50_ms"] for c in cases if c in by]
        ax.bar(xs, p50, w, yerr=[[0] * len(p99), p99], capsize=3, label=eng)
    ax.set_xticks([i + 0.4 - w / 2 for i in range(len(cases))])
    ax.set_xticklabels([f"{m}\nbatch {b}" for m, b in cases], fontsize=8)
    ax.set_ylabel("latency, ms (p50; bar to p99)")
    ax.set_title(f"{machine['cpu']}, {machine['threads']} threads", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
