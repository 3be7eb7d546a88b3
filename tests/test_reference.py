"""The float64 reference evaluator against onnxruntime (single-op ONNX models built with
onnx.helper) and against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyruntime as rt
from pyruntime.graph import Graph, Node, ValueInfo, Weight
from pyruntime.reference import run_reference

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def onnx_run(nodes, x, inits, out="y", opset=20):
    """Run ONNX nodes on input 'x' with initializers `inits` through onnxruntime."""
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def ref_run(nodes, x, weights, out="y", batch_symbolic=True):
    shape = (None,) + x.shape[1:] if batch_symbolic else x.shape
    g = Graph([ValueInfo("x", shape)], [out], nodes,
              {k: Weight.f32(v) for k, v in weights.items()})
    y = run_reference(g, x)[out]
    assert y.dtype == np.float64
    return y


def close(ref, got, scale=1.0):
    assert ref.shape == got.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * scale)


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


CONV_CASES = [  # (N, C, H, W, O, KH, KW, strides, pads, dilations, group)
    (1, 1, 1, 1, 1, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (2, 3, 7, 5, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (1, 5, 11, 13, 7, 3, 2, (2, 3), (0, 1, 2, 0), (1, 1), 1),
    (2, 2, 9, 9, 3, 3, 3, (2, 1), (2, 2, 2, 2), (2, 3), 1),
    (3, 8, 6, 6, 8, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 8),
    (1, 7, 10, 9, 7, 5, 5, (2, 2), (2, 2, 2, 2), (1, 1), 7),
    (1, 4, 8, 8, 4, 3, 3, (2, 2), (0, 0, 1, 1), (2, 1), 4),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv(rng, case):
    n, c, h, w, o, kh, kw, s, p, d, g = case
    x, wt, b = f32(rng, n, c, h, w), f32(rng, o, c // g, kh, kw), f32(rng, o)
    attrs = {"strides": s, "pads": p, "dilations": d, "group": g}
    want = onnx_run([helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)], x,
                    {"w": wt, "b": b})
    got = ref_run([Node("Conv", ["x", "w", "b"], ["y"], attrs)], x, {"w": wt, "b": b})
    close(got, want, math.sqrt(c * kh * kw))


def test_conv_by_hand():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    w = np.array([[[[1, 0], [0, -1]]]], np.float32)  # x[i,j] - x[i+1,j+1] = -5 everywhere
    y = ref_run([Node("Conv", ["x", "w"], ["y"])], x, {"w": w})
    np.testing.assert_array_equal(y, np.full((1, 1, 3, 3), -5.0))


@pytest.mark.parametrize("n,k,m", [(1, 1, 1), (3, 7, 5), (4, 33, 17)])
def test_gemm(rng, n, k, m):
    x, w, b = f32(rng, n, k), f32(rng, k, m), f32(rng, m)
    want = onnx_run([helper.make_node("Gemm", ["x", "w", "b"], ["y"])], x, {"w": w, "b": b})
    got = ref_run([Node("Gemm", ["x", "w", "b"], ["y"])], x, {"w": w, "b": b})
    close(got, want, math.sqrt(k))
    np.testing.assert_allclose(got, x.astype(np.float64) @ w + b, rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 6)])
def test_batchnorm(rng, shape):
    c = shape[1]
    x = f32(rng, *shape)
    ws = {"s": f32(rng, c), "b": f32(rng, c), "m": f32(rng, c),
          "v": rng.uniform(0.1, 2.0, c).astype(np.float32)}
    attrs = {"epsilon": 1e-3}
    want = onnx_run([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                                      **attrs)], x, ws)
    got = ref_run([Node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], attrs)], x, ws)
    close(got, want, 10)


@pytest.mark.parametrize("op", ["Relu", "Sigmoid", "Tanh", "Gelu", "Identity"])
def test_unary(rng, op):
    x = (f32(rng, 3, 17) * 4).astype(np.float32)
    x[0, :3] = [-100, 100, 0]
    want = onnx_run([helper.make_node(op, ["x"], ["y"])], x, {})
    close(ref_run([Node(op, ["x"], ["y"])], x, {}), want)


def test_dropout_is_identity(rng):
    x = f32(rng, 2, 5)
    np.testing.assert_array_equal(ref_run([Node("Dropout", ["x"], ["y"])], x, {}), x)


@pytest.mark.parametrize("lo,hi", [(0.0, 6.0), (-math.inf, 0.5), (-1.0, math.inf)])
def test_clip(rng, lo, hi):
    x = f32(rng, 4, 9) * 5
    inits = {"lo": np.array(lo if lo != -math.inf else np.finfo(np.float32).min, np.float32),
             "hi": np.array(hi if hi != math.inf else np.finfo(np.float32).max, np.float32)}
    want = onnx_run([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], x, inits)
    close(ref_run([Node("Clip", ["x"], ["y"], {"min": lo, "max": hi})], x, {}), want)


@pytest.mark.parametrize("axis", [-1, 1, 0, 2])
def test_softmax(rng, axis):
    x = f32(rng, 2, 3, 5) * 3
    x[0, 0, 0] = 80.0  # must not overflow
    want = onnx_run([helper.make_node("Softmax", ["x"], ["y"], axis=axis)], x, {})
    close(ref_run([Node("Softmax", ["x"], ["y"], {"axis": axis})], x, {}), want)


POOL_CASES = [  # kernel, strides, pads, ceil_mode, dilations (max) / count_include_pad (avg)
    ((2, 2), (2, 2), (0, 0, 0, 0), 0, 1),
    ((3, 3), (2, 2), (1, 1, 1, 1), 0, 0),
    ((3, 3), (2, 2), (1, 1, 1, 1), 0, 1),
    ((3, 2), (2, 3), (0, 1, 2, 0), 1, 0),
    ((3, 3), (2, 2), (1, 0, 1, 0), 1, 1),
    ((2, 2), (2, 2), (1, 1, 1, 1), 1, 1),
    ((1, 1), (1, 1), (0, 0, 0, 0), 0, 1),
]


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("hw", [(7, 7), (8, 5)])
def test_maxpool(rng, case, hw):
    k, s, p, ceil, dil = case
    x = f32(rng, 2, 3, *hw)
    d = (1 + dil, 1)
    attrs = {"kernel_shape": k, "strides": s, "pads": p, "ceil_mode": ceil, "dilations": d}
    want = onnx_run([helper.make_node("MaxPool", ["x"], ["y"], **attrs)], x, {})
    close(ref_run([Node("MaxPool", ["x"], ["y"], attrs)], x, {}), want)


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("hw", [(7, 7), (8, 5)])
def test_avgpool(rng, case, hw):
    k, s, p, ceil, cip = case
    x = f32(rng, 2, 3, *hw)
    attrs = {"kernel_shape": k, "strides": s, "pads": p, "ceil_mode": ceil,
             "count_include_pad": cip}
    want = onnx_run([helper.make_node("AveragePool", ["x"], ["y"], **attrs)], x, {})
    close(ref_run([Node("AveragePool", ["x"], ["y"], attrs)], x, {}), want)


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("dil", [(2, 2), (2, 3)])
def test_avgpool_dilated(rng, case, dil):
    """Dilated windows, with count_include_pad and ceil_mode (AveragePool-19)."""
    k, s, p, ceil, cip = case
    x = f32(rng, 2, 3, 9, 10)
    attrs = {"kernel_shape": k, "strides": s, "pads": p, "ceil_mode": ceil,
             "count_include_pad": cip, "dilations": dil}
    want = onnx_run([helper.make_node("AveragePool", ["x"], ["y"], **attrs)], x, {})
    close(ref_run([Node("AveragePool", ["x"], ["y"], attrs)], x, {}), want)


def test_avgpool_dilated_by_hand():
    """3x3 input, 2x2 kernel dilated by 2: the one window reads the four corners."""
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    y = ref_run([Node("AveragePool", ["x"], ["y"], {"kernel_shape": (2, 2),
                                                      "dilations": (2, 2)})], x, {})
    np.testing.assert_array_equal(y, [[[[(0 + 2 + 6 + 8) / 4]]]])


@pytest.mark.parametrize("perm", [(1, 0), (0, 1)])
def test_transpose(rng, perm):
    x = f32(rng, 5, 7)
    want = onnx_run([helper.make_node("Transpose", ["x"], ["y"], perm=list(perm))], x, {})
    got = ref_run([Node("Transpose", ["x"], ["y"], {"perm": perm})], x, {},
                  batch_symbolic=False)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, x.T if perm == (1, 0) else x)


def test_avgpool_by_hand():
    x = np.ones((1, 1, 2, 2), np.float32)
    a = {"kernel_shape": (2, 2), "pads": (1, 1, 0, 0)}
    y0 = ref_run([Node("AveragePool", ["x"], ["y"], a)], x, {})
    y1 = ref_run([Node("AveragePool", ["x"], ["y"], {**a, "count_include_pad": 1})], x, {})
    np.testing.assert_array_equal(y0, np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(y1, [[[[0.25, 0.5], [0.5, 1.0]]]])


def test_global_avgpool_flatten_reshape(rng):
    x = f32(rng, 2, 4, 3, 5)
    want = onnx_run([helper.make_node("GlobalAveragePool", ["x"], ["g"]),
                     helper.make_node("Flatten", ["g"], ["f"], axis=1),
                     helper.make_node("Reshape", ["f", "shp"], ["y"])], x,
                    {"shp": np.array([0, -1], np.int64)})
    got = ref_run([Node("GlobalAveragePool", ["x"], ["g"]), Node("Flatten", ["g"], ["f"]),
                   Node("Reshape", ["f"], ["y"], {"shape": (0, -1)})], x, {})
    close(got, want)
    for axis in (0, 2, -1):
        want = onnx_run([helper.make_node("Flatten", ["x"], ["y"], axis=axis)], x, {})
        close(ref_run([Node("Flatten", ["x"], ["y"], {"axis": axis})], x, {},
                      batch_symbolic=False), want)
    want = onnx_run([helper.make_node("Reshape", ["x", "shp"], ["y"])], x,
                    {"shp": np.array([-1, 15], np.int64)})
    close(ref_run([Node("Reshape", ["x"], ["y"], {"shape": (-1, 15)})], x, {}), want)


@pytest.mark.parametrize("bshape", [(4, 1, 1), (5,), (1, 4, 3, 5), (3, 1)])
def test_add_broadcast(rng, bshape):
    x, b = f32(rng, 2, 4, 3, 5), f32(rng, *bshape)
    want = onnx_run([helper.make_node("Add", ["x", "b"], ["y"])], x, {"b": b})
    close(ref_run([Node("Add", ["x", "b"], ["y"])], x, {"b": b}), want)


ACTS = {"relu": ("Relu", {}), "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}),
        "gelu": ("Gelu", {}), "clip": ("Clip", {"act_min": -0.5, "act_max": 0.75})}


@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("act", [None, *ACTS])
@pytest.mark.parametrize("op", ["Conv", "Gemm"])
def test_fused_epilogue(rng, op, act, after):
    """A fused Conv/Gemm equals the unfused ONNX chain op -> (Add R) -> act (-> Add R)."""
    if op == "Conv":
        x, w, b = f32(rng, 2, 3, 6, 5), f32(rng, 4, 3, 3, 3), f32(rng, 4)
        attrs, ox = {"pads": (1, 1, 1, 1)}, {"pads": [1, 1, 1, 1]}
        rshape = (2, 4, 6, 5)
    else:
        x, w, b = f32(rng, 3, 6), f32(rng, 6, 5), f32(rng, 5)
        attrs, ox, rshape = {}, {}, (3, 5)
    r = f32(rng, *rshape)
    chain = [helper.make_node(op, ["x", "w", "b"], ["p"], **ox)]
    last = "p"
    if not after:
        chain.append(helper.make_node("Add", [last, "r"], ["pr"]))
        last = "pr"
    if act is not None:
        name, extra = ACTS[act]
        if name == "Clip":
            chain.append(helper.make_node("Clip", [last, "lo", "hi"], ["a"]))
        else:
            chain.append(helper.make_node(name, [last], ["a"]))
        last = "a"
    if after:
        chain.append(helper.make_node("Add", [last, "r"], ["ar"]))
        last = "ar"
    chain.append(helper.make_node("Identity", [last], ["y"]))
    inits = {"w": w, "b": b, "r": r, "lo": np.float32(-0.5), "hi": np.float32(0.75)}
    want = onnx_run(chain, x, inits)
    fused = dict(attrs, residual=True, residual_after_act=after)
    if act is not None:
        fused.update(activation=act, **ACTS[act][1])
    nodes = [Node("Identity", ["r"], ["rr"]),  # R is any value; here a weight's copy
             Node(op, ["x", "w", "b", "rr"], ["y"], fused)]
    got = ref_run(nodes, x, {"w": w, "b": b, "r": r}, batch_symbolic=False)
    close(got, want, 5)


def test_fused_without_residual_or_bias(rng):
    x, w = f32(rng, 3, 4), f32(rng, 4, 2)
    got = ref_run([Node("Gemm", ["x", "w"], ["y"], {"activation": "relu"})], x, {"w": w})
    np.testing.assert_allclose(got, np.maximum(x.astype(np.float64) @ w, 0), rtol=1e-12)


def test_feeds_errors(rng):
    g = Graph([ValueInfo("a", (None, 3)), ValueInfo("b", (None, 3))], ["y"],
              [Node("Add", ["a", "b"], ["y"])])
    x = f32(rng, 2, 3)
    np.testing.assert_allclose(run_reference(g, {"a": x, "b": x})["y"], 2 * x)
    with pytest.raises(rt.InputError, match="dict"):
        run_reference(g, x)
    with pytest.raises(rt.InputError, match="expected inputs"):
        run_reference(g, {"a": x})
    with pytest.raises(rt.ShapeError, match="'b'"):
        run_reference(g, {"a": x, "b": f32(rng, 2, 4)})
    with pytest.raises(rt.ShapeError):
        run_reference(g, {"a": x, "b": f32(rng, 2, 3, 1)})
