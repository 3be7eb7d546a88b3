"""Train a Graph's weights in JAX: the loop shared by `fit` and `distill`.

The graph is lowered once with `rt.xla.lower`; its weights become the trainable
parameters. What the loop guarantees:

- Seeded and reproducible: the validation split and every epoch's shuffle come from
  `numpy.random.default_rng(seed)`, and nothing else is random, so the same inputs and
  seed give bit-identical weights on the same machine and JAX version (CPU backend).
- Adam with decoupled weight decay (`optax.adamw`). Decay applies to kernels (weights
  with 2 or more dims), not to biases or BatchNorm scale/shift.
- BatchNormalization is the IR's inference form: its scale and shift train, its mean and
  variance are constants (no batch statistics are computed), i.e. BN acts as a learned
  per-channel affine. Fold it (`rt.passes.optimize`) before or after, as you like.
- Frozen-zero masks: masked entries are zero at the start, get zero gradient, and are
  reset to exactly +0.0 after every update, so a pruned model is fine-tuned without
  regrowing weights.
- Weight formats (pyruntime.formats): every format trains through its dense float32
  view and is written back in its own format (`formats.encode_like`). A sparse weight
  (csr/bsr) is always masked by its pattern, so the entries it does not store stay zero
  and the result keeps its pattern and block; f16/bf16 weights are rounded back. int8
  formats (qc8, int8 csr/bsr) are not trainable: they stay fixed as their dense view.
- Early stopping on a validation split (or given validation data): the weights of the
  epoch with the lowest validation loss are returned (restore_best=True).
- The input Graph is never modified; a new Graph with new weight arrays is returned.
- Graphs whose output is a Softmax are trained on the Softmax's input (the logits) for
  the cross-entropy and distillation losses, which is exact and numerically stable.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterable, Mapping

import numpy as np

from ..errors import DTypeError, InputError, ShapeError, WeightShapeError
from .. import formats
from ..graph import Graph, ValueInfo
from ..shapes import infer_shapes, node_attrs, producers
from ..xla._deps import require
from ..xla.to_jax import dense_weights, lower

__all__ = ["History", "fit", "train_loop", "logits_value", "default_trainable",
           "check_x", "check_seed", "LOSSES"]

LOSSES = ("cross_entropy", "mse")


@dataclass
class History:
    """What happened in training: per-epoch means, and which epoch's weights were kept."""

    loss: list[float] = field(default_factory=list)          # training objective
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)  # when labels are known
    best_epoch: int | None = None       # 0-based epoch whose weights were returned
    stopped_early: bool = False
    epochs_run: int = 0


# ------------------------------------------------------------------ checks

def _pos_int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or int(v) < 1:
        raise InputError(f"{what} must be a positive int, got {v!r}")
    return int(v)


