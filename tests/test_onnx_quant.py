"""Quantized ONNX in and out (pyruntime/onnx/convert_quant.py, export.py).

Float models are quantized by onnxruntime.quantization (quantize_static in the QDQ and
QOperator formats, per-tensor and per-channel, uint8 and int8 activations;
quantize_dynamic), imported, and checked three ways: the IR has the QDQ nodes / qc8
weights the format implies; `run_reference(imported)` agrees with onnxruntime running
the quantized file; and the round trip imported -> rt.to_onnx -> onnxruntime agrees too.

Bounds.
- Static (QDQ nodes everywhere): onnxruntime and the reference compute the same
  quantized graph. The integer accumulations are exact on both sides; they differ only
  in rounding the requantization (onnxruntime multiplies by a float32 x_s * w_s / y_s,
  the reference divides in float64): relative 2^-23 of values below 256 steps, i.e. under
  1e-4 of a step. An element therefore differs only when its exact value is within that
  of a rounding tie, and then by one step of its grid. At the output that is one step
  of y_scale; a tie upstream moves the output by its step times the gain of the layers
  after it, and lands on the output grid again: we allow 2 steps of y_scale in total and
  require that almost every element (> 99%) agrees to a tenth of a step.
- Dynamic (quantize_dynamic: the IR keeps float activations): onnxruntime quantizes the
  input of each Conv/Gemm at run time (uint8, scale range / 255, or int8 symmetric per
  block, scale max|x| / 127 when its optimizer fuses MatMulNBits), an error of at most
  s / 2 <= max|x| / 254 per element. `_dynamic_bound` propagates it through the graph:
  a Conv/Gemm with weight W maps an input error e to A (e + s / 2) with A the largest
  absolute row sum of W over one output channel; Relu keeps it, Add adds the two, the
  pools and Flatten keep the largest. That worst case is loose (every rounding aligned
  with the weights' signs), so the test uses the smaller of it and 6 standard
  deviations of the same propagation with independent roundings (see _dynamic_bound).
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
oq = pytest.importorskip("onnxruntime.quantization")

from onnx import TensorProto as T  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

import pyruntime as rt  # noqa: E402
from pyruntime import formats  # noqa: E402
from pyruntime.graph import Graph  # noqa: E402
from pyruntime.reference import run_reference  # noqa: E402

RNG_SEED = 7


# ------------------------------------------------------------------ models
def _cnn() -> "onnx.ModelProto":
    """Conv -> Relu -> depthwise Conv -> Relu, residual Add, GAP, Flatten, Gemm."""
    r = np.random.default_rng(0)
    f = lambda *s: (r.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    inits = [nh.from_array(f(8, 3, 3, 3), "w1"), nh.from_array(f(8) / 3, "b1"),
             nh.from_array(f(8, 1, 3, 3), "w2"), nh.from_array(f(8) / 3, "b2"),
             nh.from_array(f(8, 5), "w3"), nh.from_array(f(5) / 3, "b3")]
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=8),
             h.make_node("Relu", ["c2"], ["r2"]),
             h.make_node("Add", ["r1", "r2"], ["a"]),
             h.make_node("GlobalAveragePool", ["a"], ["g"]),
             h.make_node("Flatten", ["g"], ["fl"]),
             h.make_node("Gemm", ["fl", "w3", "b3"], ["y"])]
    g = h.make_graph(nodes, "cnn", [h.make_tensor_value_info("x", T.FLOAT, ["N", 3, 8, 8])],
                     [h.make_tensor_value_info("y", T.FLOAT, ["N", 5])], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def _mlp_matmul() -> "onnx.ModelProto":
    """MatMul + Add layers (PyTorch's Linear spelling): QOperator gives QLinearMatMul."""
    r = np.random.default_rng(1)
    inits = [nh.from_array((r.standard_normal((16, 12)) * 0.3).astype(np.float32), "w1"),
             nh.from_array((r.standard_normal(12) * 0.1).astype(np.float32), "b1"),
             nh.from_array((r.standard_normal((12, 4)) * 0.3).astype(np.float32), "w2")]
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m1"]), h.make_node("Add", ["m1", "b1"], ["a1"]),
             h.make_node("Relu", ["a1"], ["r1"]), h.make_node("MatMul", ["r1", "w2"], ["y"])]
    g = h.make_graph(nodes, "mlp", [h.make_tensor_value_info("x", T.FLOAT, ["N", 16])],
                     [h.make_tensor_value_info("y", T.FLOAT, ["N", 4])], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def _models() -> dict:
    """tiny_cnn keeps its BatchNorm nodes in ONNX: quantize_static puts a Q/DQ pair between
    each conv and its BatchNorm (no folding), so its residual Add reads a QDQ tensor that
    an int8 conv reads too, as a float op; and it has an AveragePool (QOperator:
    com.microsoft QLinearAveragePool)."""
    return {"cnn": (_cnn(), (3, 8, 8)), "mlp": (_mlp_matmul(), (16,)),
            "zoo_mlp": (rt.to_onnx(rt.zoo.mlp((20, 16, 6))), (20,)),
            "tiny_cnn": (_tiny_cnn(), (3, 8, 8))}


def _tiny_cnn() -> "onnx.ModelProto":
    """rt.zoo.tiny_cnn with its 3x3 AveragePool counting the padding: every window then
    averages 9 values, whose mean is never half-way between two steps (borders of 4 or 6
    values make exact ties, which engines may break either way)."""
    g = rt.zoo.tiny_cnn(seed=1, input_shape=(3, 8, 8))
    pool = next(n for n in g.nodes if n.op == "AveragePool")
    assert tuple(pool.attrs["kernel_shape"]) == (3, 3)
    pool.attrs["count_include_pad"] = 1
    return rt.to_onnx(g)


class _Reader(oq.CalibrationDataReader):
    def __init__(self, name: str, shape: tuple) -> None:
        r = np.random.default_rng(3)
        self.it = iter([{name: r.standard_normal((4, *shape)).astype(np.float32)}
                        for _ in range(8)])

    def get_next(self):
        return next(self.it, None)


def _input_name(model) -> str:
    return model.graph.input[0].name


def _static(tmp_path, key: str, fmt: str, per_channel: bool, act: str) -> tuple:
    model, shape = _models()[key]
    src, dst = tmp_path / f"{key}.onnx", tmp_path / f"{key}_{fmt}_{per_channel}_{act}.onnx"
    onnx.save(model, src)
    oq.quantize_static(str(src), str(dst), _Reader(_input_name(model), shape),
                       quant_format=getattr(oq.QuantFormat, fmt), per_channel=per_channel,
                       activation_type=getattr(oq.QuantType, act),
                       weight_type=oq.QuantType.QInt8)
    return onnx.load(str(dst)), shape


def _ort(model, feeds: dict, optimize: bool = True) -> np.ndarray:
    so = ort.SessionOptions()
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)[0]


