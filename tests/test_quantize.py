"""rt.quantize, calibration, the QDQ op and rt.quantize_report: stored formats against
numpy's rounding, QDQ parameters against numpy ranges, CPU Session outputs against the
float64 reference with bounds derived from the quantization steps, save/load, and
typed errors for every bad argument."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import nn
from pyruntime.passes.calibrate import BINS, uint8_params
from pyruntime.reference import run_reference
from pyruntime.train.digits import teacher_cnn
from pyruntime.shapes import qdq

RNG = np.random.default_rng(1234)


def mlp(seed: int = 0) -> rt.Graph:
    return rt.zoo.mlp((37, 67, 29, 10), seed=seed)


def cnn(seed: int = 0) -> rt.Graph:
    x = nn.Input((3, 9, 11), name="image")
    h = nn.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(x)
    h = nn.Conv2D(24, 3, strides=2, padding="same", activation="relu6", name="conv2")(h)
    h = nn.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(h)
    h = nn.Conv2D(20, 1, name="pw")(h)
    h = nn.GlobalAvgPool2D(name="gap")(h)
    return nn.Model(x, nn.Dense(10, name="fc")(h), name="cnn", seed=seed).to_graph()


def ref(g: rt.Graph, x: np.ndarray) -> np.ndarray:
    return run_reference(g, x)[g.outputs[0]]


# ------------------------------------------------------------------ the pass

@pytest.mark.parametrize("dtype", ["int8", "fp16", "bf16"])
def test_formats_and_input_untouched(dtype):
    g = mlp()
    before = {k: w.numpy().copy() for k, w in g.weights.items()}
    q = rt.quantize(g, dtype)
    for k, w in g.weights.items():
        assert w.format == "f32" and np.array_equal(w.numpy(), before[k])
    want = {"int8": "qc8", "fp16": "f16", "bf16": "bf16"}[dtype]
    for n in q.nodes:
        assert q.weights[n.inputs[1]].format == want
        assert q.weights[n.inputs[2]].format == "f32"  # biases stay float
    w0 = before["fc1.weight"].astype(np.float64)
    w1 = q.weights["fc1.weight"].numpy().astype(np.float64)
    if dtype == "int8":  # per output column (axis 1): scale = max|col| / 127, half a step
        s = np.abs(w0).max(axis=0) / 127
        assert np.all(np.abs(w1 - w0) <= s / 2 * (1 + 1e-6) + 1e-12)
    elif dtype == "fp16":
        assert np.array_equal(w1, w0.astype(np.float16).astype(np.float64))
    else:
        bits = before["fc1.weight"].view(np.uint32).astype(np.uint64)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
        assert np.array_equal(w1, rounded.astype(np.uint32).view(np.float32).astype(np.float64))


def test_static_again_keeps_the_grids():
    """A layer whose input already has a QDQ (a static graph, an imported QDQ model)
    keeps that grid: quantizing again adds no second rounding."""
    g = rt.zoo.tiny_cnn(seed=1, input_shape=(3, 8, 8))
    x = RNG.standard_normal((8, 3, 8, 8)).astype(np.float32)
    s = rt.quantize(g, "int8", calibration=x, progress=False)
    again = rt.quantize(s, "int8", calibration=x * 3, progress=False)  # other ranges
    qdq = lambda m: [(n.inputs, n.attrs) for n in m.nodes if n.op == "QDQ"]  # noqa: E731
    assert qdq(again) == qdq(s) and len(qdq(s)) > 0
    np.testing.assert_array_equal(rt.compile(again).run(x), rt.compile(s).run(x))


def test_exclude_per_channel_and_already_int8():
    g = mlp()
    q = rt.quantize(g, "int8", exclude=["fc2", "fc3.weight"], per_channel=False)
    assert [q.weights[f"fc{i}.weight"].format for i in (1, 2, 3)] == ["qc8", "f32", "f32"]
    s = q.weights["fc1.weight"].arrays["scale"]
    assert np.all(s == s[0])
    assert s[0] == np.float32(np.abs(g.weights["fc1.weight"].numpy()).max() / 127)
    again = rt.quantize(q, "fp16")  # int8 kernels stay int8
    assert again.weights["fc1.weight"].format == "qc8"
    assert again.weights["fc2.weight"].format == "f16"


def _layer_formats(q: rt.Graph) -> dict[str, str]:
    return {n.name: q.weights[n.inputs[1]].format for n in q.nodes if n.op in ("Conv", "Gemm")}


@pytest.mark.parametrize("name", ["conv1", "conv1.weight", "conv1.weight_bn"])
def test_exclude_names_a_folded_layer_in_either_graph(name):
    """BatchNorm folding renames conv1's kernel (conv1.weight -> conv1.weight_bn): the
    caller's names and the optimized graph's both exclude exactly that layer."""
    g = rt.zoo.tiny_cnn(seed=1, input_shape=(3, 8, 8))
    x = RNG.standard_normal((8, 3, 8, 8)).astype(np.float32)
    for cal in (None, x):
        fm = _layer_formats(rt.quantize(g, "int8", exclude=[name], calibration=cal,
                                        progress=False))
        assert fm.pop("conv1") == "f32"
        assert set(fm.values()) == {"qc8"}, fm


@pytest.mark.parametrize("name,why", [
    ("bn1", "'bn1' is a BatchNormalization node, not a Conv/Gemm layer"),
    ("maxpool", "'maxpool' is a MaxPool node"),
    ("conv1.bias", "'conv1.bias' is a weight that is no Conv/Gemm kernel"),
    ("conv9", "'conv9' is neither a node nor a weight"),
])
def test_exclude_names_that_are_no_layer_are_refused(name, why):
    g = rt.zoo.tiny_cnn(seed=1, input_shape=(3, 8, 8))
    with pytest.raises(rt.InputError, match=why) as e:
        rt.quantize(g, "int8", exclude=[name])
    assert "layers: ['conv1', 'expand', 'dw'" in str(e.value)


@pytest.mark.parametrize("static", [False, True])
def test_a_kernel_shared_with_an_excluded_layer_stays_float_there(static):
    """Two layers reading one weight, one excluded: the excluded layer keeps the float
    kernel (it read the int8 one before), the other reads an int8 copy."""
    W = rt.Weight.f32((RNG.standard_normal((16, 16)) / 4).astype(np.float32))
    g = rt.Graph([rt.ValueInfo("x", (None, 16))], ["y"],
                 [rt.Node("Gemm", ["x", "W"], ["h"], name="a"),
                  rt.Node("Gemm", ["h", "W"], ["y"], name="b")], {"W": W}, name="shared")
    # the same layers with a weight each: what the shared one must compute like
    apart = rt.Graph(g.inputs, ["y"], [rt.Node("Gemm", ["x", "Wa"], ["h"], name="a"),
                                       rt.Node("Gemm", ["h", "Wb"], ["y"], name="b")],
                     {"Wa": W, "Wb": W}, name="apart")
    x = RNG.standard_normal((9, 16)).astype(np.float32)
    for ex, kept in ((["b"], "b"), (["a"], "a")):
        q, want = (rt.quantize(m, "int8", exclude=ex, calibration=x if static else None,
                               progress=False) for m in (g, apart))
        fmt = {n.name: (n.inputs[1], q.weights[n.inputs[1]].format) for n in q.nodes
               if n.op == "Gemm"}
        assert fmt[kept] == ("W", "f32") and q.weights["W"] is W
        (other,) = set(fmt) - {kept}
        assert fmt[other][1] == "qc8" and fmt[other][0] != "W"
        np.testing.assert_array_equal(rt.compile(q).run(x), rt.compile(want).run(x))
    both = rt.quantize(g, "int8")  # no exclusion: one int8 weight for both
    assert [n.inputs[1] for n in both.nodes] == ["W", "W"] and both.weights["W"].format == "qc8"


def test_exclude_by_kernel_name_on_nameless_layers():
    """Layers without node names are excluded by their kernels' names, and stay nameless."""
    g = mlp()
    for n in g.nodes:
        n.name = ""
    q = rt.quantize(g, "int8", exclude=["fc2.weight"], calibration=RNG.standard_normal(
        (16, 37)).astype(np.float32), progress=False)
    assert [q.weights[n.inputs[1]].format for n in q.nodes if n.op == "Gemm"] == \
        ["qc8", "f32", "qc8"]
    assert all(n.name == "" for n in q.nodes if n.op == "Gemm")
    # and through BatchNorm folding, which renames the kernel
    c = rt.zoo.tiny_cnn(seed=1, input_shape=(3, 8, 8))
    for n in c.nodes:
        n.name = ""
    q = rt.quantize(c, "int8", exclude=["conv1.weight"])
    layers = [n for n in q.nodes if n.op in ("Conv", "Gemm")]
    assert [q.weights[n.inputs[1]].format for n in layers] == ["f32"] + ["qc8"] * 6
    assert all(n.name == "" for n in q.nodes)


