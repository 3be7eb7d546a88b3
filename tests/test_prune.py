"""rt.prune, rt.sparsity and rt.train.gradual_prune: exact counts, the kept entries and
blocks against independent numpy rankings, global vs layer scope, what is skipped,
stored formats, outputs against the float64 reference, the CPU Session and
onnxruntime, file size, masks through fit, the cubic schedule and typed errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import nn
from pyruntime.graph import Weight
from pyruntime.passes.prune import SPARSE_STORE_MIN
from pyruntime.reference import run_reference


# ------------------------------------------------------------------ models and helpers

def mlp(seed: int = 0) -> rt.Graph:
    """Input [N, 64]; fc1 [64, 96], fc2 [96, 48] (both >= 1024), fc3 [48, 10] (480)."""
    return rt.zoo.mlp((64, 96, 48, 10), seed=seed)


def cnn(seed: int = 0) -> rt.Graph:
    """conv1 [16, 3, 3, 3] (432), conv2 [32, 16, 3, 3] (4608), dw [32, 1, 3, 3]
    (depthwise, 288), pw [40, 32, 1, 1] (1280), fc [40, 10] (400)."""
    x = nn.Input((3, 8, 8), name="image")
    h = nn.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(x)
    h = nn.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(h)
    h = nn.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(h)
    h = nn.Conv2D(40, 1, activation="relu", name="pw")(h)
    h = nn.GlobalAvgPool2D(name="gap")(h)
    return nn.Model(x, nn.Dense(10, name="fc")(h), name="cnn", seed=seed).to_graph()


AXIS = {"fc1.weight": 1, "fc2.weight": 1, "fc3.weight": 1, "conv1.weight": 0,
        "conv2.weight": 0, "dw.weight": 0, "pw.weight": 0, "fc.weight": 1}


def matrix(a: np.ndarray, axis: int) -> np.ndarray:
    """The sparse-matrix view: rows = output channels, the other dims flattened."""
    return np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1)


def snapshot(g: rt.Graph) -> dict:
    return {k: (w.format, dict(w.attrs), {n: a.copy() for n, a in w.arrays.items()})
            for k, w in g.weights.items()}


def assert_same(g: rt.Graph, snap: dict) -> None:
    assert set(g.weights) == set(snap)
    for k, (fmt, attrs, arrays) in snap.items():
        w = g.weights[k]
        assert w.format == fmt and w.attrs == attrs, k
        assert set(w.arrays) == set(arrays), k
        for n, a in arrays.items():
            assert w.arrays[n].dtype == a.dtype, (k, n)
            np.testing.assert_array_equal(w.arrays[n], a, err_msg=f"{k}.{n}")


def x_for(g: rt.Graph, n: int = 5, seed: int = 0) -> np.ndarray:
    shape = (n,) + tuple(g.inputs[0].shape[1:])
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------------ which entries

def test_layer_scope_exact_counts_and_largest_kept():
    g = mlp()
    before = snapshot(g)
    p = rt.prune(g, 0.7, scope="layer")
    assert_same(g, before)                                 # input untouched
    for k in ("fc1.weight", "fc2.weight"):
        a, b = g.weights[k].numpy(), p.weights[k].numpy()
        zeros = b == 0
        assert zeros.sum() == round(0.7 * a.size), k
        np.testing.assert_array_equal(b[~zeros], a[~zeros])    # kept entries unchanged
        assert np.abs(a[~zeros]).min() > np.abs(a[zeros]).max(), k
        assert not np.signbit(b[zeros]).any()
    # fc3 (480 < min_params) is untouched, in its format
    assert p.weights["fc3.weight"].format == "f32"
    np.testing.assert_array_equal(p.weights["fc3.weight"].numpy(), g.weights["fc3.weight"].numpy())
    np.testing.assert_array_equal(p.weights["fc1.bias"].numpy(), g.weights["fc1.bias"].numpy())


def test_global_scope_ranks_across_layers():
    g = mlp()
    g.weights["fc2.weight"] = Weight.f32(g.weights["fc2.weight"].numpy() * 0.5)
    names = ["fc1.weight", "fc2.weight"]
    p = rt.prune(g, 0.6)                                   # scope="global" is the default
    a = {k: g.weights[k].numpy() for k in names}
    # independent reference: one threshold over all |w| of both kernels
    allv = np.sort(np.concatenate([np.abs(a[k]).ravel() for k in names]))
    k_drop = round(0.6 * allv.size)
    thr = allv[k_drop - 1]
    assert allv[k_drop] > thr                              # no tie at the cut
    total = 0
    for k in names:
        z = p.weights[k].numpy() == 0
        np.testing.assert_array_equal(z, np.abs(a[k]) <= thr, err_msg=k)
        total += z.sum()
    assert total == k_drop
    s = rt.sparsity(p)["layers"]
    assert s["fc2.weight"]["sparsity"] > 0.6 > s["fc1.weight"]["sparsity"]  # small layer loses more
    lay = rt.sparsity(rt.prune(g, 0.6, scope="layer"))["layers"]
    assert lay["fc1.weight"]["nonzeros"] == 64 * 96 - round(0.6 * 64 * 96)
    assert lay["fc2.weight"]["nonzeros"] == 96 * 48 - round(0.6 * 96 * 48)


def test_ties_are_exact_and_stable():
    g = mlp()
    a = np.ones((64, 96), np.float32)
    a[:, ::2] = 2.0                                        # half 1s, half 2s: ties at the cut
    g.weights["fc1.weight"] = Weight.f32(a)
    p = rt.prune(g, 0.3, scope="layer", include=["fc1.weight"])
    z = p.weights["fc1.weight"].numpy() == 0
    assert z.sum() == round(0.3 * a.size)
    assert (a[z] == 1).all()
    # stable: the first entries in sparse-matrix order (row-major over output channels)
    m = matrix(z, 1).ravel()
    ones = np.flatnonzero(matrix(a, 1).ravel() == 1)
    assert set(np.flatnonzero(m)) == set(ones[:z.sum()])


def block_reference(m: np.ndarray, block: tuple[int, int], sparsity: float) -> np.ndarray:
    """Keep mask [R, C] by per-block RMS with plain loops (partial edge blocks)."""
    br, bc = block
    r, c = m.shape
    spans = [(i, j) for i in range(0, r, br) for j in range(0, c, bc)]
    rms = [math.sqrt(float((m[i:i + br, j:j + bc].astype(np.float64) ** 2).mean()))
           for i, j in spans]
    order = sorted(range(len(spans)), key=lambda u: (rms[u], u))
    keep = np.ones_like(m, bool)
    for u in order[:round(sparsity * len(spans))]:
        i, j = spans[u]
        keep[i:i + br, j:j + bc] = False
    return keep


@pytest.mark.parametrize("block,fmt", [((4, 2), "bsr"), ((5, 3), "csr")])
def test_block_structure(block, fmt):
    g = mlp()
    p = rt.prune(g, 0.75, structure="block", block=block, scope="layer")
    for k in ("fc1.weight", "fc2.weight"):
        w = p.weights[k]
        assert w.format == fmt, k                          # ragged blocks are stored csr
        if fmt == "bsr":
            assert tuple(w.attrs["block"]) == block and w.attrs["axis"] == 1
        kept = matrix(w.numpy(), 1) != 0
        np.testing.assert_array_equal(kept, block_reference(matrix(g.weights[k].numpy(), 1),
                                                            block, 0.75), err_msg=k)
        br, bc = block
        for i, j in itertools.product(range(0, kept.shape[0], br), range(0, kept.shape[1], bc)):
            b = kept[i:i + br, j:j + bc]
            assert b.all() or not b.any()                  # whole blocks


def test_block_default_and_conv_axis():
    g = cnn()
    p = rt.prune(g, 0.8, structure="block", scope="layer")
    w = p.weights["conv2.weight"]
    assert w.format == "bsr" and tuple(w.attrs["block"]) == (16, 1) and w.attrs["axis"] == 0
    kept = matrix(w.numpy(), 0) != 0
    np.testing.assert_array_equal(kept, block_reference(matrix(g.weights["conv2.weight"].numpy(),
                                                               0), (16, 1), 0.8))


def test_global_block_scores_are_normalised():
    g = mlp()
    p = rt.prune(g, 0.5, structure="block", block=(5, 3))
    names = ["fc1.weight", "fc2.weight"]
    rms, spans = [], []
    for k in names:
        m = matrix(g.weights[k].numpy(), 1).astype(np.float64)
        for i in range(0, m.shape[0], 5):
            for j in range(0, m.shape[1], 3):
                rms.append(math.sqrt((m[i:i + 5, j:j + 3] ** 2).mean()))
                spans.append((k, i, j))
    order = np.argsort(rms, kind="stable")[:round(0.5 * len(rms))]
    dropped = {spans[u] for u in order}
    for k in names:
        m = matrix(p.weights[k].numpy(), 1)
        for i in range(0, m.shape[0], 5):
            for j in range(0, m.shape[1], 3):
                assert (not m[i:i + 5, j:j + 3].any()) == ((k, i, j) in dropped)


# ------------------------------------------------------------------ what is skipped

def test_depthwise_small_include_exclude():
    g = cnn()
    p = rt.prune(g, 0.5, scope="layer")
    for k in ("conv1.weight", "dw.weight", "fc.weight"):          # small or depthwise
        assert p.weights[k].format == "f32"
        np.testing.assert_array_equal(p.weights[k].numpy(), g.weights[k].numpy())
    for k in ("conv2.weight", "pw.weight"):
        assert (p.weights[k].numpy() == 0).sum() == round(0.5 * g.weights[k].numpy().size)
    inc = rt.prune(g, 0.5, scope="layer", include=["dw", "fc.weight"])   # node or weight
    for k in ("dw.weight", "fc.weight"):
        assert (inc.weights[k].numpy() == 0).sum() == round(0.5 * g.weights[k].numpy().size)
    exc = rt.prune(g, 0.5, scope="layer", exclude=["conv2", "pw.weight"],
                   include=["conv1"])
    for k in ("conv2.weight", "pw.weight"):
        np.testing.assert_array_equal(exc.weights[k].numpy(), g.weights[k].numpy())
    assert (exc.weights["conv1.weight"].numpy() == 0).sum() == round(0.5 * 432)
    o = rt.sparsity(rt.prune(g, 0.5, min_params=0))["overall"]
    assert o["parameters"] - o["nonzeros"] == round(0.5 * (432 + 4608 + 1280 + 400))
    assert (rt.prune(g, 0.5, min_params=0).weights["dw.weight"].numpy() != 0).all()


def test_dict_sparsity_per_layer():
    g = cnn()
    p = rt.prune(g, {"conv2": 0.9, "fc.weight": 0.25})
    s = rt.sparsity(p)["layers"]
    assert s["conv2.weight"]["nonzeros"] == 4608 - round(0.9 * 4608)
    assert s["fc.weight"]["nonzeros"] == 400 - 100
    assert s["pw.weight"]["sparsity"] == 0.0


def test_shared_weight_pruned_once():
    g = rt.Graph([rt.ValueInfo("x", (None, 40))], ["b"],
                 [rt.Node("Gemm", ["x", "w"], ["a"], name="g1"),
                  rt.Node("Gemm", ["a", "w"], ["b"], name="g2")],
                 {"w": Weight.f32(np.random.default_rng(0).standard_normal((40, 40)))})
    p = rt.prune(g, 0.5, include=["g2"], min_params=0)
    assert (p.weights["w"].numpy() == 0).sum() == 800
    assert rt.sparsity(p)["layers"]["w"]["node"] == "g1"
    x = x_for(g)
    np.testing.assert_allclose(rt.compile(p, threads=1).run(x), run_reference(p, x)["b"],
                               rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ formats

def test_stored_formats():
    g = mlp()
    assert SPARSE_STORE_MIN == 0.6
    hi = rt.prune(g, 0.9, scope="layer")
    for k in ("fc1.weight", "fc2.weight"):
        w = hi.weights[k]
        assert w.format == "csr" and w.attrs["axis"] == 1 and w.shape == g.weights[k].shape
    lo = rt.prune(g, 0.5, scope="layer")
    assert lo.weights["fc1.weight"].format == "f32"
    assert (lo.weights["fc1.weight"].numpy() == 0).sum() == round(0.5 * 64 * 96)
    # at 0.6: fc1 gets round(0.6 * 6144) / 6144 = 0.59993 zeros (dense), fc2
    # round(0.6 * 4608) / 4608 = 0.60004 (>= the threshold: sparse)
    at = rt.prune(g, SPARSE_STORE_MIN, scope="layer")
    assert at.weights["fc1.weight"].format == "f32" and at.weights["fc2.weight"].format == "csr"
    h = mlp()
    h.weights["fc1.weight"] = Weight.f16(h.weights["fc1.weight"].numpy())
    h.weights["fc2.weight"] = Weight.bf16(h.weights["fc2.weight"].numpy())
    p = rt.prune(h, 0.4, scope="layer")
    assert p.weights["fc1.weight"].format == "f16" and p.weights["fc2.weight"].format == "bf16"
    for k in ("fc1.weight", "fc2.weight"):
        a, b = h.weights[k].numpy(), p.weights[k].numpy()
        z = b == 0
        assert z.sum() == round(0.4 * a.size)
        np.testing.assert_array_equal(b[~z], a[~z])       # exact in the half formats
    # a sparse input below the threshold keeps its format (csr / bsr with its block)
    c = mlp()
    c.weights["fc1.weight"] = Weight.csr(c.weights["fc1.weight"].numpy())
    c.weights["fc2.weight"] = Weight.bsr(c.weights["fc2.weight"].numpy(), (2, 4))
    q = rt.prune(c, 0.3, scope="layer")
    assert q.weights["fc1.weight"].format == "csr"
    assert q.weights["fc1.weight"].arrays["values"].size == 64 * 96 - round(0.3 * 64 * 96)
    assert q.weights["fc2.weight"].format == "bsr"
    assert tuple(q.weights["fc2.weight"].attrs["block"]) == (2, 4)


def test_int8_kernels_refused_unless_excluded():
    g = mlp()
    g.weights["fc2.weight"] = Weight.qc8(g.weights["fc2.weight"].numpy())
    with pytest.raises(rt.InputError, match=r"'fc2.weight' \(qc8\).*prune before quantizing"):
        rt.prune(g, 0.5)
    p = rt.prune(g, 0.5, exclude=["fc2"])
    assert p.weights["fc2.weight"].format == "qc8"
    np.testing.assert_array_equal(p.weights["fc2.weight"].arrays["data"],
                                  g.weights["fc2.weight"].arrays["data"])


# ------------------------------------------------------------------ outputs

def zeroed(g: rt.Graph, p: rt.Graph) -> rt.Graph:
    """`g` with each weight replaced by f32 of `g`'s values where `p` is nonzero."""
    weights = {k: Weight.f32(np.where(p.weights[k].numpy() != 0, w.numpy(), 0.0))
               for k, w in g.weights.items()}
    return rt.Graph(g.inputs, g.outputs, g.nodes, weights, g.name)