def _feeds(model, shape: tuple) -> dict:
    r = np.random.default_rng(RNG_SEED)
    return {_input_name(model): r.standard_normal((6, *shape)).astype(np.float32)}


def _out_qdq(g: Graph):
    out = g.outputs[0]
    node = next(n for n in g.nodes if out in n.outputs)
    assert node.op == "QDQ", f"output {out!r} comes from {node.op}, expected a QDQ node"
    return node.attrs


def _check_static(got: np.ndarray, want: np.ndarray, y_scale: float) -> None:
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    assert err.max() <= 2 * y_scale * (1 + 1e-5), (err.max(), y_scale)
    assert np.mean(err <= 0.1 * y_scale) > 0.99, np.mean(err <= 0.1 * y_scale)


# ------------------------------------------------------------- static
@pytest.mark.parametrize("key", ["cnn", "mlp", "zoo_mlp", "tiny_cnn"])
@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("act", ["QUInt8", "QInt8"])
def test_static_import_matches_onnxruntime(tmp_path, key, fmt, per_channel, act) -> None:
    qmodel, shape = _static(tmp_path, key, fmt, per_channel, act)
    g = rt.load_onnx(qmodel)
    layers = [n for n in g.nodes if n.op in ("Conv", "Gemm")]
    assert layers and all(g.weights[n.inputs[1]].format == "qc8" for n in layers)
    dt = "uint8" if act == "QUInt8" else "int8"
    qdqs = [n for n in g.nodes if n.op == "QDQ"]
    assert qdqs and all(n.attrs["dtype"] == dt for n in qdqs)
    for n in layers:  # every quantized layer reads a QDQ'd input
        prod = next(p for p in g.nodes if n.inputs[0] in p.outputs) \
            if n.inputs[0] not in {v.name for v in g.inputs} else None
        assert prod is not None and prod.op in ("QDQ", "Flatten", "Reshape"), n
    if per_channel:
        scales = [g.weights[n.inputs[1]].arrays["scale"] for n in layers]
        assert any(len(set(s.tolist())) > 1 for s in scales)
    for n in layers:
        w = g.weights[n.inputs[1]]
        assert w.attrs["axis"] == formats.OUTPUT_AXIS[n.op]
    feeds = _feeds(qmodel, shape)
    want = _ort(qmodel, feeds)
    got = run_reference(g, {g.inputs[0].name: feeds[_input_name(qmodel)]})[g.outputs[0]]
    y_scale = float(_out_qdq(g)["scale"])
    _check_static(got, want, y_scale)
    # the CPU backend's int8 plan on the imported graph, at every ISA it has
    x = feeds[_input_name(qmodel)]
    for isa in rt.info()["supported_isas"]:
        _check_static(rt.compile(g, isa=isa).run(x), want, y_scale)
    # round trip: the IR back to ONNX (int8 initializers + DequantizeLinear, Q/DQ pairs)
    back = rt.to_onnx(g)
    ops = [n.op_type for n in back.graph.node]
    assert ops.count("QuantizeLinear") == len(qdqs)
    assert ops.count("DequantizeLinear") == len(qdqs) + len(layers)
    assert {i.data_type for i in back.graph.initializer} >= {T.INT8}
    rt_feeds = {g.inputs[0].name: feeds[_input_name(qmodel)]}
    _check_static(_ort(back, rt_feeds), got, y_scale)
    # and the exported file imports to the same graph numbers
    again = rt.load_onnx(back)
    np.testing.assert_array_equal(run_reference(again, rt_feeds)[again.outputs[0]], got)


