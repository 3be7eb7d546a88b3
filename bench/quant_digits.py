"""Every compression variant of the digits teacher CNN on one table: file bytes, test
accuracy (540 images) and latency of the compiled Session (1 thread, batch 1 and 64,
median of 7 blocks), the recipe of tests/test_prune_digits.py (teacher 30 epochs,
pruned 90% one-shot and fine-tuned 20 epochs; int8 static calibrated on 256 training
images). Needs the xla extra and scikit-learn.

    python bench/quant_digits.py
"""
import io
import statistics
import time

import numpy as np

import pyruntime as rt
from pyruntime import train
from pyruntime.train import digits
xtr, ytr, xte, yte = digits.load(test_fraction=0.3, seed=0)
teacher = train.fit(digits.teacher_cnn(seed=0), xtr, ytr, epochs=30, batch_size=64, learning_rate=3e-3, validation_split=0.1, patience=5, seed=0, progress=False)
pruned = rt.prune(teacher, 0.9)
tuned = train.fit(pruned, xtr, ytr, masks="zeros", epochs=20, batch_size=64, learning_rate=3e-3, validation_split=0.1, seed=0, progress=False)
cal = xtr[:256]
variants = {"fp32": teacher, "fp16": rt.quantize(teacher,"fp16"), "bf16": rt.quantize(teacher,"bf16"),
  "int8 dynamic": rt.quantize(teacher,"int8"), "int8 static": rt.quantize(teacher,"int8",calibration=cal,progress=False),
  "pruned 90%": tuned, "pruned + int8 static": rt.quantize(tuned,"int8",calibration=cal,progress=False)}

rows = []
for name,g in variants.items():
    s1 = rt.compile(g, threads=1)
    acc = float(np.mean(s1.run(xte).argmax(1)==yte))
    b = io.BytesIO(); rt.save(g, b); size=len(b.getvalue())
    x1 = xte[:1].copy(); x64 = xte[:64].copy()
    def t(x, n):
        ts=[]
        for _ in range(7):
            t0=time.perf_counter()
            for _ in range(n): s1.run(x)
            ts.append((time.perf_counter()-t0)/n)
        return statistics.median(ts)*1e6
    rows.append((name, size, acc, t(x1,500), t(x64,50)))
    print(f"| {name} | {size/1024:.0f} KB | {acc*100:.2f}% | {rows[-1][3]:.1f} us | {rows[-1][4]:.0f} us |", flush=True)