@pytest.mark.parametrize("make,kw", [(mlp, dict(sparsity=0.8)),
                                     (cnn, dict(sparsity=0.7, structure="block",
                                                block=(4, 2), min_params=0))])
def test_outputs_match_reference_session_and_onnxruntime(make, kw):
    g = make()
    p = rt.prune(g, **kw)
    x = x_for(g, 6)
    ref = run_reference(zeroed(g, p), x)[g.outputs[0]]
    np.testing.assert_array_equal(run_reference(p, x)[g.outputs[0]], ref)
    np.testing.assert_allclose(rt.compile(p, threads=1).run(x), ref, rtol=1e-4, atol=1e-4)
    assert not np.allclose(run_reference(g, x)[g.outputs[0]], ref, atol=1e-3)   # it did prune
    ort = pytest.importorskip("onnxruntime")
    model = rt.to_onnx(p)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {g.inputs[0].name: x})
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def teacher_cnn() -> rt.Graph:
    from pyruntime.train import digits
    return digits.teacher_cnn()                            # about 56k parameters


@pytest.mark.parametrize("make", [lambda: rt.zoo.mlp((128, 256, 128, 10)), teacher_cnn])
def test_save_load_keeps_formats_and_shrinks(make, tmp_path):
    g = make()
    p = rt.prune(g, 0.9, min_params=0)
    dense_file, sparse_file = tmp_path / "dense.pyrt", tmp_path / "sparse.pyrt"
    rt.save(g, dense_file)
    rt.save(p, sparse_file)
    assert sparse_file.stat().st_size <= 0.2 * dense_file.stat().st_size
    back = rt.load(sparse_file)
    assert_same(back, snapshot(p))
    x = x_for(g, 3)
    np.testing.assert_array_equal(rt.compile(back, threads=1).run(x),
                                  rt.compile(p, threads=1).run(x))


