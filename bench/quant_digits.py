"""Every compression variant of the digits teacher CNN in one table: file bytes, test
accuracy (540 images) and latency of the compiled Session (batch 1 and 64, median of
7 blocks of calls), with the recipe of tests/test_prune_digits.py (teacher 30 epochs;
pruned 90% one-shot and fine-tuned 20 epochs; int8 static calibrated on 256 training
images). Needs the xla extra and scikit-learn.

    python bench/quant_digits.py --threads 1

Prints a markdown table and writes bench/results/quant_digits.json.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import pyruntime as rt
from pyruntime import train
from pyruntime.train import digits

from run import cpu_name  # bench/run.py

RESULTS = Path(__file__).resolve().parent / "results"


def variants() -> tuple[dict[str, rt.Graph], np.ndarray, np.ndarray]:
    """The seven variants, and the test images and labels."""
    xtr, ytr, xte, yte = digits.load(test_fraction=0.3, seed=0)
    fit = dict(batch_size=64, learning_rate=3e-3, validation_split=0.1, seed=0,
               progress=False)
    teacher = train.fit(digits.teacher_cnn(seed=0), xtr, ytr, epochs=30, patience=5, **fit)
    tuned = train.fit(rt.prune(teacher, 0.9), xtr, ytr, masks="zeros", epochs=20, **fit)
    cal = xtr[:256]
    out = {"fp32": teacher,
           "fp16": rt.quantize(teacher, "fp16"),
           "bf16": rt.quantize(teacher, "bf16"),
           "int8 dynamic": rt.quantize(teacher, "int8"),
           "int8 static": rt.quantize(teacher, "int8", calibration=cal, progress=False),
           "pruned 90%": tuned,
           "pruned + int8 static": rt.quantize(tuned, "int8", calibration=cal,
                                               progress=False)}
    return out, xte, yte


def latency_us(sess: rt.Session, x: np.ndarray, calls: int) -> float:
    blocks = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(calls):
            sess.run(x)
        blocks.append((time.perf_counter() - t0) / calls)
        time.sleep(0.05)
    return 1e6 * statistics.median(blocks)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    graphs, x, y = variants()
    rows = []
    print("| variant | file | accuracy | batch 1 | batch 64 |\n|---|---:|---:|---:|---:|")
    for name, g in graphs.items():
        sess = rt.compile(g, threads=a.threads)
        buf = io.BytesIO()
        rt.save(g, buf)
        r = {"variant": name, "bytes": len(buf.getvalue()),
             "accuracy": float(np.mean(sess.run(x).argmax(1) == y)),
             "b1_us": latency_us(sess, x[:1].copy(), 500),
             "b64_us": latency_us(sess, x[:64].copy(), 50)}
        rows.append(r)
        print(f"| {name} | {r['bytes'] / 1024:.0f} KB | {100 * r['accuracy']:.2f}% | "
              f"{r['b1_us']:.1f} us | {r['b64_us']:.0f} us |", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quant_digits.json").write_text(json.dumps(
        {"cpu": cpu_name(), "threads": a.threads, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
