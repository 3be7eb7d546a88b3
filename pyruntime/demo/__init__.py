"""`pyruntime demo`: scikit-learn's digits end to end. Train a teacher CNN, a student
alone and a distilled student; prune the teacher to 90% and fine-tune it; quantize to int8
and fp16; export an XLA artifact; then measure every variant the same way (test accuracy,
parameters and nonzeros, bytes on disk, latency beside onnxruntime in alternating blocks)
and write a markdown report with plots.

variants.py trains and builds the models, measure.py times and scores them, plots.py
draws the PNGs (matplotlib, Agg), report.py writes the table and report.md, and
run.py strings the steps together. The command line is cli/demo.py.
"""

from __future__ import annotations

from .run import SIZES, DemoResult, DemoSize, run_demo

__all__ = ["SIZES", "DemoResult", "DemoSize", "run_demo"]