# ------------------------------------------------------------------ the report

def test_sparsity_report_against_numpy():
    g = cnn()
    g.weights["fc.weight"] = Weight.f16(g.weights["fc.weight"].numpy())
    p = rt.prune(g, 0.8, min_params=0)
    rep = rt.sparsity(p)
    kernels = ["conv1.weight", "conv2.weight", "dw.weight", "pw.weight", "fc.weight"]
    assert list(rep["layers"]) == kernels
    params = nnz = nbytes = 0
    for k in kernels:
        w = p.weights[k]
        a = w.numpy()
        row = rep["layers"][k]
        assert row["node"] == k.split(".")[0] and row["op"] == ("Gemm" if k == "fc.weight"
                                                                 else "Conv")
        assert row["format"] == w.format and row["shape"] == a.shape
        assert row["parameters"] == a.size and row["nonzeros"] == int((a != 0).sum())
        assert row["sparsity"] == pytest.approx(float((a == 0).mean()))
        assert row["bytes"] == sum(v.nbytes for v in w.arrays.values())
        params, nnz, nbytes = params + a.size, nnz + row["nonzeros"], nbytes + row["bytes"]
    o = rep["overall"]
    assert (o["parameters"], o["nonzeros"], o["bytes"]) == (params, nnz, nbytes)
    assert o["sparsity"] == pytest.approx(1 - nnz / params)
    assert o["weight_bytes"] == sum(a.nbytes for w in p.weights.values()
                                    for a in w.arrays.values())
    pruned = params - 288                                  # the depthwise kernel is skipped
    assert params - nnz == round(0.8 * pruned)


