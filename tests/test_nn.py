"""pyruntime.nn builder and pyruntime.zoo: graph structure, padding arithmetic, seeding,
misuse errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import pyruntime as rt
from pyruntime import nn, zoo
from pyruntime.reference import run_reference
from pyruntime.shapes import infer_shapes


def ops(g: rt.Graph) -> list[str]:
    return [n.op for n in g.nodes]


def node(g: rt.Graph, name: str) -> rt.Node:
    (n,) = [n for n in g.nodes if n.name == name]
    return n


def W(g: rt.Graph, name: str) -> np.ndarray:
    return g.weights[name].numpy()


def check_wellformed(g: rt.Graph, *tensors: nn.Tensor) -> dict:
    """Independent structural check (topological order, every name defined once), then
    pyruntime.shapes' validation; the inferred shapes of the graph outputs must equal the
    builder's shapes of `tensors` (given in output order). Returns the inferred shapes."""
    defined = {v.name for v in g.inputs} | set(g.weights)
    assert len(defined) == len(g.inputs) + len(g.weights)
    for n in g.nodes:
        for x in n.inputs:
            assert x == "" or x in defined, f"{n.name}: {x} used before definition"
        for y in n.outputs:
            assert y not in defined, f"{y} defined twice"
            defined.add(y)
    for o in g.outputs:
        assert o in defined
    for w in g.weights.values():
        assert w.format == "f32" and w.arrays["data"].dtype == np.float32
        assert w.arrays["data"].flags.c_contiguous
    shapes = infer_shapes(g)
    for o, t in zip(g.outputs, tensors):
        assert shapes[o] == t.shape, (o, shapes[o], t.shape)
    return shapes


# --------------------------------------------------------------------------- layers

def test_dense_structure():
    x = nn.Input((5,), name="x")
    y = nn.Dense(3, activation="relu", name="fc")(x)
    z = nn.Dense(2, use_bias=False, name="out")(y)
    g = nn.Model(x, z).graph
    check_wellformed(g, z)
    assert ops(g) == ["Gemm", "Relu", "Gemm"]
    assert g.inputs[0].name == "x" and g.inputs[0].shape == (None, 5)
    assert node(g, "fc").inputs == ["x", "fc.weight", "fc.bias"]
    assert node(g, "fc/relu").inputs == ["fc"]
    assert node(g, "out").inputs == ["fc/relu", "out.weight"]   # no bias
    assert W(g, "fc.weight").shape == (5, 3) and W(g, "fc.bias").shape == (3,)
    assert W(g, "out.weight").shape == (3, 2)
    assert g.outputs == ["out"]
    # default bias init is non-zero (so a dropped bias is noticed); zeros on request
    assert np.any(W(g, "fc.bias") != 0)
    x = nn.Input((5,))
    g = nn.Model(x, nn.Dense(3, bias_initializer="zeros")(x)).graph
    assert np.all(W(g, "dense.bias") == 0)


def test_init_ranges():
    x = nn.Input((400,))
    he = nn.Dense(100, activation="relu", name="he")(x)
    gl = nn.Dense(50, name="gl")(he)
    g = nn.Model(x, gl).graph
    lim_he = math.sqrt(6 / 400)
    lim_gl = math.sqrt(6 / 150)
    for name, lim in (("he.weight", lim_he), ("gl.weight", lim_gl)):
        w = W(g, name)
        assert np.abs(w).max() <= lim
        assert np.abs(w).max() > 0.95 * lim      # really uniform over the whole range
        assert abs(float(w.std()) - lim / math.sqrt(3)) < 0.05 * lim
    assert np.abs(W(g, "he.bias")).max() <= 1 / math.sqrt(400)


@pytest.mark.parametrize("h,k,s,d", [(224, 3, 2, 1), (5, 3, 2, 1), (7, 3, 1, 2), (8, 1, 2, 1),
                                     (13, 5, 3, 1), (1, 3, 1, 1), (6, 4, 1, 1), (9, 2, 4, 3),
                                     (2, 7, 2, 1)])
