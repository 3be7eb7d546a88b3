"""Knowledge distillation (Hinton, Vinyals & Dean, 2015): train a small student Graph
on a teacher's softened outputs, optionally blended with the hard labels.

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(y, s)

t, s: teacher and student logits; T: temperature. The T^2 factor keeps the soft term's
gradients on the same scale as the hard term's when T changes (section 2 of the paper).
Without labels (y=None) the loss is the soft term alone.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import InputError, ShapeError
from ..graph import Graph
from ..shapes import infer_shapes, producers
from ..xla._deps import require
from .core import History, _labels, check_seed, check_x, logits_value, split, train_loop

__all__ = ["distill", "distillation_loss", "teacher_logits", "predict", "accuracy"]


def _logits_graph(graph: Graph) -> Graph:
    """`graph` returning logits: a trailing Softmax (over classes) is dropped."""
    lv = logits_value(graph)
    if lv == graph.outputs[0]:
        return graph
    i = producers(graph)[graph.outputs[0]]
    nodes = graph.nodes[:i] + graph.nodes[i + 1:]
    return Graph(graph.inputs, [lv], nodes, graph.weights, graph.name)


def predict(model: Graph | Callable[[np.ndarray], Any], x: Any, *, batch_size: int = 256,
            threads: int | None = None, logits: bool = False) -> np.ndarray:
    """Run `model` over `x` in batches: a Graph through the fast CPU Session, or any
    callable (numpy in, array out). logits=True drops a Graph's final Softmax."""
    from ..backends import compile as rt_compile
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    x = np.asarray(x, dtype=np.float32)
    if isinstance(model, Graph):
        g = _logits_graph(model) if logits else model
        if len(g.outputs) != 1:
            raise InputError(f"predict needs a single-output model, got {g.outputs}")
        sess = rt_compile(g) if threads is None else rt_compile(g, threads=threads)
        run: Callable[[np.ndarray], Any] = sess.run
    elif callable(model):
        run = model
    else:
        raise InputError(f"model must be an rt.Graph or a callable, got {type(model).__name__}")
    outs = []
    for s in range(0, len(x), batch_size):
        y = np.asarray(run(x[s:s + batch_size]), dtype=np.float32)
        if y.ndim < 1 or len(y) != len(x[s:s + batch_size]):
            raise ShapeError(f"the model returned shape {y.shape} for a batch of "
                             f"{len(x[s:s + batch_size])}")
        outs.append(y)
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def teacher_logits(teacher: Graph | Callable[[np.ndarray], Any], x: np.ndarray, *,
                   batch_size: int = 256, threads: int | None = None) -> np.ndarray:
    """The teacher's logits for every example (a Graph runs on the CPU Session, batched)."""
    t = predict(teacher, x, batch_size=batch_size, threads=threads, logits=True)
    if t.ndim != 2:
        raise ShapeError(f"the teacher must return logits [N, classes], got shape {t.shape}")
    if not np.isfinite(t).all():
        raise InputError("the teacher's logits contain NaN or Inf")
    return t


def accuracy(model: Graph | Callable[[np.ndarray], Any], x: Any, y: Any, *,
             batch_size: int = 256, threads: int | None = None) -> float:
    """Top-1 accuracy of a classifier (Graph on the CPU Session, or a callable)."""
    p = predict(model, x, batch_size=batch_size, threads=threads)
    y = np.asarray(y)
    if p.ndim != 2 or y.shape != (len(p),):
        raise ShapeError(f"accuracy needs [N, classes] scores and N labels, got {p.shape} "
                         f"and {y.shape}")
    return float(np.mean(np.argmax(p, axis=1) == y))


