"""`rt.quantize_report`: per-layer error of a quantized graph against its original, so a
user sees which layer to `exclude`.

Both graphs run on the CPU backend on the same input with every compared layer's output
as an extra graph output. A layer's row compares its output in the quantized run (the
int8/fp16/bf16 kernels, with the error of every layer before it) with the original's:
relative error max|q - f| / max|f| and SQNR 10 log10(sum f^2 / sum (q - f)^2) in dB; and
its kernel alone: ||w_q - w|| / ||w|| (Frobenius) of the stored weight's dense view
against the original kernel. A layer whose own weight error is small but whose output error jumps
is where the activation range is the problem (an outlier channel, a wide range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .. import formats
from ..errors import InputError
from ..graph import Graph
from ..shapes import node_label, validate
from .calibrate import batches
from .fusion import optimize

__all__ = ["quantize_report", "LayerError", "QuantReport"]


@dataclass(frozen=True)
class LayerError:
    """One compared layer."""
    node: str            # the node's label (name and op)
    output: str          # the compared tensor
    weight_format: str   # the quantized graph's kernel format
    rel_err: float       # max |q - f| / max |f| of the layer output
    sqnr_db: float       # signal to quantization noise of the layer output (inf: exact)
    weight_rel_err: float  # ||w_q - w|| / ||w|| of the kernel alone


class QuantReport(list):
    """A list of LayerError in graph order; str() is a table, worst() the layer with
    the lowest SQNR."""

    def worst(self) -> LayerError | None:
        return min(self, key=lambda r: r.sqnr_db) if self else None

    def __str__(self) -> str:
        head = f"{'layer':<40} {'format':<8} {'rel err':>9} {'SQNR dB':>8} {'w rel err':>9}"
        rows = [head, "-" * len(head)]
        for r in self:
            rows.append(f"{r.node[:40]:<40} {r.weight_format:<8} {r.rel_err:>9.2e} "
                        f"{r.sqnr_db:>8.1f} {r.weight_rel_err:>9.2e}")
        return "\n".join(rows)


def _sqnr(f: np.ndarray, d: np.ndarray) -> float:
    noise = float(np.sum(d * d))
    signal = float(np.sum(f * f))
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf


def _run(graph: Graph, outputs: list[str], x: Any) -> dict[str, np.ndarray]:
    from ..backends import compile as compile_graph

    g = Graph(graph.inputs, list(dict.fromkeys(list(graph.outputs) + outputs)), graph.nodes,
              graph.weights, name=graph.name)
    outs = compile_graph(g).run(x)
    if not isinstance(outs, dict):
        outs = {g.outputs[0]: outs}
    return {k: np.asarray(v, dtype=np.float64) for k, v in outs.items()}


def quantize_report(original: Graph, quantized: Graph, x: Any) -> QuantReport:
    """Per-layer error of `quantized` (from rt.quantize(original, ...)) against
    `original` on input `x` (an array or a dict of arrays, like Session.run)."""
    for what, g in (("original", original), ("quantized", quantized)):
        if not isinstance(g, Graph):
            raise InputError(f"quantize_report: {what} must be a pyruntime.Graph, got "
                             f"{type(g).__name__}")
    validate(original)
    validate(quantized)
    fp = optimize(original, checked=True)
    fp_out = {n.outputs[0]: n for n in fp.nodes}
    layers = []
    for i, n in enumerate(quantized.nodes):
        if n.op not in ("Conv", "Gemm") or n.outputs[0] not in fp_out:
            continue
        f = fp_out[n.outputs[0]]
        if f.op != n.op or f.inputs[1] not in fp.weights or n.inputs[1] not in quantized.weights:
            continue
        layers.append((i, n, f))
    if not layers:
        raise InputError(f"quantize_report: graph {quantized.name!r} shares no Conv/Gemm "
                         f"layer output with {original.name!r}; pass the graph rt.quantize "
                         f"made from it")
    names = [n.outputs[0] for _, n, _ in layers]
    if not isinstance(x, (np.ndarray, Mapping)):
        raise InputError(f"quantize_report: x must be an array or a dict of arrays, got "
                         f"{type(x).__name__}")
    x = batches(original, x, "quantize_report: x")[0]  # checked: shape, rows, finite
    got, ref = _run(quantized, names, x), _run(fp, names, x)
    report = QuantReport()
    for i, n, f in layers:
        t = n.outputs[0]
        d = got[t] - ref[t]
        top = float(np.max(np.abs(ref[t]))) if ref[t].size else 0.0
        wq = quantized.weights[n.inputs[1]]
        w0 = formats.dense_f32(fp.weights[f.inputs[1]]).astype(np.float64)
        w1 = formats.dense_f32(wq).astype(np.float64)
        wnorm = float(np.linalg.norm(w0))
        report.append(LayerError(
            node=node_label(n, i), output=t, weight_format=wq.format,
            rel_err=float(np.max(np.abs(d))) / top if top > 0 else float(np.max(np.abs(d))),
            sqnr_db=_sqnr(ref[t], d),
            weight_rel_err=float(np.linalg.norm(w1 - w0)) / wnorm if wnorm > 0 else 0.0))
    return report
