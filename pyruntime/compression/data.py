"""The data rt.compress takes: inputs as an array (one-input models) or a dict by input
name, optionally with integer labels; one check so every step sees the same shapes."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError, ShapeError
from ..graph import Graph

__all__ = ["Data", "as_data", "rows", "take", "accuracy"]

Feeds = Any    # np.ndarray for one-input graphs, or dict[name, np.ndarray]


class Data:
    """Inputs x (array or dict by input name) and optional labels y."""

    def __init__(self, x: Feeds, y: np.ndarray | None) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return rows(self.x)


def _canon(dt: np.dtype) -> np.dtype:
    """numpy's own dtype object for `dt` (a copied graph's ValueInfo may carry an equal
    but distinct one), so arrays made here never need a view to be fed."""
    return np.dtype(np.dtype(dt).str)


def rows(x: Feeds) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def take(x: Feeds, idx: Any) -> Feeds:
    return {k: v[idx] for k, v in x.items()} if isinstance(x, dict) else x[idx]


def as_data(graph: Graph, data: Any, what: str, need_labels: bool = False) -> Data | None:
    """Check `data` (x, (x, y), or a dict of inputs) against the graph's inputs."""
    if data is None:
        return None
    y = None
    if isinstance(data, tuple):
        if len(data) != 2:
            raise InputError(f"{what}: expected (x, y), got a tuple of {len(data)}")
        data, y = data
    names = [vi.name for vi in graph.inputs]
    if isinstance(data, dict):
        missing = [n for n in names if n not in data]
        if missing:
            raise InputError(f"{what}: expected arrays named {names}, missing {missing}")
        x: Feeds = {n: np.asarray(data[n], dtype=_canon(vi.dtype))
                    for n, vi in zip(names, graph.inputs)}
    else:
        if len(names) != 1:
            raise InputError(f"{what}: the model has inputs {names}; pass a dict of arrays "
                             f"by input name")
        x = np.asarray(data, dtype=_canon(graph.inputs[0].dtype))
    arrays = x.values() if isinstance(x, dict) else [x]
    for n, a, vi in zip(names, arrays, graph.inputs):
        want = tuple(vi.shape[1:])
        if a.ndim != len(vi.shape) or tuple(a.shape[1:]) != want:
            raise ShapeError(f"{what}: input {n!r} must be [N, {', '.join(map(str, want))}], "
                             f"got shape {a.shape}")
    n = rows(x)
    if any(len(a) != n for a in arrays) or n == 0:
        raise ShapeError(f"{what}: expected the same number (>= 1) of rows in every input, got "
                         f"{[len(a) for a in arrays]}")
    if y is not None:
        y = np.asarray(y)
        if y.shape != (n,) or y.dtype.kind not in "iu":
            raise ShapeError(f"{what}: labels must be {n} integers (one per row), got "
                             f"{y.dtype} {y.shape}")
    elif need_labels:
        raise InputError(f"{what}: labels are needed here; pass (x, y)")
    return Data(x, y)


def predict(sess: Any, x: Feeds, batch: int = 256) -> np.ndarray:
    """The first output of a compiled Session over x, `batch` rows per run."""
    outs = []
    for s in range(0, rows(x), batch):
        r = sess.run(take(x, slice(s, s + batch)))
        if isinstance(r, dict):
            r = next(iter(r.values()))
        outs.append(np.asarray(r))
    return np.concatenate(outs)


def accuracy(graph: Graph, data: Data, threads: int | None = None) -> float:
    """Top-1 accuracy of `graph` on data (labels required), through the CPU Session."""
    from ..backends import compile as rt_compile
    p = predict(rt_compile(graph, threads=threads), data.x)
    if p.ndim != 2 or len(p) != len(data.y):
        raise ShapeError(f"accuracy needs [N, classes] scores; the model returned {p.shape}")
    return float(np.mean(np.argmax(p, axis=1) == data.y))
