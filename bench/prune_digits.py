"""Pruning accuracy on digits: the teacher CNN pruned to 90%, one-shot and fine-tuned.

    python bench/prune_digits.py                 # full: 5 teacher seeds, ~4 min on 2 cores
    python bench/prune_digits.py --quick         # 1 seed, short training: a smoke run
    python bench/prune_digits.py --seeds 3 --sparsity 0.8 --json out.json --no-progress

The target (pruning issue): the teacher pruned to 90% and fine-tuned loses at most 1
point of test accuracy against the dense teacher; one-shot (no fine-tuning) reported too.

Per teacher seed: the dense teacher is trained as examples/distill_digits.py trains it
(scikit-learn's digits, 70/30 stratified split with seed 0; 30 epochs, Adam 3e-3, batch
64, 10% validation, patience 5, the seed for init and shuffles), then each variant is
pruned one-shot with `rt.prune`, evaluated, fine-tuned with `rt.train.fit(masks="zeros")`
and evaluated again; `rt.train.gradual_prune` runs from the trained teacher. Variants:

- global: unstructured, one magnitude ranking over the pruned kernels (rt.prune's default)
- layer: unstructured, each pruned kernel to the sparsity on its own
- block16x1: structure="block", block (16, 1) (16 output channels x 1 input), global
- global-all: unstructured, global, with conv1 and logits included, so the sparsity is
  that of all Conv/Gemm kernel parameters (the others leave conv1's 288 and the
  classifier's 640 weights dense: both are under min_params=1024)
- gradual (unstructured global) and gradual-block16x1: Zhu & Gupta's cubic schedule

Every accuracy is the compiled pyruntime Session's (`rt.compile(g).run` on the 540 test
images, argmax), not JAX's; each model's Session output is also compared with the float64
reference evaluator (max abs difference, argmax agreement), and each fine-tuned model is
checked to keep every pruned entry exactly zero. File size is `rt.save`'s bytes; sparsity
is from `rt.sparsity`: its overall number (all Conv/Gemm kernels) and the zeros over the
pruned kernels alone. Times are wall seconds of each step (training includes JAX's
compile on first use of a graph structure; pruning itself takes milliseconds).
Prints a table (mean over seeds, worst seed) and writes JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import pyruntime as rt
from pyruntime import train
from pyruntime.graph import Graph
from pyruntime.passes.prune import kernels as prune_kernels, plan
from pyruntime.reference import run_reference
from pyruntime.train import digits
from run import cpu_name  # bench/run.py (this script's directory is on sys.path)

DEFAULT_JSON = Path(__file__).parent / "results" / "prune_digits.json"

#: One-shot variants: name -> rt.prune keyword arguments (the sparsity is --sparsity).
VARIANTS: dict[str, dict[str, Any]] = {
    "global": dict(scope="global"),
    "layer": dict(scope="layer"),
    "block16x1": dict(structure="block", block=(16, 1), scope="global"),
    "global-all": dict(scope="global", include=["conv1", "logits"]),
}
#: Gradual variants: name -> gradual_prune keyword arguments.
GRADUAL: dict[str, dict[str, Any]] = {
    "gradual": dict(scope="global"),
    "gradual-block16x1": dict(structure="block", block=(16, 1), scope="global"),
}


def settings(quick: bool) -> dict[str, dict[str, Any]]:
    """Training settings. Full: the teacher as the example trains it; fine-tuning 40 epochs
    at 1e-2 keeping the best validation epoch (the block variant needs the larger rate: at
    3e-3 it stayed 1-2 points down); gradual 40 epochs, masks updated every epoch up to
    epoch 25, then 15 epochs of fine-tuning with frozen masks."""
    if quick:
        return {"teacher": dict(epochs=10, batch_size=64, learning_rate=3e-3,
                                validation_split=0.1, patience=5),
                "finetune": dict(epochs=5, batch_size=64, learning_rate=1e-2,
                                 validation_split=0.1),
                "gradual": dict(epochs=8, end_epoch=5, frequency=1, batch_size=64,
                                learning_rate=3e-3, validation_split=0.1)}
    return {"teacher": dict(epochs=30, batch_size=64, learning_rate=3e-3,
                            validation_split=0.1, patience=5),
            "finetune": dict(epochs=40, batch_size=64, learning_rate=1e-2,
                             validation_split=0.1),
            "gradual": dict(epochs=40, end_epoch=25, frequency=1, batch_size=64,
                            learning_rate=3e-3, validation_split=0.1)}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def file_bytes(g: Graph) -> int:
    """Size of the .pyrt file rt.save writes."""
    buf = io.BytesIO()
    rt.save(g, buf)
    return len(buf.getvalue())


def evaluate(g: Graph, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Test accuracy on the compiled Session, the reference check, size and sparsity."""
    sess, t_compile = timed(lambda: rt.compile(g))
    out, t_run = timed(lambda: sess.run(x))
    ref = next(iter(run_reference(g, x).values()))
    rep = rt.sparsity(g)
    ov = rep["overall"]
    kernels = {r["node"].split("'")[1]: r["computed_as"] for r in sess.plan_summary()
               if r["computed_as"] is not None}
    return {
        "accuracy": float(np.mean(out.argmax(1) == y)),
        "ref_max_abs_diff": float(np.abs(out - ref).max()),
        "ref_argmax_agree": float(np.mean(out.argmax(1) == ref.argmax(1))),
        "file_bytes": file_bytes(g),
        "sparsity": ov["sparsity"], "pruned_sparsity": pruned_sparsity(rep),
        "kernel_params": ov["parameters"],
        "kernel_nonzeros": ov["nonzeros"], "kernel_bytes": ov["bytes"],
        "weight_bytes": ov["weight_bytes"],
        "layers": {v["node"]: {"sparsity": round(v["sparsity"], 4), "format": v["format"],
                               "parameters": v["parameters"]}
                   for v in rep["layers"].values()},
        "computed_as": kernels, "compile_s": t_compile, "run_s": t_run,
    }


