"""How the demo measures a variant: test accuracy, weights, bytes on disk and latency.

Latency follows bench/run.py: the engines compared are timed in alternating blocks (one
block of each per round, the order reversed every other round, a pause before each
block so one engine's spinning workers do not steal the other's cores); each side's time
is the median over rounds, and the ratio is the median of the per-round ratios, so a
slow period of a shared machine hits both sides of it."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..graph import Graph

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Timing:
    """Seconds per call of ours and of the baseline (None without one), and the median
    of the per-round ratios ours / baseline."""
    ours_s: float
    base_s: float | None
    ratio: float | None


def block_seconds(fn: Callable[[], object], calls: int, min_s: float) -> float:
    """Seconds per call over one block of at least `calls` calls and `min_s` seconds."""
    n = 0
    t0 = time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if n >= calls and dt >= min_s:
            return dt / n


def time_pair(ours: Runner, base: Runner | None, x: np.ndarray, *, rounds: int,
              min_block_s: float, pause_s: float = 0.02) -> Timing:
    """Time `ours(x)` against `base(x)` (or alone) in alternating blocks."""
    engines: dict[str, Callable[[], object]] = {"ours": lambda: ours(x)}
    if base is not None:
        engines["base"] = lambda: base(x)
    for fn in engines.values():             # warm up: plans, caches, thread pools, jit
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in engines}
    for r in range(rounds):
        order = list(engines.items())
        if r % 2:
            order.reverse()
        for name, fn in order:
            time.sleep(pause_s)
            samples[name].append(block_seconds(fn, 3, min_block_s))
    ours_s = statistics.median(samples["ours"])
    if base is None:
        return Timing(ours_s, None, None)
    ratios = [a / b for a, b in zip(samples["ours"], samples["base"])]
    return Timing(ours_s, statistics.median(samples["base"]), statistics.median(ratios))


def accuracy(run: Runner, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a runner's outputs (logits or probabilities) on labelled data."""
    return float(np.mean(np.asarray(run(x)).argmax(axis=1) == y))


def weight_counts(g: Graph) -> tuple[int, int]:
    """(parameters, nonzeros) over every weight of the graph, whatever its format."""
    params = nonzeros = 0
    for w in g.weights.values():
        a = w.numpy()
        params += a.size
        nonzeros += int(np.count_nonzero(a))
    return params, nonzeros


def ort_runner(g: Graph, threads: int) -> Runner:
    """onnxruntime on `rt.to_onnx(g)` (qc8 weights and QDQ nodes export as int8 + QDQ,
    which onnxruntime runs on its int8 kernels; other formats as dense float32)."""
    import onnxruntime as ort

    from ..onnx import to_onnx
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(to_onnx(g).SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]
