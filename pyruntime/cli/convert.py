"""`pyruntime convert MODEL.onnx -o MODEL.pyrt` and `pyruntime export MODEL --to onnx|xla
-o PATH`: a model between the formats pyruntime reads and writes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import load_model, model_path


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    c = sub.add_parser("convert", parents=parents, help="ONNX model -> .pyrt file",
                       description="Import an ONNX model (ops, weights, QDQ quantization) "
                                   "and save it as a .pyrt file.")
    c.add_argument("model", type=model_path, metavar="MODEL.onnx")
    c.add_argument("-o", "--output", type=Path, default=None,
                   help="the .pyrt file (default: the model's name with .pyrt)")
    c.set_defaults(run=run_convert)
    e = sub.add_parser("export", parents=parents, help="model -> ONNX or an XLA artifact",
                       description="Write a model (ONNX or .pyrt, compressed or not) as an "
                                   "ONNX model (quantized weights as QDQ) or as an XLA "
                                   "artifact (StableHLO for cpu, cuda and tpu).")
    e.add_argument("model", type=model_path, metavar="MODEL")
    e.add_argument("--to", choices=("onnx", "xla"), required=True)
    e.add_argument("-o", "--output", type=Path, required=True, metavar="PATH")
    e.add_argument("--platforms", default="cpu,cuda,tpu",
                   help="XLA platforms, comma-separated (default cpu,cuda,tpu)")
    e.set_defaults(run=run_export)


def run_convert(args: argparse.Namespace) -> int:
    from ..fileformat import save
    if args.model.suffix.lower() != ".onnx":
        raise SystemExit(_usage("convert", f"expected an ONNX model, got {args.model}"))
    out = args.output or args.model.with_suffix(".pyrt")
    g = load_model(args.model)
    save(g, str(out))
    if not args.quiet:
        print(f"{args.model} -> {out} ({out.stat().st_size} bytes, {len(g.nodes)} nodes)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    g = load_model(args.model)
    if args.to == "onnx":
        from ..onnx import to_onnx
        to_onnx(g, str(args.output))
    else:
        from ..xla import export
        export(g, str(args.output), platforms=tuple(p for p in args.platforms.split(",") if p))
    if not args.quiet:
        print(f"{args.model} -> {args.output} ({args.to}, {args.output.stat().st_size} bytes)")
    return 0


def _usage(cmd: str, msg: str) -> int:
    import sys
    print(f"pyruntime {cmd}: error: {msg}", file=sys.stderr)
    return 2