def test_pruned_kernels_become_int8_sparse():
    g = rt.prune(mlp(), 0.8, scope="layer")
    q = rt.quantize(g, "int8")
    for k in ("fc1.weight", "fc2.weight"):
        w0, w1 = g.weights[k], q.weights[k]
        assert w1.format == w0.format and w1.arrays["values"].dtype == np.int8
        assert np.array_equal(rt.formats.pattern(w1), rt.formats.pattern(w0))
    fp16 = rt.quantize(g, "fp16")
    assert fp16.weights["fc1.weight"].format == g.weights["fc1.weight"].format
    # static: only the dense int8 layer (fc3, under min_params, not pruned) reads a QDQ;
    # the sparse int8 layers take float activations (weight-only int8 kernel)
    x = RNG.standard_normal((32, 37)).astype(np.float32)
    s = rt.quantize(g, "int8", calibration=x, progress=False)
    readers = {n.name: n.inputs[0] for n in s.nodes if n.op == "Gemm"}
    qdq_out = {n.outputs[0] for n in s.nodes if n.op == "QDQ"}
    assert [k for k, v in readers.items() if v in qdq_out] == ["fc3"]
    assert s.weights["fc3.weight"].format == "qc8"
    kinds = {r["node"]: r["computed_as"] for r in rt.compile(s).plan_summary()
             if r["computed_as"]}
    assert kinds["node 'fc3' (Gemm)"] == "int8 static"
    got = rt.compile(s).run(x).astype(np.float64)
    want = ref(s, x)
    assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max()