def test_same_padding_arithmetic(h, k, s, d):
    """TF "same": output ceil(H/s); smallest total padding that makes the last window fit;
    the odd pixel goes to the bottom/right."""
    x = nn.Input((2, h, h + 1))
    y = nn.Conv2D(4, k, strides=s, dilation=d, padding="same", name="c")(x)
    g = nn.Model(x, y).graph
    t, l, b, r = node(g, "c").attrs["pads"]
    eff = (k - 1) * d + 1
    for n, p0, p1, out in ((h, t, b, y.shape[2]), (h + 1, l, r, y.shape[3])):
        assert out == math.ceil(n / s)
        total = p0 + p1
        assert p1 - p0 in (0, 1)
        assert (out - 1) * s + eff <= n + total                # the last window fits
        assert total == 0 or (out - 1) * s + eff == n + total  # and no padding is wasted
        assert (n + total - eff) // s + 1 == out               # the generic formula agrees
    assert nn.same_pads((h, h + 1), (k, k), (s, s), (d, d)) == (t, l, b, r)


@given(h=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), d=st.integers(1, 3),
       pad=st.one_of(st.sampled_from(["same", "valid"]), st.integers(0, 3),
                     st.tuples(*[st.integers(0, 3)] * 4)))
@settings(max_examples=200, deadline=None)
def test_conv_output_shape_property(h, k, s, d, pad):
    """Output size = number of window positions that fit, counted by brute force."""
    x = nn.Input((1, h, h))
    eff = (k - 1) * d + 1
    conv = nn.Conv2D(1, k, strides=s, dilation=d, padding=pad)
    if pad == "same":
        pt, pl, pb, pr = nn.same_pads((h, h), (k, k), (s, s), (d, d))
    elif pad == "valid":
        pt = pl = pb = pr = 0
    elif isinstance(pad, int):
        pt = pl = pb = pr = pad
    else:
        pt, pl, pb, pr = pad
    fits = [i for i in range(h + pt + pb) if i * s + eff <= h + pt + pb]
    fits_w = [i for i in range(h + pl + pr) if i * s + eff <= h + pl + pr]
    if not fits or not fits_w:
        with pytest.raises(rt.ShapeError):
            conv(x)
        return
    y = conv(x)
    assert y.shape == (None, 1, len(fits), len(fits_w))
    if pad == "same":
        assert y.shape[2] == math.ceil(h / s)


def test_conv_structure_and_paddings():
    x = nn.Input((3, 10, 12), name="img")
    a = nn.Conv2D(8, (3, 5), strides=(1, 2), padding="valid", name="a")(x)
    assert a.shape == (None, 8, 8, 4)
    b = nn.Conv2D(8, 3, padding=2, dilation=2, activation="relu6", name="b")(a)
    assert b.shape == (None, 8, 8, 4)
    c = nn.Conv2D(6, 3, padding=(1, 0), name="c")(b)
    assert c.shape == (None, 6, 8, 2)
    dd = nn.Conv2D(6, 2, padding=(0, 1, 1, 0), use_bias=False, name="d")(c)
    assert dd.shape == (None, 6, 8, 2)
    g = nn.Model(x, dd).graph
    shapes = check_wellformed(g, dd)
    assert [shapes[k] for k in "abc"] == [a.shape, b.shape, c.shape]
    assert ops(g) == ["Conv", "Conv", "Clip", "Conv", "Conv"]
    na = node(g, "a")
    assert na.attrs == {"strides": (1, 2), "pads": (0, 0, 0, 0), "dilations": (1, 1),
                        "group": 1}
    assert W(g, "a.weight").shape == (8, 3, 3, 5) and W(g, "a.bias").shape == (8,)
    assert node(g, "b").attrs["pads"] == (2, 2, 2, 2)
    assert node(g, "b").attrs["dilations"] == (2, 2)
    assert node(g, "b/relu6").attrs == {"min": 0.0, "max": 6.0}
    assert node(g, "c").attrs["pads"] == (1, 0, 1, 0)
    assert node(g, "d").attrs["pads"] == (0, 1, 1, 0)
    assert node(g, "d").inputs == ["c", "d.weight"]
    for n in g.nodes:   # attrs are plain Python ints in tuples, as the IR says
        for v in n.attrs.values():
            if isinstance(v, tuple):
                assert all(type(e) is int for e in v)


