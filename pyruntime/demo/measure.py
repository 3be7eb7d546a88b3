"""How the demo measures a variant: test accuracy, weights, bytes on disk and latency.

Latency follows bench/run.py: the engines compared are timed in alternating blocks (one
block of each per round, the order reversed every other round, a pause before each
block so one engine's spinning workers do not steal the other's cores); each side's time
is the median over rounds, and the ratio is the median of the per-round ratios, so a
slow period of a shared machine hits both sides of it."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..graph import Graph
from ..baselines import ort_session
from ..timing import alternate, paired_ratio

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Timing:
    """Seconds per call of ours and of the baseline (None without one), and the median
    of the per-round ratios ours / baseline."""
    ours_s: float
    base_s: float | None
    ratio: float | None


def time_pair(ours: Runner, base: Runner | None, x: np.ndarray, *, rounds: int,
              min_block_s: float, pause_s: float = 0.02) -> Timing:
    """Time `ours(x)` against `base(x)` (or alone) in alternating blocks of at least 3
    calls and `min_block_s` seconds (pyruntime/timing.py)."""
    engines: dict[str, Callable[[], object]] = {"ours": lambda: ours(x)}
    if base is not None:
        engines["base"] = lambda: base(x)
    samples = alternate(engines, rounds=rounds, calls=3, pause=pause_s,
                        min_block_s=min_block_s)
    ours_s = statistics.median(samples["ours"].blocks)
    if base is None:
        return Timing(ours_s, None, None)
    return Timing(ours_s, statistics.median(samples["base"].blocks),
                  paired_ratio(samples["ours"], samples["base"]))


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
    """onnxruntime on `rt.to_onnx(g)` (pyruntime/baselines.py)."""
    sess = ort_session(g, threads)
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]
