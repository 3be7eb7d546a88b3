"""Gradual magnitude pruning while training (Zhu & Gupta 2017, "To prune, or not to
prune"): `rt.train.gradual_prune`.

The target sparsity follows the cubic schedule (`cubic_schedule`)

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (end - t0)) ** 3,   t0 <= t <= end,

evaluated at the start of the update epochs t0, t0 + frequency, ... and at `end`,
where it is exactly s_f. Training is a loop of short `fit` calls, one per mask update:

- At each update the masks are recomputed from the current magnitudes with
  `rt.prune`'s ranking (structure, block, scope, include/exclude, min_params as there).
  Pruned entries never regrow: the new mask is ANDed with the old one (the schedule never
  decreases, and pruned entries score 0, so magnitude ranking would keep them pruned
  anyway; the AND makes it a guarantee).
- Between updates `fit` trains with those masks (masked entries get no gradient and stay
  exactly 0). Its compiled programs are reused: the graph's structure, the masked names
  (every pruned kernel, from the first call on) and the hyperparameters stay the same,
  so the whole run compiles once (a callable `loss` has no cache key: it compiles per
  call). Each call starts a fresh Adam state.
- After `end` the masks are frozen and the remaining epochs fine-tune.
- Pruned kernels train in float32; the result is stored as `rt.prune` stores it (csr/bsr
  at `SPARSE_STORE_MIN` zeros or more, else the kernel's own format).

Validation (validation_split or validation_data) is measured every epoch into the
History; the schedule fixes the epochs, so there is no early stopping or best-epoch
restore: the weights after the last epoch are returned.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .. import formats
from ..errors import InputError, ShapeError
from ..graph import Graph, Weight
from ..passes.prune import Plan, apply, plan, rebuild, select, store, fraction
from ..xla._deps import require
from .core import LOSSES, History, LossFn, check_seed, check_x, fit, split

__all__ = ["gradual_prune", "cubic_schedule", "update_epochs", "PruneHistory"]


@dataclass
class PruneHistory(History):
    """fit's History over all epochs, plus the pruning schedule: the target sparsity each
    epoch trained at and the epochs that started with a mask update."""
    sparsity: list[float] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)


def cubic_schedule(t: float, final: float, *, initial: float = 0.0, start: float = 0,
                   end: float) -> float:
    """Zhu & Gupta's target sparsity at step `t`: `initial` up to `start`, `final` from
    `end` on, s_f + (s_i - s_f) * (1 - (t - start) / (end - start))**3 between."""
    if t <= start:
        return float(initial)
    if t >= end:
        return float(final)
    return float(final + (initial - final) * (1.0 - (t - start) / (end - start)) ** 3)


def update_epochs(start: int, end: int, frequency: int) -> list[int]:
    """The epochs that begin with a mask update: start, start + frequency, ... below end,
    then end."""
    return sorted(set(range(start, end, frequency)) | {end})


def _int(v: Any, what: str, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
        raise InputError(f"{what}: expected an int >= {lo}, got {v!r}")
    return int(v)


def _schedule_args(sparsity: Any, initial: Any, epochs: Any, start: Any, end: Any,
                   frequency: Any) -> tuple[float, float, int, int, int, int]:
    s_f = fraction(sparsity, "sparsity")
    s_i = fraction(initial, "initial_sparsity")
    if s_i > s_f:
        raise InputError(f"initial_sparsity {s_i} must not exceed the final sparsity {s_f}")
    epochs = _int(epochs, "epochs", 1)
    start = _int(start, "start_epoch", 0)
    end = epochs - 1 if end is None else _int(end, "end_epoch", 0)
    if not start <= end < epochs:
        raise InputError(f"expected 0 <= start_epoch <= end_epoch < epochs (the final mask "
                         f"trains at least one epoch), got start_epoch={start}, "
                         f"end_epoch={end}, epochs={epochs}")
    return s_f, s_i, epochs, start, end, _int(frequency, "frequency", 1)


def gradual_prune(graph: Graph, x: Any, y: Any, sparsity: float, *, epochs: int,
                  initial_sparsity: float = 0.0, start_epoch: int = 0,
                  end_epoch: int | None = None, frequency: int = 1,
                  structure: str = "unstructured", block: tuple[int, int] | None = None,
                  scope: str = "global", exclude: Iterable[str] = (),
                  include: Iterable[str] = (), min_params: int = 1024,
                  loss: str | LossFn = "cross_entropy", batch_size: int = 64,
                  learning_rate: float = 1e-3, weight_decay: float = 1e-4,
                  validation_split: float = 0.0,
                  validation_data: tuple[Any, Any] | None = None, seed: int = 0,
                  progress: bool = True, return_history: bool = False
                  ) -> Graph | tuple[Graph, PruneHistory]:
    """Train `graph` on (x, y) for `epochs` while pruning its Conv/Gemm kernels from
    `initial_sparsity` to `sparsity` on the cubic schedule (see the module doc); returns
    the new Graph (and a PruneHistory with return_history=True). The input is untouched.

    start_epoch/end_epoch: the first update and the one that reaches `sparsity` (default
    the last epoch; epochs after it fine-tune with frozen masks). frequency: epochs
    between mask updates. structure, block, scope, exclude, include, min_params: as
    `rt.prune` (a dict sparsity is not taken here). loss, batch_size, learning_rate,
    weight_decay, validation_split, validation_data, seed: as `fit`. progress: one tqdm
    bar over the epochs.
    """
    s_f, s_i, epochs, start, end, frequency = _schedule_args(
        sparsity, initial_sparsity, epochs, start_epoch, end_epoch, frequency)
    p = plan(graph, s_f, structure=structure, block=block, scope=scope,
             exclude=exclude, include=include, min_params=min_params)
    if isinstance(loss, str) and loss not in LOSSES:
        raise InputError(f"loss must be one of {LOSSES} or a callable, got {loss!r}")
    if not isinstance(progress, bool):
        raise InputError(f"progress: expected True or False, got {progress!r}")
    check_seed(seed)
    x = check_x(graph, x)
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != len(x):
        raise ShapeError(f"y: expected {len(x)} targets (one per row of x), got shape {y.shape}")
    if validation_split:
        if validation_data is not None:
            raise InputError("pass validation_split or validation_data, not both")
        ti, vi = split(len(x), validation_split, int(seed))
        validation_data = (x[vi], y[vi])
        x, y = x[ti], y[ti]
    if progress:
        require("tqdm")

    kernels = p.kernels
    # Pruned kernels train as float32 (their final format is chosen at the end).
    g = rebuild(graph, {k: Weight.f32(graph.weights[k].numpy()) for k in kernels})
    # A sparse kernel's unstored entries are zero and stay so (as fit does for csr/bsr).
    keep = {}
    for k in kernels:
        pat = formats.pattern(graph.weights[k])
        keep[k] = np.ones(g.weights[k].shape, bool) if pat is None else pat
    ups = update_epochs(start, end, frequency)
    bounds = ups + [epochs] if ups[0] == 0 else [0] + ups + [epochs]
    hist = PruneHistory(updates=list(ups))
    bar = None
    if progress:
        bar = require("tqdm").tqdm(total=epochs, desc=f"prune {graph.name}", unit="epoch",
                                   leave=False)
    try:
        for a, b in zip(bounds[:-1], bounds[1:]):
            # before start_epoch nothing is pruned yet
            s = cubic_schedule(a, s_f, initial=s_i, start=start, end=end) if a in ups else 0.0
            if a in ups:
                dense = {k: g.weights[k].numpy() for k in kernels}
                targets = {k: s for k in kernels} if isinstance(p.targets, dict) else s
                step = Plan(kernels, targets, p.block, p.scope)
                new = select(dense, step)
                keep = {k: keep[k] & new[k] for k in kernels}
                g = rebuild(g, {k: Weight.f32(apply(dense[k], keep[k])) for k in kernels})
            chunk_seed = int(np.random.SeedSequence([int(seed), a]).generate_state(1)[0])
            g, h = fit(g, x, y, loss=loss, epochs=b - a, batch_size=batch_size,
                       learning_rate=learning_rate, weight_decay=weight_decay,
                       validation_data=validation_data, restore_best=False,
                       masks=keep, seed=chunk_seed, progress=False, return_history=True)
            hist.loss += h.loss
            hist.val_loss += h.val_loss
            hist.val_accuracy += h.val_accuracy
            hist.sparsity += [s] * (b - a)
            hist.epochs_run += h.epochs_run
            if bar is not None:
                bar.update(b - a)
                bar.set_postfix({"sparsity": f"{s:.3f}", "loss": f"{h.loss[-1]:.4f}"})
    finally:
        if bar is not None:
            bar.close()
    hist.best_epoch = hist.epochs_run - 1
    # From the trained graph: its biases and unpruned kernels trained too.
    out = rebuild(g, {
        k: store(g.weights[k].numpy(), graph.weights[k], kernels[k].axis, p.block)
        for k in kernels})
    return (out, hist) if return_history else out
