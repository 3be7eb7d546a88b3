"""End to end in one minute: build a small CNN, optimize and compile it, check it against
the float64 reference and onnxruntime (when installed), save and reload it, serve a few
batches, and print what the runtime chose on this CPU."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

import pyruntime as rt
from pyruntime import nn
from pyruntime.reference import run_reference


def build() -> rt.Graph:
    x = nn.Input((3, 32, 32), name="image")
    y = nn.Conv2D(16, 3, strides=2, padding="same", seed=1)(x)
    y = nn.BatchNorm(random_stats=True, seed=2)(y)
    y = nn.Activation("relu6")(y)
    r = y
    y = nn.DepthwiseConv2D(3, padding="same", seed=3)(y)
    y = nn.BatchNorm(random_stats=True, seed=4)(y)
    y = nn.Activation("relu6")(y)
    y = nn.Conv2D(16, 1, seed=5)(y)
    y = nn.Add()([y, r])
    y = nn.GlobalAvgPool2D()(y)
    y = nn.Dense(10, seed=6)(y)
    y = nn.Activation("softmax")(y)
    return nn.Model(x, y, name="quickstart").to_graph()


def main() -> None:
    print("runtime:", {k: rt.info()[k] for k in ("version", "isa", "threading", "max_threads")})
    g = build()
    sess = rt.compile(g, threads=2)
    print("inputs:", sess.inputs, "outputs:", sess.outputs)
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    y = sess.run(x)
    ref = run_reference(g, {"image": x})[g.outputs[0]]
    print(f"batch {x.shape[0]}: max |pyruntime - float64 reference| = {np.abs(y - ref).max():.2e}")
    try:
        import onnxruntime as ort
        from pyruntime.onnx import to_onnx

        o = ort.InferenceSession(to_onnx(g).SerializeToString(), providers=["CPUExecutionProvider"])
        y_ort = o.run(None, {"image": x})[0]
        print(f"max |pyruntime - onnxruntime| = {np.abs(y - y_ort).max():.2e}")
    except ImportError:
        print("onnxruntime not installed: skipped that comparison")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "quickstart.pyrt")
        rt.save(g, path)
        g2 = rt.load(path)
        same = np.array_equal(rt.compile(g2, threads=2).run(x), y)
        print(f"saved {os.path.getsize(path)} bytes; reloaded model gives identical output: {same}")
    one = np.ascontiguousarray(x[:1])
    for _ in range(20):  # warm up: the plan's layout for batch 1, caches, threads
        sess.run(one)
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        sess.run(one)
        times.append(time.perf_counter() - t0)
    print(f"batch-1 latency: {np.median(times) * 1e6:.1f} us per call (median of 200)")
    print("predicted classes:", y.argmax(axis=1).tolist())


if __name__ == "__main__":
    main()
