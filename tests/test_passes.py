"""Graph passes keep outputs (float64 reference) and actually rewrite the graph."""

from __future__ import annotations

import numpy as np
import pytest

from pyruntime import passes
from pyruntime.graph import Graph, Node, ValueInfo, Weight
from pyruntime.reference import run_reference


class Builder:
    """A tiny graph builder for tests (independent of pyruntime.nn)."""

    def __init__(self, rng, shape):
        self.rng, self.nodes, self.weights = rng, [], {}
        self.inputs = [ValueInfo("x", shape)]

    def w(self, name, *shape, positive=False):
        a = self.rng.uniform(0.5, 1.5, shape) if positive else self.rng.standard_normal(shape)
        self.weights[name] = Weight.f32(a * (1.0 if positive else 0.5))
        return name

    def add(self, op, inputs, attrs=None, name=None):
        name = name or f"{op.lower()}{len(self.nodes)}"
        self.nodes.append(Node(op, list(inputs), [name], dict(attrs or {}), name))
        return name

    def conv(self, x, cin, cout, k=3, group=1, bias=True, **attrs):
        i = len(self.nodes)
        ins = [x, self.w(f"w{i}", cout, cin // group, k, k)]
        if bias:
            ins.append(self.w(f"b{i}", cout))
        pad = k // 2
        return self.add("Conv", ins, {"pads": (pad, pad, pad, pad), "group": group, **attrs})

    def gemm(self, x, k, n, bias=True, **attrs):
        i = len(self.nodes)
        ins = [x, self.w(f"w{i}", k, n)] + ([self.w(f"b{i}", n)] if bias else [])
        return self.add("Gemm", ins, attrs)

    def bn(self, x, c):
        i = len(self.nodes)
        ins = [x, self.w(f"s{i}", c), self.w(f"be{i}", c), self.w(f"m{i}", c),
               self.w(f"v{i}", c, positive=True)]
        return self.add("BatchNormalization", ins, {"epsilon": 1e-3})

    def graph(self, *outputs):
        g = Graph(self.inputs, list(outputs), self.nodes, self.weights, "t")
        g.validate()
        return g


def snapshot(g):
    return (repr(g.inputs), list(g.outputs), [(n.op, list(n.inputs), list(n.outputs),
                                               dict(n.attrs), n.name) for n in g.nodes],
            {k: (w.format, {a: v.copy() for a, v in w.arrays.items()})
             for k, w in g.weights.items()})


def same_snapshot(a, b):
    assert a[:3] == b[:3]
    assert a[3].keys() == b[3].keys()
    for k in a[3]:
        assert a[3][k][0] == b[3][k][0]
        for name, arr in a[3][k][1].items():
            np.testing.assert_array_equal(arr, b[3][k][1][name])


def check(pass_fn, g, rng, batch=2, rtol=1e-6):
    """Apply the pass; the input graph must be untouched, the result valid and equal."""
    before = snapshot(g)
    h = pass_fn(g)
    same_snapshot(before, snapshot(g))
    h.validate()
    assert [v.name for v in h.inputs] == [v.name for v in g.inputs]
    assert h.outputs == g.outputs
    shape = tuple(batch if d is None else d for d in g.inputs[0].shape)
    x = rng.standard_normal(shape)
    want, got = run_reference(g, x), run_reference(h, x)
    for k in g.outputs:
        scale = np.abs(want[k]).max() + 1e-30
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=rtol * scale)
    return h


def ops(g):
    return [n.op for n in g.nodes]


# ---------------------------------------------------------------- drop_identity

def test_drop_identity_chain(rng):
    b = Builder(rng, (None, 3, 5, 5))
    i0 = b.add("Identity", ["x"])
    c = b.conv(i0, 3, 4)
    d = b.add("Dropout", [c])
    r = b.add("Relu", [d])
    out = b.add("Identity", [r], name="out")
    h = check(passes.drop_identity, b.graph(out), rng)
    assert ops(h) == ["Conv", "Relu"]
    assert h.nodes[-1].outputs == ["out"] and h.nodes[0].inputs[0] == "x"


def test_drop_identity_keeps_needed_ones(rng):
    b = Builder(rng, (None, 4))
    direct = b.add("Identity", ["x"], name="direct")  # input -> output: must stay
    r = b.add("Relu", ["x"])
    o1 = b.add("Identity", [r], name="o1")
    o2 = b.add("Dropout", [o1], name="o2")  # reads r (an output) after o1 goes: stays
    t = b.add("Identity", [r])
    o3 = b.add("Sigmoid", [t], name="o3")
    h = check(passes.drop_identity, b.graph(direct, r, o2, o3), rng)
    assert ops(h) == ["Identity", "Relu", "Dropout", "Sigmoid"]
    assert h.nodes[2].inputs == [r] and h.nodes[3].inputs == [r]


def test_drop_identity_renames_producer_for_two_outputs(rng):
    b = Builder(rng, (None, 4))
    r = b.add("Relu", ["x"])
    b.add("Identity", [r], name="o1")
    b.add("Identity", [r], name="o2")
    b.add("Tanh", [r], name="o3")
    h = check(passes.drop_identity, b.graph("o1", "o2", "o3"), rng)
    assert ops(h) == ["Relu", "Identity", "Tanh"]


# ---------------------------------------------------------------- fold_batchnorm

@pytest.mark.parametrize("group,bias", [(1, True), (1, False), (6, True)])
def test_fold_batchnorm_conv(rng, group, bias):
    b = Builder(rng, (None, 6, 7, 7))
    c = b.conv("x", 6, 6, group=group, bias=bias, strides=(2, 2))
    n = b.bn(c, 6)
    out = b.add("Relu", [n])
    h = check(passes.fold_batchnorm, b.graph(out), rng)
    assert ops(h) == ["Conv", "Relu"]
    assert set(h.weights) == {h.nodes[0].inputs[1], h.nodes[0].inputs[2]}
    assert not any(k.startswith(("s", "m", "v", "be")) for k in h.weights)


def test_fold_batchnorm_gemm_output_name(rng):
    b = Builder(rng, (None, 5))
    g1 = b.gemm("x", 5, 7)
    out = b.bn(g1, 7)
    h = check(passes.fold_batchnorm, b.graph(out), rng)
    assert ops(h) == ["Gemm"] and h.nodes[0].outputs == [out]


def test_fold_batchnorm_chain_of_two(rng):
    b = Builder(rng, (None, 3, 4, 4))
    out = b.bn(b.bn(b.conv("x", 3, 4), 4), 4)
    assert ops(check(passes.fold_batchnorm, b.graph(out), rng)) == ["Conv"]


def test_fold_batchnorm_leaves_what_it_must(rng):
    b = Builder(rng, (None, 3, 4, 4))
    lone = b.bn(b.add("Relu", ["x"]), 3)  # BN after a Relu: nothing to fold into
    c = b.conv("x", 3, 3)
    shared = b.bn(c, 3)  # c also feeds the Add: folding would change it
    s = b.add("Add", [c, shared])
    act = b.conv("x", 3, 3, activation="relu")
    after_act = b.bn(act, 3)  # BN(relu(conv)) is not linear in the conv
    g = b.graph(lone, s, after_act)
    h = check(passes.fold_batchnorm, g, rng)
    assert ops(h) == ops(g)
    c2 = b.conv("x", 3, 3)
    b.add("Identity", [c2], name="o")
    out = b.bn(c2, 3)
    g2 = b.graph("o", out)  # the conv output feeds an Identity too
    assert ops(check(passes.fold_batchnorm, g2, rng)) == ops(g2)


def test_fold_batchnorm_shared_weight(rng):
    b = Builder(rng, (None, 3, 4, 4))
    c1 = b.conv("x", 3, 3)
    c2 = b.add("Conv", ["x", "w0"], {"pads": (1, 1, 1, 1)})  # shares c1's W
    out = b.bn(c1, 3)
    h = check(passes.fold_batchnorm, b.graph(out, c2), rng)
    assert ops(h) == ["Conv", "Conv"] and "w0" in h.weights and h.nodes[1].inputs[1] != "w0"


# ---------------------------------------------------------------- fuse_activations

ACTS = [("Relu", {}, "relu"), ("Sigmoid", {}, "sigmoid"), ("Tanh", {}, "tanh"),
        ("Gelu", {}, "gelu"), ("Clip", {"min": 0.0, "max": 6.0}, "clip"),
        ("Clip", {"min": -0.3}, "clip")]


@pytest.mark.parametrize("op,attrs,name", ACTS)
@pytest.mark.parametrize("kind", ["Conv", "Gemm"])
def test_fuse_activation(rng, kind, op, attrs, name):
    b = Builder(rng, (None, 3, 5, 6) if kind == "Conv" else (None, 9))
    p = b.conv("x", 3, 4) if kind == "Conv" else b.gemm("x", 9, 4)
    out = b.add(op, [p], attrs)
    h = check(passes.fuse_activations, b.graph(out), rng)
    assert ops(h) == [kind] and h.nodes[0].attrs["activation"] == name
    assert h.nodes[0].outputs == [out]
    if op == "Clip":
        assert h.nodes[0].attrs["act_min"] == attrs["min"]
        assert h.nodes[0].attrs["act_max"] == attrs.get("max", np.inf)


def test_fuse_activation_refusals(rng):
    b = Builder(rng, (None, 6))
    p1 = b.gemm("x", 6, 6)
    r1 = b.add("Relu", [p1])
    t1 = b.add("Tanh", [p1])  # p1 has two consumers
    p2 = b.gemm("x", 6, 6)
    r2 = b.add("Relu", [p2])  # p2 is also a graph output
    p3 = b.gemm("x", 6, 6, activation="relu")
    s3 = b.add("Sigmoid", [p3])  # p3 already has an activation
    lone = b.add("Relu", ["x"])
    g = b.graph(r1, t1, p2, r2, s3, lone)
    assert ops(check(passes.fuse_activations, g, rng)) == ops(g)


def test_fuse_activation_stacked(rng):
    b = Builder(rng, (None, 6))
    out = b.add("Sigmoid", [b.add("Relu", [b.gemm("x", 6, 6)])])
    h = check(passes.fuse_activations, b.graph(out), rng)
    assert ops(h) == ["Gemm", "Sigmoid"] and h.nodes[0].attrs["activation"] == "relu"


# ---------------------------------------------------------------- fuse_residual_add

def resnet_block(rng, relu_between=False):
    b = Builder(rng, (None, 4, 6, 6))
    c1 = b.conv("x", 4, 4, activation="relu")
    c2 = b.conv(c1, 4, 4)
    if relu_between:
        c2 = b.add("Relu", [c2])
    s = b.add("Add", [c2, "x"])
    return b, b.add("Relu", [s])


def test_fuse_residual_then_relu(rng):
    b, out = resnet_block(rng)
    h = check(passes.fuse_residual_add, b.graph(out), rng)
    assert ops(h) == ["Conv", "Conv", "Relu"]
    a = h.nodes[1].attrs
    assert a["residual"] and not a["residual_after_act"] and h.nodes[1].inputs[3] == "x"
    h2 = check(passes.fuse_activations, h, rng)
    assert ops(h2) == ["Conv", "Conv"]
    assert h2.nodes[1].attrs["activation"] == "relu" and not h2.nodes[1].attrs["residual_after_act"]
    assert h2.nodes[1].outputs == [out]


def test_fuse_residual_after_activation(rng):
    b = Builder(rng, (None, 6))
    p = b.gemm("x", 6, 6, activation="tanh")
    out = b.add("Add", ["x", p])
    h = check(passes.fuse_residual_add, b.graph(out), rng)
    assert ops(h) == ["Gemm"]
    assert h.nodes[0].attrs["residual_after_act"] and h.nodes[0].inputs == ["x", "w0", "b0", "x"]


def test_fuse_residual_operand_computed_later(rng):
    """The other operand is produced after the conv in node order: the fused node must
    move after it."""
    b = Builder(rng, (None, 3, 5, 5))
    c = b.conv("x", 3, 3, bias=False)
    r = b.add("Sigmoid", ["x"])
    out = b.add("Add", [c, r])
    h = check(passes.fuse_residual_add, b.graph(out), rng)
    assert ops(h) == ["Sigmoid", "Conv"] and h.nodes[1].inputs == ["x", "w0", "", r]


def test_fuse_residual_two_convs(rng):
    b = Builder(rng, (None, 3, 5, 5))
    c1 = b.conv("x", 3, 4, k=1)
    c2 = b.conv("x", 3, 4)
    out = b.add("Add", [c1, c2])
    h = check(passes.fuse_residual_add, b.graph(out), rng)
    assert ops(h) == ["Conv", "Conv"] and h.nodes[1].inputs[3] == c1


def test_fuse_residual_refusals(rng):
    b = Builder(rng, (None, 4, 3, 3))
    c1 = b.conv("x", 4, 4)
    a1 = b.add("Add", [c1, b.w("bias", 4, 1, 1)])  # broadcasting bias-like add
    c2 = b.conv("x", 4, 4)
    a2 = b.add("Add", [c2, "x"])
    t2 = b.add("Tanh", [c2])  # c2 has a second consumer
    c3 = b.conv("x", 4, 4)
    a3 = b.add("Add", [c3, "x"])  # c3 is a graph output
    g = b.graph(a1, a2, t2, c3, a3)
    assert ops(check(passes.fuse_residual_add, g, rng)) == ops(g)
    b2 = Builder(rng, (None, 1))
    p = b2.gemm("x", 1, 4)
    wide = b2.add("Add", [p, "x"])  # (None, 4) + (None, 1) broadcasts: not a residual
    g2 = b2.graph(wide)
    assert ops(check(passes.fuse_residual_add, g2, rng)) == ops(g2)


# ---------------------------------------------------------------- optimize

def mobilenet_block(rng):
    """Expand 1x1 -> BN -> ReLU6 -> depthwise 3x3 -> BN -> ReLU6 -> project 1x1 -> BN ->
    Add(x) -> Dropout -> GAP -> Flatten -> Gemm -> Identity."""
    b = Builder(rng, (None, 4, 7, 7))
    relu6 = {"min": 0.0, "max": 6.0}
    e = b.add("Clip", [b.bn(b.conv("x", 4, 12, k=1), 12)], relu6)
    d = b.add("Clip", [b.bn(b.conv(e, 12, 12, group=12), 12)], relu6)
    p = b.bn(b.conv(d, 12, 4, k=1, bias=False), 4)
    s = b.add("Add", ["x", p])
    dr = b.add("Dropout", [s])
    f = b.add("Flatten", [b.add("GlobalAveragePool", [dr])])
    out = b.add("Identity", [b.gemm(f, 4, 3)], name="logits")
    return b.graph(out)


def test_optimize_mobilenet_block(rng):
    g = mobilenet_block(rng)
    h = check(passes.optimize, g, rng, batch=3)
    assert ops(h) == ["Conv", "Conv", "Conv", "GlobalAveragePool", "Flatten", "Gemm"]
    assert [n.attrs.get("activation") for n in h.nodes[:3]] == ["clip", "clip", None]
    assert h.nodes[2].attrs["residual"] and h.nodes[2].inputs[3] == "x"
    assert h.nodes[-1].outputs == ["logits"]
    assert set(h.weights) == {x for n in h.nodes for x in n.inputs[1:3] if x}  # 3 convs, gemm
    again = passes.optimize(h)
    assert snapshot(again)[:3] == snapshot(h)[:3]


def test_optimize_resnet_block_relu_before_add(rng):
    b, out = resnet_block(rng, relu_between=True)
    h = check(passes.optimize, b.graph(out), rng)
    # conv2 -> relu -> + x -> relu: relu fused, residual after it; the last Relu stays.
    assert ops(h) == ["Conv", "Conv", "Relu"]
    a = h.nodes[1].attrs
    assert a["activation"] == "relu" and a["residual"] and a["residual_after_act"]
