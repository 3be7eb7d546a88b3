"""rt.compress: recipes are checked up front (errors name the step and key), a recipe
computes exactly what the steps called by hand compute, the report's figures agree with
independent measurements (rt.sparsity, the .pyrt file, the float64 reference evaluator),
and automatic mode keeps the accuracy drop on the validation data within the budget."""

from __future__ import annotations

import importlib.util
import io
import json

import numpy as np
import pytest

import pyruntime as rt
from pyruntime.compression import parse_recipe, load_recipe
from pyruntime.reference import run_reference
from pyruntime.train import digits

HAVE_TRAIN = all(importlib.util.find_spec(m) for m in ("jax", "optax", "sklearn"))
needs_train = pytest.mark.skipif(not HAVE_TRAIN, reason="needs jax, optax, scikit-learn")


def reference_accuracy(g: rt.Graph, x: np.ndarray, y: np.ndarray) -> float:
    out = run_reference(g, {g.inputs[0].name: x})
    out = out[g.outputs[0]] if isinstance(out, dict) else out
    return float(np.mean(np.argmax(out, axis=1) == y))


# --------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("recipe, words", [
    ([{"prnue": {"sparsity": 0.9}}], ["step 1", "prnue"]),
    ([{"prune": {"sparsity": 0.9, "blok": [16, 1]}}], ["step 1 (prune)", "blok"]),
    ([{"prune": {}}], ["step 1 (prune)", "sparsity", "missing"]),
    ([{"prune": {"sparsity": 1.5}}], ["step 1 (prune)", "sparsity", "1.5"]),
    ([{"prune": {"sparsity": 0.5, "block": [16]}}], ["block"]),
    ([{"finetune": {}}, {"quantize": {"dtype": "int4"}}], ["step 2 (quantize)", "dtype"]),
    ([{"quantize": {"dtype": "int8"}}, {"prune": {"sparsity": 0.5}}],
     ["step 1 (quantize)", "last"]),
    ([{"finetune": {"epochs": 0}}], ["epochs", "0"]),
    ([{"distill": {}}], ["step 1 (distill)", "teacher", "student"]),
    ([{"prune": {"sparsity": 0.5}, "quantize": {"dtype": "fp16"}}], ["one key"]),
    ([], ["non-empty"]),
    ([{"quantize": {"dtype": "int8", "exclude": "logits"}}], ["step 1 (quantize)", "exclude"]),
    ([{"prune": {"sparsity": 0.5, "exclude": [3]}}], ["step 1 (prune)", "exclude"]),
    ([{"quantize": {"dtype": "int8", "percentile": 40}}], ["percentile", "40"]),
    ([{"quantize": {"dtype": "int8", "per_channel": 1}}], ["per_channel"]),
])
def test_bad_recipes_name_step_and_key(recipe, words):
    with pytest.raises(rt.InputError) as e:
        parse_recipe(recipe)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_recipe_defaults_and_toml(tmp_path):
    steps = parse_recipe([{"prune": {"sparsity": 0.9, "block": [16, 1], "gradual": True}},
                          {"finetune": None}, {"quantize": {"dtype": "int8"}}])
    assert [s.kind for s in steps] == ["prune", "finetune", "quantize"]
    assert steps[0].options["block"] == (16, 1) and steps[0].trains
    assert steps[1].options["epochs"] == 10 and steps[2].options["calibrate"] is True
    rt.save(digits.student_cnn(), tmp_path / "student.pyrt")
    f = tmp_path / "r.toml"
    f.write_text('[[step]]\nkind = "distill"\nstudent = "student.pyrt"\nepochs = 2\n'
                 '[[step]]\nkind = "prune"\nsparsity = 0.8\nblock = [4, 1]\n')
    got = load_recipe(f)      # the model path is relative to the recipe's folder
    assert isinstance(got[0].options["student"], rt.Graph)
    assert got[1].options["block"] == (4, 1) and got[1].options["sparsity"] == 0.8
    f.write_text('[[step]]\nkind = "prune"\nsparsity = 0.8\nbogus = 1\n')
    with pytest.raises(rt.InputError, match="r.toml.*step 1 \\(prune\\): bogus"):
        load_recipe(f)
    f.write_text('[[step]\n')
    with pytest.raises(rt.InputError, match="not valid TOML"):
        load_recipe(f)