def test_depthwise_and_separable():
    x = nn.Input((6, 9, 9))
    dw = nn.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(x)
    assert dw.shape == (None, 6, 5, 5)
    sep = nn.SeparableConv2D(10, 5, padding="same", activation="tanh", name="sep")(dw)
    assert sep.shape == (None, 10, 5, 5)
    g = nn.Model(x, sep).graph
    assert check_wellformed(g, sep)["dw"] == dw.shape
    assert ops(g) == ["Conv", "Conv", "Conv", "Tanh"]
    assert node(g, "dw").attrs["group"] == 6 and W(g, "dw.weight").shape == (6, 1, 3, 3)
    assert node(g, "dw").attrs["pads"] == (1, 1, 1, 1)
    d, p = node(g, "sep/depthwise"), node(g, "sep")
    assert d.inputs == ["dw", "sep.depthwise"] and d.attrs["group"] == 6
    assert d.attrs["pads"] == (2, 2, 2, 2)
    assert p.inputs == ["sep/depthwise", "sep.pointwise", "sep.bias"]
    assert p.attrs == {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1), "group": 1}
    assert W(g, "sep.depthwise").shape == (6, 1, 5, 5)
    assert W(g, "sep.pointwise").shape == (10, 6, 1, 1)


def test_batchnorm_stats():
    x = nn.Input((4, 3, 3))
    a = nn.BatchNorm(name="a")(x)
    b = nn.BatchNorm(epsilon=1e-3, random_stats=True, name="b")(a)
    g = nn.Model(x, b).graph
    assert ops(g) == ["BatchNormalization"] * 2
    assert node(g, "a").inputs == ["input", "a.scale", "a.bias", "a.mean", "a.var"]
    assert node(g, "a").attrs == {"epsilon": 1e-5}
    assert node(g, "b").attrs == {"epsilon": 1e-3}
    np.testing.assert_array_equal(W(g, "a.scale"), 1)
    np.testing.assert_array_equal(W(g, "a.bias"), 0)
    np.testing.assert_array_equal(W(g, "a.mean"), 0)
    np.testing.assert_array_equal(W(g, "a.var"), 1)
    for k in ("scale", "bias", "mean", "var"):
        w = W(g, f"b.{k}")
        assert w.shape == (4,) and len(np.unique(w)) == 4    # non-trivial
    assert np.all(W(g, "b.var") >= 0.5) and np.all(W(g, "b.scale") >= 0.5)
    # BN on a 2-D [N, C] tensor works too
    x = nn.Input((7,))
    assert nn.Model(x, nn.BatchNorm()(x)).graph.weights["batch_norm.var"].shape == (7,)


def test_pools_flatten_global():
    x = nn.Input((3, 9, 8))
    m = nn.MaxPool2D(2, name="m")(x)
    assert m.shape == (None, 3, 4, 4)
    a = nn.AvgPool2D(3, strides=1, padding="same", name="a")(m)
    assert a.shape == (None, 3, 4, 4)
    ms = nn.MaxPool2D((3, 2), strides=2, padding="same", name="ms")(x)
    assert ms.shape == (None, 3, 5, 4)
    gp = nn.GlobalAvgPool2D(name="gp")(a)
    assert gp.shape == (None, 3)
    gk = nn.GlobalAvgPool2D(keepdims=True, name="gk")(ms)
    assert gk.shape == (None, 3, 1, 1)
    f = nn.Flatten(name="f")(ms)
    assert f.shape == (None, 60)
    g = nn.Model(x, [gp, gk, f]).graph
    shapes = check_wellformed(g, gp, gk, f)
    assert (shapes["m"], shapes["a"], shapes["ms"]) == (m.shape, a.shape, ms.shape)
    assert node(g, "m").attrs == {"dilations": (1, 1), "kernel_shape": (2, 2),
                                  "strides": (2, 2), "pads": (0, 0, 0, 0)}
    assert node(g, "a").attrs == {"count_include_pad": 0, "kernel_shape": (3, 3),
                                  "strides": (1, 1), "pads": (1, 1, 1, 1)}
    assert node(g, "ms").attrs["pads"] == (1, 0, 1, 0)   # H 9: total 2; W 8 k2 s2: 0
    assert [n.op for n in g.nodes if n.name.startswith("gp")] == ["GlobalAveragePool", "Flatten"]
    assert node(g, "gp").attrs == {"axis": 1} and node(g, "gp").inputs == ["gp/pool"]
    assert node(g, "gk").op == "GlobalAveragePool"
    assert node(g, "f").attrs == {"axis": 1}
    assert g.outputs == ["gp", "gk", "f"]