def test_static_inserts_qdq_with_minmax_ranges():
    g = mlp()
    x = RNG.standard_normal((50, 37)).astype(np.float32)
    q = rt.quantize(g, "int8", calibration=x, progress=False)
    qdqs = [n for n in q.nodes if n.op == "QDQ"]
    assert len(qdqs) == 3
    # the first QDQ reads the graph input: its range is the input's
    lo, hi = min(x.min(), 0), max(x.max(), 0)
    scale, zp = uint8_params(lo, hi)
    assert qdqs[0].inputs == [g.inputs[0].name]
    assert qdqs[0].attrs == {"scale": scale, "zero_point": zp, "dtype": "uint8"}
    assert scale == pytest.approx((hi - lo) / 255, rel=1e-6)
    assert abs(-lo / scale - zp) <= 0.5 + 1e-9
    # the others read fc1 / fc2 outputs (after ReLU: zero point 0)
    h1 = np.maximum(x.astype(np.float64) @ g.weights["fc1.weight"].numpy()
                    + g.weights["fc1.bias"].numpy(), 0)
    s1, z1 = uint8_params(0, h1.max())
    assert qdqs[1].attrs["zero_point"] == 0 == z1
    assert qdqs[1].attrs["scale"] == pytest.approx(s1, rel=1e-5)
    gemms = [n for n in q.nodes if n.op == "Gemm"]
    assert [n.inputs[0] for n in gemms] == [n.outputs[0] for n in qdqs]


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_percentile_and_entropy_clip_outliers(method):
    x = nn.Input((64,), name="x")
    g = nn.Model(x, nn.Dense(8, name="fc")(x), name="one", seed=0).to_graph()
    data = RNG.standard_normal((400, 64)).astype(np.float32)
    data[0, 0] = 60.0  # one outlier
    mm = rt.quantize(g, "int8", calibration=data, progress=False)
    q = rt.quantize(g, "int8", calibration=data, method=method, percentile=99.9,
                    progress=False)
    s_mm = mm.nodes[0].attrs["scale"]
    s = q.nodes[0].attrs["scale"]
    assert s < s_mm / 3  # the outlier no longer sets the range
    hi = s * (255 - q.nodes[0].attrs["zero_point"])
    if method == "percentile":  # the 99.9th percentile within a histogram bin
        want = np.percentile(data, 99.9)
        assert abs(hi - want) <= 2 * (60 - data.min()) / BINS + 2 * s
    assert hi > 2.0  # but the bulk of N(0, 1) is kept


