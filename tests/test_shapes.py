"""Validation, topological order and shape inference of the graph IR."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyruntime as rt
from pyruntime.graph import Graph, Node, ValueInfo, Weight
from pyruntime.shapes import WeightShapeError, infer_shapes, node_attrs, toposort, validate


def W(*shape):
    return Weight.f32(np.zeros(shape))


def g1(nodes, weights=None, shape=(None, 3, 8, 8), outputs=None):
    return Graph([ValueInfo("x", shape)], outputs or [nodes[-1].outputs[0]], nodes,
                 weights or {})


def test_conv_pool_chain_shapes():
    g = g1([Node("Conv", ["x", "w", "b"], ["c"], {"strides": (2, 2), "pads": (1, 1, 1, 1)},
                 "conv"),
            Node("Relu", ["c"], ["r"]),
            Node("MaxPool", ["r"], ["p"], {"kernel_shape": (3, 3), "strides": (2, 2),
                                           "ceil_mode": 1}),
            Node("GlobalAveragePool", ["p"], ["gap"]),
            Node("Flatten", ["gap"], ["f"]),
            Node("Gemm", ["f", "wg", "bg"], ["y"]),
            Node("Softmax", ["y"], ["s"])],
           {"w": W(16, 3, 3, 3), "b": W(16), "wg": W(16, 10), "bg": W(10)})
    s = g.infer_shapes()
    assert s["c"] == (None, 16, 4, 4)
    assert s["p"] == (None, 16, 2, 2)  # ceil((4-3)/2)+1 = 2
    assert s["gap"] == (None, 16, 1, 1)
    assert s["f"] == (None, 16)
    assert s["s"] == (None, 10)
    assert "w" not in s and s["x"] == (None, 3, 8, 8)
    g.validate()
    assert "Conv" in g.summary() and "nodes=7" in repr(g)


@pytest.mark.parametrize("h,k,s,d,p0,p1", [(7, 3, 1, 1, 0, 0), (7, 3, 2, 1, 1, 1),
                                            (10, 3, 3, 2, 2, 0), (5, 5, 1, 1, 2, 2),
                                            (1, 1, 1, 1, 0, 0), (13, 2, 5, 3, 1, 0)])
def test_conv_output_formula(h, k, s, d, p0, p1):
    g = g1([Node("Conv", ["x", "w"], ["y"], {"strides": (s, 1), "pads": (p0, 0, p1, 0),
                                              "dilations": (d, 1)})],
           {"w": W(4, 2, k, 1)}, shape=(2, 2, h, 3))
    assert g.infer_shapes()["y"] == (2, 4, (h + p0 + p1 - d * (k - 1) - 1) // s + 1, 3)


@pytest.mark.parametrize("ceil,h,expect", [(0, 6, 2), (1, 6, 3), (1, 5, 2), (0, 5, 2)])
def test_pool_ceil_mode(ceil, h, expect):
    # kernel 3 stride 2: h=6 -> floor(3/2)+1 = 2, ceil(3/2)+1 = 3; h=5 -> 2 either way.
    g = g1([Node("AveragePool", ["x"], ["y"], {"kernel_shape": (3, 3), "strides": (2, 2),
                                               "ceil_mode": ceil})], shape=(1, 1, h, h))
    assert g.infer_shapes()["y"] == (1, 1, expect, expect)


def test_avgpool_dilations():
    # h=9, k=3 dilated by 2 (extent 5), stride 2: floor(4/2)+1 = 3; w=8, k=2 dil 3: 8-4+1 = 5
    g = g1([Node("AveragePool", ["x"], ["y"], {"kernel_shape": (3, 2), "strides": (2, 1),
                                               "dilations": (2, 3)})], shape=(1, 1, 9, 8))
    assert g.infer_shapes()["y"] == (1, 1, 3, 5)
    bad = g1([Node("AveragePool", ["x"], ["y"], {"kernel_shape": (3, 3),
                                                 "dilations": (4, 1)})], shape=(1, 1, 8, 8))
    with pytest.raises(rt.ShapeError, match="dilated kernel 9"):
        validate(bad)


@pytest.mark.parametrize("shape,perm,out", [((5, 3), (1, 0), (3, 5)), ((5, 3), (0, 1), (5, 3)),
                                            ((None, 3), (0, 1), (None, 3))])
def test_transpose(shape, perm, out):
    g = g1([Node("Transpose", ["x"], ["y"], {"perm": perm})], shape=shape)
    assert g.infer_shapes()["y"] == out


def test_transpose_default_perm_and_errors():
    assert g1([Node("Transpose", ["x"], ["y"])], shape=(4, 2)).infer_shapes()["y"] == (2, 4)
    with pytest.raises(rt.ShapeError, match="symbolic batch to stay the first dim"):
        validate(g1([Node("Transpose", ["x"], ["y"])], shape=(None, 2)))
    with pytest.raises(rt.ShapeError, match="rank 2"):
        validate(g1([Node("Transpose", ["x"], ["y"])], shape=(2, 3, 4)))
    for perm, match in (((1, 1), "permutation"), ((0, 2), "permutation"),
                        ((2, 0, 1), "2 integers")):
        with pytest.raises(rt.GraphError, match=match):
            validate(g1([Node("Transpose", ["x"], ["y"], {"perm": perm})], shape=(2, 3)))


def test_pool_ceil_mode_last_window_must_start_inside():
    # h=5, k=2, s=2, pads 1/1: span=5, ceil -> 4 windows, but the 4th starts at 6 >= 5+1.
    g = g1([Node("MaxPool", ["x"], ["y"], {"kernel_shape": (2, 2), "strides": (2, 2),
                                           "pads": (1, 1, 1, 1), "ceil_mode": 1})],
           shape=(1, 1, 5, 5))
    assert g.infer_shapes()["y"] == (1, 1, 3, 3)


@pytest.mark.parametrize("a,b,out", [((None, 4), (4,), (None, 4)), ((None, 4), (1, 4), (None, 4)),
                                     ((None, 3, 1, 5), (3, 4, 1), (None, 3, 4, 5)),
                                     ((2, 1), (1, 5), (2, 5)), ((None, 4), (None, 4), (None, 4))])
def test_add_broadcasting(a, b, out):
    g = Graph([ValueInfo("a", a), ValueInfo("b", b)], ["y"], [Node("Add", ["a", "b"], ["y"])])
    assert g.infer_shapes()["y"] == out


@pytest.mark.parametrize("a,b", [((None, 4), (3,)), ((None, 4), (3, 4)), ((None, 4), (2, 1, 4))])
def test_add_mismatch(a, b):
    g = Graph([ValueInfo("a", a), ValueInfo("b", b)], ["y"], [Node("Add", ["a", "b"], ["y"])])
    with pytest.raises(rt.ShapeError, match="Add"):
        g.infer_shapes()


@pytest.mark.parametrize("shape,target,out", [
    ((None, 4, 2, 2), (0, -1), (None, 16)), ((None, 4, 2, 2), (-1, 8), (None, 8)),
    ((None, 6), (0, 6), (None, 6)), ((3, 4, 2), (-1, 4), (6, 4)), ((3, 4, 2), (4, -1), (4, 6)),
    ((None, 2, 3), (-1, 0), (None, 2)), ((None, 16), (-1, 16), (None, 16))])
def test_reshape(shape, target, out):
    g = g1([Node("Reshape", ["x"], ["y"], {"shape": target})], shape=shape)
    assert g.infer_shapes()["y"] == out


@pytest.mark.parametrize("shape,target", [((None, 6), (-1, 4)), ((None, 8), (4, -1)),
                                          ((None, 8), (2, 4)), ((3, 4), (5, -1)),
                                          ((3, 4), (2, 5)), ((6,), (0, 0))])
def test_reshape_bad(shape, target):
    g = g1([Node("Reshape", ["x"], ["y"], {"shape": target})], shape=shape)
    with pytest.raises(rt.ShapeError, match="Reshape"):
        g.infer_shapes()


@pytest.mark.parametrize("axis,out", [(1, (None, 24)), (2, (None, 8)), (4, (None, 1)),
                                      (-1, (None, 4))])
def test_flatten(axis, out):
    g = g1([Node("Flatten", ["x"], ["y"], {"axis": axis})], shape=(None, 3, 2, 4))
    assert g.infer_shapes()["y"] == out


def test_flatten_axis0():
    assert g1([Node("Flatten", ["x"], ["y"], {"axis": 0})], shape=(2, 3)).infer_shapes()["y"] \
        == (1, 6)
    with pytest.raises(rt.ShapeError):
        g1([Node("Flatten", ["x"], ["y"], {"axis": 0})], shape=(None, 3)).infer_shapes()


def test_depthwise_and_bad_group():
    dw = g1([Node("Conv", ["x", "w"], ["y"], {"group": 3, "pads": (1, 1, 1, 1)})],
            {"w": W(3, 1, 3, 3)})
    assert dw.infer_shapes()["y"] == (None, 3, 8, 8)
    bad = g1([Node("Conv", ["x", "w"], ["y"], {"group": 3})], {"w": W(6, 1, 3, 3)})
    with pytest.raises(rt.GraphError, match="group"):
        bad.validate()


@pytest.mark.parametrize("op,inputs,weights,match", [
    ("Conv", ["x", "w"], {"w": W(4, 3, 3)}, "rank 4"),
    ("Conv", ["x", "w"], {"w": W(4, 2, 3, 3)}, "input channels 3"),
    ("Conv", ["x", "w", "b"], {"w": W(4, 3, 3, 3), "b": W(5)}, r"\(4,\)"),
])
def test_conv_weight_errors(op, inputs, weights, match):
    g = g1([Node(op, inputs, ["y"])], weights)
    with pytest.raises(WeightShapeError, match=match) as e:
        g.validate()
    assert isinstance(e.value, rt.GraphError) and isinstance(e.value, rt.ShapeError)


def test_gemm_weight_errors():
    mk = lambda w, b: g1([Node("Gemm", ["x", "w", "b"], ["y"])], {"w": W(*w), "b": W(*b)},
                         shape=(None, 5))
    mk((5, 7), (7,)).validate()
    with pytest.raises(rt.GraphError, match=r"\(5, N\)"):
        mk((7, 5), (5,)).validate()
    with pytest.raises(rt.GraphError, match=r"bias"):
        mk((5, 7), (5,)).validate()
    with pytest.raises(rt.ShapeError, match="rank 2"):
        g1([Node("Gemm", ["x", "w"], ["y"])], {"w": W(5, 7)}, shape=(None, 5, 1)).validate()


def test_gemm_weight_must_be_constant():
    g = Graph([ValueInfo("x", (None, 5)), ValueInfo("w", (5, 7))], ["y"],
              [Node("Gemm", ["x", "w"], ["y"])])
    with pytest.raises(rt.GraphError, match="a weight"):
        g.validate()


def test_batchnorm_shapes():
    ws = {k: W(3) for k in "sbmv"}
    g = g1([Node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])], ws)
    assert g.infer_shapes()["y"] == (None, 3, 8, 8)
    ws["v"] = W(4)
    with pytest.raises(rt.GraphError, match="'v'"):
        g1([Node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])], ws).validate()


def test_residual_shape_mismatch():
    g = g1([Node("Relu", ["x"], ["r"]),
            Node("Gemm", ["x", "w", "", "r"], ["y"], {"residual": True})],
           {"w": W(5, 4)}, shape=(None, 5))
    with pytest.raises(rt.ShapeError, match="residual"):
        g.infer_shapes()


def test_dangling_names_node_and_input():
    g = g1([Node("Relu", ["x"], ["a"], name="r1"), Node("Add", ["a", "ghost"], ["y"], name="add")])
    with pytest.raises(rt.GraphError, match=r"'add'.*'ghost'.*dangling"):
        validate(g)


def test_duplicates():
    with pytest.raises(rt.GraphError, match="duplicate value name 'a'"):
        validate(g1([Node("Relu", ["x"], ["a"]), Node("Relu", ["a"], ["a"])]))
    with pytest.raises(rt.GraphError, match="duplicate value name 'x'"):
        validate(g1([Node("Relu", ["x"], ["a"])], {"x": W(1)}))
    with pytest.raises(rt.GraphError, match="duplicate node name 'n'"):
        validate(g1([Node("Relu", ["x"], ["a"], name="n"), Node("Relu", ["a"], ["b"], name="n")]))


def test_weight_must_be_weight():
    with pytest.raises(rt.GraphError, match="Weight"):
        validate(g1([Node("Add", ["x", "b"], ["y"])], {"b": np.zeros(3)}))


def test_cycle_named():
    nodes = [Node("Relu", ["x"], ["a"], name="head"),
             Node("Add", ["a", "d"], ["b"], name="n1"),
             Node("Relu", ["b"], ["c"], name="n2"),
             Node("Relu", ["c"], ["d"], name="n3"),
             Node("Relu", ["d"], ["e"], name="tail")]
    with pytest.raises(rt.GraphError, match="cycle") as e:
        validate(g1(nodes))
    msg = str(e.value)
    assert all(n in msg for n in ("'n1'", "'n2'", "'n3'")) and "head" not in msg \
        and "tail" not in msg


def test_out_of_order_and_toposort_stable():
    nodes = [Node("Relu", ["x"], ["a"], name="a"), Node("Relu", ["b"], ["c"], name="c"),
             Node("Relu", ["x"], ["d"], name="d"), Node("Relu", ["a"], ["b"], name="b")]
    g = g1(nodes, outputs=["c", "d"])
    with pytest.raises(rt.GraphError, match="topological order"):
        validate(g)
    order = [n.name for n in toposort(g)]
    assert order == ["a", "d", "b", "c"]
    validate(Graph(g.inputs, g.outputs, toposort(g)))
    # already sorted -> identical order
    chain = [Node("Relu", ["x"], ["p"], name="p"), Node("Relu", ["x"], ["q"], name="q"),
             Node("Add", ["p", "q"], ["r"], name="r")]
    assert [n.name for n in toposort(g1(chain))] == ["p", "q", "r"]


def test_outputs_must_be_produced():
    with pytest.raises(rt.GraphError, match="'nope'"):
        validate(g1([Node("Relu", ["x"], ["a"])], outputs=["nope"]))
    with pytest.raises(rt.GraphError, match="weight"):
        validate(g1([Node("Relu", ["x"], ["a"])], {"w": W(1)}, outputs=["w"]))


def test_unsupported_ops_all_listed():
    g = g1([Node("Relu", ["x"], ["a"]), Node("LSTM", ["a"], ["b"], name="l1"),
            Node("Foo", ["b"], ["c"], name="f"), Node("LSTM", ["c"], ["d"], name="l2")])
    with pytest.raises(rt.UnsupportedOpError) as e:
        validate(g)
    msg = str(e.value)
    assert all(s in msg for s in ("LSTM", "Foo", "'l1'", "'l2'", "'f'"))


@pytest.mark.parametrize("op,attrs,match", [
    ("Conv", {"strides": (1,)}, "strides"), ("Conv", {"pads": (1, 1)}, "pads"),
    ("Conv", {"strides": (0, 1)}, ">= 1"), ("Conv", {"group": 0}, "positive"),
    ("Conv", {"dilations": (1, 1.5)}, "dilations"), ("Conv", {"activation": "swish"}, "swish"),
    ("Conv", {"act_min": 0.0}, "clip"), ("Conv", {"residual": True}, "residual"),
    ("Conv", {"residual_after_act": True}, "residual"), ("Conv", {"auto_pad": "SAME"}, "unknown"),
    ("MaxPool", {}, "kernel_shape"), ("MaxPool", {"kernel_shape": (0, 2)}, ">= 1"),
    ("MaxPool", {"kernel_shape": (2, 2), "pads": (2, 0, 0, 0)}, "pads"),
    ("AveragePool", {"kernel_shape": (2, 2), "count_include_pad": 2}, "count_include_pad"),
    ("Clip", {"min": 1.0, "max": 0.0}, "min"), ("Clip", {"min": math.nan}, "float"),
    ("BatchNormalization", {"epsilon": -1.0}, "epsilon"),
    ("Reshape", {"shape": (-1, -1)}, "-1"), ("Reshape", {"shape": (1, 2, 3)}, "2 integers"),
    ("Softmax", {"axis": 4}, "axis"), ("Flatten", {"axis": 5}, "axis"),
])
def test_bad_attributes(op, attrs, match):
    ins = {"Conv": ["x", "w"], "BatchNormalization": ["x", "s", "s", "s", "s"]}.get(op, ["x"])
    g = g1([Node(op, ins, ["y"], attrs)], {"w": W(4, 3, 3, 3), "s": W(3)})
    with pytest.raises(rt.GraphError, match=match):
        validate(g)


def test_arity_and_empty_inputs():
    with pytest.raises(rt.GraphError, match="inputs"):
        validate(g1([Node("Add", ["x"], ["y"])]))
    with pytest.raises(rt.GraphError, match="absent"):
        validate(g1([Node("Conv", ["x", ""], ["y"])]))
    ok = g1([Node("Relu", ["x"], ["r"]),
             Node("Conv", ["x", "w", "", "r"], ["y"], {"residual": True, "activation": "clip",
                                                       "act_min": 0.0, "act_max": 6.0})],
            {"w": W(3, 3, 1, 1)})
    ok.validate()
    assert node_attrs(ok.nodes[1])["strides"] == (1, 1)


@pytest.mark.parametrize("shape", [(0, 3), (3, None), (), (2.0, 3), (-1,)])
def test_bad_input_shapes(shape):
    with pytest.raises(rt.GraphError, match="shape"):
        validate(g1([Node("Relu", ["x"], ["y"])], shape=shape))


def test_inputs_may_be_outputs_and_conv_too_small():
    g = g1([Node("Relu", ["x"], ["y"])], outputs=["x", "y"])
    g.validate()
    small = g1([Node("Conv", ["x", "w"], ["y"])], {"w": W(2, 3, 9, 9)})
    with pytest.raises(rt.ShapeError, match="spatial"):
        small.validate()


# ---------------------------------------------------------------- property tests

hyp = pytest.importorskip("hypothesis")
st = hyp.strategies


@hyp.settings(max_examples=60, deadline=None)
@hyp.given(st.data())
def test_pool_conv_shapes_match_onnxruntime(data):
    """infer_shapes agrees with onnxruntime on random conv/pool geometry."""
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    op = data.draw(st.sampled_from(["Conv", "MaxPool", "AveragePool"]))
    k = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    d = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3))) if op != "AveragePool" \
        else (1, 1)
    ext = [d[i] * (k[i] - 1) + 1 for i in range(2)]
    lim = ext if op == "Conv" else k
    p = tuple(data.draw(st.integers(0, lim[i % 2] - 1)) for i in range(4))
    s = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    h = data.draw(st.integers(max(1, ext[0] - p[0] - p[2]), 12))
    w = data.draw(st.integers(max(1, ext[1] - p[1] - p[3]), 12))
    attrs = {"strides": s, "pads": p}
    if op != "AveragePool":
        attrs["dilations"] = d
    inits, ins = {}, ["x"]
    if op == "Conv":
        inits["w"] = np.ones((2, 3, *k), np.float32)
        ins.append("w")
    else:
        attrs.update(kernel_shape=k, ceil_mode=data.draw(st.integers(0, 1)))
    g = g1([Node(op, ins, ["y"], attrs)], {n: Weight.f32(v) for n, v in inits.items()},
           shape=(None, 3, h, w))
    got = g.infer_shapes()["y"]
    model = helper.make_model(helper.make_graph(
        [helper.make_node(op, ins, ["y"], **attrs)], "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, n) for n, v in inits.items()]),
        opset_imports=[helper.make_opsetid("", 19)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": np.zeros((1, 3, h, w), np.float32)})[0].shape
    assert got == (None,) + want[1:]


@hyp.settings(max_examples=100, deadline=None)
@hyp.given(st.lists(st.integers(1, 4), min_size=1, max_size=4),
           st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data())
def test_broadcast_matches_numpy(a, b, data):
    # put 1s in some places so that broadcasting often succeeds
    b = [1 if data.draw(st.booleans()) else v for v in b]
    g = Graph([ValueInfo("a", tuple(a)), ValueInfo("b", tuple(b))], ["y"],
              [Node("Add", ["a", "b"], ["y"])])
    try:
        want = np.broadcast_shapes(tuple(a), tuple(b))
    except ValueError:
        with pytest.raises(rt.ShapeError):
            g.infer_shapes()
        return
    assert g.infer_shapes()["y"] == want


@hyp.settings(max_examples=100, deadline=None)
@hyp.given(st.lists(st.integers(1, 5), min_size=1, max_size=4),
           st.tuples(st.integers(-1, 12), st.integers(-1, 12)), st.integers(1, 4))
def test_reshape_matches_numpy(shape, target, batch):
    """Concrete shapes follow numpy; a symbolic batch gives the same result for every batch
    or a ShapeError."""
    hyp.assume(target.count(-1) <= 1)
    concrete = (batch, *shape)

    def numpy_shape(s):
        if any(t == 0 and k >= len(s) for k, t in enumerate(target)):
            return None
        t = [s[k] if v == 0 else v for k, v in enumerate(target)]
        try:
            return np.empty(s).reshape(t).shape
        except ValueError:
            return None

    want = numpy_shape(concrete)
    g = g1([Node("Reshape", ["x"], ["y"], {"shape": target})], shape=concrete)
    if want is None:
        with pytest.raises(rt.ShapeError):
            g.infer_shapes()
    else:
        assert g.infer_shapes()["y"] == want
    sym = g1([Node("Reshape", ["x"], ["y"], {"shape": target})], shape=(None, *shape))
    try:
        out = sym.infer_shapes()["y"]
    except rt.ShapeError:
        return
    for n in (1, 2, 3, 7):
        r = numpy_shape((n, *shape))
        assert r is not None and r[1] == out[1] and (out[0] is None or out[0] == r[0])