@pytest.mark.parametrize("act,op,attrs", [("relu", "Relu", {}), ("relu6", "Clip",
                                          {"min": 0.0, "max": 6.0}),
                                          ("sigmoid", "Sigmoid", {}), ("tanh", "Tanh", {}),
                                          ("gelu", "Gelu", {}), ("softmax", "Softmax", {})])
def test_activations(act, op, attrs):
    x = nn.Input((3, 4, 4))
    c = nn.Conv2D(2, 1, activation=act, name="c")(x)
    f = nn.Flatten()(c)
    d = nn.Dense(5, activation=act, name="d")(f)
    e = nn.Activation(act, name="e")(d)
    g = nn.Model(x, e).graph
    check_wellformed(g, e)
    assert ops(g) == ["Conv", op, "Flatten", "Gemm", op, op]
    for n in (node(g, f"c/{act}"), node(g, f"d/{act}"), node(g, "e")):
        exp = dict(attrs)
        if op == "Softmax":   # channels: axis 1 on NCHW, last axis on 2-D
            exp["axis"] = 1 if n.name.startswith("c") else -1
        assert n.attrs == exp
    assert node(g, "e").inputs == [f"d/{act}"]
    # "linear" and None mean no activation node
    x = nn.Input((3,))
    assert ops(nn.Model(x, nn.Dense(2, activation="linear")(x)).graph) == ["Gemm"]


def test_add_residual_dag_and_dropout():
    x = nn.Input((4, 5, 5))
    a = nn.Conv2D(4, 3, padding="same", name="a")(x)
    b = nn.Conv2D(4, 1, name="b")(a)
    s = nn.Add(name="s")([x, a, b])
    dr = nn.Dropout(0.2, name="dr")(s)
    g = nn.Model(x, dr).graph
    check_wellformed(g, dr)
    assert ops(g) == ["Conv", "Conv", "Add", "Add", "Dropout"]
    assert node(g, "s/1").inputs == ["input", "a"]
    assert node(g, "s").inputs == ["s/1", "b"]
    assert node(g, "dr").attrs == {}


def test_multiple_inputs_outputs_and_shared_layer():
    a = nn.Input((6,), name="a")
    b = nn.Input((6,), name="b")
    shared = nn.Dense(4, activation="relu", name="shared")
    ha, hb = shared(a), shared(b)
    s = nn.Add()([ha, hb])
    m = nn.Model([b, a], [s, ha], name="two")
    g = m.graph
    check_wellformed(g, s, ha)
    assert [v.name for v in g.inputs] == ["b", "a"]
    assert g.outputs == ["add", "shared/relu"]
    assert node(g, "shared/call1").inputs == ["b", "shared.weight", "shared.bias"]
    assert sorted(g.weights) == ["shared.bias", "shared.weight"]   # stored once
    assert m.count_params() == 6 * 4 + 4
    assert g.name == "two"


def test_auto_names_unique_and_deterministic():
    def build():
        x = nn.Input((3, 8, 8))
        h = nn.Conv2D(4, 3, name="conv2d")(x)           # explicit name taken first
        h = nn.Conv2D(4, 3)(h)
        h = nn.Conv2D(4, 3)(h)
        h = nn.Activation("relu")(h)
        return nn.Model(x, nn.Activation("relu")(h)).graph
    g1, g2 = build(), build()
    names = [n.name for n in g1.nodes]
    assert names == ["conv2d", "conv2d_1", "conv2d_2", "relu", "relu_1"]
    assert names == [n.name for n in g2.nodes]
    assert g1.inputs[0].name == "input"