def test_qoperator_ops_found(tmp_path) -> None:
    """What quantize_static's QOperator format emits for the test models (the
    com.microsoft ops included), so the importer's list is checked against it."""
    cnn, _ = _static(tmp_path, "cnn", "QOperator", False, "QUInt8")
    mlp, _ = _static(tmp_path, "mlp", "QOperator", True, "QInt8")
    tiny, _ = _static(tmp_path, "tiny_cnn", "QOperator", True, "QUInt8")
    ops = {(n.domain, n.op_type) for m in (cnn, mlp, tiny) for n in m.graph.node}
    assert ("", "QLinearConv") in ops and ("", "QLinearMatMul") in ops
    assert ("com.microsoft", "QLinearAdd") in ops
    assert ("com.microsoft", "QLinearGlobalAveragePool") in ops
    assert ("com.microsoft", "QLinearAveragePool") in ops


# ------------------------------------------------------------ dynamic
def _dynamic_bound(g: Graph, feeds: dict) -> tuple[float, float]:
    """(worst case, standard deviation) of the output error of run-time activation
    quantization (module doc). The rounding errors of one quantized input are spread
    over [-s/2, s/2] (variance s^2 / 12) and independent across its elements, so a layer
    turns an input error of deviation d into one of deviation |w_row|_2 sqrt(d^2 +
    s^2 / 12); Add sums deviations (correlated at worst), the rest keep the largest."""
    every = [o for n in g.nodes for o in n.outputs]
    env = {**{k: np.asarray(v, np.float64) for k, v in feeds.items()},
           **run_reference(Graph(g.inputs, every, g.nodes, g.weights, g.name), feeds)}
    err = {k: (0.0, 0.0) for k in feeds}
    for n in g.nodes:
        ins = [err.get(x, (0.0, 0.0)) for x in n.inputs if x and x not in g.weights]
        if n.op in ("Conv", "Gemm"):
            ax = formats.OUTPUT_AXIS[n.op]
            w = formats.dense_f32(g.weights[n.inputs[1]]).astype(np.float64)
            m = np.moveaxis(w, ax, 0).reshape(w.shape[ax], -1)
            a1, a2 = float(np.abs(m).sum(axis=1).max()), float(np.sqrt((m * m).sum(1)).max())
            (e, d), rest = ins[0], ins[1:]
            s = (float(np.abs(env[n.inputs[0]]).max()) + e) / 127.0
            e, d = a1 * (e + s / 2), a2 * float(np.sqrt(d * d + s * s / 12))
            if n.attrs.get("residual"):
                e, d = e + rest[-1][0], d + rest[-1][1]
        elif n.op == "Add":
            e, d = sum(x[0] for x in ins), sum(x[1] for x in ins)
        else:
            e, d = (max(x[0] for x in ins), max(x[1] for x in ins)) if ins else (0.0, 0.0)
        err[n.outputs[0]] = (e, d)
    return err[g.outputs[0]]


