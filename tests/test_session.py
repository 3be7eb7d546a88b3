"""rt.compile / Session: whole graphs against the float64 reference at every ISA, and
every defined outcome of bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyruntime as rt
from pyruntime.graph import Graph, Node, ValueInfo, Weight
from pyruntime.reference import run_reference


# ---------------------------------------------------------------- graph helpers

class GB:
    """A tiny hand graph builder (independent of pyruntime.nn) with scaled weights."""

    def __init__(self, rng: np.random.Generator, inputs: dict[str, tuple]):
        self.rng = rng
        self.inputs = [ValueInfo(n, s) for n, s in inputs.items()]
        self.nodes: list[Node] = []
        self.weights: dict[str, Weight] = {}
        self.k = 0

    def w(self, shape, fan_in=None, scale=1.0) -> str:
        self.k += 1
        name = f"w{self.k}"
        fan = fan_in or (math.prod(shape[1:]) if len(shape) > 1 else 1)
        self.weights[name] = Weight.f32(self.rng.standard_normal(shape) * scale / math.sqrt(fan))
        return name

    def op(self, op, inputs, **attrs) -> str:
        self.k += 1
        out = f"v{self.k}"
        self.nodes.append(Node(op, list(inputs), [out], attrs, name=f"{op.lower()}{self.k}"))
        return out

    def conv(self, x, cin, cout, k, stride=1, pads=(0, 0, 0, 0), dil=1, bias=True, **attrs):
        kh, kw = (k, k) if isinstance(k, int) else k
        w = self.w((cout, cin, kh, kw))
        ins = [x, w] + ([self.w((cout,), scale=0.5)] if bias else [])
        return self.op("Conv", ins, strides=(stride, stride), pads=tuple(pads),
                       dilations=(dil, dil), group=1, **attrs)

    def dwconv(self, x, c, k, stride=1, pad=0, **attrs):
        w = self.w((c, 1, k, k))
        return self.op("Conv", [x, w, self.w((c,), scale=0.5)], strides=(stride, stride),
                       pads=(pad,) * 4, group=c, **attrs)

    def gemm(self, x, k, n, bias=True, **attrs):
        ins = [x, self.w((k, n), fan_in=k)] + ([self.w((n,), scale=0.5)] if bias else [])
        return self.op("Gemm", ins, **attrs)

    def bn(self, x, c):
        s = self.w((c,), scale=1.0)
        b = self.w((c,), scale=0.5)
        m = self.w((c,), scale=0.5)
        self.k += 1
        v = f"var{self.k}"
        self.weights[v] = Weight.f32(self.rng.uniform(0.5, 2.0, c))
        return self.op("BatchNormalization", [x, s, b, m, v], epsilon=1e-5)

    def graph(self, *outputs) -> Graph:
        return Graph(self.inputs, list(outputs), self.nodes, self.weights, name="test")


def check(g: Graph, feeds, isa: str, threads: int = 2, tol: float = 1e-4):
    """Compile at `isa`, run, compare with the float64 reference; returns the session."""
    sess = rt.compile(g, threads=threads, isa=isa)
    got = sess.run(dict(feeds) if isinstance(feeds, dict) else feeds)
    ref = run_reference(g, feeds)
    if not isinstance(got, dict):
        got = {g.outputs[0]: got}
    for name, r in ref.items():
        y = got[name]
        assert y.dtype == np.float32 and y.shape == r.shape, (name, y.shape, r.shape)
        scale = max(1.0, float(np.abs(r).max(initial=0.0)))
        np.testing.assert_allclose(y, r, rtol=tol, atol=tol * scale, err_msg=name)
    return sess


def x_of(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- whole graphs

@pytest.mark.parametrize("batch", [1, 3, 64])
def test_mlp(isa, rng, batch):
    b = GB(rng, {"x": (None, 37)})
    h = b.gemm("x", 37, 64, activation="relu")
    h = b.gemm(h, 64, 19)
    h = b.op("Relu", [h])
    y = b.op("Softmax", [b.gemm(h, 19, 10)])
    check(b.graph(y), x_of(rng, batch, 37), isa)


CONV_CASES = [
    # cin, cout, k, stride, pads, dil
    (1, 1, 1, 1, (0, 0, 0, 0), 1),      # pointwise -> direct GEMM
    (3, 17, 1, 1, (0, 0, 0, 0), 1),
    (17, 3, 1, 2, (0, 0, 0, 0), 1),     # strided 1x1 -> im2col
    (3, 17, 3, 1, (1, 1, 1, 1), 1),
    (17, 17, 3, 2, (1, 1, 1, 1), 1),
    (3, 5, 3, 1, (0, 2, 1, 0), 1),      # asymmetric pads
    (5, 3, 5, 1, (2, 2, 2, 2), 2),      # dilation
    (1, 3, (3, 1), 2, (1, 0, 1, 0), 1),
    (2, 3, 3, 2, (3, 4, 3, 4), 1),      # pads past the kernel: windows all padding
    (3, 4, (2, 4), 3, (0, 3, 1, 2), 1),
]


@pytest.mark.parametrize("cin,cout,k,stride,pads,dil", CONV_CASES)
@pytest.mark.parametrize("batch", [1, 3])
def test_conv(isa, rng, cin, cout, k, stride, pads, dil, batch):
    b = GB(rng, {"x": (None, cin, 11, 9)})
    y = b.conv("x", cin, cout, k, stride, pads, dil, activation="relu")
    check(b.graph(y), x_of(rng, batch, cin, 11, 9), isa)


def test_thin_images_cross_the_layout_boundary_in_strips(isa, rng):
    """3-channel input and 5-channel output images large enough that the NCHW<->NHWC
    transposes cut them into column strips (and ragged 8x8 tiles) across threads."""
    b = GB(rng, {"x": (None, 3, 97, 101)})
    y = b.conv("x", 3, 5, 1)
    check(b.graph(y), x_of(rng, 3, 3, 97, 101), isa)


def test_conv_large_batch_residual_clip(isa, rng):
    b = GB(rng, {"x": (None, 8, 7, 7)})
    r = b.conv("x", 8, 8, 1)
    y = b.conv("x", 8, 8, 3, 1, (1, 1, 1, 1), bias=False)
    y = b.op("Add", [y, r])
    y = b.op("Clip", [y], min=0.0, max=6.0)
    g = b.graph(y)
    sess = check(g, x_of(rng, 64, 8, 7, 7), isa)
    # The residual and clip fuse into the conv: conv1x1, conv (+R, clip), transposes.
    assert [s["op"] for s in sess.plan_summary()].count("add") == 0


@pytest.mark.parametrize("k,stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
@pytest.mark.parametrize("c", [1, 3, 17])
def test_depthwise(isa, rng, k, stride, c):
    b = GB(rng, {"x": (None, c, 10, 13)})
    y = b.dwconv("x", c, k, stride, pad=k // 2, activation="clip", act_min=0.0, act_max=6.0)
    for batch in (1, 3):
        check(b.graph(y), x_of(rng, batch, c, 10, 13), isa)


def test_depthwise_residual(isa, rng):
    b = GB(rng, {"x": (None, 16, 8, 8)})
    y = b.dwconv("x", 16, 3, 1, pad=1)
    y = b.op("Relu", [b.op("Add", [y, "x"])])
    check(b.graph(y), x_of(rng, 3, 16, 8, 8), isa)


@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", dict(kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1))),
    ("MaxPool", dict(kernel_shape=(2, 2), strides=(2, 2), ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=(3, 3), dilations=(2, 2))),
    ("AveragePool", dict(kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1))),
    ("AveragePool", dict(kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1),
                         count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=(2, 3), strides=(1, 2))),
    ("AveragePool", dict(kernel_shape=(3, 3), dilations=(2, 2))),
    ("AveragePool", dict(kernel_shape=(2, 3), strides=(2, 1), pads=(1, 2, 0, 1),
                         dilations=(3, 2), count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=(3, 2), strides=(2, 3), pads=(1, 0, 2, 1),
                         dilations=(2, 3), ceil_mode=1)),
    ("AveragePool", dict(kernel_shape=(3, 2), strides=(2, 3), pads=(1, 0, 2, 1),
                         dilations=(2, 3), ceil_mode=1, count_include_pad=1)),
])
def test_pools(isa, rng, op, attrs):
    b = GB(rng, {"x": (None, 5, 9, 11)})
    y = b.op(op, ["x"], **attrs)
    for batch in (1, 3):
        check(b.graph(y), x_of(rng, batch, 5, 9, 11), isa)


def test_tiny_cnn_dag(isa, rng):
    """conv-bn-relu, depthwise + residual, unfused BN, pools, flatten of 3x3 spatial,
    a broadcast add of a pooled branch, gemm, softmax."""
    b = GB(rng, {"image": (None, 3, 16, 16)})
    x = b.op("Relu", [b.bn(b.conv("image", 3, 8, 3, 2, (1, 1, 1, 1)), 8)])   # 8x8x8
    d = b.dwconv(x, 8, 3, 1, pad=1)
    x = b.op("Add", [x, d])
    x = b.bn(x, 8)                                                           # unfused
    p = b.op("GlobalAveragePool", [x])                                       # [N, 8, 1, 1]
    x = b.op("Add", [x, p])                                                  # broadcast
    x = b.op("MaxPool", [x], kernel_shape=(3, 3), strides=(2, 2))            # 3x3
    f = b.op("Flatten", [x])
    y = b.op("Softmax", [b.gemm(f, 72, 10, activation="tanh")])
    g = b.graph(y)
    for batch in (1, 3, 64):
        check(g, {"image": x_of(rng, batch, 3, 16, 16)}, isa)


def test_softmax_channels_and_4d_output(isa, rng):
    b = GB(rng, {"x": (None, 6, 3, 5)})
    y = b.op("Softmax", [b.conv("x", 6, 7, 1)], axis=1)
    z = b.op("Sigmoid", [b.conv("x", 6, 4, 3, pads=(1, 1, 1, 1))])
    check(b.graph(y, z), x_of(rng, 3, 6, 3, 5), isa)


def test_reshape_and_flatten_orders(isa, rng):
    b = GB(rng, {"x": (None, 4, 3, 5)})
    c = b.conv("x", 4, 6, 1)
    r = b.op("Reshape", [c], shape=(0, -1))
    f = b.op("Flatten", ["x"])
    t = b.op("Tanh", [b.op("Gelu", [f])])
    check(b.graph(r, t), x_of(rng, 3, 4, 3, 5), isa)


def test_broadcast_adds(isa, rng):
    b = GB(rng, {"x": (None, 5, 4, 6), "v": (None, 7)})
    bc = b.w((5, 1, 1))
    bw = b.w((6,))
    bhw = b.w((1, 4, 6))
    y = b.op("Add", [b.op("Add", [b.op("Add", ["x", bc]), bw]), bhw])
    y2 = b.op("Add", [b.w((1, 7)), "v"])
    y3 = b.op("Add", ["v", "v"])
    check(b.graph(y, y2, y3), {"x": x_of(rng, 3, 5, 4, 6), "v": x_of(rng, 3, 7)}, isa)


def test_identity_outputs_and_shared_values(isa, rng):
    """An output that is an input, one used twice, and one also consumed later."""
    b = GB(rng, {"x": (None, 2, 3, 3), "v": (None, 4)})
    i = b.op("Identity", ["v"])
    h = b.gemm(i, 4, 4)
    h2 = b.op("Relu", [h])
    c = b.op("Dropout", ["x"])
    g = b.graph(h, h2, c, "v", i)
    check(g, {"x": x_of(rng, 2, 2, 3, 3), "v": x_of(rng, 2, 4)}, isa)


def test_fixed_batch_and_records(rng):
    b = GB(rng, {"x": (1, 3, 4, 4)})
    y = b.op("Flatten", [b.conv("x", 3, 2, 1)])
    sess = rt.compile(b.graph(y), threads=1)
    assert sess.inputs == [("x", (1, 3, 4, 4), np.dtype(np.float32))]
    assert sess.outputs[0].name == y and sess.outputs[0].shape == (1, 32)
    assert sess.run(x_of(rng, 1, 3, 4, 4)).shape == (1, 32)
    with pytest.raises(rt.ShapeError, match=r"\(1, 3, 4, 4\)"):
        sess.run(x_of(rng, 2, 3, 4, 4))


def test_threads_agree(rng):
    b = GB(rng, {"x": (None, 3, 20, 20)})
    x = b.conv("x", 3, 16, 3, 1, (1, 1, 1, 1), activation="relu")
    x = b.dwconv(x, 16, 3, 2, pad=1)
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])])
    y = b.gemm(x, 16, 300)
    g = b.graph(y)
    for batch in (1, 5, 64):
        xs = x_of(rng, batch, 3, 20, 20)
        y1 = rt.compile(g, threads=1).run(xs)
        y2 = rt.compile(g, threads=2).run(xs)
        np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)


def test_plan_summary_and_memory(rng):
    b = GB(rng, {"x": (None, 3, 8, 8)})
    y = b.conv("x", 3, 4, 3)
    sess = rt.compile(b.graph(y), threads=1)
    kinds = [s["op"] for s in sess.plan_summary()]
    assert kinds == ["transpose", "conv", "transpose"]
    assert all(s["kernel"] for s in sess.plan_summary())
    assert 0 < sess.arena_bytes(1) < sess.arena_bytes(100)
    with pytest.raises(rt.ShapeError, match="too large|overflow"):
        sess.arena_bytes(10**15)
    # Output-only sizes count too: a Gemm whose output is 10**6 floats per sample.
    b2 = GB(rng, {"x": (None, 1)})
    big = rt.compile(b2.graph(b2.gemm("x", 1, 10**6, bias=False)), threads=1)
    with pytest.raises(rt.ShapeError, match="too large"):
        big.run(np.zeros((20000, 1), np.float32))  # 80 GB of output


# ---------------------------------------------------------------- defined outcomes

@pytest.fixture
def mlp_sess(rng):
    b = GB(rng, {"x": (None, 6)})
    g = b.graph(b.gemm("x", 6, 3))
    return g, rt.compile(g, threads=2)


def test_dtypes_converted(mlp_sess, rng):
    g, sess = mlp_sess
    x = rng.integers(-5, 5, (4, 6))
    want = run_reference(g, x.astype(np.float64))[g.outputs[0]]
    for dt in (np.int8, np.int32, np.uint8, np.int64, np.float16, np.float64):
        xs = np.abs(x).astype(dt) if dt == np.uint8 else x.astype(dt)
        ref = want if dt != np.uint8 else run_reference(g, np.abs(x))[g.outputs[0]]
        np.testing.assert_allclose(sess.run(xs), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sess.run(x.tolist()), want, rtol=1e-5, atol=1e-5)
    # a float32 dtype object equal to numpy's but not numpy's own (a deep-copied Graph's
    # ValueInfo dtype): used as float32, not refused by the binding
    import copy
    other = copy.deepcopy(np.dtype(np.float32))
    assert other is not np.dtype(np.float32)
    np.testing.assert_allclose(sess.run(x.astype(other)), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [np.zeros((2, 6), bool), np.zeros((2, 6), complex),
                                 np.zeros((2, 6), object), np.array([["a"] * 6])])
def test_bad_dtypes(mlp_sess, bad):
    with pytest.raises(rt.DTypeError, match="float32"):
        mlp_sess[1].run(bad)


@pytest.mark.parametrize("shape", [(6,), (2, 7), (2, 6, 1), (2, 5)])
def test_bad_shapes(mlp_sess, shape):
    with pytest.raises(rt.ShapeError) as e:
        mlp_sess[1].run(np.zeros(shape, np.float32))
    assert "'x'" in str(e.value) and "(None, 6)" in str(e.value) and str(shape) in str(e.value)


def test_empty_batch(mlp_sess):
    y = mlp_sess[1].run(np.zeros((0, 6), np.float32))
    assert y.shape == (0, 3) and y.dtype == np.float32


def test_noncontiguous_and_readonly(mlp_sess, rng):
    g, sess = mlp_sess
    big = x_of(rng, 8, 12)
    x = big[::2, ::2]
    assert not x.flags.c_contiguous
    np.testing.assert_allclose(sess.run(x), run_reference(g, x)[g.outputs[0]], rtol=1e-5, atol=1e-5)
    ro = np.ascontiguousarray(x)
    ro.setflags(write=False)
    np.testing.assert_array_equal(sess.run(ro), sess.run(x))
    xf = np.asfortranarray(x_of(rng, 5, 6))
    np.testing.assert_array_equal(sess.run(xf), sess.run(np.ascontiguousarray(xf)))


def test_nan_inf_propagate(mlp_sess):
    _, sess = mlp_sess
    x = np.zeros((3, 6), np.float32)
    x[0, 2] = np.nan
    x[1, 0] = np.inf
    y = sess.run(x)
    assert np.isnan(y[0]).all()
    assert not np.isfinite(y[1]).any()
    assert np.isfinite(y[2]).all()


def test_nan_through_relu_and_maxpool(isa, rng):
    b = GB(rng, {"x": (None, 3, 6, 6)})
    y = b.op("MaxPool", [b.op("Relu", ["x"])], kernel_shape=(2, 2), strides=(2, 2))
    sess = rt.compile(b.graph(y), threads=1, isa=isa)
    x = -np.abs(x_of(rng, 2, 3, 6, 6))
    x[0, 1, 2, 3] = np.nan
    y = sess.run(x)
    nan = np.isnan(y)
    assert nan[0, 1, 1, 1] and nan.sum() == 1
    assert (y[~nan] == 0).all()


def test_input_names(rng):
    b = GB(rng, {"a": (None, 3), "b": (None, 3)})
    g = b.graph(b.op("Add", ["a", "b"]))
    sess = rt.compile(g, threads=1)
    a = x_of(rng, 2, 3)
    out = sess.run({"a": a, "b": a})
    assert list(out) == g.outputs
    np.testing.assert_array_equal(out[g.outputs[0]], a + a)
    with pytest.raises(rt.InputError, match=r"\['a', 'b'\].*dict"):
        sess.run(a)
    with pytest.raises(rt.InputError, match=r"unknown \['c'\]"):
        sess.run({"a": a, "b": a, "c": a})
    with pytest.raises(rt.InputError, match=r"missing \['b'\]"):
        sess.run({"a": a})
    with pytest.raises(rt.ShapeError, match="same batch"):
        sess.run({"a": a, "b": x_of(rng, 3, 3)})


def test_compile_errors(rng):
    b = GB(rng, {"x": (None, 4)})
    g = b.graph(b.gemm("x", 4, 2))
    with pytest.raises(rt.InputError, match="'vulkan' is not available"):
        rt.compile(g, device="vulkan")
    for t in (0, -1, 1.5, True, "2"):
        with pytest.raises(rt.InputError, match="threads"):
            rt.compile(g, threads=t)
    with pytest.raises(rt.IsaError):
        rt.compile(g, isa="sse9")
    if not rt._core.isa_supported("avx512"):
        with pytest.raises(rt.IsaError):
            rt.compile(g, isa="avx512")
    with pytest.raises(rt.InputError):
        rt.compile("not a graph")
    assert rt.compile(g).threads >= 1


def test_constant_output_unsupported(rng):
    b = GB(rng, {"x": (None, 3)})
    c = b.op("Add", [b.w((3,)), b.w((3,))])
    with pytest.raises(rt.UnsupportedOpError, match="constant"):
        rt.compile(b.graph(b.op("Add", ["x", c]), c))
    # Folded constants feeding computed values are fine.
    check(b.graph(b.op("Add", ["x", c])), x_of(rng, 2, 3), "scalar")


@pytest.mark.parametrize("shape,axis", [((None, 2, 3, 4), -1), ((None, 2, 3, 4), 2),
                                        ((None, 5, 3), 1), ((None, 5, 3), -1)])
def test_softmax_any_axis(isa, rng, shape, axis):
    b = GB(rng, {"x": shape})
    g = b.graph(b.op("Softmax", ["x"], axis=axis))
    check(g, x_of(rng, 3, *shape[1:]) * 3, isa)


def test_softmax_batch_axis_unsupported(rng):
    b = GB(rng, {"x": (None, 2, 3, 4)})
    with pytest.raises(rt.UnsupportedOpError, match="Softmax"):
        rt.compile(b.graph(b.op("Softmax", ["x"], axis=0)))


def test_static_graph_mixes_first_dim(isa, rng):
    """All inputs with a fixed first dim: ops may mix it with the others."""
    b = GB(rng, {"x": (2, 3, 4, 5), "v": (5,)})
    f0 = b.op("Flatten", ["x"], axis=0)                       # (1, 120)
    f2 = b.op("Flatten", [b.conv("x", 3, 4, 3, pads=(1, 1, 1, 1))], axis=2)   # (8, 20)
    s0 = b.op("Softmax", ["x"], axis=0)
    a = b.op("Add", ["x", "v"])                               # lower-rank computed operand
    a2 = b.op("Add", ["x", b.w((2, 1, 4, 1))])
    r = b.op("Reshape", [b.op("MaxPool", ["x"], kernel_shape=(2, 2))], shape=(-1, 3))
    # A weight as the fused residual (only possible with static shapes): added separately,
    # before the activation.
    w, rw = b.w((2, 3, 1, 1)), b.w((2, 2, 4, 5))
    cr = b.op("Conv", ["x", w, "", rw], activation="tanh", residual=True)
    g = b.graph(f0, f2, s0, a, a2, r, cr)
    sess = check(g, {"x": x_of(rng, 2, 3, 4, 5), "v": x_of(rng, 5)}, isa)
    assert sess.outputs[0].shape == (1, 120)
    with pytest.raises(rt.ShapeError):
        sess.run({"x": x_of(rng, 3, 3, 4, 5), "v": x_of(rng, 5)})


@pytest.mark.parametrize("k,m,n", [(6, 3, 4), (1, 1, 1), (37, 19, 33), (130, 64, 17)])
def test_transpose_then_gemm_static(isa, rng, k, m, n):
    """Gemm on A^T (what the ONNX importer makes of transA=1): a static graph."""
    b = GB(rng, {"a": (k, m)})
    t = b.op("Transpose", ["a"], perm=(1, 0))
    y = b.gemm(t, k, n, activation="relu")
    sess = check(b.graph(y, t), {"a": x_of(rng, k, m)}, isa)
    assert [r["op"] for r in sess.plan_summary()][:2] == ["transpose", "gemm"]


def test_transpose_in_a_dynamic_graph_is_refused(rng):
    """Where dim 0 is the run's batch (not every input fixed), a transpose would move it."""
    b = GB(rng, {"x": (None, 4), "a": (3, 5)})
    g = b.graph(b.gemm("x", 4, 2), b.op("Transpose", ["a"]))
    with pytest.raises(rt.UnsupportedOpError, match="Transpose .* batch"):
        rt.compile(g)


