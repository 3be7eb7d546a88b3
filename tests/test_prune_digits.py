"""The pruning and quantization issues' accuracy targets on real data, cheaply (int8
static within 0.5 point, fp16 within 1e-3 relative: the tests at the end): the digits teacher CNN pruned
to 90% and fine-tuned loses at most 1 point of test accuracy, every pruned weight stays
exactly zero through fine-tuning, and the compiled sparse Session computes what the
float64 reference evaluator computes on the test images (bench/prune_digits.py reports
the full picture: more variants, seeds and epochs).

Why the bound holds with margin. The teacher is trained as examples/distill_digits.py
trains it (30 epochs, Adam 3e-3, patience 5), pruned one-shot with rt.prune(0.9) (conv2
and conv3; conv1 and the classifier are under min_params) and fine-tuned 20 epochs at 3e-3
with masks="zeros". Over teacher seeds 0-9 this recipe's test-accuracy change was +0.19,
-0.19, -0.19, -0.19, -0.37, +0.37, 0.00, +0.19, -0.19, +0.19 points (worst -0.37, i.e. 2
of 540 images; standard deviation 0.23): the 1-point bound sits more than 4 standard
deviations below the mean. Shorter recipes were not as steady (a 12-epoch teacher with 10
fine-tuning epochs at 1e-2 spread -0.56 to +1.11; 15 epochs at 1e-2 reached -0.74), so
the test pays ~10 s for the full teacher rather than guard a noisier bound.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import pyruntime as rt
from pyruntime.reference import run_reference

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("jax", "optax", "sklearn")),
    reason="needs the xla extra (jax, optax) and scikit-learn")

PRUNED = ("conv2.weight", "conv3.weight")      # >= min_params=1024; conv1 (288), logits (640) not


@pytest.fixture(scope="module")
def models() -> dict:
    from pyruntime import train
    from pyruntime.train import digits
    xtr, ytr, xte, yte = digits.load(test_fraction=0.3, seed=0)
    teacher = train.fit(digits.teacher_cnn(seed=0), xtr, ytr, epochs=30, batch_size=64,
                        learning_rate=3e-3, validation_split=0.1, patience=5, seed=0,
                        progress=False)
    pruned = rt.prune(teacher, 0.9)
    tuned = train.fit(pruned, xtr, ytr, masks="zeros", epochs=20, batch_size=64,
                      learning_rate=3e-3, validation_split=0.1, seed=0, progress=False)
    return {"teacher": teacher, "pruned": pruned, "tuned": tuned, "x": xte, "y": yte}


def session_accuracy(g: rt.Graph, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(rt.compile(g).run(x).argmax(axis=1) == y))


def test_pruned_90_and_fine_tuned_loses_at_most_one_point(models):
    x, y = models["x"], models["y"]
    rep = rt.sparsity(models["pruned"])["layers"]
    n = sum(rep[k]["parameters"] for k in PRUNED)
    assert sum(rep[k]["parameters"] - rep[k]["nonzeros"] for k in PRUNED) == round(0.9 * n)
    assert rep["conv1.weight"]["sparsity"] == 0 and rep["logits.weight"]["sparsity"] == 0
    dense = session_accuracy(models["teacher"], x, y)
    one_shot = session_accuracy(models["pruned"], x, y)
    tuned = session_accuracy(models["tuned"], x, y)
    assert dense >= 0.97                           # a real teacher (0.98-0.99 over seeds)
    assert tuned >= dense - 0.01, (dense, one_shot, tuned)
    # One-shot at 90% is far off (0.45-0.72 over seeds): fine-tuning does the recovering.
    assert one_shot <= tuned - 0.2, (one_shot, tuned)


def test_pruned_weights_stay_exactly_zero(models):
    pruned, tuned = models["pruned"], models["tuned"]
    for k in PRUNED:
        before, after = pruned.weights[k], tuned.weights[k]
        assert before.format == after.format == "csr"
        for name in ("indptr", "indices"):             # the same stored pattern
            np.testing.assert_array_equal(before.arrays[name], after.arrays[name])
        b, a = before.numpy(), after.numpy()
        assert np.all(a[b == 0] == 0) and not np.signbit(a[b == 0]).any(), k
        assert not np.array_equal(a[b != 0], b[b != 0]), k     # the kept ones trained


@pytest.mark.parametrize("sparse", ["auto", "sparse"])
def test_sparse_session_matches_reference(models, sparse):
    x = models["x"]
    for name in ("pruned", "tuned"):
        g = models[name]
        sess = rt.compile(g, sparse=sparse)
        if sparse == "sparse":       # "auto" picks per layer and machine (cost model)
            kinds = {r["node"]: r["computed_as"] for r in sess.plan_summary()
                     if r["computed_as"]}
            assert [v for k, v in kinds.items() if "conv2" in k or "conv3" in k] \
                == ["f32 sparse"] * 2, kinds
        out = sess.run(x)
        ref = run_reference(g, x)[g.outputs[0]]
        scale = np.abs(ref).max()
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5 * scale, err_msg=name)
        top2 = np.sort(ref, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-4 * scale        # no near-tie to flip
        np.testing.assert_array_equal(out.argmax(1)[clear], ref.argmax(1)[clear])


# ------------------------------------------------------------------ quantization targets

def test_int8_static_within_half_a_point(models):
    """The quantization issue's accuracy target: the digits teacher, int8 static
    (calibrated on 256 training images), within 0.5 point of fp32 on the test images;
    int8 dynamic and the pruned + fine-tuned + int8 model too."""
    from pyruntime.train import digits
    xtr = digits.load(test_fraction=0.3, seed=0)[0]
    x, y = models["x"], models["y"]
    dense = session_accuracy(models["teacher"], x, y)
    static = rt.quantize(models["teacher"], "int8", calibration=xtr[:256], progress=False)
    dynamic = rt.quantize(models["teacher"], "int8")
    kinds = {r["computed_as"] for r in rt.compile(static).plan_summary() if r["computed_as"]}
    assert kinds == {"int8 static"}, kinds
    assert session_accuracy(static, x, y) >= dense - 0.005
    assert session_accuracy(dynamic, x, y) >= dense - 0.005
    tuned = session_accuracy(models["tuned"], x, y)
    both = rt.quantize(models["tuned"], "int8", calibration=xtr[:256], progress=False)
    assert session_accuracy(both, x, y) >= tuned - 0.005


def test_fp16_outputs_within_1e3_relative(models):
    x, teacher = models["x"], models["teacher"]
    ref = rt.compile(teacher).run(x).astype(np.float64)
    for dtype, tol in (("fp16", 1e-3), ("bf16", 1e-2)):
        got = rt.compile(rt.quantize(teacher, dtype)).run(x).astype(np.float64)
        assert np.abs(got - ref).max() <= tol * np.abs(ref).max(), dtype
