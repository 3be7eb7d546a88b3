"""Distill a CNN teacher into a depthwise-separable student on scikit-learn's digits,
and export the result for CPU/GPU/TPU.

    python examples/distill_digits.py [--seeds 3] [--epochs 30] [--progress]

Trains the teacher once, then for each seed trains the student alone and the student by
distillation with the same budget (epochs, batch size, learning rate, validation split,
seed), and prints test accuracies as a markdown table (mean and per seed). Needs the
`xla` extra and scikit-learn: `pip install pyruntime[xla] scikit-learn`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import pyruntime as rt
from pyruntime import train, xla
from pyruntime.train import digits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--teacher-epochs", type=int, default=30)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args()

    xtr, ytr, xte, yte = digits.load(test_fraction=0.3, seed=0)
    teacher0, student0 = digits.teacher_cnn(seed=0), digits.student_cnn(seed=0)
    tp, sp = digits.count_params(teacher0), digits.count_params(student0)
    print(f"digits: {len(xtr)} train / {len(xte)} test images; teacher {tp:,} params, "
          f"student {sp:,} params ({sp / tp:.1%})")
    budget = dict(epochs=args.epochs, batch_size=64, learning_rate=1e-2,
                  validation_split=0.1, progress=args.progress)

    t0 = time.perf_counter()
    teacher = train.fit(teacher0, xtr, ytr, epochs=args.teacher_epochs, batch_size=64,
                        learning_rate=3e-3, validation_split=0.1, patience=5, seed=0,
                        progress=args.progress)
    t_acc = train.accuracy(teacher, xte, yte)
    print(f"teacher: test accuracy {t_acc:.4f} ({time.perf_counter() - t0:.0f} s)")

    alone, distilled = [], []
    for seed in range(args.seeds):
        s1 = train.fit(student0, xtr, ytr, seed=seed, **budget)
        s2 = train.distill(teacher, student0, xtr, ytr, temperature=args.temperature,
                           alpha=args.alpha, seed=seed, **budget)
        alone.append(train.accuracy(s1, xte, yte))
        distilled.append(train.accuracy(s2, xte, yte))
        print(f"seed {seed}: student alone {alone[-1]:.4f}, distilled {distilled[-1]:.4f}")

    def row(name: str, params: int, accs: list[float]) -> str:
        per = ", ".join(f"{a:.4f}" for a in accs)
        return f"| {name} | {params:,} | {np.mean(accs):.4f} | {per} |"

    print()
    print("| model | params | test accuracy (mean) | per seed |")
    print("|---|---:|---:|---|")
    print(row("teacher CNN", tp, [t_acc]))
    print(row("student alone", sp, alone))
    print(row(f"student distilled (T={args.temperature:g}, alpha={args.alpha:g})", sp,
              distilled))

    # The TPU path: one artifact for cpu, cuda and tpu, symbolic batch, weights inside.
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "student.pyrtx")
        xla.export(s2, path, platforms=("cpu", "cuda", "tpu"))
        model = xla.load(path)
        y_xla = model(xte[:16])
        y_cpu = rt.compile(s2).run(xte[:16])
        print(f"\nexported for {model.platforms} ({os.path.getsize(path):,} bytes); "
              f"max |XLA - Session| = {np.abs(y_xla - y_cpu).max():.2e}")


if __name__ == "__main__":
    main()
