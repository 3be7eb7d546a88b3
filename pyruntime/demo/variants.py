"""The demo's models: trained and compressed variants of the digits CNNs.

Recipes are those of tests/test_prune_digits.py and examples/distill_digits.py (teacher:
Adam 3e-3, batch 64, 10% validation, patience 5; students: 1e-2 with the same budget
alone and distilled; pruned: the trained teacher at 90%, fine-tuned at 3e-3 with its
zeros kept; int8: static, calibrated on 256 training images); `DemoSize` says how many
epochs each step gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import train
from ..graph import Graph
from ..passes.prune import prune
from ..passes.quantize import quantize
from ..train import digits


@dataclass(frozen=True)
class Epochs:
    """Training epochs of each step (a smaller demo trains less, nothing else changes)."""
    teacher: int
    student: int
    finetune: int


Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def build(data: Data, epochs: Epochs, step: Callable[[str], None],
          sparsity: float = 0.9, seed: int = 0) -> dict[str, Graph]:
    """Every Graph variant of the demo, in table order. `step(name)` is called before
    each training or compression step (the progress bar's label)."""
    xtr, ytr, _, _ = data
    fit = dict(batch_size=64, validation_split=0.1, seed=seed, progress=False)
    step("train teacher")
    teacher = train.fit(digits.teacher_cnn(seed=seed), xtr, ytr, epochs=epochs.teacher,
                        learning_rate=3e-3, patience=5, **fit)
    student0 = digits.student_cnn(seed=seed)
    step("train student alone")
    alone = train.fit(student0, xtr, ytr, epochs=epochs.student, learning_rate=1e-2, **fit)
    step("distill student")
    distilled = train.distill(teacher, student0, xtr, ytr, temperature=4.0, alpha=0.5,
                              epochs=epochs.student, learning_rate=1e-2, **fit)
    step(f"prune teacher {sparsity:.0%}, fine-tune")
    pruned = train.fit(prune(teacher, sparsity), xtr, ytr, masks="zeros",
                       epochs=epochs.finetune, learning_rate=3e-3, **fit)
    step("quantize")
    cal = xtr[:256]
    return {
        "teacher": teacher,
        "student (alone)": alone,
        "distilled student": distilled,
        f"pruned {sparsity:.0%} (teacher, fine-tuned)": pruned,
        "int8 (teacher, static)": quantize(teacher, "int8", calibration=cal, progress=False),
        "fp16 (teacher)": quantize(teacher, "fp16"),
        f"pruned {sparsity:.0%} + int8": quantize(pruned, "int8", calibration=cal,
                                                  progress=False),
    }