# ------------------------------------------------------------------ training

jax_needed = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("jax", "optax", "tqdm")),
    reason="needs the xla extra (jax, optax, tqdm)")


def labels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, n)


@jax_needed
def test_fit_with_zero_masks_keeps_pattern_and_format():
    g = mlp()
    p = rt.prune(g, 0.5, scope="layer")                    # fc1, fc2: f32 with zeros
    p = rt.prune(p, {"fc2": 0.9}, structure="block", block=(4, 2))   # fc2: bsr
    x, y = x_for(g, 64), labels(64)
    t = rt.train.fit(p, x, y, masks="zeros", epochs=2, learning_rate=1e-2, progress=False)
    for k in ("fc1.weight", "fc2.weight"):
        before, after = p.weights[k].numpy(), t.weights[k].numpy()
        np.testing.assert_array_equal(after == 0, before == 0)
        assert t.weights[k].format == p.weights[k].format
        assert not np.array_equal(after, before)
    assert tuple(t.weights["fc2.weight"].attrs["block"]) == (4, 2)


def test_cubic_schedule():
    from pyruntime.train import cubic_schedule
    s = [cubic_schedule(t, 0.9, initial=0.1, start=2, end=10) for t in range(13)]
    assert s[:3] == [0.1, 0.1, 0.1] and s[10:] == [0.9, 0.9, 0.9]
    for t in range(2, 11):
        assert s[t] == pytest.approx(0.9 + (0.1 - 0.9) * (1 - (t - 2) / 8) ** 3)
    assert all(a <= b for a, b in zip(s, s[1:]))
    assert cubic_schedule(6, 0.8, end=6) == 0.8


