"""rt.distill on scikit-learn's digits: the loss is Hinton's, Graph and callable teachers,
and a distilled depthwise-separable student beats the same student trained alone on the
same budget (the numbers are printed; run pytest -s to see them)."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("optax")
pytest.importorskip("sklearn")

import pyruntime as rt  # noqa: E402
from pyruntime import nn, train  # noqa: E402
from pyruntime.train import digits  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return digits.load(test_fraction=0.3, seed=0)


@pytest.fixture(scope="module")
def teacher(data):
    xtr, ytr, _, _ = data
    return train.fit(digits.teacher_cnn(seed=0), xtr, ytr, epochs=8, learning_rate=3e-3,
                     progress=False)


def test_models_meet_the_brief():
    t, s = digits.teacher_cnn(), digits.student_cnn()
    assert digits.count_params(s) * 4 <= digits.count_params(t)
    dw = [n for n in s.nodes if n.op == "Conv" and n.attrs.get("group", 1) > 1]
    assert len(dw) == 2                                   # depthwise-separable blocks


def test_loss_is_hintons():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((5, 7)) * 3
    t = rng.standard_normal((5, 7)) * 3
    y = rng.integers(0, 7, 5)
    T, a = 3.0, 0.3

    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    pt = np.exp(log_softmax(t / T))
    kl = (pt * (np.log(pt) - log_softmax(s / T))).sum(axis=1)
    ce = -log_softmax(s)[np.arange(5), y]
    got = np.asarray(train.distillation_loss(s, t, y, temperature=T, alpha=a))
    np.testing.assert_allclose(got, a * T * T * kl + (1 - a) * ce, rtol=1e-5)
    soft = np.asarray(train.distillation_loss(s, t, None, temperature=T))
    np.testing.assert_allclose(soft, T * T * kl, rtol=1e-5)
    assert np.allclose(np.asarray(train.distillation_loss(t, t, None)), 0, atol=1e-6)


def test_distillation_beats_student_alone(data, teacher):
    xtr, ytr, xte, yte = data
    t_acc = train.accuracy(teacher, xte, yte)
    # The student sees 400 labelled images; the teacher's soft targets on the same
    # 400 images are what distillation adds. Same budget: epochs, batch, lr, seed.
    xs, ys = xtr[:400], ytr[:400]
    budget = dict(epochs=30, batch_size=64, learning_rate=1e-2, seed=0, progress=False)
    student = digits.student_cnn(seed=0)
    alone = train.accuracy(train.fit(student, xs, ys, **budget), xte, yte)
    dist = rt.distill(teacher, student, xs, ys, temperature=4.0, alpha=0.5, **budget) \
        if hasattr(rt, "distill") else train.distill(teacher, student, xs, ys,
                                                     temperature=4.0, alpha=0.5, **budget)
    d_acc = train.accuracy(dist, xte, yte)
    print(f"\ndigits test accuracy: teacher {t_acc:.4f}, student alone {alone:.4f}, "
          f"distilled student {d_acc:.4f}")
    assert t_acc > 0.95
    assert d_acc > alone, (t_acc, alone, d_acc)


def test_callable_teacher_soft_targets_only(data, teacher):
    """y=None: the student learns the teacher's function from its logits alone; a
    callable teacher works like a Graph one; a trailing Softmax is not used as logits."""
    xtr, _, xte, _ = data
    sess = rt.compile(teacher, threads=1)
    logits = train.teacher_logits(teacher, xtr[:50], batch_size=16)
    # Batches of 16 on every core against 50 rows on one: a row's sums may run in another
    # order (a GEMM tile of 1-3 rows splits them over independent accumulators).
    np.testing.assert_allclose(logits, sess.run(xtr[:50]), rtol=1e-5, atol=1e-5)

    x = nn.Input((1, 8, 8), name="image")
    y = nn.Dense(10, activation="softmax", name="fc")(nn.Flatten()(x))
    student = nn.Model(x, y, name="linear", seed=1).to_graph()
    out = train.distill(sess.run, student, xtr, temperature=2.0, epochs=15,
                        learning_rate=2e-2, progress=False, teacher_batch_size=100)
    agree = np.mean(np.argmax(train.predict(out, xte), 1) == np.argmax(sess.run(xte), 1))
    assert agree > 0.85, agree
    assert out.nodes[-1].op == "Softmax"                   # the student keeps its softmax
    np.testing.assert_allclose(train.predict(out, xte[:3]).sum(axis=1), 1.0, rtol=1e-5)


def test_errors(data, teacher):
    xtr, ytr, _, _ = data
    s = digits.student_cnn()
    with pytest.raises(rt.InputError, match="temperature"):
        train.distill(teacher, s, xtr, ytr, temperature=0.0)
    with pytest.raises(rt.InputError, match="alpha"):
        train.distill(teacher, s, xtr, ytr, alpha=1.5)
    with pytest.raises(rt.ShapeError, match="teacher logits have shape"):
        train.distill(lambda b: np.zeros((len(b), 7), np.float32), s, xtr, ytr)
    with pytest.raises(rt.ShapeError, match="returned shape"):
        train.distill(lambda b: np.zeros((3, 10), np.float32), s, xtr, ytr)
    with pytest.raises(rt.InputError, match="callable"):
        train.distill("teacher", s, xtr, ytr)