def test_calibration_forms_agree():
    g = mlp()
    x = RNG.standard_normal((40, 37)).astype(np.float32)
    a = rt.quantize(g, "int8", calibration=x, progress=False)
    b = rt.quantize(g, "int8", calibration={"input": x}, progress=False)
    c = rt.quantize(g, "int8", calibration=(x[i:i + 8] for i in range(0, 40, 8)),
                    progress=False)
    for m in (b, c):
        assert [n.attrs for n in m.nodes if n.op == "QDQ"] == \
            [n.attrs for n in a.nodes if n.op == "QDQ"]


@pytest.mark.parametrize("kw,match", [
    ({"dtype": "int4"}, "dtype"),
    ({"dtype": "int8", "method": "kl"}, "method"),
    ({"dtype": "fp16", "method": "kl"}, "method"),     # checked even when unused
    ({"dtype": "int8", "per_channel": 1}, "per_channel"),
    ({"dtype": "int8", "percentile": 40}, "percentile"),
    ({"dtype": "int8", "percentile": True}, "percentile"),
    ({"dtype": "int8", "exclude": "fc1"}, "exclude"),
    ({"dtype": "int8", "exclude": ["nope"]}, "nope"),
    ({"dtype": "int8", "exclude": [3]}, "exclude"),
    ({"dtype": "int8", "calibration": np.zeros((4, 36), np.float32)}, r"\(N, 37\)"),
    ({"dtype": "int8", "calibration": {"x": np.zeros((4, 37))}}, "expected inputs"),
    ({"dtype": "int8", "calibration": []}, "no batches"),
    ({"dtype": "int8", "calibration": np.zeros((0, 37), np.float32)}, r"no values \(0 rows"),
    ({"dtype": "int8", "calibration": [np.zeros((0, 37))] * 3}, "all 3 batches have 0 rows"),
    ({"dtype": "int8", "calibration": "data"}, "calibration"),
    ({"dtype": "int8", "calibration": np.full((2, 37), np.nan)}, "NaN"),
    ({"dtype": "fp16", "calibration": np.zeros((4, 37), np.float32)}, "int8"),
])
def test_bad_arguments_are_typed(kw, match):
    dtype = kw.pop("dtype")
    with pytest.raises(rt.Error, match=match):
        rt.quantize(mlp(), dtype, progress=False, **kw) if "progress" not in kw else \
            rt.quantize(mlp(), dtype, **kw)
    with pytest.raises(rt.InputError):
        rt.quantize("graph", "int8")


# ------------------------------------------------------------------ the QDQ op

@pytest.mark.parametrize("dtype,zp", [("uint8", 0), ("uint8", 131), ("int8", -3), ("int8", 0)])
def test_qdq_op_on_the_cpu_is_exact(dtype, zp):
    x = nn.Input((13,), name="x")
    g = nn.Model(x, nn.Dense(7, name="fc")(x), name="m", seed=0).to_graph()
    g.nodes.append(rt.Node("QDQ", [g.outputs[0]], ["q"], {"scale": 0.0625, "zero_point": zp,
                                                           "dtype": dtype}, name="qdq"))
    g.outputs = ["q"]
    v = RNG.standard_normal((33, 13)).astype(np.float32) * 4
    got = rt.compile(g).run(v)
    want = ref(g, v)
    # float32 vs float64 pre-activations may round to neighbouring steps at a tie only
    assert np.mean(got == want) > 0.99
    assert np.max(np.abs(got - want)) <= 0.0625 + 1e-7
    lo, hi = (0, 255) if dtype == "uint8" else (-128, 127)
    assert got.min() >= (lo - zp) * 0.0625 and got.max() <= (hi - zp) * 0.0625