def test_arguments_are_checked():
    g = digits.teacher_cnn()
    with pytest.raises(rt.InputError, match="not both"):
        rt.compress(g, [{"quantize": {"dtype": "fp16"}}], max_accuracy_drop=0.01)
    with pytest.raises(rt.InputError, match="labels"):
        rt.compress(g, data=np.zeros((4, 1, 8, 8), np.float32), max_accuracy_drop=0.01)
    with pytest.raises(rt.ShapeError, match="image"):
        rt.compress(g, [{"quantize": {"dtype": "fp16"}}], data=np.zeros((4, 8, 8)))
    with pytest.raises(rt.InputError, match="train=\\(x, y\\)"):
        rt.compress(g, [{"prune": {"sparsity": 0.5}}, {"finetune": {}}], latency=False)


# ----------------------------------------------------------------- recipe results
def test_recipe_equals_the_steps_by_hand_and_the_report_is_true():
    rng = np.random.default_rng(0)
    g = digits.teacher_cnn(seed=1)
    x = rng.random((40, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 40)
    out, rep = rt.compress(g, [{"prune": {"sparsity": 0.8, "block": [16, 1]}},
                               {"quantize": {"dtype": "int8"}}],
                           data=(x, y), latency=False, progress=False)
    by_hand = rt.quantize(rt.prune(g, 0.8, structure="block", block=(16, 1)), "int8",
                          calibration=x, progress=False)
    np.testing.assert_array_equal(rt.compile(out).run(x), rt.compile(by_hand).run(x))
    assert [r.stage for r in rep.rows] == ["original", "prune 0.8 block 16x1",
                                           "quantize int8"]
    graphs = [g, rt.prune(g, 0.8, structure="block", block=(16, 1)), out]
    for row, gg in zip(rep.rows, graphs):
        s = rt.sparsity(gg)["overall"]
        assert (row.parameters, row.nonzeros) == (s["parameters"], s["nonzeros"])
        buf = io.BytesIO()
        rt.save(gg, buf)
        assert row.bytes == len(buf.getvalue())
        assert row.accuracy == reference_accuracy(gg, x, y) or gg is out
        assert row.latency_ms == {}
    assert rep.rows[1].sparsity > 0.7 and rep.rows[2].bytes < rep.rows[1].bytes < rep.rows[0].bytes
    # int8's accuracy is the Session's (the reference runs the same QDQ graph in float64)
    assert abs(rep.rows[2].accuracy - reference_accuracy(out, x, y)) <= 2 / 40
    json.dumps(rep.to_dict())
    assert "| quantize int8 |" in rep.to_markdown()


def test_recipe_exclude_and_quantize_options_reach_the_passes():
    rng = np.random.default_rng(0)
    g = digits.teacher_cnn(seed=1)
    x = rng.random((40, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 40)
    out, _ = rt.compress(g, [{"prune": {"sparsity": 0.8, "exclude": ["conv3"]}},
                             {"quantize": {"dtype": "int8", "exclude": ["logits"],
                                           "method": "percentile", "percentile": 99.0,
                                           "per_channel": False}}],
                         data=(x, y), latency=False, progress=False)
    by_hand = rt.quantize(rt.prune(g, 0.8, exclude=["conv3"]), "int8", calibration=x,
                          method="percentile", percentile=99.0, per_channel=False,
                          exclude=["logits"], progress=False)
    np.testing.assert_array_equal(rt.compile(out).run(x), rt.compile(by_hand).run(x))
    fmt = {n.name: out.weights[n.inputs[1]].format for n in out.nodes
           if n.op in ("Conv", "Gemm")}
    # conv3 kept dense by prune, then int8; logits kept float; conv2 pruned, then int8
    assert (fmt["conv3"], fmt["logits"], fmt["conv2"]) == ("qc8", "f32", "csr"), fmt
    conv2 = next(n for n in out.nodes if n.name == "conv2")
    assert out.weights[conv2.inputs[1]].arrays["values"].dtype == np.int8
    with pytest.raises(rt.InputError, match="'conv9' is neither a node nor a weight"):
        rt.compress(g, [{"quantize": {"dtype": "fp16", "exclude": ["conv9"]}}],
                    latency=False, progress=False)


def test_latency_columns_cover_every_stage_and_onnxruntime():
    g = digits.teacher_cnn()
    _, rep = rt.compress(g, [{"quantize": {"dtype": "fp16"}}], batches=(1, 3),
                         timing_blocks=1, progress=False)
    for r in rep.rows:
        assert set(r.latency_ms) == {1, 3} and all(v > 0 for v in r.latency_ms.values())
    md = rep.to_markdown()
    assert rep.cpu and rep.cpu in md and "ms @ batch 3" in md
    if importlib.util.find_spec("onnxruntime"):
        assert set(rep.rows[0].ort_latency_ms) == {1, 3} and "onnxruntime ms @ 1" in md
        assert not rep.rows[1].ort_latency_ms
    else:
        assert "onnxruntime" not in md.split("\n\n")[1]


# ------------------------------------------------------------- training and auto
@pytest.fixture(scope="module")
def trained():
    from pyruntime import train
    xtr, ytr, xte, yte = digits.load(test_fraction=0.3, seed=0)
    g = train.fit(digits.teacher_cnn(seed=0), xtr, ytr, epochs=6, learning_rate=3e-3,
                  progress=False)
    return g, xtr, ytr, xte, yte


@needs_train
def test_prune_then_finetune_keeps_zeros_and_recovers(trained):
    g, xtr, ytr, xte, yte = trained
    out, rep = rt.compress(g, [{"prune": {"sparsity": 0.9}},
                               {"finetune": {"epochs": 2, "learning_rate": 3e-3}}],
                           data=(xte, yte), train=(xtr, ytr), latency=False, progress=False)
    pruned = rt.prune(g, 0.9)
    for k in ("conv2.weight", "conv3.weight"):
        b, a = pruned.weights[k].numpy(), out.weights[k].numpy()
        assert np.all(a[b == 0] == 0) and not np.array_equal(a, b)
    assert rep.rows[2].sparsity == rt.sparsity(out)["overall"]["sparsity"] > 0.85
    assert rep.rows[2].accuracy > rep.rows[1].accuracy     # fine-tuning recovers


@needs_train
def test_distill_into_a_student(trained):
    g, xtr, ytr, xte, yte = trained
    student = digits.student_cnn()
    out, rep = rt.compress(g, [{"distill": {"student": student, "epochs": 1}}],
                           data=(xte, yte), train=(xtr, ytr), latency=False, progress=False)
    assert digits.count_params(out) == digits.count_params(student)
    assert rep.rows[1].parameters == rt.sparsity(student)["overall"]["parameters"]
    assert not all(np.array_equal(out.weights[k].numpy(), student.weights[k].numpy())
                   for k in student.weights)


@needs_train
@pytest.mark.parametrize("budget", [0.0, 0.01])
def test_auto_stays_within_the_accuracy_budget(trained, budget):
    g, _, _, xte, yte = trained
    out, rep = rt.compress(g, data=(xte, yte), max_accuracy_drop=budget, latency=False,
                           progress=False, time_budget_s=60)
    base = float(np.mean(rt.compile(g).run(xte).argmax(1) == yte))
    got = float(np.mean(rt.compile(out).run(xte).argmax(1) == yte))
    assert got >= base - budget - 1e-9, (base, got, rep.to_markdown())
    assert rep.rows[1].accuracy == got and rep.rows[0].accuracy == base
    kernels = {n.inputs[1] for n in out.nodes if n.op in ("Conv", "Gemm")}
    assert {c["layer"] for c in rep.choices} == kernels
    fmt = {"fp32": ("f32",), "fp16": ("f16",), "bf16": ("bf16",), "int8": ("qc8",)}
    for c in rep.choices:          # the report says what the graph holds
        w = out.weights[c["layer"]]
        if c["choice"].startswith("sparse"):
            s = float(c["choice"][6:].split("+")[0])
            assert abs(rt.sparsity(out)["layers"][c["layer"]]["sparsity"] - s) < 0.01
        else:
            assert w.format in fmt[c["choice"]], (c, w.format)
    # the search really timed layers on this machine
    assert any(c["base_ms"] for c in rep.choices)


@needs_train
def test_auto_time_budget_is_respected(trained):
    g, _, _, xte, yte = trained
    out, rep = rt.compress(g, data=(xte[:100], yte[:100]), max_accuracy_drop=0.01,
                           time_budget_s=1e-3, latency=False, progress=False)
    assert any("time budget" in n for n in rep.notes)
    assert rep.rows[1].accuracy >= rep.rows[0].accuracy - 0.01


def test_candidates_are_checked():
    g = digits.teacher_cnn()
    x = np.zeros((4, 1, 8, 8), np.float32)
    with pytest.raises(rt.InputError, match="sparse1.5"):
        rt.compress(g, data=(x, np.zeros(4, int)), max_accuracy_drop=0.01,
                    candidates=["sparse1.5"], latency=False, progress=False)