@jax_needed
def test_gradual_prune(monkeypatch, capfd):
    from pyruntime.train import core, gradual
    g = mlp()
    x, y = x_for(g, 96), labels(96)
    calls, lowered = [], []
    real_fit, real_lower = gradual.fit, core.lower

    def spy_fit(graph, *a, **kw):
        calls.append((rt.sparsity(graph), {k: m.copy() for k, m in kw["masks"].items()},
                      kw["epochs"]))
        return real_fit(graph, *a, **kw)

    def spy_lower(*a, **kw):
        lowered.append(1)
        return real_lower(*a, **kw)

    monkeypatch.setattr(gradual, "fit", spy_fit)
    monkeypatch.setattr(core, "lower", spy_lower)
    core._CACHE.clear()
    before = snapshot(g)
    out, hist = rt.train.gradual_prune(
        g, x, y, 0.85, epochs=8, initial_sparsity=0.2, start_epoch=1, end_epoch=6,
        frequency=2, batch_size=32, learning_rate=1e-2, progress=False, return_history=True)
    assert capfd.readouterr() == ("", "")                  # progress=False prints nothing
    assert_same(g, before)
    assert len(lowered) == 1                               # one compile for every chunk
    n = 64 * 96 + 96 * 48                                  # fc3 is under min_params
    assert hist.updates == [1, 3, 5, 6]
    assert [c[2] for c in calls] == [1, 2, 2, 1, 2] and hist.epochs_run == 8
    want = {t: 0.85 + (0.2 - 0.85) * (1 - (t - 1) / 5) ** 3 for t in hist.updates}
    assert calls[0][0]["overall"]["nonzeros"] == n + 480   # nothing pruned before start
    for (rep, _, _), t in zip(calls[1:], hist.updates):
        assert hist.sparsity[t] == pytest.approx(want[t])
        assert rep["overall"]["parameters"] - rep["overall"]["nonzeros"] == round(want[t] * n)
    for (_, m0, _), (_, m1, _) in zip(calls, calls[1:]):   # masks never regrow
        assert all((m1[k] <= m0[k]).all() for k in m0)
    rep = rt.sparsity(out)
    assert rep["overall"]["parameters"] - rep["overall"]["nonzeros"] == round(0.85 * n)
    assert {rep["layers"][k]["format"] for k in ("fc1.weight", "fc2.weight")} == {"csr"}
    assert rep["layers"]["fc3.weight"]["format"] == "f32"
    final = calls[-1][1]
    for k in ("fc1.weight", "fc2.weight"):                 # frozen mask during fine-tuning
        np.testing.assert_array_equal(out.weights[k].numpy() != 0, final[k])
    assert len(hist.loss) == 8 and hist.loss[-1] < hist.loss[0]


