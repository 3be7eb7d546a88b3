"""The demo's table (printed and in report.md) and the report itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .plots import PNGS


def _us(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    """The variants as a markdown table."""
    lines = ["| variant | accuracy | params / nonzeros | bytes on disk | batch 1 us "
             "(onnxruntime) | batch 64 us (onnxruntime) | computed as |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lat = [f"{_us(r[f'b{b}_us'])} ({_us(r[f'b{b}_ort_us'])})" for b in (1, 64)]
        lines.append(f"| {r['variant']} | {100 * r['accuracy']:.2f}% | "
                     f"{r['parameters']:,} / {r['nonzeros']:,} | {r['bytes']:,} | "
                     f"{lat[0]} | {lat[1]} | {r['computed_as']} |")
    return "\n".join(lines)


def sweep_table(sweep: list[dict[str, Any]]) -> str:
    lines = ["| sparsity | batch | dense us | sparse us | speed-up |", "|---:|---:|---:|---:|---:|"]
    for s in sweep:
        lines.append(f"| {s['sparsity']:.0%} | {s['batch']} | {_us(s['dense_us'])} | "
                     f"{_us(s['sparse_us'])} | {s['speedup']:.2f}x |")
    return "\n".join(lines)


def write(rows: list[dict[str, Any]], sweep: list[dict[str, Any]], meta: dict[str, Any],
          pngs: list[Path], folder: Path) -> Path:
    """Write report.md (the plots embedded by relative path) and return its path."""
    plots = "\n\n".join(f"![{PNGS[p.stem]}]({p.name})" for p in pngs)
    text = f"""# pyruntime demo: digits, end to end

{meta['date']}; {meta['cpu']}, {meta['cpus']} CPUs, {meta['threads']} threads, ISA
{meta['isa']}; size `{meta['size']}`; {meta['train']} training / {meta['test']} test images
(scikit-learn's 8x8 digits, stratified 70/30 split, seed 0). The demo's steps took
{meta['total_s']:.0f} s, JAX compilation included (Python's start-up and imports not
counted).

{table(rows)}

- **accuracy**: top-1 on the test images, computed by the compiled Session (the XLA
  artifact: by the artifact loaded back).
- **params / nonzeros**: every weight scalar of the model, and those that are not zero.
- **bytes on disk**: the `.pyrt` file `rt.save` wrote (in `models/`); for the XLA row the
  `.pyrtx` artifact, lowered for cpu, cuda and tpu with a symbolic batch.
- **latency**: microseconds per call, the median over rounds of blocks timed
  alternately with onnxruntime's (running `rt.to_onnx` of the same variant: int8 as
  QDQ on its int8 kernels, fp16 and pruned models as dense float32); `-` where there is
  no onnxruntime counterpart.
- **computed as**: what the CPU plan runs the Conv/Gemm layers with.

Sparse speed-up (the teacher pruned one-shot to each sparsity, sparse kernel forced,
against the dense teacher, dense kernel forced; timed alternately):

{sweep_table(sweep)}

{plots}
"""
    path = folder / "report.md"
    path.write_text(text)
    return path
