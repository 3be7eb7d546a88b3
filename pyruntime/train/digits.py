"""scikit-learn's handwritten digits (8x8, 10 classes, 1797 images; shipped inside the
scikit-learn wheel, nothing downloads) and the teacher/student CNNs the distillation
example and tests use, built with `pyruntime.nn`.

The student uses depthwise-separable convolutions and has under 1/4 of the teacher's
parameters (see `teacher_cnn().count_params()` / `student_cnn()`).
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ..graph import Graph
from ..xla._deps import require

__all__ = ["load", "teacher_cnn", "student_cnn", "count_params"]


def load(test_fraction: float = 0.3, seed: int = 0
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): images [N, 1, 8, 8] float32 scaled to [0, 1],
    int labels; a stratified, seeded split."""
    datasets = require("sklearn.datasets")
    model_selection = require("sklearn.model_selection")
    d = datasets.load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = model_selection.train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return (np.ascontiguousarray(xtr), ytr, np.ascontiguousarray(xte), yte)


def teacher_cnn(seed: int = 0) -> Graph:
    """Three 3x3 convolutions (32, 64, 64 channels, ReLU), a 2x2 max pool, global average
    pool and a linear classifier: about 56k parameters, logits out."""
    x = nn.Input((1, 8, 8), name="image")
    h = nn.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(x)
    h = nn.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(h)
    h = nn.MaxPool2D(2, name="pool")(h)
    h = nn.Conv2D(64, 3, padding="same", activation="relu", name="conv3")(h)
    h = nn.GlobalAvgPool2D(name="gap")(h)
    y = nn.Dense(10, name="logits")(h)
    return nn.Model(x, y, name="digits_teacher", seed=seed).to_graph()


def student_cnn(seed: int = 0, width: int = 16) -> Graph:
    """A 3x3 stem, then depthwise-separable blocks (3x3 depthwise + 1x1 pointwise, ReLU),
    a 2x2 max pool, global average pool and a linear classifier. width=16: about 1.5k
    parameters, under 3% of the teacher."""
    x = nn.Input((1, 8, 8), name="image")
    h = nn.Conv2D(width // 2, 3, padding="same", activation="relu", name="stem")(x)
    h = nn.DepthwiseConv2D(3, padding="same", activation="relu", name="dw1")(h)
    h = nn.Conv2D(width, 1, activation="relu", name="pw1")(h)
    h = nn.MaxPool2D(2, name="pool")(h)
    h = nn.DepthwiseConv2D(3, padding="same", activation="relu", name="dw2")(h)
    h = nn.Conv2D(2 * width, 1, activation="relu", name="pw2")(h)
    h = nn.GlobalAvgPool2D(name="gap")(h)
    y = nn.Dense(10, name="logits")(h)
    return nn.Model(x, y, name="digits_student", seed=seed).to_graph()


def count_params(graph: Graph) -> int:
    """Number of weight scalars in a graph."""
    return int(sum(w.numpy().size for w in graph.weights.values()))
