"""The fused inverted-residual step ([1x1 expand] -> depthwise -> 1x1 project [+ residual])
against the float64 reference at every ISA, and against the unfused plan of the same
graph; shapes that hurt (primes, channels off the vector width, stride 2 on odd sizes,
padding), both thread splits (rows; hidden channels for small images), fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import nn, zoo
from pyruntime.cpu.session import compile_cpu
from pyruntime.reference import run_reference

from conftest import isa_params


@pytest.fixture(params=isa_params())
def isa(request) -> str:
    return request.param


def block_graph(cin, hw, hidden, cout, k=3, stride=1, pad=None, act="relu6",
                expand=True, residual=None, project_act=None, prelude=True, seed=0):
    """x -> [stem conv] -> block. residual None = as MobileNetV2 (stride 1, cin == cout)."""
    h, w = hw
    x = nn.Input((cin, h, w), name="input")
    t = nn.Conv2D(cin, 3, padding=1, activation="relu", name="pre")(x) if prelude else x
    b = nn.Conv2D(hidden, 1, activation=act, name="expand")(t) if expand else t
    b = nn.DepthwiseConv2D(k, strides=stride, padding=k // 2 if pad is None else pad,
                           activation=act, name="dw")(b)
    b = nn.Conv2D(cout, 1, activation=project_act, name="project")(b)
    if residual is None:
        residual = stride == 1 and cin == cout and b.shape[2:] == t.shape[2:]
    if residual:
        b = nn.Add(name="add")([t, b])
    y = nn.Activation("sigmoid", name="post")(b)  # an op after the block: not an output
    return nn.Model(x, y, name="block", seed=seed).graph


def ops(sess) -> list[str]:
    return [r["op"] for r in sess.plan_summary()]


def check(g, shape, isa, threads=2, batch=2, rng=None, expect_fused=True):
    rng = rng or np.random.default_rng(0)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    fused = compile_cpu(g, threads=threads, isa=isa)
    plain = compile_cpu(g, threads=threads, isa=isa, fuse_blocks=False)
    assert ("inverted_residual" in ops(fused)) == expect_fused, ops(fused)
    assert "inverted_residual" not in ops(plain)
    got, base, want = fused.run(x), plain.run(x), run_reference(g, x)
    if not isinstance(got, dict):
        got, base = {g.outputs[0]: got}, {g.outputs[0]: base}
    for name in g.outputs:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(got[name], base[name], rtol=1e-5, atol=1e-5, err_msg=name)
    return fused


SHAPES = [  # cin, (h, w), hidden, cout, k, stride, pad
    (8, (13, 11), 48, 8, 3, 1, None),      # residual, primes
    (5, (17, 19), 30, 7, 3, 1, None),      # channels off the vector width
    (6, (15, 13), 36, 10, 3, 2, None),     # stride 2, odd input
    (16, (7, 7), 96, 16, 3, 1, None),      # small image
    (16, (14, 14), 96, 24, 3, 2, None),    # 14 -> 7
    (4, (9, 23), 20, 4, 5, 1, None),       # 5x5
    (3, (11, 10), 17, 3, 5, 2, None),      # 5x5 stride 2
    (8, (12, 12), 40, 8, 3, 1, 0),         # no padding: output smaller, no residual
    (8, (6, 9), 33, 8, 3, 1, (2, 2, 2, 2)),  # pads beyond the kernel reach
    (24, (56, 56), 144, 24, 3, 1, None),   # MobileNetV2 block 2
]


@pytest.mark.parametrize("cin,hw,hidden,cout,k,s,pad", SHAPES)
def test_fused_block_matches_reference_and_unfused(isa, rng, cin, hw, hidden, cout, k, s, pad):
    g = block_graph(cin, hw, hidden, cout, k, s, pad)
    sess = check(g, (cin,) + hw, isa, rng=rng)
    step = next(r for r in sess.plan_summary() if r["op"] == "inverted_residual")
    assert step["kernel"].count("f32_gemm") == 2 and "f32_dwconv__" in step["kernel"]
    assert "'expand'" in step["node"] and "'dw'" in step["node"] and "'project'" in step["node"]


@pytest.mark.parametrize("cout,narrow", [(16, True), (13, True), (48, True), (24, False),
                                         (80, False)])
def test_narrow_outputs_use_the_narrow_gemm(isa, rng, cout, narrow):
    """On AVX-512, a 1x1 conv, a 3x3 conv or a block projection whose width pads to at
    most 3/4 of the 32-column tile runs on the 14x16 kernel (GemmConfig::narrow); the
    results match the float64 reference either way."""
    x = nn.Input((8, 9, 15), name="input")
    h = nn.Conv2D(cout, 3, padding=1, activation="relu", name="conv3")(x)
    h = nn.Conv2D(cout, 1, activation="relu6", name="conv1")(h)
    h = nn.DepthwiseConv2D(3, padding=1, activation="relu6", name="dw")(h)
    h = nn.Conv2D(cout, 1, name="project")(h)
    g = nn.Model(x, h, name="narrow").graph
    sess = check(g, (8, 9, 15), isa, rng=rng, batch=3)
    kernels = [r["kernel"] for r in sess.plan_summary()]
    want = narrow and sess.isa == "avx512"
    assert all(("f32_gemm_14x16__avx512" in k) == want for k in kernels if "f32_gemm" in k), kernels


@pytest.mark.parametrize("act", ["relu", "relu6", None])
@pytest.mark.parametrize("residual", [False, True])
def test_activations_and_residual(isa, rng, act, residual):
    g = block_graph(12, (9, 10), 40, 12, act=act, residual=residual)
    check(g, (12, 9, 10), isa, rng=rng)


def test_project_activation(isa, rng):
    g = block_graph(8, (8, 8), 32, 8, project_act="relu", residual=True)
    check(g, (8, 8, 8), isa, rng=rng)


def test_no_expand(isa, rng):
    """MobileNetV2's first block (expansion 1): depthwise -> project only."""
    g = block_graph(32, (15, 16), 32, 16, expand=False)
    sess = check(g, (32, 15, 16), isa, rng=rng)
    step = next(r for r in sess.plan_summary() if r["op"] == "inverted_residual")
    assert step["kernel"].count("f32_gemm") == 1


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize("batch", [1, 2, 5])
@pytest.mark.parametrize("hw", [(7, 7), (5, 6), (28, 28)])
def test_thread_splits(rng, threads, batch, hw):
    """Rows, whole images, or hidden channels (small images, fewer images than threads)
    all give the unfused result."""
    g = block_graph(16, hw, 96, 16)
    check(g, (16,) + hw, None, threads=threads, batch=batch, rng=rng)


