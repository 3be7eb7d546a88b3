"""`rt.compress`: run a recipe (recipe.py) or the automatic search (auto.py) and report
every stage (report.py)."""

from __future__ import annotations

import math
import numbers
import os
import time
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..graph import Graph
from ..shapes import validate
from .data import Data, accuracy, as_data, rows, take
from .recipe import Step, parse_recipe
from .report import (CompressReport, StageRow, cpu_name, file_bytes, latency_feeds,
                     ort_runner, time_alternating)

__all__ = ["compress", "run_step", "measure"]

#: rows of calibration data used for static int8 (more adds time, not accuracy)
CALIBRATION_ROWS = 512


def _bar(total: int, progress: bool, desc: str) -> Any:
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False)


def run_step(g: Graph, step: Step, train: Data | None, calibration: Any, *,
             progress: bool, seed: int, threads: int | None) -> Graph:
    """One recipe step on `g` (never modified)."""
    from ..passes import prune, quantize
    o = step.options
    if step.trains and (train is None or train.y is None):
        raise InputError(f"recipe step {step.describe()!r} trains: pass train=(x, y) "
                         f"(the CLI's --finetune DATA.npz)")
    if step.kind == "quantize":
        cal = calibration if o["dtype"] == "int8" and o["calibrate"] else None
        return quantize(g, o["dtype"], calibration=cal, method=o["method"],
                        per_channel=o["per_channel"], percentile=o["percentile"],
                        exclude=o["exclude"], progress=progress)
    if step.kind == "prune" and not o["gradual"]:
        return prune(g, o["sparsity"], structure="block" if o["block"] else "unstructured",
                     block=o["block"], scope=o["scope"], exclude=o["exclude"])
    from .. import train as tr
    x, y = train.x, train.y
    if step.kind == "prune":
        return tr.gradual_prune(g, x, y, o["sparsity"], epochs=o["epochs"],
                                structure="block" if o["block"] else "unstructured",
                                block=o["block"], scope=o["scope"], exclude=o["exclude"],
                                learning_rate=o["learning_rate"], seed=seed,
                                progress=progress)
    if step.kind == "finetune":
        return tr.fit(g, x, y, masks="zeros", epochs=o["epochs"],
                      learning_rate=o["learning_rate"], batch_size=o["batch_size"],
                      seed=seed, progress=progress)
    kw = dict(temperature=o["temperature"], alpha=o["alpha"], epochs=o["epochs"],
              learning_rate=o["learning_rate"], batch_size=o["batch_size"], seed=seed,
              progress=progress, threads=threads)
    if o["teacher"] is not None:
        return tr.distill(o["teacher"], g, x, y, **kw)
    return tr.distill(g, o["student"], x, y, **kw)


def row_for(stage: str, g: Graph, evaluation: Data | None, threads: int | None,
            seconds: float = 0.0) -> StageRow:
    """A report row without latency (measure() fills that in for all rows at once)."""
    from ..passes import sparsity
    s = sparsity(g)["overall"]
    acc = accuracy(g, evaluation, threads) if evaluation is not None and \
        evaluation.y is not None else None
    return StageRow(stage, s["parameters"], s["nonzeros"], file_bytes(g), s["sparsity"],
                    acc, seconds=seconds)


def measure(report: CompressReport, graphs: Sequence[Graph], sample: Any,
            blocks: int, ort: bool = True) -> None:
    """Fill in every row's latency: all stages (and onnxruntime on the original) timed in
    alternating blocks per batch size."""
    from ..backends import compile as rt_compile
    sessions = [rt_compile(g, threads=report.threads) for g in graphs]
    run_ort, why = ort_runner(graphs[0], report.threads) if ort else (None, "")
    if why:
        report.notes.append(why)
    for b in report.batches:
        engines = {}
        for i, (g, s) in enumerate(zip(graphs, sessions)):
            feeds = latency_feeds(g, b, sample)
            if feeds is not None:
                engines[str(i)] = (lambda s=s, f=feeds: s.run(f))
        feeds0 = latency_feeds(graphs[0], b, sample)
        if run_ort is not None and feeds0 is not None:
            engines["ort"] = lambda f=feeds0: run_ort(f)
        if not engines:
            report.notes.append(f"batch {b}: the model's batch size is fixed; not timed")
            continue
        t = time_alternating(engines, blocks=blocks)
        for k, sec in t.items():
            if k == "ort":
                report.rows[0].ort_latency_ms[b] = sec * 1e3
            else:
                report.rows[int(k)].latency_ms[b] = sec * 1e3


def _threads(v: Any) -> int:
    if v is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
            (os.cpu_count() or 1)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise InputError(f"compress: threads must be an integer >= 1 or None, got {v!r}")
    return int(v)


