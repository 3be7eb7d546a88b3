"""The demo's driver: train, compress, export, measure, plot, report."""

from __future__ import annotations

import importlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..backends import compile as rt_compile
from ..errors import InputError, MissingDependencyError
from ..fileformat import save
from ..graph import Graph
from ..passes.prune import prune
from ..timing import cpu_name
from .measure import Timing, accuracy, ort_runner, time_pair, weight_counts
from .variants import Epochs, build


@dataclass(frozen=True)
class DemoSize:
    """How much the demo trains and how long it times: `full` is the real demo (under 5
    minutes on 2 cores), `fast` the CI setting (a smoke run: short training, few rounds)."""
    name: str
    epochs: Epochs
    rounds: int                 # timing rounds per (variant, batch)
    min_block_s: float          # shortest timed block
    sparsities: tuple[float, ...]   # the sparse speed-up sweep


SIZES: dict[str, DemoSize] = {
    "full": DemoSize("full", Epochs(teacher=30, student=30, finetune=20), rounds=9,
                     min_block_s=0.05, sparsities=(0.5, 0.7, 0.8, 0.9, 0.95, 0.98)),
    "fast": DemoSize("fast", Epochs(teacher=8, student=5, finetune=2), rounds=3,
                     min_block_s=0.005, sparsities=(0.5, 0.9)),
}

#: module -> what the demo needs it for (all in the `test` extra)
NEEDS = {"jax": "training", "optax": "training", "sklearn": "the digits data set",
         "onnxruntime": "the latency baseline", "matplotlib": "the plots",
         "tqdm": "the progress bar"}
BATCHES = (1, 64)
XLA_ROW = "XLA artifact (teacher)"


@dataclass
class DemoResult:
    """What a demo run measured, and where it wrote the report."""
    rows: list[dict[str, Any]]
    sweep: list[dict[str, Any]]
    meta: dict[str, Any]
    report: Path
    plots: list[Path] = field(default_factory=list)


def check_dependencies() -> None:
    """Fail before any training when a package the demo needs is missing."""
    missing = []
    for mod, why in NEEDS.items():
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(f"{mod} ({why})")
    if missing:
        raise MissingDependencyError(
            f"pyruntime demo needs {', '.join(missing)}, not installed; install them with "
            f"pip install 'pyruntime[test]'")


def out_dir(path: str | os.PathLike) -> Path:
    """The report folder, created if needed; refused when it names a file."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"--out: expected a folder (or a path to create one), got the "
                         f"file {str(p)!r}")
    (p / "models").mkdir(parents=True, exist_ok=True)
    return p


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


class Steps:
    """One progress bar over the demo's steps (none when quiet)."""

    def __init__(self, total: int, progress: bool) -> None:
        from tqdm import tqdm
        self.bar = tqdm(total=total, disable=not progress, unit="step",
                        bar_format="{desc:<40} {bar} {n_fmt}/{total_fmt} [{elapsed}]")
        self.started = False

    def __call__(self, name: str) -> None:
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_description_str(name)

    def close(self) -> None:
        if self.started:
            self.bar.update(1)
        self.bar.close()


def _timings(ours: Callable[[np.ndarray], Any], base: Callable[[np.ndarray], Any] | None,
             x: np.ndarray, size: DemoSize) -> dict[int, Timing]:
    return {b: time_pair(ours, base, np.ascontiguousarray(x[:b]), rounds=size.rounds,
                         min_block_s=size.min_block_s) for b in BATCHES}


def _row(name: str, acc: float, params: int, nonzeros: int, nbytes: int, file: Path,
         t: dict[int, Timing], **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"variant": name, "accuracy": acc, "parameters": params,
                         "nonzeros": nonzeros, "bytes": nbytes, "file": file.name, **extra}
    for b, tm in t.items():
        r[f"b{b}_us"] = 1e6 * tm.ours_s
        r[f"b{b}_ort_us"] = None if tm.base_s is None else 1e6 * tm.base_s
        r[f"b{b}_ratio"] = tm.ratio
    return r


def sparse_sweep(teacher: Graph, x: np.ndarray, size: DemoSize, threads: int
                 ) -> list[dict[str, Any]]:
    """Speed-up of the teacher pruned one-shot to each sparsity (the sparse kernel
    forced) over the dense teacher (the dense kernel forced), per batch, timed in
    alternating blocks. Speed only: no fine-tuning."""
    dense = rt_compile(teacher, threads=threads, sparse="dense")
    out = []
    for s in size.sparsities:
        sess = rt_compile(prune(teacher, s), threads=threads, sparse="sparse")
        for b, tm in _timings(sess.run, dense.run, x, size).items():
            out.append({"sparsity": s, "batch": b, "sparse_us": 1e6 * tm.ours_s,
                        "dense_us": 1e6 * (tm.base_s or 0.0), "speedup": 1.0 / tm.ratio})
    return out


def run_demo(out: str | os.PathLike = "pyruntime-demo", size: str | DemoSize = "full",
             threads: int | None = None, progress: bool = True) -> DemoResult:
    """Run the whole demo and write `out`/report.md, its PNGs and the models."""
    t_start = time.perf_counter()
    size = SIZES[size] if isinstance(size, str) else size
    threads = threads or os.cpu_count() or 1
    check_dependencies()
    folder = out_dir(out)
    from .. import info
    from ..train import digits
    from ..xla import export as xla_export, load as xla_load
    from . import plots, report

    steps = Steps(total=10, progress=progress)
    try:
        steps("load digits")
        data = digits.load(test_fraction=0.3, seed=0)
        xte, yte = data[2], data[3]
        graphs = build(data, size.epochs, steps)
        steps("measure the variants")
        rows = []
        for name, g in graphs.items():
            path = folder / "models" / f"{slug(name)}.pyrt"
            save(g, path)
            sess = rt_compile(g, threads=threads)
            params, nz = weight_counts(g)
            kinds = sorted({r["computed_as"] for r in sess.plan_summary()
                            if r["computed_as"]})
            rows.append(_row(name, accuracy(sess.run, xte, yte), params, nz,
                             path.stat().st_size, path,
                             _timings(sess.run, ort_runner(g, threads), xte, size),
                             computed_as=", ".join(kinds)))
        steps("export XLA artifact")
        teacher = graphs["teacher"]
        xpath = folder / "models" / "teacher.pyrtx"
        xla_export(teacher, xpath, platforms=("cpu", "cuda", "tpu"))
        xmodel = xla_load(xpath)
        params, nz = weight_counts(teacher)
        rows.append(_row(XLA_ROW, accuracy(xmodel.run, xte, yte), params, nz,
                         xpath.stat().st_size, xpath, _timings(xmodel.run, None, xte, size),
                         computed_as="XLA (jax, cpu)"))
        steps("sparse speed-up sweep")
        sweep = sparse_sweep(teacher, xte, size, threads)
        steps("plots and report")
        meta = {"cpu": cpu_name(), "cpus": os.cpu_count(), "threads": threads,
                "isa": info()["isa"], "size": size.name,
                "train": len(data[0]), "test": len(xte),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        pngs = plots.draw(rows, sweep, folder)
        meta["total_s"] = time.perf_counter() - t_start
        path = report.write(rows, sweep, meta, pngs, folder)
    finally:
        steps.close()
    return DemoResult(rows, sweep, meta, path, pngs)