@jax_needed
def test_gradual_prune_progress_and_block(capfd):
    g = mlp()
    out = rt.train.gradual_prune(g, x_for(g, 64), labels(64), 0.75, epochs=2,
                                 structure="block", block=(4, 2), scope="layer",
                                 batch_size=32, learning_rate=1e-2)
    err = capfd.readouterr().err
    assert "prune mlp" in err and "epoch" in err
    for k in ("fc1.weight", "fc2.weight"):
        w = out.weights[k]
        assert w.format == "bsr" and tuple(w.attrs["block"]) == (4, 2)
        blocks = w.shape[0] * w.shape[1] // 8
        assert w.arrays["values"].shape[0] == blocks - round(0.75 * blocks)


@jax_needed
def test_gradual_prune_returns_the_trained_graph():
    # The returned graph is the one the last epoch measured: its validation loss, recomputed
    # on the float64 reference, is the History's last val_loss, and the biases and the
    # kernel under min_params (fc3) trained too (the result once took them from the input).
    g = mlp()
    x, y = x_for(g, 96), labels(96)
    xv, yv = x_for(g, 40, seed=1), labels(40, seed=1)
    out, hist = rt.train.gradual_prune(g, x, y, 0.8, epochs=4, batch_size=32,
                                       learning_rate=1e-2, validation_data=(xv, yv),
                                       progress=False, return_history=True)
    z = run_reference(out, xv)["fc3"]
    z = z - z.max(axis=1, keepdims=True)
    ce = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(yv)), yv])
    assert ce == pytest.approx(hist.val_loss[-1], rel=1e-4, abs=1e-5)
    for k in ("fc1.bias", "fc2.bias", "fc3.weight", "fc3.bias"):
        assert not np.array_equal(out.weights[k].numpy(), g.weights[k].numpy()), k


# ------------------------------------------------------------------ typed errors