def test_summary_and_count_params(capsys):
    x = nn.Input((3, 8, 8), name="img")
    h = nn.Conv2D(4, 3, name="c")(x)                                  # 4*3*9 + 4 = 112
    h = nn.BatchNorm(name="bn")(h)                                     # 16
    h = nn.SeparableConv2D(5, 3, use_bias=False, name="s")(h)          # 36 + 20 = 56
    y = nn.Dense(2, name="d")(nn.GlobalAvgPool2D()(h))                 # 12
    m = nn.Model(x, y, name="m")
    assert m.count_params() == 112 + 16 + 56 + 12
    assert m.count_params() == sum(w.numpy().size for w in m.graph.weights.values())
    s = m.summary()
    assert capsys.readouterr().out.strip() == s.strip()
    for frag in ("img (Input)", "c (Conv2D)", "(N, 4, 6, 6)", "s (SeparableConv2D)",
                 "Total params: 196"):
        assert frag in s
    assert m.summary(print_fn=None) == s


def test_to_graph_is_a_copy():
    x = nn.Input((2,))
    m = nn.Model(x, nn.Dense(1, name="d")(x))
    g = m.to_graph()
    g.nodes.clear()
    g.weights["d.weight"].arrays["data"][:] = 0
    assert len(m.graph.nodes) == 1 and np.any(W(m.graph, "d.weight") != 0)


# --------------------------------------------------------------------------- seeds

def _build(seed=None, layer_seed=None):
    x = nn.Input((3, 6, 6))
    h = nn.Conv2D(4, 3, name="c")(x)
    h = nn.BatchNorm(random_stats=True, name="bn")(h)
    h = nn.Flatten()(h)
    y = nn.Dense(3, seed=layer_seed, name="d")(h)
    return nn.Model(x, y, seed=seed).graph


def _weights_equal(g1, g2):
    return g1.weights.keys() == g2.weights.keys() and all(
        np.array_equal(g1.weights[k].numpy(), g2.weights[k].numpy()) for k in g1.weights)


def test_seeds_reproducible():
    assert _weights_equal(_build(), _build())
    assert _weights_equal(_build(seed=7), _build(seed=7))
    assert not np.array_equal(W(_build(seed=1), "c.weight"), W(_build(seed=2), "c.weight"))
    old = nn.get_seed()
    try:
        nn.seed(7)
        assert _weights_equal(_build(), _build(seed=7))
        nn.seed(8)
        assert not _weights_equal(_build(), _build(seed=7))
    finally:
        nn.seed(old)
    # an explicit layer seed fixes that layer whatever the model seed; others still vary
    a, b = _build(seed=1, layer_seed=5), _build(seed=2, layer_seed=5)
    np.testing.assert_array_equal(W(a, "d.weight"), W(b, "d.weight"))
    assert not np.array_equal(W(a, "bn.var"), W(b, "bn.var"))
    # different layers of one model get different streams
    x = nn.Input((8,))
    g = nn.Model(x, nn.Dense(8, name="q")(nn.Dense(8, name="p")(x))).graph
    assert not np.array_equal(W(g, "p.weight"), W(g, "q.weight"))
    with pytest.raises(rt.GraphError, match="seed"):
        nn.seed(-1)


def test_zoo_reproducible():
    for f in (zoo.mlp, zoo.tiny_cnn):
        assert _weights_equal(f(seed=3), f(seed=3))
        assert not _weights_equal(f(seed=3), f(seed=4))


# --------------------------------------------------------------------------- misuse

def test_dense_on_4d_needs_flatten():
    x = nn.Input((3, 4, 4))
    with pytest.raises(rt.ShapeError, match=r"Dense.*2-D.*\(N, 3, 4, 4\).*Flatten"):
        nn.Dense(3)(x)