@pytest.mark.parametrize("key", ["cnn", "mlp", "zoo_mlp"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_dynamic_import_matches_onnxruntime(tmp_path, key, per_channel) -> None:
    model, shape = _models()[key]
    src, dst = tmp_path / "f.onnx", tmp_path / "d.onnx"
    onnx.save(model, src)
    oq.quantize_dynamic(str(src), str(dst), weight_type=oq.QuantType.QInt8,
                        per_channel=per_channel)
    qmodel = onnx.load(str(dst))
    assert {"DynamicQuantizeLinear"} <= {n.op_type for n in qmodel.graph.node}
    g = rt.load_onnx(qmodel)
    assert not any(n.op == "QDQ" for n in g.nodes)
    layers = [n for n in g.nodes if n.op in ("Conv", "Gemm")]
    assert layers and all(g.weights[n.inputs[1]].format == "qc8" for n in layers)
    feeds = _feeds(qmodel, shape)
    rfeeds = {g.inputs[0].name: feeds[_input_name(qmodel)]}
    got = run_reference(g, rfeeds)[g.outputs[0]]
    worst, dev = _dynamic_bound(g, rfeeds)
    # the worst case holds always; 6 deviations of the (sum of many independent
    # roundings, near normal) error is the sharp check: exceeded with odds ~1e-9
    bound = min(worst, 6 * dev) + 1e-5
    want = _ort(qmodel, feeds)
    assert np.abs(got - want).max() <= bound, (np.abs(got - want).max(), bound)
    back = rt.to_onnx(g)
    assert np.abs(_ort(back, rfeeds) - got).max() <= bound, bound
    # without onnxruntime's fusions the exported graph is the IR's float computation
    exact = _ort(back, rfeeds, optimize=False)
    np.testing.assert_allclose(exact, got, rtol=1e-5, atol=1e-5 * np.abs(got).max())


def test_dynamic_uint8_weights_are_refused_by_name(tmp_path) -> None:
    src, dst = tmp_path / "f.onnx", tmp_path / "d.onnx"
    onnx.save(_mlp_matmul(), src)
    oq.quantize_dynamic(str(src), str(dst), weight_type=oq.QuantType.QUInt8)
    with pytest.raises(rt.UnsupportedOpError, match=r"MatMulInteger node .*uint8"):
        rt.load_onnx(str(dst))


# ----------------------------------------------------- hand-made models
def _qdq_matmul(scale=0.05, zp=np.uint8(128), w_scale=None, w_zp=None, axis=1,
                w=None, q_attrs=None, dq_axis_attr=True, opset=17):
    """x -> Q -> DQ -> MatMul(DQ(int8 w)) -> y, every parameter replaceable."""
    r = np.random.default_rng(2)
    w = r.integers(-127, 128, (6, 4)).astype(np.int8) if w is None else w
    w_scale = (r.uniform(0.01, 0.02, 4).astype(np.float32) if w_scale is None else w_scale)
    w_zp = np.zeros(np.shape(w_scale), np.int8) if w_zp is None else w_zp
    inits = [nh.from_array(np.asarray(scale, np.float32), "xs"),
             nh.from_array(np.asarray(zp), "xz"), nh.from_array(w, "wq"),
             nh.from_array(np.asarray(w_scale, np.float32), "ws"),
             nh.from_array(np.asarray(w_zp), "wz")]
    nodes = [h.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], **(q_attrs or {})),
             h.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             h.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"],
                         **({"axis": axis} if dq_axis_attr else {})),
             h.make_node("MatMul", ["xd", "wd"], ["y"])]
    g = h.make_graph(nodes, "m", [h.make_tensor_value_info("x", T.FLOAT, ["N", 6])],
                     [h.make_tensor_value_info("y", T.FLOAT, ["N", 4])], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [13, 17, 19, 21])
def test_hand_made_qdq_matmul(opset) -> None:
    m = _qdq_matmul(opset=opset)
    g = rt.load_onnx(m)
    assert [n.op for n in g.nodes] == ["QDQ", "Gemm"]
    assert g.weights[g.nodes[1].inputs[1]].format == "qc8"
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32) * 3
    np.testing.assert_allclose(run_reference(g, {"x": x})["y"], _ort(m, {"x": x}),
                               rtol=1e-5, atol=1e-5)