def bad_cases():
    g = mlp()
    q = mlp()
    q.weights["fc1.weight"] = Weight.csr(q.weights["fc1.weight"].numpy(), dtype=np.int8)
    x, y = x_for(g, 8), labels(8)
    gp = rt.train.gradual_prune
    return [
        ("sparsity-high", lambda: rt.prune(g, 1.5),
         r"sparsity: expected a float in \[0, 1\), got 1.5"),
        ("sparsity-one", lambda: rt.prune(g, 1.0), r"got 1.0"),
        ("sparsity-neg", lambda: rt.prune(g, -0.1), r"got -0.1"),
        ("sparsity-nan", lambda: rt.prune(g, float("nan")), r"got nan"),
        ("sparsity-str", lambda: rt.prune(g, "0.5"), r"got '0.5'"),
        ("sparsity-bool", lambda: rt.prune(g, True), r"got True"),
        ("structure", lambda: rt.prune(g, 0.5, structure="rows"),
         r"structure: expected one of \('unstructured', 'block'\), got 'rows'"),
        ("scope", lambda: rt.prune(g, 0.5, scope="net"), r"scope: expected one of"),
        ("block-zero", lambda: rt.prune(g, 0.5, structure="block", block=(0, 1)),
         r"block: expected two positive ints.*got \(0, 1\)"),
        ("block-one-int", lambda: rt.prune(g, 0.5, structure="block", block=4),
         r"block: expected two positive ints"),
        ("block-unstructured", lambda: rt.prune(g, 0.5, block=(4, 1)),
         r"only for structure='block'"),
        ("min-params", lambda: rt.prune(g, 0.5, min_params=-1), r"min_params"),
        ("include-unknown", lambda: rt.prune(g, 0.5, include=["fc9"]),
         r"include: 'fc9' is not a Conv/Gemm kernel.*kernels: \['fc1.weight'"),
        ("exclude-bias", lambda: rt.prune(g, 0.5, exclude=["fc1.bias"]),
         r"exclude: 'fc1.bias' is not a Conv/Gemm kernel.*nodes: \['fc1', 'fc2', 'fc3'\]"),
        ("include-not-str", lambda: rt.prune(g, 0.5, include=[3]), r"got 3"),
        ("include-and-exclude",
         lambda: rt.prune(g, 0.5, include=["fc1"], exclude=["fc1.weight"]),
         r"\['fc1.weight'\] named in both include and exclude"),
        ("dict-unknown", lambda: rt.prune(g, {"fc7": 0.5}), r"sparsity dict: 'fc7'"),
        ("dict-value", lambda: rt.prune(g, {"fc1": 2}), r"sparsity\['fc1'\].*got 2"),
        ("nothing-to-prune", lambda: rt.prune(g, 0.5, min_params=10 ** 6),
         r"no Conv/Gemm kernel to prune"),
        ("int8", lambda: rt.prune(q, 0.5), r"'fc1.weight' \(csr\) has int8 values.*prune "
                                           r"before quantizing"),
        ("gp-end", lambda: gp(g, x, y, 0.5, epochs=3, end_epoch=3),
         r"start_epoch <= end_epoch < epochs.*end_epoch=3, epochs=3"),
        ("gp-start", lambda: gp(g, x, y, 0.5, epochs=4, start_epoch=3, end_epoch=2),
         r"start_epoch=3, end_epoch=2"),
        ("gp-frequency", lambda: gp(g, x, y, 0.5, epochs=3, frequency=0), r"frequency"),
        ("gp-initial", lambda: gp(g, x, y, 0.5, epochs=3, initial_sparsity=0.6),
         r"initial_sparsity 0.6 must not exceed"),
        ("gp-dict", lambda: gp(g, x, y, {"fc1": 0.5}, epochs=3), r"sparsity: expected a float"),
        ("gp-epochs", lambda: gp(g, x, y, 0.5, epochs=0), r"epochs"),
        ("gp-structure", lambda: gp(g, x, y, 0.5, epochs=2, structure="x"), r"structure"),
    ]


@pytest.mark.parametrize("case", bad_cases(), ids=lambda c: c[0])
def test_bad_arguments(case):
    _, call, match = case
    with pytest.raises(rt.InputError, match=match):
        call()


@jax_needed
def test_gradual_prune_bad_data():
    g = mlp()
    with pytest.raises(rt.ShapeError, match=r"y: expected 8 targets"):
        rt.train.gradual_prune(g, x_for(g, 8), labels(7), 0.5, epochs=2, progress=False)
    with pytest.raises(rt.ShapeError, match=r"expected shape"):
        rt.train.gradual_prune(g, np.ones((8, 3), np.float32), labels(8), 0.5, epochs=2)
