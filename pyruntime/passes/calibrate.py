"""Activation ranges for static int8 quantization (the calibration behind `rt.quantize`).

The float graph runs once or twice over the calibration batches on the CPU backend with
the observed tensors as extra outputs; each tensor's range becomes the scale and zero
point of the uint8 QDQ node `rt.quantize` puts in front of the layers that read it.

Methods (per tensor):
- "minmax": the smallest and largest value seen.
- "percentile": the `percentile` (e.g. 99.99) and 100 - `percentile` points of the
  values, from a 2048-bin histogram over the min-max range (outliers clipped).
- "entropy": the clipping threshold that minimizes the KL divergence between the
  histogram and its 8-bit quantization (TensorRT's calibrator), from the same histogram;
  the lower end stays at the observed minimum when that is >= 0 (after ReLU), else
  the threshold is applied symmetrically.
Every range is widened to include 0 (a zero must be exact: padding, ReLU).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import InputError, ShapeError
from ..graph import Graph

__all__ = ["METHODS", "BINS", "batches", "observe", "uint8_params"]

METHODS = ("minmax", "percentile", "entropy")
#: Histogram bins for the percentile and entropy methods.
BINS = 2048


def batches(graph: Graph, data: Any, what: str = "calibration") -> list[dict[str, np.ndarray]]:
    """Calibration data as a list of feeds, each checked against the graph's inputs: an
    array (one-input graph), a dict of arrays, or an iterable of either (batches). The
    list is materialized once so the histogram pass can read the data again. `what`
    names the data in errors."""
    names = [v.name for v in graph.inputs]
    single = isinstance(data, (np.ndarray, Mapping))
    if single:
        items: Iterable[Any] = [data]
    elif isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise InputError(f"{what}: expected an array, a dict of arrays or an iterable "
                         f"of batches, got {type(data).__name__}")
    else:
        items = data
    out = []
    for k, item in enumerate(items):
        out.append(_feed(graph, names, item, what if single else f"{what} batch {k}"))
    if not out:
        raise InputError(f"{what}: no batches (the iterable was empty)")
    # Ranges from no values would be made up (the scale's default): refuse, as for no batch.
    if all(a.size == 0 for feed in out for a in feed.values()):
        raise InputError(f"{what}: no values (" + ("0 rows)" if single else
                                                   f"all {len(out)} batches have 0 rows)"))
    return out


def _feed(graph: Graph, names: list[str], item: Any, where: str) -> dict[str, np.ndarray]:
    if isinstance(item, Mapping):
        if set(item) != set(names):
            raise InputError(f"{where}: expected inputs {names}, got {sorted(map(str, item))}")
        feed = dict(item)
    elif isinstance(item, np.ndarray) or hasattr(item, "__array__"):
        if len(names) != 1:
            raise InputError(f"{where}: the graph has inputs {names}: pass dicts of arrays")
        feed = {names[0]: item}
    else:
        raise InputError(f"{where}: expected an array or a dict of arrays, got "
                         f"{type(item).__name__}")
    for vi in graph.inputs:
        a = np.asarray(feed[vi.name])
        if a.dtype.kind not in "fiub":
            raise InputError(f"{where}: input {vi.name!r}: expected real numbers, got dtype "
                             f"{a.dtype}")
        want = tuple(vi.shape)
        if a.ndim != len(want) or any(d is not None and d != s for d, s in zip(want, a.shape)):
            dims = ", ".join("N" if d is None else str(d) for d in want)
            raise ShapeError(f"{where}: input {vi.name!r}: expected shape ({dims}), got "
                             f"{a.shape}")
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise InputError(f"{where}: input {vi.name!r} has NaN or infinite values")
        feed[vi.name] = a
    return feed


class _Observer:
    """Range statistics of one tensor over all batches."""

    def __init__(self) -> None:
        self.lo, self.hi = math.inf, -math.inf
        self.hist: np.ndarray | None = None

    def minmax(self, x: np.ndarray) -> None:
        if x.size:
            self.lo = min(self.lo, float(x.min()))
            self.hi = max(self.hi, float(x.max()))

    def histogram(self, x: np.ndarray) -> None:
        lo, hi = self.edges()
        h, _ = np.histogram(x, bins=BINS, range=(lo, hi))
        self.hist = h if self.hist is None else self.hist + h

    def edges(self) -> tuple[float, float]:
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
        return (lo, hi) if hi > lo else (lo, lo + 1.0)

    def range(self, method: str, percentile: float) -> tuple[float, float]:
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
        if method == "minmax" or self.hist is None or hi <= lo:
            return lo, hi
        e0, e1 = self.edges()
        width = (e1 - e0) / BINS
        if method == "percentile":
            c = np.cumsum(self.hist, dtype=np.float64)
            c /= c[-1]
            q = percentile / 100.0
            a = int(np.searchsorted(c, 1.0 - q))
            b = int(np.searchsorted(c, q))
            return min(e0 + a * width, 0.0), max(e0 + (b + 1) * width, 0.0)
        return _entropy_range(self.hist, e0, width, lo, hi)


def _entropy_range(hist: np.ndarray, e0: float, width: float, lo: float, hi: float
                   ) -> tuple[float, float]:
    """KL-optimal clipping (TensorRT): over candidate thresholds, the distribution of |x|
    clipped at t against its quantization to 128 levels (256 when x >= 0)."""
    zero = int(round(-e0 / width))
    signed = lo < 0
    mag = hist[zero:].astype(np.float64)
    if signed:  # fold the negative side onto |x|
        neg = hist[:zero][::-1].astype(np.float64)
        n = max(len(mag), len(neg))
        mag = np.pad(mag, (0, n - len(mag))) + np.pad(neg, (0, n - len(neg)))
    levels = 128 if signed else 256
    n = len(mag)
    if n <= levels or mag.sum() == 0:
        return lo, hi
    best, best_i = math.inf, n
    for i in range(levels, n + 1, max(1, (n - levels) // 256)):
        p = mag[:i].copy()
        p[i - 1] += mag[i:].sum()
        nz = p > 0
        # quantize p's bins into `levels` groups, spreading each group's mass evenly over
        # its nonzero bins
        idx = np.minimum((np.arange(i) * levels) // i, levels - 1)
        mass = np.bincount(idx, weights=mag[:i], minlength=levels)
        cnt = np.bincount(idx, weights=nz.astype(np.float64), minlength=levels)
        q = np.where(nz, mass[idx] / np.maximum(cnt[idx], 1.0), 0.0)
        ps, qs = p[nz] / p.sum(), q[nz] / max(q.sum(), 1e-300)
        kl = float(np.sum(ps * np.log(ps / np.maximum(qs, 1e-300))))
        if kl < best:
            best, best_i = kl, i
    t = best_i * width
    return (max(lo, -t) if signed else lo), min(hi, t)


def observe(graph: Graph, tensors: list[str], feeds: list[dict[str, np.ndarray]],
            method: str, percentile: float, progress: bool = True
            ) -> dict[str, tuple[float, float]]:
    """The (lo, hi) range of each named tensor of `graph` over the calibration feeds."""
    from ..backends import compile as compile_graph  # the CPU backend runs the float graph

    g = Graph(graph.inputs, list(dict.fromkeys(list(graph.outputs) + tensors)), graph.nodes,
              graph.weights, name=graph.name)
    sess = compile_graph(g)
    obs = {t: _Observer() for t in tensors}
    passes = ["minmax"] + (["histogram"] if method != "minmax" else [])
    bar = _bar(len(feeds) * len(passes), progress, f"calibrate {graph.name}")
    try:
        for kind in passes:
            for feed in feeds:
                outs = sess.run(feed)
                outs = outs if isinstance(outs, dict) else {g.outputs[0]: outs}
                for t in tensors:
                    getattr(obs[t], kind)(np.asarray(outs[t]))
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return {t: obs[t].range(method, percentile) for t in tensors}


def _bar(total: int, progress: bool, desc: str) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="batch", leave=False)


def uint8_params(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero_point) of the uint8 grid covering [lo, hi] (widened to hold 0): the
    scale a float32, zero exactly representable."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not hi > lo:
        return 1.0, 0
    scale = float(np.float32((hi - lo) / 255.0))
    if scale <= 0 or not math.isfinite(scale):
        scale = float(np.finfo(np.float32).tiny)
    zp = int(np.clip(round(-lo / scale), 0, 255))
    return scale, zp