def test_add_mismatch():
    x = nn.Input((3, 4, 4))
    a = nn.Conv2D(5, 1)(x)
    with pytest.raises(rt.ShapeError, match=r"Add.*\(N, 3, 4, 4\).*\(N, 5, 4, 4\)"):
        nn.Add()([x, a])
    with pytest.raises(rt.GraphError, match="at least two"):
        nn.Add()([x])
    with pytest.raises(rt.GraphError, match="list"):
        nn.Add()(x)


def test_shared_layer_channel_mismatch():
    conv = nn.Conv2D(4, 3, name="shared")
    conv(nn.Input((3, 8, 8)))
    with pytest.raises(rt.ShapeError, match=r"shared.*\(N, 3, 8, 8\).*\(N, 5, 8, 8\)"):
        conv(nn.Input((5, 8, 8)))
    pool = nn.MaxPool2D(2)                      # layers without weights may be shared freely
    assert pool(nn.Input((3, 8, 8))).shape == (None, 3, 4, 4)
    assert pool(nn.Input((5, 6, 6))).shape == (None, 5, 3, 3)
    d = nn.Dense(2)
    d(nn.Input((4,)))
    with pytest.raises(rt.ShapeError, match="shared"):
        d(nn.Input((6,)))


def test_other_misuse():
    x = nn.Input((3, 4, 4))
    with pytest.raises(rt.ShapeError, match="larger than the padded input height 4"):
        nn.Conv2D(2, 5)(x)
    with pytest.raises(rt.ShapeError, match="4-D"):
        nn.Conv2D(2, 1)(nn.Input((7,)))
    with pytest.raises(rt.ShapeError, match="4-D"):
        nn.GlobalAvgPool2D()(nn.Input((7,)))
    with pytest.raises(rt.ShapeError, match="pool window"):
        nn.MaxPool2D(2, padding=2)(x)
    with pytest.raises(rt.GraphError, match="unknown activation 'swish'"):
        nn.Dense(3, activation="swish")
    with pytest.raises(rt.GraphError, match="padding"):
        nn.Conv2D(2, 3, padding="full")
    with pytest.raises(rt.GraphError, match="padding"):
        nn.Conv2D(2, 3, padding=(1, 2, 3))
    with pytest.raises(rt.GraphError, match="padding"):
        nn.Conv2D(2, 3, padding=-1)
    with pytest.raises(rt.GraphError, match="kernel_size"):
        nn.Conv2D(2, 0)
    with pytest.raises(rt.GraphError, match="units"):
        nn.Dense(2.5)
    with pytest.raises(rt.GraphError, match="symbolic tensors"):
        nn.Dense(2)(np.zeros((1, 3), np.float32))
    with pytest.raises(rt.ShapeError, match="shape"):
        nn.Input(())
    with pytest.raises(rt.GraphError, match="shape dim"):
        nn.Input((3, 0))
    with pytest.raises(rt.GraphError, match="epsilon"):
        nn.BatchNorm(epsilon=-1.0)
    with pytest.raises(rt.GraphError, match="kernel_initializer"):
        nn.Dense(2, kernel_initializer="ones")


def test_model_misuse():
    a = nn.Input((3,), name="a")
    b = nn.Input((3,), name="b")
    s = nn.Add()([a, b])
    with pytest.raises(rt.GraphError, match="'b'.*not listed"):
        nn.Model(a, s)
    x = nn.Input((3,), name="x")
    y = nn.Dense(2, name="x")(x)
    with pytest.raises(rt.GraphError, match="named 'x'"):
        nn.Model(x, y)
    x = nn.Input((3,))
    y = nn.Dense(2)(x)
    with pytest.raises(rt.GraphError, match="twice"):
        nn.Model(x, [y, y])
    with pytest.raises(rt.GraphError, match="nn.Input"):
        nn.Model(y, y)
    with pytest.raises(rt.GraphError, match="outputs"):
        nn.Model(x, [])


# --------------------------------------------------------------------------- zoo