@pytest.mark.parametrize("attrs,match", [
    ({"scale": 0.0, "zero_point": 0, "dtype": "uint8"}, "scale"),
    ({"scale": -1.0, "zero_point": 0, "dtype": "uint8"}, "scale"),
    ({"scale": math.inf, "zero_point": 0, "dtype": "uint8"}, "scale"),
    ({"scale": 0.1, "zero_point": 0, "dtype": "uint8"}, "float32"),  # 0.1 is not a float32
    ({"scale": 0.5, "zero_point": 256, "dtype": "uint8"}, "zero_point"),
    ({"scale": 0.5, "zero_point": -129, "dtype": "int8"}, "zero_point"),
    ({"scale": 0.5, "zero_point": 0, "dtype": "int4"}, "dtype"),
    ({"zero_point": 0}, "scale"),
])
def test_qdq_bad_attributes(attrs, match):
    g = rt.Graph([rt.ValueInfo("x", (None, 4))], ["y"], [rt.Node("QDQ", ["x"], ["y"], attrs)], {})
    with pytest.raises(rt.GraphError, match=match):
        g.validate()


def test_qdq_helper_rounds_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 300.0, -300.0])
    assert list(qdq(x, 1.0, 0, "int8")) == [0, 2, 2, 0, -2, 127, -128]
    assert list(qdq(x, 1.0, 10, "uint8")) == [0, 2, 2, 0, -2, 245, -10]


# ------------------------------------------------------------------ CPU int8 kernels