# ---------------------------------------------------------------- zoo models, memory

def test_zoo_models(isa, rng):
    from pyruntime import zoo
    check(zoo.mlp(), x_of(rng, 3, 784), isa)
    check(zoo.tiny_cnn(), x_of(rng, 3, 3, 16, 16), isa)
    g = zoo.mobilenetv2_style(input_shape=(3, 32, 32), width=0.35, num_classes=10)
    for batch in (1, 2):
        check(g, x_of(rng, batch, 3, 32, 32), isa)


def test_arena_reuses_buffers(rng):
    """A chain of 12 same-size layers needs about two live buffers, not twelve."""
    b = GB(rng, {"x": (None, 64)})
    h = "x"
    for _ in range(12):
        h = b.gemm(h, 64, 64, activation="tanh")
    x = b.op("Sigmoid", [h])                    # unfused elementwise: runs in place
    y = b.op("Add", [b.op("Tanh", [x]), x])
    g = b.graph(y)
    sess = check(g, x_of(rng, 100, 64), "scalar")
    one = 64 * 4 * 100
    assert sess.arena_bytes(100) <= 3 * one


def test_pyruntime_isa_env():
    """PYRUNTIME_ISA picks the kernels of isa=None sessions; a bad value is an IsaError."""
    import os

    from conftest import run_python
    code = ("import numpy as np, pyruntime as rt\n"
            "from pyruntime.graph import Graph, Node, ValueInfo\n"
            "g = Graph([ValueInfo('x', (None, 3))], ['y'], [Node('Relu', ['x'], ['y'])])\n"
            "try:\n"
            "    s = rt.compile(g, threads=1)\n"
            "    print(s.isa, s.run(np.array([[-1, 0, 2]], np.float32)).tolist())\n"
            "except rt.IsaError:\n"
            "    print('IsaError')\n")
    env = dict(os.environ)

    def run(value):
        env["PYRUNTIME_ISA"] = value
        return run_python(code, env=env).stdout.strip()

    assert run("scalar") == "scalar [[0.0, 0.0, 2.0]]"
    assert run("nonsense") == "IsaError"
