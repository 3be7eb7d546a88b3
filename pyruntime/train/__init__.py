"""Training in JAX over `rt.Graph`: `fit` (supervised), `distill` (Hinton et al. 2015),
plus `accuracy`/`predict` helpers that run a Graph on the fast CPU Session.

    import pyruntime as rt
    from pyruntime import train
    student = train.fit(student, x, y, epochs=20, validation_split=0.1, patience=5)
    student = rt.distill(teacher, student, x, y, temperature=4.0, alpha=0.5)
    sparse = train.gradual_prune(model, x, y, 0.9, epochs=10)   # Zhu & Gupta schedule

Needs the `xla` extra (jax, optax, tqdm): `pip install pyruntime[xla]`. Importing this
module does not import JAX; calling without it raises rt.MissingDependencyError.
"""

from __future__ import annotations

from .core import History, default_trainable, fit, logits_value
from .distill import accuracy, distill, distillation_loss, predict, teacher_logits
from .gradual import PruneHistory, cubic_schedule, gradual_prune

__all__ = ["fit", "distill", "distillation_loss", "History", "accuracy", "predict", "teacher_logits",
           "default_trainable", "logits_value", "gradual_prune", "cubic_schedule",
           "PruneHistory"]