def test_weight_with_minus_128_or_zero_point_is_dense_f32() -> None:
    w = np.full((6, 4), -128, np.int8)
    g = rt.load_onnx(_qdq_matmul(w=w))
    assert g.weights[g.nodes[1].inputs[1]].format == "f32"
    g = rt.load_onnx(_qdq_matmul(w_zp=np.full(4, 3, np.int8)))
    wt = g.weights[g.nodes[1].inputs[1]]
    assert wt.format == "f32"
    x = np.ones((1, 6), np.float32)
    m = _qdq_matmul(w_zp=np.full(4, 3, np.int8))
    np.testing.assert_allclose(run_reference(g, {"x": x})["y"], _ort(m, {"x": x}), rtol=1e-5)


@pytest.mark.parametrize("bad, err", [
    (dict(scale=0.0), "finite and > 0"), (dict(scale=-0.1), "finite and > 0"),
    (dict(scale=np.nan), "finite and > 0"),
    (dict(w_scale=np.array([0.1, 0.0, 0.1, 0.1], np.float32)), "finite and > 0"),
    (dict(w_scale=np.full(3, 0.1, np.float32)), r"expected a scalar or \[4\]"),
    (dict(w_zp=np.zeros(4, np.uint8)), "must match"),
    (dict(axis=2), "axis 2 is out of range"),
    (dict(axis=-3), "axis -3 is out of range"),
])
def test_malformed_parameters_raise_typed_errors(bad, err) -> None:
    with pytest.raises(rt.ModelFormatError, match=err):
        rt.load_onnx(_qdq_matmul(**bad))


def test_activation_zero_point_dtype_and_shape() -> None:
    with pytest.raises(rt.UnsupportedOpError, match="int16"):
        rt.load_onnx(_qdq_matmul(zp=np.int16(0), opset=21))
    with pytest.raises(rt.UnsupportedOpError, match="per-tensor"):
        rt.load_onnx(_qdq_matmul(scale=np.full(6, 0.1, np.float32),
                                 zp=np.zeros(6, np.uint8)))
    with pytest.raises(rt.ModelFormatError, match="expected an integer type"):
        rt.load_onnx(_qdq_matmul(zp=np.float32(0)))


@pytest.mark.parametrize("attrs, err", [(dict(block_size=2), "block_size"),
                                        (dict(saturate=0), "saturate=0")])
def test_unrepresentable_quantize_attributes(attrs, err) -> None:
    with pytest.raises(rt.UnsupportedOpError, match=err):
        rt.load_onnx(_qdq_matmul(q_attrs=attrs, opset=21))


def test_integer_outputs_and_unpaired_nodes_are_refused() -> None:
    g = h.make_graph([h.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], "q",
                     [h.make_tensor_value_info("x", T.FLOAT, ["N", 4])],
                     [h.make_tensor_value_info("y", T.UINT8, ["N", 4])],
                     [nh.from_array(np.float32(0.1), "s"), nh.from_array(np.uint8(3), "z")])
    with pytest.raises(rt.UnsupportedOpError, match="graph output 'y'.*integer"):
        rt.load_onnx(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]))
    # a DequantizeLinear reading with other parameters than its QuantizeLinear wrote
    m = _qdq_matmul()
    m.graph.node[1].input[1] = "ws"
    m.graph.node[1].input[2] = ""
    with pytest.raises(rt.Error):
        rt.load_onnx(m)


def test_export_per_tensor_and_old_opset() -> None:
    """Equal scales export as a per-tensor DequantizeLinear; per-axis needs opset 13 (at
    11 the dense view is written)."""
    g = rt.zoo.mlp((8, 4))
    w = next(iter(n.inputs[1] for n in g.nodes if n.op == "Gemm"))
    dense = g.weights[w].numpy()
    s = np.float32(np.abs(dense).max() / 127)
    g.weights[w] = rt.Weight("qc8", {"data": np.clip(np.rint(dense / s), -127, 127)
                                     .astype(np.int8), "scale": np.full(4, s, np.float32)},
                             attrs={"axis": 1})
    m = rt.to_onnx(g)
    dq = [n for n in m.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dq) == 1 and not dq[0].attribute
    g.weights[w] = rt.Weight.qc8(dense)
    m11 = rt.to_onnx(g, opset=11)
    assert not any(n.op_type == "DequantizeLinear" for n in m11.graph.node)
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    for m in (rt.to_onnx(g), m11):
        np.testing.assert_allclose(_ort(m, {"input": x}, optimize=False),
                                   run_reference(g, x)[g.outputs[0]], rtol=1e-5, atol=1e-6)