def test_zoo_mlp():
    g = zoo.mlp()
    check_wellformed(g)
    assert ops(g) == ["Gemm", "Relu", "Gemm", "Relu", "Gemm"]
    assert [W(g, f"fc{i}.weight").shape for i in (1, 2, 3)] == [(784, 512), (512, 256),
                                                                 (256, 10)]
    assert g.inputs[0].shape == (None, 784) and g.outputs == ["fc3"]
    assert ops(zoo.mlp((4, 3))) == ["Gemm"]
    with pytest.raises(rt.GraphError):
        zoo.mlp((4,))


def test_zoo_mobilenetv2_structure():
    g = zoo.mobilenetv2_style()
    check_wellformed(g)
    conv = [n for n in g.nodes if n.op == "Conv"]
    dw = [n for n in conv if n.attrs["group"] > 1]
    assert len(dw) == 17                              # one per inverted residual block
    for n in dw:
        assert W(g, n.inputs[1]).shape == (n.attrs["group"], 1, 3, 3)
    assert ops(g).count("Add") == 10                  # stride-1 blocks with equal channels
    assert ops(g).count("BatchNormalization") == 52   # stem, 16*3 + 2, head
    assert ops(g).count("Clip") == 35
    assert node(g, "stem_conv").attrs["strides"] == (2, 2)
    assert W(g, "stem_conv.weight").shape == (32, 3, 3, 3)
    assert W(g, "head_conv.weight").shape == (1280, 320, 1, 1)
    assert W(g, "logits.weight").shape == (1280, 1000)
    assert g.outputs == ["logits"] and g.inputs[0].shape == (None, 3, 224, 224)
    # torchvision's mobilenet_v2 has 3,504,872 trainable parameters; here BN running
    # mean/var (17,056 channels x 2) are weights too.
    assert sum(w.numpy().size for w in g.weights.values()) == 3_504_872 + 2 * 17_056
    # stride 2 blocks halve the resolution five times: 224 -> 7 at the head
    strides = [n.attrs["strides"][0] for n in conv]
    assert strides.count(2) == 5
    # each Add joins a block's input with its projection (a real residual DAG)
    for n in g.nodes:
        if n.op == "Add":
            assert n.inputs[1].endswith("_project_bn")


def test_zoo_mobilenetv2_width_and_tiny():
    g = zoo.mobilenetv2_style((3, 32, 32), width=0.35, num_classes=7)
    check_wellformed(g)
    assert W(g, "stem_conv.weight").shape == (16, 3, 3, 3)
    assert W(g, "logits.weight").shape == (1280, 7)
    t = zoo.tiny_cnn()
    check_wellformed(t)
    assert {"Conv", "BatchNormalization", "Relu", "Clip", "Add", "MaxPool", "AveragePool",
            "GlobalAveragePool", "Flatten", "Gemm"} <= set(ops(t))


# --------------------------------------------------------------------------- numerics