def compress(graph: Graph, recipe: Any = None, data: Any = None, *, train: Any = None,
             calibration: Any = None, max_accuracy_drop: float | None = None,
             time_budget_s: float = 300.0, candidates: Sequence[str] | None = None,
             batch: int = 1, latency: bool = True, batches: Sequence[int] = (1, 64),
             timing_blocks: int = 5, threads: int | None = None, progress: bool = True,
             seed: int = 0) -> tuple[Graph, CompressReport]:
    """Compress `graph` by a recipe, or automatically within an accuracy budget; returns
    (the compressed Graph, a CompressReport). The input graph is never modified.

    recipe: a list of steps ([{"prune": {"sparsity": 0.9}}, {"quantize": {"dtype":
    "int8"}}], see pyruntime.compression.recipe) or a TOML file path.
    data: the evaluation data, x or (x, y) (x an array, or a dict by input name): the
    report's accuracy (with labels), the timing inputs and the default calibration.
    train: (x, y) for the steps that train (distill, finetune, gradual prune).
    calibration: inputs for static int8 (default: train's x, else data's x; 512 rows).
    max_accuracy_drop: automatic mode instead of a recipe (pyruntime.compression.auto):
    data=(x_val, y_val) is required; the result's top-1 accuracy on it is at least the
    original's minus this fraction. time_budget_s bounds the search, `candidates` the
    per-layer formats tried (auto.CANDIDATES), `batch` the batch size it optimizes for.
    latency: time every stage at `batches` (and onnxruntime on the original) in
    alternating blocks (`timing_blocks` rounds); threads: Session threads (default: every
    core). progress: tqdm bars.
    """
    t_start = time.monotonic()
    if not isinstance(graph, Graph):
        raise InputError(f"compress: expected a pyruntime.Graph, got {type(graph).__name__}")
    if not isinstance(progress, bool) or not isinstance(latency, bool):
        raise InputError(f"compress: progress and latency must be True or False, got "
                         f"{progress!r}, {latency!r}")
    bs = tuple(batches)
    if not bs or any(isinstance(b, bool) or not isinstance(b, numbers.Integral) or b < 1
                     for b in bs):
        raise InputError(f"compress: batches must be integers >= 1, got {batches!r}")
    if isinstance(timing_blocks, bool) or not isinstance(timing_blocks, numbers.Integral) \
            or timing_blocks < 1:
        raise InputError(f"compress: timing_blocks must be an integer >= 1, got "
                         f"{timing_blocks!r}")
    nthreads = _threads(threads)
    validate(graph)
    auto = max_accuracy_drop is not None
    if auto == (recipe is not None):
        raise InputError("compress: pass a recipe, or max_accuracy_drop for the automatic "
                         "search, not both and not neither")
    evaluation = as_data(graph, data, "data", need_labels=auto)
    tr = as_data(graph, train, "train", need_labels=True)
    if calibration is not None:
        cal = as_data(graph, calibration, "calibration").x
    else:
        src = tr if tr is not None else evaluation
        cal = take(src.x, slice(0, CALIBRATION_ROWS)) if src is not None else None
    report = CompressReport(rows=[], cpu=cpu_name(), threads=nthreads, batches=bs)
    report.rows.append(row_for("original", graph, evaluation, nthreads))
    graphs = [graph]
    if auto:
        from .auto import search
        if isinstance(max_accuracy_drop, bool) or \
                not isinstance(max_accuracy_drop, numbers.Real) or \
                not 0.0 <= float(max_accuracy_drop) < 1.0:
            raise InputError(f"compress: max_accuracy_drop must be a fraction in [0, 1) "
                             f"(0.01 = one point), got {max_accuracy_drop!r}")
        if isinstance(time_budget_s, bool) or not isinstance(time_budget_s, numbers.Real) \
                or not 0 < float(time_budget_s) < math.inf:
            raise InputError(f"compress: time_budget_s must be a positive number, got "
                             f"{time_budget_s!r}")
        t0 = time.monotonic()
        g = search(graph, evaluation, float(max_accuracy_drop), report,
                   calibration=cal, time_budget_s=float(time_budget_s),
                   candidates=candidates, batch=batch, threads=nthreads, progress=progress,
                   base_accuracy=report.rows[0].accuracy)
        report.rows.append(row_for(f"auto: {report.auto_choice}", g, evaluation, nthreads, time.monotonic() - t0))
        graphs.append(g)
    else:
        steps = parse_recipe(recipe)
        if any(s.trains for s in steps) and tr is None:
            first = next(s for s in steps if s.trains)
            raise InputError(f"compress: recipe step {steps.index(first) + 1} "
                             f"({first.describe()}) trains: pass train=(x, y)")
        g = graph
        bar = _bar(len(steps), progress, "compress")
        try:
            for s in steps:
                t0 = time.monotonic()
                g = run_step(g, s, tr, cal, progress=progress, seed=seed, threads=nthreads)
                report.rows.append(row_for(s.describe(), g, evaluation, nthreads,
                                           time.monotonic() - t0))
                graphs.append(g)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    if latency:
        measure(report, graphs, evaluation.x if evaluation is not None else None,
                int(timing_blocks))
    report.notes.append(f"compress took {time.monotonic() - t_start:.1f} s")
    return g, report
