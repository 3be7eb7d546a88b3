"""pyruntime.train.fit: learns, reproducible per seed, input untouched, frozen-zero masks
stay exactly zero, early stopping keeps the best epoch, progress bar, typed errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")
pytest.importorskip("sklearn")

import pyruntime as rt  # noqa: E402
from pyruntime import nn, train  # noqa: E402
from pyruntime.train import digits  # noqa: E402


@pytest.fixture(scope="module")
def data():
    xtr, ytr, xte, yte = digits.load(test_fraction=0.3, seed=0)
    return xtr[:600], ytr[:600], xte, yte


def mlp(seed: int = 0) -> rt.Graph:
    x = nn.Input((1, 8, 8), name="image")
    h = nn.Flatten()(x)
    h = nn.Dense(24, activation="relu")(h)
    return nn.Model(x, nn.Dense(10)(h), name="mlp", seed=seed).to_graph()


def small_cnn() -> rt.Graph:
    x = nn.Input((1, 8, 8), name="image")
    h = nn.Conv2D(6, 3, padding="same", activation="relu", name="conv")(x)
    h = nn.BatchNorm(random_stats=True, name="bn")(h)
    h = nn.GlobalAvgPool2D()(h)
    y = nn.Dense(10, activation="softmax", name="fc")(h)
    return nn.Model(x, y, name="cnn", seed=3).to_graph()


def weights(g: rt.Graph) -> dict[str, np.ndarray]:
    return {k: w.numpy().copy() for k, w in g.weights.items()}


def test_learns_reproducible_and_input_untouched(data):
    xtr, ytr, xte, yte = data
    g = mlp()
    before = weights(g)
    kw = dict(epochs=4, batch_size=50, learning_rate=1e-2, progress=False)
    a = train.fit(g, xtr, ytr, seed=0, **kw)
    b = train.fit(g, xtr, ytr, seed=0, **kw)
    c = train.fit(g, xtr, ytr, seed=1, **kw)
    for k, w in before.items():                       # the input graph is untouched
        np.testing.assert_array_equal(g.weights[k].numpy(), w)
    assert a is not g and a.nodes is not g.nodes
    for k in before:
        assert a.weights[k].numpy().tobytes() == b.weights[k].numpy().tobytes(), k
        assert not np.shares_memory(a.weights[k].numpy(), g.weights[k].numpy())
    assert any(not np.array_equal(a.weights[k].numpy(), c.weights[k].numpy()) for k in before)
    acc0, acc = train.accuracy(g, xte, yte), train.accuracy(a, xte, yte)
    assert acc > 0.85 and acc > acc0 + 0.5, (acc0, acc)
    a.validate()
    np.testing.assert_allclose(rt.compile(a, threads=1).run(xte[:5]),
                               np.asarray(rt.xla.lower(a)[0](rt.xla.lower(a)[1], xte[:5])),
                               rtol=1e-5, atol=1e-5)


def test_frozen_zero_masks_stay_zero(data):
    xtr, ytr, _, _ = data
    g = small_cnn()
    rng = np.random.default_rng(0)
    for k in ("conv.weight", "fc.weight"):            # prune half of each kernel
        w = g.weights[k].numpy()
        w[rng.random(w.shape) < 0.5] = 0.0
    zeros = {k: g.weights[k].numpy() == 0 for k in ("conv.weight", "fc.weight")}
    kw = dict(epochs=2, batch_size=64, learning_rate=2e-2, progress=False)
    masked, hist = train.fit(g, xtr, ytr, masks="zeros", return_history=True, **kw)
    for k, z in zeros.items():
        w = masked.weights[k].numpy()
        assert np.all(w[z] == 0) and not np.signbit(w[z]).any(), k      # exactly +0.0
        assert np.all(w[~z] != g.weights[k].numpy()[~z]), k             # the rest trained
    assert hist.loss[-1] < hist.loss[0]
    # BatchNorm: scale/shift train, the statistics are constants
    for k in ("bn.mean", "bn.var"):
        np.testing.assert_array_equal(masked.weights[k].numpy(), g.weights[k].numpy())
    assert not np.array_equal(masked.weights["bn.scale"].numpy(), g.weights["bn.scale"].numpy())
    # an explicit mask zeroes what it masks, even entries that were not zero; without
    # a mask the same entries move (so the check above can fail)
    m2 = mlp()
    m = np.ones(m2.weights["dense.weight"].shape, bool)
    m[:, 0] = False
    d = train.fit(m2, xtr, ytr, masks={"dense.weight": m}, trainable=["dense.weight"], **kw)
    assert np.all(d.weights["dense.weight"].numpy()[:, 0] == 0)
    np.testing.assert_array_equal(d.weights["dense_1.weight"].numpy(),
                                  m2.weights["dense_1.weight"].numpy())  # not trainable
    free = train.fit(m2, xtr, ytr, trainable=["dense.weight"], **kw)
    assert np.count_nonzero(free.weights["dense.weight"].numpy()[:, 0]) > 0


def test_early_stopping_keeps_best_epoch(data):
    xtr, ytr, _, _ = data
    g = mlp()
    kw = dict(batch_size=50, learning_rate=1e-2, validation_split=0.2, seed=4, progress=False)
    # min_delta so large that no epoch after the first counts as an improvement
    s, h = train.fit(g, xtr, ytr, epochs=10, patience=2, min_delta=100.0,
                     return_history=True, **kw)
    assert h.stopped_early and h.epochs_run == 3 and h.best_epoch == 0
    assert len(h.val_loss) == 3 and len(h.val_accuracy) == 3 and len(h.loss) == 3
    one = train.fit(g, xtr, ytr, epochs=1, **kw)     # same seed: epoch 0 is the same
    for k in g.weights:
        np.testing.assert_array_equal(s.weights[k].numpy(), one.weights[k].numpy())
    s2, h2 = train.fit(g, xtr, ytr, epochs=3, return_history=True, **kw)
    assert not h2.stopped_early and h2.best_epoch == int(np.argmin(h2.val_loss))


def test_progress_bar_and_mse(data, capsys):
    xtr, ytr, _, _ = data
    g = mlp()
    target = np.eye(10, dtype=np.float32)[ytr[:200]]
    _, h = train.fit(g, xtr[:200], target, loss="mse", epochs=2, learning_rate=1e-2,
                     progress=True, return_history=True)
    err = capsys.readouterr().err
    assert "fit mlp" in err and "epoch" in err
    assert h.loss[-1] < h.loss[0]
    train.fit(g, xtr[:100], ytr[:100], epochs=1, progress=False)
    assert capsys.readouterr().err == ""


def test_bad_arguments(data):
    xtr, ytr, _, _ = data
    g = mlp()
    with pytest.raises(rt.ShapeError, match="expected shape"):
        train.fit(g, xtr[:, :, :4], ytr)
    with pytest.raises(rt.ShapeError, match="integer class labels"):
        train.fit(g, xtr, ytr[:-1])
    with pytest.raises(rt.InputError, match=r"labels must be in \[0, 10\)"):
        train.fit(g, xtr, ytr + 5)
    with pytest.raises(rt.InputError, match="validation split"):
        train.fit(g, xtr, ytr, patience=3)
    with pytest.raises(rt.InputError, match="epochs"):
        train.fit(g, xtr, ytr, epochs=0)
    with pytest.raises(rt.InputError, match="masks"):
        train.fit(g, xtr, ytr, masks="nonzero")
    with pytest.raises(rt.WeightShapeError):
        train.fit(g, xtr, ytr, masks={"dense.weight": np.ones(3, bool)})
    with pytest.raises(rt.InputError, match="loss"):
        train.fit(g, xtr, ytr, loss="hinge")
    with pytest.raises(rt.InputError, match="NaN"):
        train.fit(g, np.full_like(xtr, np.nan), ytr)
    with pytest.raises(rt.InputError, match="seed"):
        train.fit(g, xtr, ytr, seed=-1)


def test_missing_optax_names_the_extra(monkeypatch, data):
    xtr, ytr, _, _ = data
    monkeypatch.setitem(sys.modules, "optax", None)
    with pytest.raises(rt.MissingDependencyError, match=r"pip install pyruntime\[xla\]"):
        train.fit(mlp(), xtr, ytr, progress=False)
