"""The compression report: one row per stage (the original, then each step), with what
it costs on disk and in accuracy, and its latency on this machine.

Latency is measured the way bench/run.py compares engines on a small noisy machine: all
stages' Sessions (and onnxruntime on the original) in alternating blocks of calls, the
order reversed every other round, the median per-call time over the rounds, so a burst of
load from a neighbour hits every stage alike instead of one."""

from __future__ import annotations

import io
import os
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from ..baselines import ort_session
from ..graph import Graph
from ..timing import alternate, cpu_name

__all__ = ["StageRow", "CompressReport", "cpu_name", "file_bytes", "time_alternating",
           "latency_feeds", "ort_runner"]


@dataclass
class StageRow:
    """One stage of a compression."""
    stage: str                         # "original", "prune 0.9", ...
    parameters: int                    # Conv/Gemm kernel entries (rt.sparsity overall)
    nonzeros: int                      # of those, not zero
    bytes: int                         # the .pyrt file's size
    sparsity: float                    # rt.sparsity(g)["overall"]["sparsity"]
    accuracy: float | None = None      # top-1 on the given labels
    latency_ms: dict[int, float] = field(default_factory=dict)   # batch -> ms per call
    ort_latency_ms: dict[int, float] = field(default_factory=dict)  # onnxruntime (original)
    seconds: float = 0.0               # time the step took


@dataclass
class CompressReport:
    """What rt.compress did: rows (original first), the CPU they were timed on, and in
    automatic mode the per-layer choices and the reasons."""
    rows: list[StageRow]
    cpu: str = ""
    threads: int | None = None
    batches: tuple[int, ...] = (1, 64)
    choices: list[dict[str, Any]] = field(default_factory=list)   # auto mode, per layer
    notes: list[str] = field(default_factory=list)
    auto_choice: str = ""    # auto mode: "per-layer", "all int8", ... or "original"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for r in d["rows"]:    # JSON keys are strings
            r["latency_ms"] = {str(k): v for k, v in r["latency_ms"].items()}
            r["ort_latency_ms"] = {str(k): v for k, v in r["ort_latency_ms"].items()}
        d["batches"] = list(self.batches)
        return d

    def to_markdown(self) -> str:
        """The rows as a Markdown table (then the auto-mode choices, then notes)."""
        has_acc = any(r.accuracy is not None for r in self.rows)
        has_ort = any(r.ort_latency_ms for r in self.rows)
        head = ["stage", "params (nonzero)", "file bytes", "sparsity"]
        head += ["accuracy"] if has_acc else []
        head += [f"ms @ batch {b}" for b in self.batches]
        head += [f"onnxruntime ms @ {b}" for b in self.batches] if has_ort else []
        out = [f"Measured on {self.cpu}, {self.threads} threads." if self.cpu else "",
               "", "| " + " | ".join(head) + " |",
               "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        for r in self.rows:
            cells = [r.stage, f"{r.parameters:,} ({r.nonzeros:,})", f"{r.bytes:,}",
                     f"{r.sparsity:.1%}"]
            if has_acc:
                cells.append("" if r.accuracy is None else f"{r.accuracy:.4f}")
            cells += [_ms(r.latency_ms.get(b)) for b in self.batches]
            if has_ort:
                cells += [_ms(r.ort_latency_ms.get(b)) for b in self.batches]
            out.append("| " + " | ".join(cells) + " |")
        if self.choices:
            out += ["", "| layer | choice | accuracy drop alone | layer ms (fp32 -> choice) "
                    "| why |", "|---|---|---:|---:|---|"]
            for c in self.choices:
                drop = c.get("drop")
                out.append(f"| {c['layer']} | {c['choice']} | "
                           f"{'' if drop is None else f'{drop:+.4f}'} | "
                           f"{_ms(c.get('base_ms'))} -> {_ms(c.get('ms'))} | {c['why']} |")
        if self.notes:
            out += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(out).lstrip("\n")

    def __str__(self) -> str:
        return self.to_markdown()


def _ms(v: float | None) -> str:
    return "" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")


def file_bytes(graph: Graph) -> int:
    """Size of the graph's .pyrt file (written to memory)."""
    from ..fileformat import save
    buf = io.BytesIO()
    save(graph, buf)
    return buf.tell()


def latency_feeds(graph: Graph, batch: int, sample: Any = None) -> dict[str, np.ndarray] | None:
    """Inputs of `batch` rows for timing: rows of `sample` (cycled) when given, else
    seeded normal noise. None when the graph's batch is fixed to another size."""
    feeds = {}
    rng = np.random.default_rng(0)
    for i, vi in enumerate(graph.inputs):
        if vi.shape and vi.shape[0] is not None and int(vi.shape[0]) != batch:
            return None
        rest = tuple(int(d) for d in vi.shape[1:])
        src = None
        if sample is not None:
            src = sample.get(vi.name) if isinstance(sample, dict) else \
                (sample if i == 0 else None)
        if src is not None and len(src):
            src = np.asarray(src)
            feeds[vi.name] = np.ascontiguousarray(src[np.arange(batch) % len(src)],
                                                  dtype=np.dtype(vi.dtype.str))
        else:
            feeds[vi.name] = rng.standard_normal((batch,) + rest).astype(np.dtype(vi.dtype.str))
    return feeds


def time_alternating(engines: dict[str, Callable[[], object]], *, blocks: int = 5,
                     calls: int = 3, min_block_s: float = 0.05, pause: float = 0.02
                     ) -> dict[str, float]:
    """Median seconds per call of each engine over alternating blocks
    (pyruntime/timing.py; short pauses: no OpenBLAS threads spin here)."""
    samples = alternate(engines, rounds=blocks, calls=calls, pause=pause, warmup=2,
                        min_block_s=min_block_s)
    return {k: statistics.median(v.blocks) for k, v in samples.items()}


def ort_runner(graph: Graph, threads: int | None) -> tuple[Callable[[dict], Any] | None, str]:
    """A function running `graph` on onnxruntime's CPU provider, or None and why not."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None, "onnxruntime is not installed: its column is left out"
    from ..errors import Error
    from ..onnx import to_onnx
    try:
        model = to_onnx(graph)
    except Error as e:
        return None, f"onnxruntime: the original does not export to ONNX ({e})"
    try:
        sess = ort_session(model.SerializeToString(), threads or os.cpu_count() or 1)
    except Exception as e:  # onnxruntime's own errors are not ours to raise
        return None, f"onnxruntime cannot load the original ({type(e).__name__}: {e})"[:300]
    return (lambda feeds: sess.run(None, feeds)), ""