def pruned_sparsity(rep: dict[str, Any]) -> float:
    """Fraction of zeros over the kernels that hold any zero (the pruned ones)."""
    ls = [v for v in rep["layers"].values() if v["nonzeros"] < v["parameters"]]
    n = sum(v["parameters"] for v in ls)
    return 1.0 - sum(v["nonzeros"] for v in ls) / n if n else 0.0


def zeros_kept(pruned: Graph, tuned: Graph) -> bool:
    """Every entry that is zero in the pruned model is exactly zero after fine-tuning."""
    for k in rt.sparsity(pruned)["layers"]:
        z = pruned.weights[k].numpy() == 0
        if np.any(tuned.weights[k].numpy()[z] != 0):
            return False
    return True


def run_seed(seed: int, data: tuple, cfg: dict, sparsity: float, progress: bool,
             log: Callable[[str], None]) -> list[dict[str, Any]]:
    """All rows of one teacher seed."""
    xtr, ytr, xte, yte = data
    rows: list[dict[str, Any]] = []

    def row(model: str, stage: str, g: Graph, step_s: float, **extra: Any) -> dict:
        r = {"seed": seed, "model": model, "stage": stage, "step_s": step_s,
             **evaluate(g, xte, yte), **extra}
        r["delta_points"] = 100.0 * (r["accuracy"] - (rows[0]["accuracy"] if rows
                                                       else r["accuracy"]))
        rows.append(r)
        log(f"  seed {seed} {model:<18} {stage:<10} acc {100 * r['accuracy']:6.2f}%  "
            f"({r['delta_points']:+.2f})  sparsity {r['sparsity']:.3f}  "
            f"{r['file_bytes']:,} B  {step_s:5.1f} s")
        return r

    teacher, t = timed(lambda: train.fit(digits.teacher_cnn(seed=seed), xtr, ytr, seed=seed,
                                         progress=progress, **cfg["teacher"]))
    row("dense", "dense", teacher, t)
    for name, kw in VARIANTS.items():
        pruned, t = timed(lambda: rt.prune(teacher, sparsity, **kw))
        row(name, "one-shot", pruned, t)
        tuned, t = timed(lambda: train.fit(pruned, xtr, ytr, masks="zeros", seed=seed,
                                           progress=progress, **cfg["finetune"]))
        row(name, "fine-tuned", tuned, t, zeros_kept=zeros_kept(pruned, tuned))
    for name, kw in GRADUAL.items():
        g, t = timed(lambda: train.gradual_prune(teacher, xtr, ytr, sparsity, seed=seed,
                                                 progress=progress, **cfg["gradual"], **kw))
        row(name, "gradual", g, t)
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per (model, stage): means over seeds, the worst seed's loss."""
    out = []
    keys = list(dict.fromkeys((r["model"], r["stage"]) for r in rows))
    for model, stage in keys:
        rs = [r for r in rows if (r["model"], r["stage"]) == (model, stage)]
        d = [r["delta_points"] for r in rs]
        out.append({
            "model": model, "stage": stage, "seeds": [r["seed"] for r in rs],
            "accuracy_mean": float(np.mean([r["accuracy"] for r in rs])),
            "delta_points_mean": float(np.mean(d)), "delta_points_worst": float(min(d)),
            "delta_points": d, "sparsity": float(np.mean([r["sparsity"] for r in rs])),
            "pruned_sparsity": float(np.mean([r["pruned_sparsity"] for r in rs])),
            "file_bytes": int(np.mean([r["file_bytes"] for r in rs])),
            "step_s_mean": float(np.mean([r["step_s"] for r in rs])),
            "zeros_kept": all(r.get("zeros_kept", True) for r in rs),
            "ref_argmax_agree_min": float(min(r["ref_argmax_agree"] for r in rs)),
            "ref_max_abs_diff": float(max(r["ref_max_abs_diff"] for r in rs)),
            # loses at most 1 point on every seed (the target is for the trained ones)
            "meets_target": min(d) >= -1.0 if stage != "dense" else None,
        })
    return out