def _conv_loops(x, w, b, stride, pads, group):
    """Direct loops, straight from the definition (float64)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    pt, pl, pb, pr = pads
    xp = np.zeros((n, c, h + pt + pb, wd + pl + pr))
    xp[:, :, pt:pt + h, pl:pl + wd] = x
    oh, ow = (h + pt + pb - kh) // stride + 1, (wd + pl + pr - kw) // stride + 1
    y = np.zeros((n, o, oh, ow))
    og = o // group
    for oc in range(o):
        g = oc // og
        for i in range(oh):
            for j in range(ow):
                win = xp[:, g * cg:(g + 1) * cg, i * stride:i * stride + kh,
                         j * stride:j * stride + kw]
                y[:, oc, i, j] = (win * w[oc]).sum(axis=(1, 2, 3)) + (0 if b is None else b[oc])
    return y


def test_built_model_numerics_conv_bn_dense_softmax():
    """Conv "same" stride 2 (asymmetric pads) + random BN + relu6 + global pool + Dense +
    softmax: run_reference equals a hand computation."""
    x = nn.Input((3, 6, 5))
    h = nn.Conv2D(4, 3, strides=2, padding="same", name="c")(x)
    h = nn.BatchNorm(epsilon=1e-3, random_stats=True, name="bn")(h)
    h = nn.Activation("relu6")(h)
    h = nn.GlobalAvgPool2D()(h)
    y = nn.Dense(3, activation="softmax", name="d")(h)
    g = nn.Model(x, y, seed=11).graph
    # H 6, s2, k3: total 1 -> (top 0, bottom 1); W 5: total 2 -> (1, 1)
    assert node(g, "c").attrs["pads"] == (0, 1, 1, 1)
    P = {k: v.numpy().astype(np.float64) for k, v in g.weights.items()}
    xv = np.random.default_rng(0).standard_normal((2, 3, 6, 5)) * 2
    z = _conv_loops(xv, P["c.weight"], P["c.bias"], 2, node(g, "c").attrs["pads"], 1)
    bn = lambda k: P[f"bn.{k}"][None, :, None, None]  # noqa: E731
    z = (z - bn("mean")) / np.sqrt(bn("var") + 1e-3) * bn("scale") + bn("bias")
    z = np.minimum(np.maximum(z, 0), 6).mean(axis=(2, 3))
    z = z @ P["d.weight"] + P["d.bias"]
    want = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    got = run_reference(g, xv)[g.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert z.std() > 0.1     # the softmax input is not degenerate


def test_built_model_numerics_separable_residual_pools():
    """Depthwise + separable convs, a residual Add, "same" max/avg pools (padding excluded
    from the mean), gelu/sigmoid/tanh: run_reference equals a hand computation."""
    x = nn.Input((2, 5, 5))
    d = nn.DepthwiseConv2D(3, padding="same", activation="tanh", name="dw")(x)
    r = nn.Add()([x, d])
    s = nn.SeparableConv2D(3, 3, padding=1, activation="gelu", name="sep")(r)
    m = nn.MaxPool2D(2, strides=2, padding="same", name="mp")(s)       # 5 -> 3, pad b/r
    a = nn.AvgPool2D(3, strides=1, padding="same", name="ap")(m)
    y = nn.Activation("sigmoid")(nn.Flatten()(a))
    g = nn.Model(x, y, seed=5).graph
    P = {k: v.numpy().astype(np.float64) for k, v in g.weights.items()}
    xv = np.random.default_rng(1).standard_normal((1, 2, 5, 5))
    t = np.tanh(_conv_loops(xv, P["dw.weight"], P["dw.bias"], 1, (1, 1, 1, 1), 2)) + xv
    t = _conv_loops(t, P["sep.depthwise"], None, 1, (1, 1, 1, 1), 2)
    t = _conv_loops(t, P["sep.pointwise"], P["sep.bias"], 1, (0, 0, 0, 0), 1)
    t = 0.5 * t * (1 + np.vectorize(math.erf)(t / math.sqrt(2)))
    mp = np.full((1, 3, 3, 3), -np.inf)
    for i in range(3):
        for j in range(3):
            mp[:, :, i, j] = t[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(2, 3))
    ap = np.zeros_like(mp)
    for i in range(3):
        for j in range(3):
            win = mp[:, :, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2]
            ap[:, :, i, j] = win.mean(axis=(2, 3))       # only real pixels count
    want = 1 / (1 + np.exp(-ap.reshape(1, -1)))
    got = run_reference(g, xv)[g.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_zoo_models_run_with_sane_activations():
    """The zoo's random BN statistics keep activations O(1) through the whole network, so
    fp32 comparisons against them are meaningful (no overflow, no collapse to 0)."""
    g = zoo.mobilenetv2_style((3, 32, 32), width=0.35, num_classes=10)
    y = run_reference(g, np.random.default_rng(0).standard_normal((1, 3, 32, 32)))
    out = y[g.outputs[0]]
    assert out.shape == (1, 10) and np.all(np.isfinite(out))
    assert 0.1 < np.abs(out).max() < 100
    t = zoo.tiny_cnn()
    out = run_reference(t, np.random.default_rng(0).standard_normal((2, 3, 16, 16)))["logits"]
    assert out.shape == (2, 10) and 0.01 < np.abs(out).max() < 100
    assert not np.allclose(out[0], out[1])