def distillation_loss(student_logits: Any, teacher_logits: Any, labels: Any = None, *,
                      temperature: float = 4.0, alpha: float = 0.5) -> Any:
    """Per-example Hinton loss (a JAX function, differentiable in student_logits):
    alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(labels, s);
    the soft term alone when labels is None."""
    jax = require("jax")
    jnp = jax.numpy
    T = float(temperature)
    log_ps = jax.nn.log_softmax(student_logits / T, axis=-1)
    log_pt = jax.nn.log_softmax(teacher_logits / T, axis=-1)
    soft = (T * T) * jnp.sum(jnp.exp(log_pt) * (log_pt - log_ps), axis=-1)
    if labels is None:
        return soft
    ce = -jnp.take_along_axis(jax.nn.log_softmax(student_logits, axis=-1),
                              jnp.asarray(labels)[:, None], axis=-1)[:, 0]
    return alpha * soft + (1.0 - alpha) * ce


def distill(teacher: Graph | Callable[[np.ndarray], Any], student: Graph, x: Any,
            y: Any = None, *, temperature: float = 4.0, alpha: float = 0.5,
            epochs: int = 20, batch_size: int = 64, learning_rate: float = 1e-3,
            weight_decay: float = 1e-4, validation_split: float = 0.0,
            patience: int | None = None, min_delta: float = 0.0, restore_best: bool = True,
            masks: Any = None, trainable: Iterable[str] | None = None, seed: int = 0,
            progress: bool = True, teacher_batch_size: int = 256,
            threads: int | None = None,
            return_history: bool = False) -> Graph | tuple[Graph, History]:
    """Distill `teacher` into `student`; returns a new student Graph (inputs untouched).

    teacher: an rt.Graph (run once over x through the CPU Session, `teacher_batch_size`
    rows at a time with `threads` threads; a final Softmax is dropped to get logits) or
    any callable mapping a float32 batch to logits [B, classes].
    y: optional int labels [N]; then alpha weighs the soft term and 1 - alpha the hard
    cross-entropy (without y, alpha is unused: the loss is the soft term alone). temperature T > 0 softens both distributions; the KL term is scaled
    by T^2. The other arguments are those of `pyruntime.train.fit` (validation split,
    early stopping on the validation objective, masks, seed, progress bar).
    """
    require("jax")
    require("optax")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not 0.0 < float(temperature) < math.inf:
        raise InputError(f"temperature must be a positive finite float, got {temperature!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) \
            or not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"alpha must be in [0, 1], got {alpha!r}")
    if not isinstance(student, Graph):
        raise InputError(f"student must be an rt.Graph, got {type(student).__name__}")
    T, a = float(temperature), float(alpha)
    x = check_x(student, x)
    n = len(x)
    out = logits_value(student)
    classes = infer_shapes(student)[out]
    if len(classes) != 2:
        raise ShapeError(f"the student must output [N, classes] logits, got {classes}")
    t = teacher_logits(teacher, x, batch_size=teacher_batch_size, threads=threads)
    if t.shape != (n, classes[1]):
        raise ShapeError(f"teacher logits have shape {t.shape}, the student's are "
                         f"{(n, classes[1])}: they must agree")
    targets = {"teacher": t}
    labels_key = None
    if y is not None:
        targets["y"] = _labels(y, n, classes[1])
        labels_key = "y"
    def loss_fn(s, tb):
        return distillation_loss(s, tb["teacher"], tb.get("y"), temperature=T, alpha=a)

    check_seed(seed)
    ti, vi = split(n, validation_split, int(seed))
    val = (x[vi], {k: v[vi] for k, v in targets.items()}) if len(vi) else None
    g, hist = train_loop(student, x[ti], {k: v[ti] for k, v in targets.items()}, loss_fn,
                         output=out, labels_key=labels_key, val=val, epochs=epochs,
                         batch_size=batch_size, learning_rate=learning_rate,
                         weight_decay=weight_decay, patience=patience, min_delta=min_delta,
                         restore_best=restore_best, masks=masks, trainable=trainable,
                         seed=int(seed), progress=progress, desc=f"distill {student.name}",
                         loss_key=("distill", T, a, y is not None))
    return (g, hist) if return_history else g