def _nonneg_float(v: Any, what: str, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= float(v) <= hi \
            or math.isnan(float(v)):
        raise InputError(f"{what} must be a float in [0, {hi}], got {v!r}")
    return float(v)


def check_x(graph: Graph, x: Any, what: str = "x") -> np.ndarray:
    """`x` as a float32 array fitting the graph's single input (batch first)."""
    if len(graph.inputs) != 1:
        raise InputError(f"training needs a single-input graph; {graph.name!r} has inputs "
                         f"{[v.name for v in graph.inputs]}")
    x = np.asarray(x)
    if x.dtype.kind not in "iuf":
        raise DTypeError(f"{what}: expected a float or integer array, got {x.dtype}")
    want = tuple(graph.inputs[0].shape)
    if want[0] is not None:
        raise ShapeError(f"training needs a symbolic batch: input {graph.inputs[0].name!r} "
                         f"has the fixed shape {want}")
    if x.ndim != len(want) or any(d is not None and d != s
                                  for d, s in zip(want[1:], x.shape[1:])):
        raise ShapeError(f"{what}: expected shape {(None,) + want[1:]} (batch first), got "
                         f"{x.shape}")
    if len(x) == 0:
        raise ShapeError(f"{what}: no examples (batch 0)")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise InputError(f"{what} contains NaN or Inf")
    return x


def logits_value(graph: Graph) -> str:
    """The value to train a classifier on: the graph's single output, or, when that is a
    Softmax over the last axis of a 2-D tensor, the Softmax's input (the logits)."""
    if len(graph.outputs) != 1:
        raise InputError(f"training needs a single-output graph; {graph.name!r} has outputs "
                         f"{graph.outputs}")
    out = graph.outputs[0]
    prod = producers(graph)
    if out in prod:
        i = prod[out]
        node = graph.nodes[i]
        shapes = infer_shapes(graph)
        if node.op == "Softmax" and len(shapes[out]) == 2 \
                and node_attrs(node, i)["axis"] in (-1, 1):
            return node.inputs[0]
    return out


def default_trainable(graph: Graph) -> list[str]:
    """Every weight of a float format (f32, f16, bf16, csr/bsr with float32 values) except
    BatchNormalization mean/variance (inputs 3, 4); int8 formats stay fixed."""
    stats = {n.inputs[k] for n in graph.nodes if n.op == "BatchNormalization" for k in (3, 4)}
    return [k for k, w in graph.weights.items() if formats.trainable(w) and k not in stats]


def _masks(graph: Graph, masks: Any, trainable: list[str]) -> dict[str, np.ndarray]:
    """name -> bool array (True = trainable entry) for the masked weights: the user's
    masks, and the pattern of every sparse weight (its unstored entries never train)."""
    out = _user_masks(graph, masks, trainable)
    for k in trainable:
        p = formats.pattern(graph.weights[k])
        if p is not None:
            out[k] = p & out[k] if k in out else p
    return out


def _user_masks(graph: Graph, masks: Any, trainable: list[str]) -> dict[str, np.ndarray]:
    if masks is None:
        return {}
    if isinstance(masks, str):
        if masks != "zeros":
            raise InputError(f"masks must be None, 'zeros' or a dict {{weight name: array}}, "
                             f"got {masks!r}")
        kernels = {n.inputs[1] for n in graph.nodes if n.op in ("Conv", "Gemm")}
        out = {}
        for k in trainable:
            if k in kernels:
                a = graph.weights[k].numpy()
                if (a == 0).any():
                    out[k] = a != 0
        return out
    if not isinstance(masks, Mapping):
        raise InputError(f"masks must be None, 'zeros' or a dict, got {type(masks).__name__}")
    out = {}
    for k, m in masks.items():
        if k not in graph.weights:
            raise InputError(f"mask for {k!r}: no such weight in graph {graph.name!r}")
        if k not in trainable:
            raise InputError(f"mask for {k!r}: that weight is not trained")
        m = np.asarray(m)
        if m.shape != graph.weights[k].shape:
            raise WeightShapeError(f"mask for {k!r}: expected shape {graph.weights[k].shape}, "
                                   f"got {m.shape}")
        if m.dtype.kind not in "biuf" or not np.isin(m, (0, 1)).all():
            raise InputError(f"mask for {k!r}: expected booleans or 0/1, got {m.dtype}")
        out[k] = m.astype(bool)
    return out


# ------------------------------------------------------------------ the loop

LossFn = Callable[[Any, Mapping[str, Any]], Any]
"""per-example loss: (logits [B, ...], targets {name: [B, ...]}) -> [B] jax array."""


_CACHE: "OrderedDict[Hashable, tuple]" = OrderedDict()
_CACHE_SIZE = 8


def _structure(graph: Graph) -> Hashable:
    """Everything about a graph that its lowered function depends on, except weight values."""
    return (tuple((n.op, tuple(n.inputs), tuple(n.outputs), repr(sorted(n.attrs.items())))
                  for n in graph.nodes),
            tuple((v.name, tuple(v.shape)) for v in graph.inputs), tuple(graph.outputs),
            tuple((k, tuple(w.shape)) for k, w in graph.weights.items()))


def _programs(graph: Graph, output: str, names: list[str], masked: list[str], lr: float,
              wd: float, loss_fn: LossFn, loss_key: Hashable | None,
              labels_key: str | None) -> tuple[Any, Any, Any]:
    """(optimizer, jitted step, jitted evaluate); reused across calls when `loss_key` says
    the loss is the same, so repeated fits of one architecture compile once."""
    key = None if loss_key is None else (_structure(graph), output, tuple(names),
                                         tuple(masked), lr, wd, loss_key, labels_key)
    if key is not None and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    jax = require("jax")
    jnp = jax.numpy
    optax = require("optax")
    fn, _ = lower(graph, outputs=[output])
    decay = {k: len(graph.weights[k].shape) >= 2 for k in names}
    opt = optax.adamw(lr, weight_decay=wd, mask=decay)
    in_name = graph.inputs[0].name

    # Every batch is padded to `batch_size` rows with weight 0, so step and evaluate
    # compile once each (a ragged last batch would compile a second program).
    def objective(tp, fp, xb, tb, wb):
        y = fn({**fp, **tp}, {in_name: xb})[output]
        return jnp.sum(loss_fn(y, tb) * wb) / jnp.maximum(jnp.sum(wb), 1.0)

    @jax.jit
    def step(tp, opt_state, fp, mk, xb, tb, wb):
        loss, grads = jax.value_and_grad(objective)(tp, fp, xb, tb, wb)
        grads = {k: (jnp.where(mk[k], g, 0.0) if k in mk else g) for k, g in grads.items()}
        updates, opt_state = opt.update(grads, opt_state, tp)
        tp = optax.apply_updates(tp, updates)
        tp = {k: (jnp.where(mk[k], p, 0.0) if k in mk else p) for k, p in tp.items()}
        return tp, opt_state, loss

    @jax.jit
    def evaluate(tp, fp, xb, tb, wb):
        y = fn({**fp, **tp}, {in_name: xb})[output]
        total = jnp.sum(loss_fn(y, tb) * wb)
        correct = (jnp.sum((jnp.argmax(y, axis=-1) == tb[labels_key]) * wb)
                   if labels_key is not None else jnp.zeros(()))
        return total, correct

    out = (opt, step, evaluate)
    if key is not None:
        _CACHE[key] = out
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return out


def train_loop(graph: Graph, x: np.ndarray, targets: Mapping[str, np.ndarray],
               loss_fn: LossFn, *, output: str, labels_key: str | None = None,
               val: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None,
               epochs: int = 20, batch_size: int = 64, learning_rate: float = 1e-3,
               weight_decay: float = 1e-4, patience: int | None = None,
               min_delta: float = 0.0, restore_best: bool = True, masks: Any = None,
               trainable: Iterable[str] | None = None, seed: int = 0, progress: bool = True,
               desc: str = "train", loss_key: Hashable | None = None
               ) -> tuple[Graph, History]:
    """Minimise mean(loss_fn(graph value `output`, targets)) over the weights; returns
    (new Graph, History). `x` and every target array are aligned on axis 0; `val` is an
    already split (x, targets) pair or None. Public wrappers: `fit` and `distill`.
    loss_key: a hashable that identifies `loss_fn` completely; with it the compiled
    training programs are reused by later calls on a graph of the same structure."""
    jnp = require("jax").numpy
    require("optax")
    epochs = _pos_int(epochs, "epochs")
    batch_size = _pos_int(batch_size, "batch_size")
    lr = _nonneg_float(learning_rate, "learning_rate")
    wd = _nonneg_float(weight_decay, "weight_decay")
    min_delta = _nonneg_float(min_delta, "min_delta")
    if patience is not None:
        patience = _pos_int(patience, "patience")
        if val is None:
            raise InputError("early stopping (patience=...) needs a validation split: pass "
                             "validation_split > 0 or validation_data")
    check_seed(seed)

    names = default_trainable(graph) if trainable is None else list(trainable)
    for k in names:
        if k not in graph.weights:
            raise InputError(f"trainable weight {k!r} is not in graph {graph.name!r}")
        if not formats.trainable(graph.weights[k]):
            raise InputError(f"weight {k!r} has format {graph.weights[k].format!r} with int8 "
                             f"values, which cannot be trained (train the float model, then "
                             f"quantize)")
    if not names:
        raise InputError(f"graph {graph.name!r} has no trainable weights")
    mask_np = _masks(graph, masks, names)
    init = dense_weights(graph)
    for k, m in mask_np.items():
        init[k] = np.where(m, init[k], np.float32(0.0))
    tp = {k: jnp.asarray(init[k]) for k in names}
    fp = {k: jnp.asarray(v) for k, v in init.items() if k not in tp}
    mk = {k: jnp.asarray(m) for k, m in mask_np.items()}
    opt, step, evaluate = _programs(graph, output, names, sorted(mk), lr, wd, loss_fn,
                                    loss_key, labels_key)
    opt_state = opt.init(tp)

    def val_metrics(tp) -> tuple[float, float]:
        vx, vt = val
        total, correct = 0.0, 0.0
        rows = min(512, len(vx))
        for s in range(0, len(vx), rows):
            idx = np.arange(s, min(s + rows, len(vx)))
            t, c = evaluate(tp, fp, *_batch(vx, vt, idx, rows))
            total += float(t)
            correct += float(c)
        return total / len(vx), correct / len(vx)

    rng = np.random.default_rng(seed)
    hist = History()
    best, best_loss, waited = None, math.inf, 0
    n = len(x)
    bar = range(epochs)
    if progress:
        bar = require("tqdm").tqdm(bar, desc=desc, unit="epoch", leave=False)
    try:
        for epoch in bar:
            perm = rng.permutation(n)
            total = 0.0
            for s in range(0, n, batch_size):
                idx = perm[s:s + batch_size]
                tp, opt_state, loss = step(tp, opt_state, fp, mk,
                                           *_batch(x, targets, idx, batch_size))
                total = total + loss * len(idx)
            hist.loss.append(float(total) / n)
            if not math.isfinite(hist.loss[-1]):
                raise InputError(f"training diverged at epoch {epoch}: loss "
                                 f"{hist.loss[-1]} (lower learning_rate?)")
            hist.epochs_run = epoch + 1
            post = {"loss": f"{hist.loss[-1]:.4f}"}
            if val is not None:
                vl, va = val_metrics(tp)
                hist.val_loss.append(vl)
                if labels_key is not None:
                    hist.val_accuracy.append(va)
                    post["val_acc"] = f"{va:.3f}"
                post["val_loss"] = f"{vl:.4f}"
                if vl < best_loss - min_delta:
                    best_loss, waited, hist.best_epoch = vl, 0, epoch
                    best = {k: np.array(v) for k, v in tp.items()}
                else:
                    waited += 1
                    if patience is not None and waited >= patience:
                        hist.stopped_early = True
                        break
            if progress:
                bar.set_postfix(post)
    finally:
        if progress:
            bar.close()
    if best is None or not restore_best:
        best = {k: np.array(v) for k, v in tp.items()}
        hist.best_epoch = hist.epochs_run - 1
    return _new_graph(graph, best), hist


def _batch(x: np.ndarray, targets: Mapping[str, np.ndarray], idx: np.ndarray,
           rows: int) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Rows `idx` of x and targets, padded to `rows` by repeating row idx[0] with weight 0."""
    full = np.concatenate([idx, np.full(rows - len(idx), idx[0], idx.dtype)])
    w = np.zeros(rows, np.float32)
    w[:len(idx)] = 1.0
    return x[full], {k: v[full] for k, v in targets.items()}, w


def _new_graph(graph: Graph, trained: dict[str, np.ndarray]) -> Graph:
    """A copy of `graph` (nodes, inputs, every weight array) with `trained` weights."""
    weights = {}
    for k, w in graph.weights.items():
        if k in trained:
            weights[k] = formats.encode_like(np.array(trained[k], dtype=np.float32), w)
        else:
            weights[k] = w.copy()
    return Graph(inputs=[ValueInfo(v.name, tuple(v.shape), v.dtype) for v in graph.inputs],
                 outputs=list(graph.outputs), nodes=[n.copy() for n in graph.nodes],
                 weights=weights, name=graph.name)


# ------------------------------------------------------------------ fit

def check_seed(seed: Any) -> int:
    """The seed every training entry point takes: a non-negative int (not a bool)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def split(n: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) index arrays; validation_split 0 -> empty validation."""
    f = _nonneg_float(validation_split, "validation_split", 0.9)
    order = np.random.default_rng([seed, 0x5917]).permutation(n)
    nv = int(round(n * f))
    if f > 0 and (nv < 1 or nv >= n):
        raise InputError(f"validation_split={f} of {n} examples leaves {nv} for validation "
                         f"and {n - nv} for training; both must be >= 1")
    return np.sort(order[nv:]), np.sort(order[:nv])


def _labels(y: Any, n: int, classes: int, what: str = "y") -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise ShapeError(f"{what}: expected {n} integer class labels (shape ({n},)), got "
                         f"{y.dtype} array of shape {y.shape}")
    if n and (y.min() < 0 or y.max() >= classes):
        raise InputError(f"{what}: labels must be in [0, {classes}), got range "
                         f"[{y.min()}, {y.max()}]")
    return y.astype(np.int32)


def fit(graph: Graph, x: Any, y: Any, *, loss: str | LossFn = "cross_entropy",
        epochs: int = 20, batch_size: int = 64, learning_rate: float = 1e-3,
        weight_decay: float = 1e-4, validation_split: float = 0.0,
        validation_data: tuple[Any, Any] | None = None, patience: int | None = None,
        min_delta: float = 0.0, restore_best: bool = True, masks: Any = None,
        trainable: Iterable[str] | None = None, seed: int = 0, progress: bool = True,
        return_history: bool = False) -> Graph | tuple[Graph, History]:
    """Train `graph` on (x, y) and return a new Graph (the input is untouched).

    loss: "cross_entropy" (y: int class labels [N]; the graph outputs logits, or a
    Softmax whose input is used), "mse" (y: float targets shaped like the output), or a
    JAX callable `loss(pred [B, ...], y [B, ...]) -> per-example losses [B]`.
    validation_split: the fraction held out (seeded) for early stopping / best-epoch
    selection; validation_data=(xv, yv) uses given data instead. patience: stop after
    that many epochs without a validation-loss improvement > min_delta.
    masks: None; "zeros" (freeze the exact zeros of every Conv/Gemm kernel, e.g. after
    pruning); or {weight name: bool array, True = trainable}. Masked entries stay 0.
    Sparse (csr/bsr) weights are always masked by their pattern as well.
    trainable: weight names to train (default: every weight of a float format, i.e. not
    qc8 or int8 sparse, but BN statistics). Trained weights keep their format.
    """
    jax = require("jax")
    jnp = jax.numpy
    optax = require("optax")
    x = check_x(graph, x)
    n = len(x)
    shapes = infer_shapes(graph)
    out = logits_value(graph) if loss == "cross_entropy" else graph.outputs[0]
    if len(graph.outputs) != 1:
        raise InputError(f"fit needs a single-output graph; got outputs {graph.outputs}")
    oshape = shapes[out]

    def prep_y(yy: Any, nn: int, what: str) -> np.ndarray:
        if loss == "cross_entropy":
            if len(oshape) != 2:
                raise ShapeError(f"cross_entropy needs [N, classes] logits; {out!r} has shape "
                                 f"{oshape}")
            return _labels(yy, nn, oshape[1], what)
        yy = np.asarray(yy)
        if yy.dtype.kind not in "iuf" or len(yy) != nn:
            raise ShapeError(f"{what}: expected {nn} numeric targets, got {yy.dtype} "
                             f"{yy.shape}")
        if loss == "mse" and yy.shape[1:] != tuple(oshape[1:]):
            raise ShapeError(f"{what}: expected targets of shape (N,) + {tuple(oshape[1:])} "
                             f"for mse, got {yy.shape}")
        return np.ascontiguousarray(yy, dtype=np.float32 if loss == "mse" else None)

    y = prep_y(y, n, "y")
    if loss == "cross_entropy":
        def loss_fn(p, t):
            return optax.softmax_cross_entropy_with_integer_labels(p, t["y"])
    elif loss == "mse":
        def loss_fn(p, t):
            d = (p - t["y"]) ** 2
            return jnp.mean(d.reshape(d.shape[0], -1), axis=1)
    elif callable(loss):
        def loss_fn(p, t):
            return jnp.broadcast_to(loss(p, t["y"]), (p.shape[0],))
    else:
        raise InputError(f"loss must be one of {LOSSES} or a callable, got {loss!r}")
    check_seed(seed)
    if validation_data is not None:
        if validation_split:
            raise InputError("pass validation_split or validation_data, not both")
        vx = check_x(graph, validation_data[0], "validation_data[0]")
        val = (vx, {"y": prep_y(validation_data[1], len(vx), "validation_data[1]")})
        tx, ty = x, y
    else:
        ti, vi = split(n, validation_split, int(seed))
        val = (x[vi], {"y": y[vi]}) if len(vi) else None
        tx, ty = x[ti], y[ti]
    g, hist = train_loop(graph, tx, {"y": ty}, loss_fn, output=out,
                         labels_key="y" if loss == "cross_entropy" else None, val=val,
                         epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                         weight_decay=weight_decay, patience=patience, min_delta=min_delta,
                         restore_best=restore_best, masks=masks, trainable=trainable,
                         seed=int(seed), progress=progress, desc=f"fit {graph.name}",
                         loss_key=("fit", loss) if isinstance(loss, str) else None)
    return (g, hist) if return_history else g