def print_table(summary: list[dict[str, Any]], nseeds: int) -> None:
    print(f"\ntest accuracy of the compiled Session, {nseeds} teacher seed(s); delta in points "
          f"against the same seed's dense teacher")
    print("| model | stage | sparsity: pruned kernels / all kernels | file KB | accuracy "
          "(mean) | delta mean | delta worst | per seed | step s (mean) |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|")
    for s in summary:
        per = ", ".join(f"{d:+.2f}" for d in s["delta_points"])
        print(f"| {s['model']} | {s['stage']} | {s['pruned_sparsity']:.3f} / "
              f"{s['sparsity']:.3f} | "
              f"{s['file_bytes'] / 1024:.1f} | {100 * s['accuracy_mean']:.2f}% | "
              f"{s['delta_points_mean']:+.2f} | {s['delta_points_worst']:+.2f} | {per} | "
              f"{s['step_s_mean']:.2f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, short training")
    ap.add_argument("--seeds", type=int, default=None, help="teacher seeds (5; --quick: 1)")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the results")
    ap.add_argument("--no-progress", action="store_true", help="no training progress bars")
    args = ap.parse_args(argv)
    nseeds = args.seeds if args.seeds is not None else (1 if args.quick else 5)
    cfg = settings(args.quick)
    progress = not args.no_progress
    t_all = time.perf_counter()
    data = digits.load(test_fraction=0.3, seed=0)
    info = rt.info()
    print(f"digits: {len(data[0])} train / {len(data[2])} test images; teacher "
          f"{digits.count_params(digits.teacher_cnn()):,} params; sparsity {args.sparsity}; "
          f"{nseeds} seed(s){' (quick)' if args.quick else ''}; ISA {info['isa']}, "
          f"{os.cpu_count()} CPUs")
    probe = digits.teacher_cnn()
    for name, kw in {**VARIANTS, **GRADUAL}.items():
        chosen = plan(probe, args.sparsity, **kw).kernels
        sizes = {k: v.size for k, v in prune_kernels(probe).items()}
        dense = [f"{k} ({n})" for k, n in sizes.items() if k not in chosen]
        print(f"  {name}: prunes " + ", ".join(f"{k} ({sizes[k]})" for k in chosen)
              + f"; dense: {', '.join(dense) or 'none'}")
    rows: list[dict[str, Any]] = []
    for seed in range(nseeds):
        rows += run_seed(seed, data, cfg, args.sparsity, progress, print)
    summary = summarize(rows)
    total = time.perf_counter() - t_all
    print_table(summary, nseeds)
    target = [s for s in summary if s["meets_target"] is not None]
    print(f"\ntarget (loses <= 1 point at {args.sparsity:.0%}, every seed): " + "; ".join(
        f"{s['model']}{'' if s['model'] == s['stage'] else ' ' + s['stage']}: "
        f"{'met' if s['meets_target'] else 'missed'}"
        for s in target if s["stage"] != "one-shot"))
    bad = [s["model"] for s in summary if not s["zeros_kept"]]
    print(f"pruned zeros kept through fine-tuning: {'yes' if not bad else 'NO: ' + str(bad)}; "
          f"Session vs float64 reference: max |diff| "
          f"{max(s['ref_max_abs_diff'] for s in summary):.1e}, argmax agreement >= "
          f"{min(s['ref_argmax_agree_min'] for s in summary):.4f}")
    print(f"total {total:.0f} s")
    import jax  # the training backend's version goes in the record
    meta = {"sparsity": args.sparsity, "seeds": nseeds, "quick": args.quick,
            "settings": cfg, "variants": {k: {a: list(b) if isinstance(b, tuple) else b
                                              for a, b in v.items()}
                                          for k, v in {**VARIANTS, **GRADUAL}.items()},
            "data": {"train": len(data[0]), "test": len(data[2]), "split_seed": 0},
            "isa": info["isa"], "cpus": os.cpu_count(), "cpu": cpu_name(), "python": sys.version.split()[0],
            "jax": jax.__version__, "total_s": total,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=2))
    print(f"wrote {path}")
    return 0 if not bad else 1


if __name__ == "__main__":
    raise SystemExit(main())
