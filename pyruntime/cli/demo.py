"""`pyruntime demo`: digits end to end (pyruntime/demo/): train, distill, prune,
quantize, export, time beside onnxruntime, and write a report with plots."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .common import positive_int


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", parents=parents, help="digits end to end: train, compress, time, report",
        description="Train a CNN on scikit-learn's digits, a student alone and distilled, "
                    "prune the teacher to 90% and fine-tune it, quantize to int8 and fp16, "
                    "export an XLA artifact; measure each (test accuracy, nonzeros, bytes "
                    "on disk, latency at batch 1 and 64 beside onnxruntime) and write "
                    "report.md with plots. About 70 s on 2 cores (--fast: ~30 s).")
    p.add_argument("--out", default="pyruntime-demo", metavar="DIR",
                   help="folder for report.md, the PNGs and the models (default "
                        "./pyruntime-demo/)")
    p.add_argument("--fast", action="store_true",
                   help="short training and timing (a smoke run, as CI runs it)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads of every engine (default: every core)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo
    from ..demo.report import table
    res = run_demo(args.out, size="fast" if args.fast else "full", threads=args.threads,
                   progress=not args.quiet)
    if not args.quiet:
        print(table(res.rows))
        print(f"\n{res.meta['cpu']}, {res.meta['threads']} threads; {res.meta['total_s']:.0f} s"
              f" in all; report: {os.path.join(args.out, 'report.md')}")
    sys.stdout.flush()
    return 0
