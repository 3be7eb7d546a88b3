"""Automatic compression within an accuracy budget (`rt.compress(g, data=(x, y),
max_accuracy_drop=0.01)`), by timing the real kernels rather than trusting a table.

The search, on the optimized graph (BatchNorm folded, activations fused: the graph the
CPU runs), per Conv/Gemm kernel ("layer"):

1. Time. The layer alone becomes a one-node Graph fed with its real input activations
   (the model run on the validation data with those tensors as extra outputs). Each
   candidate format (CANDIDATES: fp16, bf16, int8, pruned to 50/75/90% and 90% + int8
   weights; depthwise layers get no sparse candidates) is applied to that graph, compiled
   with rt.compile and timed at `batch` rows against the fp32 layer in alternating
   blocks. Candidates not at least MIN_GAIN faster than fp32 are dropped: whatever
   the cost model or a format's reputation says, only measured speed counts here.
2. Sensitivity. Each remaining candidate is applied to its layer alone in the whole
   model and the top-1 accuracy drop on the validation data measured; a candidate that
   alone loses more than the budget is dropped. The int8 quantization report's SQNR per
   layer is recorded beside it (rt.quantize_report) to explain the drops.
3. Greedy assembly. Layers in order of their best measured saving (ms), each trying its
   candidates fastest first: a candidate is kept when the whole model with it and every
   choice so far stays within the budget (measured, not added up: drops interact).
4. Whole-model check. The greedy model, the original and the uniform models (all int8,
   all fp16, all bf16) that stay within the budget are timed end to end in alternating
   blocks; the fastest is returned. So the result is never slower than what a one-knob
   tuner (Intel Neural Compressor's accuracy-aware loop: quantize everything, fall back
   layer by layer) would find among those, as measured here. It matters: layers timed
   alone miss what the CPU plan does across layers (the fused inverted-residual step,
   uint8 kept between consecutive int8 layers), so on a MobileNetV2-style model the
   per-layer mix was slower than all-int8.

Bounded: every model build checks the time budget; when it is spent, untried candidates
are skipped (the layer keeps its best choice so far, or fp32) and step 4 still runs. At
most 2 x layers x candidates model builds and layers x candidates compiled layers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..graph import Graph, ValueInfo
from ..shapes import infer_shapes
from .data import Data, accuracy, rows, take
from .report import CompressReport, latency_feeds, time_alternating

__all__ = ["CANDIDATES", "Candidate", "parse_candidate", "search", "build", "MIN_GAIN"]

#: what each layer may become, by default
CANDIDATES = ("fp16", "bf16", "int8", "sparse0.5", "sparse0.75", "sparse0.9",
              "sparse0.9+int8")
#: a candidate must run at most (1 - MIN_GAIN) x the fp32 layer's time to be considered
MIN_GAIN = 0.05


@dataclass(frozen=True)
class Candidate:
    """A layer format: a sparsity (0 = dense) and a weight dtype."""
    name: str
    sparsity: float
    dtype: str          # fp32 fp16 bf16 int8


def parse_candidate(s: Any) -> Candidate:
    """"fp32", "fp16", "bf16", "int8", "sparseS" or "sparseS+int8" (S in (0, 1))."""
    if not isinstance(s, str):
        raise InputError(f"compress: a candidate must be a string like 'int8' or "
                         f"'sparse0.9', got {s!r}")
    if s in ("fp32", "fp16", "bf16", "int8"):
        return Candidate(s, 0.0, s)
    if s.startswith("sparse"):
        body, _, dt = s[len("sparse"):].partition("+")
        try:
            v = float(body)
        except ValueError:
            v = -1.0
        if 0.0 < v < 1.0 and dt in ("", "int8"):
            return Candidate(s, v, dt or "fp32")
    raise InputError(f"compress: unknown candidate {s!r}; expected fp32, fp16, bf16, int8, "
                     f"sparseS or sparseS+int8 with S in (0, 1), e.g. sparse0.9")


def build(g: Graph, assign: dict[str, Candidate], calibration: Any) -> Graph:
    """`g` (optimized) with each named kernel in its candidate's format: prune the sparse
    ones (exactly those kernels), then one rt.quantize per dtype with the others excluded
    (int8 static when there is calibration data)."""
    from ..passes import prune, quantize
    sp = {k: c.sparsity for k, c in assign.items() if c.sparsity > 0}
    out = prune(g, sp) if sp else g
    names = set(g.weights)
    for dt in ("int8", "fp16", "bf16"):
        mine = {k for k, c in assign.items() if c.dtype == dt}
        if mine:
            kern = {n.inputs[1] for n in out.nodes if n.op in ("Conv", "Gemm")
                    and len(n.inputs) > 1 and n.inputs[1] in names}
            out = quantize(out, dt, exclude=sorted(kern - mine), progress=False,
                           calibration=calibration if dt == "int8" else None)
    return out


def _layer_graph(g: Graph, node_index: int, shapes: dict[str, tuple]) -> Graph:
    """The node alone: its activation inputs become graph inputs."""
    n = g.nodes[node_index]
    ins = [x for x in dict.fromkeys(n.inputs) if x and x not in g.weights]
    return Graph(inputs=[ValueInfo(x, shapes[x]) for x in ins], outputs=[n.outputs[0]],
                 nodes=[n.copy()], weights={x: g.weights[x] for x in n.inputs
                                            if x in g.weights},
                 name=f"layer {n.name or n.outputs[0]}")


def _activations(g: Graph, names: list[str], x: Any, threads: int) -> dict[str, np.ndarray]:
    from ..backends import compile as rt_compile
    gg = Graph(g.inputs, list(dict.fromkeys(list(g.outputs) + names)), g.nodes, g.weights,
               name=g.name)
    out = rt_compile(gg, threads=threads).run(x)
    if not isinstance(out, dict):
        out = {gg.outputs[0]: out}
    feeds = {vi.name: (x[vi.name] if isinstance(x, dict) else x) for vi in g.inputs}
    return {**feeds, **out}


def search(graph: Graph, val: Data, budget: float, report: CompressReport, *,
           calibration: Any, time_budget_s: float, candidates: Sequence[str] | None,
           batch: int, threads: int, progress: bool, base_accuracy: float | None) -> Graph:
    """The automatic search (module doc); appends its per-layer choices to `report`."""
    from ..backends import compile as rt_compile
    from ..passes import optimize, quantize_report
    from ..passes.prune import kernels as find_kernels
    from .api import _bar
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(f"compress: batch must be an integer >= 1, got {batch!r}")
    cands = [parse_candidate(c) for c in (CANDIDATES if candidates is None else candidates)]
    cands = [c for c in cands if c.name != "fp32"]
    deadline = time.monotonic() + time_budget_s
    g = optimize(graph)
    acc0 = accuracy(g, val, threads) if base_accuracy is None else base_accuracy
    floor = acc0 - budget - 1e-12
    ks = find_kernels(g)
    if not ks:
        report.notes.append("auto: the model has no Conv/Gemm kernels; returned as is")
        return graph
    shapes = infer_shapes(g)
    first = {n.inputs[1]: i for i, n in reversed(list(enumerate(g.nodes)))
             if n.op in ("Conv", "Gemm") and len(n.inputs) > 1}
    sample = take(val.x, slice(0, min(rows(val.x), max(64, batch))))
    acts = _activations(g, [x for k in ks for x in g.nodes[first[k]].inputs
                            if x and x not in g.weights], sample, threads)
    fp32 = Candidate("fp32", 0.0, "fp32")
    sqnr: dict[str, float] = {}
    if any(c.dtype == "int8" for c in cands):
        try:
            q8 = quantize_report(g, build(g, {k: parse_candidate("int8") for k in ks},
                                          calibration), sample)
            by_out = {r.output: r.sqnr_db for r in q8}
            sqnr = {k: by_out[g.nodes[first[k]].outputs[0]] for k in ks
                    if g.nodes[first[k]].outputs[0] in by_out}
        except Exception as e:  # the report only explains; the search does not need it
            report.notes.append(f"auto: int8 quantization report unavailable ({e})")
    per_layer = len(cands)
    bar = _bar(len(ks) * (2 * per_layer + 1), progress, "compress --auto")
    spent = False

    def tick(n: int = 1) -> None:
        if bar is not None:
            bar.update(n)

    # 1 + 2: time each candidate on the layer alone, then its accuracy drop alone
    info: dict[str, dict[str, Any]] = {}
    try:
        for k, kern in ks.items():
            i = first[k]
            lg = _layer_graph(g, i, shapes)
            lf = latency_feeds(lg, batch, {vi.name: acts[vi.name] for vi in lg.inputs})
            layer_cands = [c for c in cands if not (c.sparsity and kern.depthwise)]
            entry: dict[str, Any] = {"base_ms": None, "ok": [], "why": {}}
            info[k] = entry
            if lf is None or time.monotonic() > deadline:
                entry["why"]["*"] = "not timed: fixed batch" if lf is None else \
                    "time budget spent"
                spent |= lf is not None
                tick(2 * per_layer + 1)
                continue
            lcal = {vi.name: acts[vi.name] for vi in lg.inputs}
            sessions = {"fp32": rt_compile(lg, threads=threads)}
            for c in layer_cands:
                sessions[c.name] = rt_compile(build(lg, {k: c}, lcal), threads=threads)
            t = time_alternating({n: (lambda s=s: s.run(lf)) for n, s in sessions.items()},
                                 blocks=5, calls=5, min_block_s=0.005, pause=0.0)
            tick(per_layer + 1)
            entry["base_ms"] = t["fp32"] * 1e3
            entry["ms"] = {n: v * 1e3 for n, v in t.items()}
            for c in sorted(layer_cands, key=lambda c: t[c.name]):
                if t[c.name] > (1 - MIN_GAIN) * t["fp32"]:
                    entry["why"][c.name] = "not faster than fp32 here"
                    tick()
                    continue
                if time.monotonic() > deadline:
                    spent = True
                    entry["why"][c.name] = "time budget spent"
                    tick()
                    continue
                drop = acc0 - accuracy(build(g, {k: c}, calibration), val, threads)
                entry.setdefault("drop", {})[c.name] = drop
                if drop > budget + 1e-12:
                    entry["why"][c.name] = f"alone loses {drop:.4f} > budget"
                else:
                    entry["ok"].append(c)
                tick()
            tick(per_layer - len(layer_cands))
        # 3: greedy, biggest measured saving first
        chosen: dict[str, Candidate] = {}
        why: dict[str, str] = {}
        order = sorted((k for k in ks if info[k]["ok"]),
                       key=lambda k: info[k]["ms"][info[k]["ok"][0].name] - info[k]["base_ms"])
        current_acc = acc0
        for k in order:
            for c in info[k]["ok"]:              # fastest first
                if time.monotonic() > deadline:
                    spent = True
                    why.setdefault(k, "time budget spent before the combined check")
                    break
                trial = {**chosen, k: c}
                a = accuracy(build(g, trial, calibration), val, threads)
                tick()
                if a >= floor:
                    chosen, current_acc = trial, a
                    why[k] = (f"fastest within budget: {info[k]['ms'][c.name]:.4f} ms vs "
                              f"fp32 {info[k]['base_ms']:.4f} ms; model accuracy now "
                              f"{a:.4f}")
                    break
                info[k]["why"][c.name] = f"with the earlier choices the model drops to {a:.4f}"
            else:
                why.setdefault(k, "every faster candidate breaks the budget combined")
    finally:
        if bar is not None:
            bar.close()
    # 4: the greedy model against the original and uniform models, end to end
    pool: dict[str, Graph] = {"original": graph}
    if chosen:
        pool["per-layer"] = build(g, chosen, calibration)
    for dt in ("int8", "fp16", "bf16"):
        if any(c.dtype == dt and not c.sparsity for c in cands) and \
                time.monotonic() <= deadline:
            u = build(g, {k: parse_candidate(dt) for k in ks}, calibration)
            a = accuracy(u, val, threads)
            if a >= floor:
                pool[f"all {dt}"] = u
            else:
                report.notes.append(f"auto: all layers {dt} loses {acc0 - a:.4f} > budget")
    if len(pool) > 1:
        sess = {n: rt_compile(m, threads=threads) for n, m in pool.items()}
        feeds = {n: latency_feeds(m, batch, val.x) for n, m in pool.items()}
        t = time_alternating({n: (lambda s=s, f=feeds[n]: s.run(f)) for n, s in sess.items()},
                             blocks=7, calls=5, min_block_s=0.02)
        best = min(t, key=t.get)
        report.notes.append("auto: whole models at batch %d: %s; returned %s" % (
            batch, ", ".join(f"{n} {v * 1e3:.3f} ms" for n, v in t.items()), best))
    else:
        best = "original"
    if spent:
        report.notes.append(f"auto: the time budget ({time_budget_s:g} s) ran out; some "
                            f"candidates were not tried")
    for k, kern in ks.items():
        e = info.get(k, {})
        c = chosen.get(k, fp32) if best == "per-layer" else \
            (parse_candidate(best.split()[1]) if best.startswith("all") else fp32)
        grouped: dict[str, list[str]] = {}
        for n in [c.name for c in cands] + ["*"]:
            if n in e.get("why", {}):
                grouped.setdefault(e["why"][n], []).append(n)
        rejected = "; ".join(f"{', '.join(ns)}: {r}" for r, ns in grouped.items())
        own = why[k] + (f"; not: {rejected}" if rejected else "") if k in chosen else \
            (rejected or "no candidate faster")
        w = own if best == "per-layer" else (
            f"whole model '{best}' timed fastest end to end (the per-layer search chose "
            f"{chosen.get(k, fp32).name}: {own})")
        entry = {"layer": k, "node": kern.nodes[0], "choice": c.name,
                 "drop": e.get("drop", {}).get(c.name), "base_ms": e.get("base_ms"),
                 "ms": e.get("ms", {}).get(c.name), "why": w}
        if k in sqnr:
            entry["int8_sqnr_db"] = sqnr[k]
        report.choices.append(entry)
    report.auto_choice = best
    return pool[best]