def test_block_input_is_a_graph_input(isa, rng):
    g = block_graph(8, (10, 10), 48, 8, prelude=False)
    check(g, (8, 10, 10), isa, rng=rng)


def test_intermediate_read_elsewhere_is_not_fused(rng):
    x = nn.Input((8, 9, 9), name="input")
    e = nn.Conv2D(32, 1, activation="relu6", name="expand")(x)
    d = nn.DepthwiseConv2D(3, padding=1, activation="relu6", name="dw")(e)
    p = nn.Conv2D(8, 1, name="project")(d)
    g = nn.Model(x, [p, d], name="two_outputs").graph  # the dw output is also an output
    sess = check(g, (8, 9, 9), None, rng=rng, expect_fused=False)
    assert "dwconv" in ops(sess)


def test_chained_blocks_share_no_node(rng):
    """project of one block -> depthwise -> project: the second block has no expand."""
    x = nn.Input((8, 12, 12), name="input")
    h = nn.Conv2D(32, 1, activation="relu6", name="e1")(x)
    h = nn.DepthwiseConv2D(3, padding=1, activation="relu6", name="d1")(h)
    h = nn.Conv2D(24, 1, name="p1")(h)
    h = nn.DepthwiseConv2D(3, strides=2, padding=1, name="d2")(h)
    h = nn.Conv2D(16, 1, activation="relu", name="p2")(h)
    g = nn.Model(x, h, name="chain").graph
    sess = check(g, (8, 12, 12), None, rng=rng)
    assert ops(sess).count("inverted_residual") == 2


@pytest.mark.parametrize("threads", [1, 2])
def test_small_mobilenet(isa, threads):
    g = zoo.mobilenetv2_style(input_shape=(3, 64, 64), width=0.35, num_classes=10)
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    fused = compile_cpu(g, threads=threads, isa=isa)
    plain = compile_cpu(g, threads=threads, isa=isa, fuse_blocks=False)
    assert ops(fused).count("inverted_residual") == 17
    got, base = fused.run(x), plain.run(x)
    want = run_reference(g, x)["logits"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, base, rtol=1e-5, atol=1e-5)


def test_arena_and_profile(rng):
    g = block_graph(16, (14, 14), 96, 16)
    sess = rt.compile(g, threads=2)
    assert sess.arena_bytes(4) > 0
    prof = sess.profile(rng.standard_normal((1, 16, 14, 14)).astype(np.float32), repeat=2)
    assert "inverted_residual" in [r["op"] for r in prof]