def _dyn_bound(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per output element: half an activation step (per row) times sum |w| over k."""
    lo = np.minimum(x.min(axis=1), 0)
    hi = np.maximum(x.max(axis=1), 0)
    step = (hi - lo) / 255
    return 0.5 * step[:, None] * np.abs(w).sum(axis=0)[None, :]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("static", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_int8_results_do_not_depend_on_the_batch(model, static, threads):
    """Dynamic quantization is per row / per image and static grids are fixed, so a
    sample's int8 result is the same bits alone and in any batch (dynamic batching in
    serving never changes an answer), at every ISA."""
    g, shape = (mlp(), (37,)) if model == "mlp" else (cnn(), (3, 9, 11))
    x = (RNG.standard_normal((23, *shape)) * 2).astype(np.float32)
    q = rt.quantize(g, "int8", calibration=x if static else None, progress=False)
    for isa in rt.info()["supported_isas"]:
        s = rt.compile(q, threads=threads, isa=isa)
        alone = np.concatenate([s.run(x[i:i + 1]) for i in range(len(x))])
        assert np.array_equal(s.run(x), alone), isa
        assert np.array_equal(s.run(x[5:18]), alone[5:18]), isa


def test_static_int8_saturates_inf_and_keeps_other_samples():
    """Session's contract for int8 steps: +-Inf at a static model's input lands on the
    grid's ends (exactly as a huge finite value would), a NaN on some grid value, and
    the other samples of the batch are untouched."""
    g = mlp()
    x = RNG.standard_normal((6, 37)).astype(np.float32)
    q = rt.quantize(g, "int8", calibration=x, progress=False)
    for isa in rt.info()["supported_isas"]:
        s = rt.compile(q, isa=isa)
        want = s.run(x)
        for bad, same in ((np.inf, 1e30), (-np.inf, -1e30), (np.nan, None)):
            y = x.copy()
            y[2, [0, 5, 36]] = bad
            got = s.run(y)
            assert np.array_equal(np.delete(got, 2, 0), np.delete(want, 2, 0)), (isa, bad)
            if same is not None:
                y[2, [0, 5, 36]] = same
                assert np.array_equal(got, s.run(y)), (isa, bad)


@pytest.mark.parametrize("batch", [1, 2, 7, 64])
def test_dynamic_gemm_within_the_activation_step(batch):
    x = nn.Input((131,), name="x")
    g = nn.Model(x, nn.Dense(67, name="fc")(x), name="one", seed=3).to_graph()
    q = rt.quantize(g, "int8")
    v = RNG.standard_normal((batch, 131)).astype(np.float32)
    got = rt.compile(q).run(v).astype(np.float64)
    want = ref(q, v)  # the int8 weights exactly, float activations
    bound = _dyn_bound(v.astype(np.float64), q.weights["fc.weight"].numpy().astype(np.float64))
    assert np.all(np.abs(got - want) <= bound * 1.001 + 1e-5 * np.abs(want).max())
    s = rt.compile(q).plan_summary()
    assert any(r["computed_as"] == "int8 dynamic" for r in s)


def test_static_gemm_matches_the_reference_closely():
    g = mlp()
    cal = RNG.standard_normal((64, 37)).astype(np.float32)
    q = rt.quantize(g, "int8", calibration=cal, progress=False)
    v = RNG.standard_normal((16, 37)).astype(np.float32)
    got = rt.compile(q).run(v).astype(np.float64)
    want = ref(q, v)
    # int32 accumulation is exact: only float rounding of the epilogue and, at a tie of
    # the uint8 grid between layers, one step of a hidden activation differ
    steps = [n.attrs["scale"] for n in q.nodes if n.op == "QDQ"]
    w3 = np.abs(q.weights["fc3.weight"].numpy()).sum(axis=0).max()
    w2 = np.abs(q.weights["fc2.weight"].numpy()).sum(axis=0).max()
    assert np.max(np.abs(got - want)) <= steps[2] * w3 + steps[1] * w2 * w3 + 1e-4
    assert np.mean(np.abs(got - want) <= 1e-4 * np.abs(want).max()) > 0.9
    kinds = [r["computed_as"] for r in rt.compile(q).plan_summary() if r["computed_as"]]
    assert kinds == ["int8 static"] * 3


def test_fp32_vs_int8_mlp_accuracy_and_argmax():
    g = rt.zoo.mlp((784, 512, 256, 10), seed=0)
    v = RNG.standard_normal((256, 784)).astype(np.float32)
    f = rt.compile(g).run(v)
    for q in (rt.quantize(g, "int8"),
              rt.quantize(g, "int8", calibration=v[:128], progress=False)):
        got = rt.compile(q).run(v)
        rel = np.abs(got - f).max() / np.abs(f).max()
        agree = np.mean(got.argmax(1) == f.argmax(1))
        assert rel < 0.03 and agree > 0.95, (rel, agree)


@pytest.mark.parametrize("static", [False, True])
def test_int8_cnn_against_the_reference(static):
    g = cnn()
    v = RNG.standard_normal((3, 3, 9, 11)).astype(np.float32)
    q = rt.quantize(g, "int8", calibration=v if static else None, progress=False)
    got = rt.compile(q).run(v).astype(np.float64)
    want = ref(q, v)
    f = ref(g, v)
    # int8 weights and 8-bit activations: within a few percent of the float output
    assert np.abs(got - want).max() <= 0.05 * np.abs(f).max()
    kinds = {r["computed_as"] for r in rt.compile(q).plan_summary() if r["computed_as"]}
    assert kinds == {"int8 static" if static else "int8 dynamic"}


def test_static_inverted_residuals_stay_uint8():
    """MobileNetV2-style blocks: each projection's residual is read through the QDQ its
    block input already has (as an ONNX QDQ model's Add), so every tensor between the
    NCHW input and the classifier is uint8: one planar quantize of the image, no float
    transpose, no dequantize, no other quantize; the result tracks the reference."""
    g = rt.zoo.mobilenetv2_style((3, 32, 32), width=0.35, num_classes=10, seed=3)
    v = RNG.standard_normal((2, 3, 32, 32)).astype(np.float32)
    q = rt.quantize(g, "int8", calibration=v, progress=False)
    qdq_out = {n.outputs[0] for n in q.nodes if n.op == "QDQ"}
    residual = [n for n in q.nodes if n.op == "Conv" and len(n.inputs) > 3 and n.inputs[3]]
    assert len(residual) >= 4 and all(n.inputs[3] in qdq_out for n in residual)
    s = rt.compile(q)
    ops = [r["op"] for r in s.plan_summary()]
    assert ops.count("quantize") == 2 and "dequantize" not in ops and "transpose" not in ops
    # the image, and the pooled features in front of the classifier
    got = s.run(v).astype(np.float64)
    want, f = ref(q, v), ref(g, v)
    assert np.abs(got - want).max() <= 0.02 * np.abs(f).max()
    assert np.abs(got - f).max() <= 0.1 * np.abs(f).max()


@pytest.mark.parametrize("pool,strides,padding", [(2, None, "valid"), (3, 2, "same"),
                                                  (3, 1, "same"), (2, 3, "valid")])
def test_maxpool_between_int8_layers_runs_on_uint8(pool, strides, padding):
    """conv -> MaxPool -> conv, static: max commutes with quantization, so the first conv
    writes uint8 on the second's input grid and the pool runs on those bytes (no graph
    change, no float in between); exact against the reference up to float rounding."""
    x = nn.Input((3, 11, 9), name="image")
    h = nn.Conv2D(20, 3, padding="same", activation="relu", name="c1")(x)
    h = nn.MaxPool2D(pool, strides=strides, padding=padding, name="mp")(h)
    h = nn.Conv2D(12, 3, padding="same", name="c2")(h)
    g = nn.Model(x, h, name="mp", seed=5).to_graph()
    v = RNG.standard_normal((3, 3, 11, 9)).astype(np.float32)
    q = rt.quantize(g, "int8", calibration=v, progress=False)
    assert not any(n.op == "QDQ" and n.outputs[0] in q.nodes[[m.op for m in q.nodes].index(
        "MaxPool")].inputs for n in q.nodes)
    s = rt.compile(q)
    ops = [r["op"] for r in s.plan_summary()]
    assert "qmaxpool" in ops and "pool" not in ops and ops.count("quantize") == 1
    got, want = s.run(v), ref(q, v)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_global_avgpool_of_an_int8_layer_reads_uint8():
    """The digits teacher: conv -> conv -> MaxPool -> conv -> GAP -> Dense. The GAP's input
    gets a QDQ (as ONNX's QLinearGlobalAveragePool), the last conv writes uint8 and the
    pool sums bytes; every step between the image and the classifier is int8."""
    g = teacher_cnn()
    v = RNG.standard_normal((5, 1, 8, 8)).astype(np.float32)
    q = rt.quantize(g, "int8", calibration=v, progress=False)
    gap = next(n for n in q.nodes if n.op == "GlobalAveragePool")
    assert gap.inputs[0] in {n.outputs[0] for n in q.nodes if n.op == "QDQ"}
    s = rt.compile(q)
    ops = [r["op"] for r in s.plan_summary()]
    assert ops == ["quantize", "qconv", "qconv", "qmaxpool", "qconv", "qglobal_avgpool",
                   "quantize", "qgemm"], ops
    got, want = s.run(v), ref(q, v)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    # batch 1 and a dynamic batch give the same rows
    np.testing.assert_allclose(s.run(v[:1]), got[:1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_16bit_weights_match_the_reference(dtype):
    g = cnn()
    q = rt.quantize(g, dtype)
    v = RNG.standard_normal((2, 3, 9, 11)).astype(np.float32)
    got = rt.compile(q).run(v).astype(np.float64)
    want = ref(q, v)  # the 16-bit weights exactly
    tol = 1e-4 if dtype == "fp16" else 1e-2  # bf16 kernels may round activations too
    assert np.abs(got - want).max() <= tol * np.abs(want).max()
    f = ref(g, v)
    if dtype == "fp16":
        assert np.abs(got - f).max() <= 1e-3 * np.abs(f).max()


def test_save_load_roundtrip(tmp_path):
    g = cnn()
    v = RNG.standard_normal((2, 3, 9, 11)).astype(np.float32)
    q = rt.quantize(g, "int8", calibration=v, progress=False)
    rt.save(q, tmp_path / "q.pyrt")
    back = rt.load(tmp_path / "q.pyrt")
    assert [n.op for n in back.nodes] == [n.op for n in q.nodes]
    np.testing.assert_array_equal(rt.compile(back).run(v), rt.compile(q).run(v))


# ------------------------------------------------------------------ the report

def test_report_names_the_damaged_layer():
    g = mlp()
    v = RNG.standard_normal((32, 37)).astype(np.float32)
    w = g.weights["fc2.weight"].numpy().copy()
    w[0, 0] = 50 * np.abs(w).max()  # one huge weight: per-tensor int8 ruins fc2
    g.weights["fc2.weight"] = rt.Weight.f32(w)
    q = rt.quantize(g, "int8", per_channel=False)
    rep = rt.quantize_report(g, q, v)
    assert [r.node for r in rep] == ["node 'fc1' (Gemm)", "node 'fc2' (Gemm)",
                                     "node 'fc3' (Gemm)"]
    assert rep.worst().node == "node 'fc2' (Gemm)" or rep[1].sqnr_db < rep[0].sqnr_db - 10
    assert rep[1].weight_rel_err > 10 * rep[0].weight_rel_err
    for r in rep:
        assert 0 <= r.rel_err < 10 and math.isfinite(r.sqnr_db)
    assert "fc2" in str(rep)
    fine = rt.quantize_report(g, rt.quantize(g, "fp16"), v)
    assert all(r.sqnr_db > 50 for r in fine)


def test_report_errors():
    g = mlp()
    with pytest.raises(rt.InputError):
        rt.quantize_report(g, "q", np.zeros((1, 37), np.float32))
    other = rt.zoo.mlp((37, 5), seed=1)
    other.nodes[0].outputs = ["zz"]
    other.outputs = ["zz"]
    with pytest.raises(rt.InputError, match="shares no"):
        rt.quantize_report(g, other, np.zeros((1, 37), np.float32))


@pytest.mark.parametrize("cin", [1, 3, 4, 5, 8, 13])
@pytest.mark.parametrize("geom", [
    dict(k=(3, 3), pads=(1, 1, 1, 1)), dict(k=(3, 3), strides=(2, 2), pads=(0, 1, 2, 0)),
    dict(k=(3, 3), dilations=(2, 2), pads=(2, 2, 2, 2)), dict(k=(1, 3), pads=(0, 1, 0, 1)),
    dict(k=(5, 5), pads=(2, 2, 2, 2)), dict(k=(1, 1), strides=(2, 2)), dict(k=(2, 3))])
@pytest.mark.parametrize("static", [False, True])
def test_int8_conv_geometries_against_the_reference(cin, geom, static):
    """One int8 conv layer: static, against the int8 conv in float64 on the input
    quantized as specified (int32 sums are exact; only the float epilogue rounds);
    dynamic, within half an activation step (per image) times sum |w| per output."""
    geom = dict(geom)
    k = geom.pop("k")
    rng = np.random.default_rng(cin)
    w = rng.standard_normal((6, cin) + k).astype(np.float32)
    g = rt.Graph([rt.ValueInfo("x", (None, cin, 7, 9))], ["y"],
                 [rt.Node("Conv", ["x", "w", "b"], ["y"], geom, name="c")],
                 {"w": rt.Weight.f32(w), "b": rt.Weight.f32(rng.standard_normal(6))})
    v = rng.standard_normal((2, cin, 7, 9)).astype(np.float32)
    q = rt.quantize(g, "int8", calibration=v if static else None, progress=False)
    got = rt.compile(q).run(v).astype(np.float64)
    want = ref(q, v)
    if static:
        # the input on the uint8 grid as kernels.h specifies it (x times the float32
        # reciprocal of the scale, rounded half to even: a value on a tie may land one
        # step from x / scale), then the int8 conv in float64: only float32 rounding of
        # the epilogue differs
        qn = next(n for n in q.nodes if n.op == "QDQ")
        s_, z_ = np.float32(qn.attrs["scale"]), qn.attrs["zero_point"]
        xq = (np.clip(np.rint(v * (np.float32(1) / s_)) + z_, 0, 255) - z_) * np.float64(s_)
        conv = next(n for n in q.nodes if n.op == "Conv").copy()
        conv.inputs[0] = "x"
        g2 = rt.Graph(q.inputs, ["y"], [conv], q.weights)
        want = run_reference(g2, xq)["y"]
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    else:
        step = (np.maximum(v.max(axis=(1, 2, 3)), 0) - np.minimum(v.min(axis=(1, 2, 3)), 0)) / 255
        wsum = np.abs(q.weights["w"].numpy()).sum(axis=(1, 2, 3))
        bound = 0.5 * step[:, None, None, None] * wsum[None, :, None, None] * 1.001 + 1e-5
        assert np.all(np.abs(got - want) <= bound)
