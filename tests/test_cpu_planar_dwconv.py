"""A depthwise conv from a graph input straight to a graph output runs on the public NCHW
planes (one `dwconv_chw` step, no layout transposes); anything else keeps the NHWC path.
Every case against the float64 reference at every ISA."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime as rt
from pyruntime.graph import Graph, Node, ValueInfo, Weight
from pyruntime.reference import run_reference

from conftest import isa_params


@pytest.fixture(params=isa_params())
def isa(request) -> str:
    return request.param


def dw_graph(c, h, w, k=(3, 3), s=(1, 1), p=(1, 1, 1, 1), d=(1, 1), act=None, bias=True,
             batch=None, seed=0, extra=None) -> Graph:
    rng = np.random.default_rng(seed)
    ins = ["x", "W", "B"] if bias else ["x", "W"]
    nodes = [Node("Conv", ins, ["c"] if act else ["y"], {"strides": s, "pads": p,
                  "dilations": d, "group": c}, name="dw")]
    if act == "relu":
        nodes.append(Node("Relu", ["c"], ["y"], name="act"))
    elif act == "clip":
        nodes.append(Node("Clip", ["c"], ["y"], {"min": 0.0, "max": 6.0}, name="act"))
    elif act == "sigmoid":
        nodes.append(Node("Sigmoid", ["c"], ["y"], name="act"))
    weights = {"W": Weight.f32(rng.standard_normal((c, 1) + tuple(k)) * 0.5)}
    if bias:
        weights["B"] = Weight.f32(rng.standard_normal(c))
    outs = ["y"]
    if extra == "relu_of_input":  # the input is also read by another node
        nodes.append(Node("Relu", ["x"], ["z"], name="other"))
        outs.append("z")
    if extra == "consumed":  # the dw output feeds two other nodes (nothing fuses)
        nodes.append(Node("Relu", ["y"], ["z"], name="after"))
        nodes.append(Node("Sigmoid", ["y"], ["u"], name="after2"))
        outs = ["z", "u"]
    if extra == "also_output":  # the dw output is an output and feeds another node
        nodes.append(Node("Relu", ["y"], ["z"], name="after"))
        outs.append("z")
    return Graph([ValueInfo("x", (batch, c, h, w))], outs, nodes, weights, name="dw")


def ops(sess) -> list[str]:
    return [r["op"] for r in sess.plan_summary()]


def check(g, x, isa, threads=2):
    sess = rt.compile(g, isa=isa, threads=threads)
    got = sess.run(x)
    want = run_reference(g, x)
    if not isinstance(got, dict):
        got = {g.outputs[0]: got}
    for name in g.outputs:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5 * 5,
                                   err_msg=name)
    return sess


CASES = [  # c, h, w, k, s, p, d
    (96, 17, 19, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (17, 13, 31, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (5, 23, 23, (3, 3), (2, 2), (0, 0, 1, 1), (1, 1)),
    (33, 11, 29, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1)),
    (7, 29, 37, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1)),
    (3, 13, 17, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),
    (4, 9, 41, (1, 7), (1, 3), (0, 3, 0, 3), (1, 1)),
    (2, 7, 7, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1)),
]


@pytest.mark.parametrize("c,h,w,k,s,p,d", CASES)
def test_single_layer_runs_planar(isa, rng, c, h, w, k, s, p, d):
    g = dw_graph(c, h, w, k, s, p, d)
    x = rng.standard_normal((3, c, h, w)).astype(np.float32)
    sess = check(g, x, isa)
    assert ops(sess) == ["dwconv_chw"]
    assert sess.plan_summary()[0]["kernel"] == f"f32_dwconv2d_chw__{isa}"


@pytest.mark.parametrize("act", ["relu", "clip", "sigmoid"])
def test_fused_activation(isa, rng, act):
    g = dw_graph(19, 15, 21, act=act)
    x = rng.standard_normal((2, 19, 15, 21)).astype(np.float32)
    assert ops(check(g, x, isa)) == ["dwconv_chw"]


def test_no_bias_one_thread_batch_one(isa, rng):
    g = dw_graph(8, 33, 17, s=(2, 2), bias=False)
    x = rng.standard_normal((1, 8, 33, 17)).astype(np.float32)
    assert ops(check(g, x, isa, threads=1)) == ["dwconv_chw"]


def test_static_batch(isa, rng):
    g = dw_graph(6, 12, 13, batch=4)
    x = rng.standard_normal((4, 6, 12, 13)).astype(np.float32)
    assert ops(check(g, x, isa)) == ["dwconv_chw"]


def test_input_read_elsewhere_keeps_its_transpose(isa, rng):
    g = dw_graph(16, 9, 10, extra="relu_of_input")
    x = rng.standard_normal((2, 16, 9, 10)).astype(np.float32)
    o = ops(check(g, x, isa))
    assert "dwconv_chw" in o and "transpose" in o and "dwconv" not in o


@pytest.mark.parametrize("extra", ["consumed", "also_output"])
def test_output_read_by_a_node_stays_nhwc(isa, rng, extra):
    g = dw_graph(16, 9, 10, extra=extra)
    x = rng.standard_normal((2, 16, 9, 10)).astype(np.float32)
    o = ops(check(g, x, isa))
    assert "dwconv" in o and "dwconv_chw" not in o


def test_planar_and_nhwc_paths_agree(rng):
    """The same layer through both paths (the NHWC one forced by a consumer)."""
    a = dw_graph(40, 14, 15, s=(2, 2), act="clip")
    b = dw_graph(40, 14, 15, s=(2, 2), act="clip", extra="also_output")
    x = rng.standard_normal((2, 40, 14, 15)).astype(np.float32)
    ya = rt.compile(a).run(x)
    yb = rt.compile(b).run(x)["y"]
    np.testing.assert_allclose(ya, yb, rtol=1e-5, atol=1e-5)


def test_profile_names_the_step(rng):
    g = dw_graph(24, 20, 20)
    sess = rt.compile(g, threads=2)
    prof = sess.profile(rng.standard_normal((1, 24, 20, 20)).astype(np.float32), repeat=2)
    assert [r["op"] for r in prof] == ["dwconv_chw"] and prof[0]["seconds"] >= 0.0
