"""Sparse weights with int8 values (qc8w_spmm, every ISA this CPU runs) against float64
with the int8 values times their scales exactly, and the CPU plan's int8 sparse steps
(rt.quantize(rt.prune(...), "int8") models) against the reference evaluator."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import _core, zoo
from pyruntime.reference import run_reference

from conftest import SUPPORTED_ISAS, isa_params, ref_act

T = _core.testing
GROUPS = (1, 2, 4, 8, 16)
# 1 and 2 rows: the int8 row kernel; more: f32_spmm's tiles on the dequantized weight
# (tiles=True) or the row kernel row by row (tiles=False).
ROWS = (1, 2, 3, 7, 16, 17, 33, 64, 65, 131)


@pytest.fixture(params=isa_params())
def isa(request) -> str:
    return request.param


def int8_sparse(K: int, N: int, density: float, seed: int, block: int = 1):
    """Q int8 [K, N] in [-127, 127] with about `density` nonzeros in blocks of `block`
    output channels, and one positive float32 scale per channel."""
    r = np.random.default_rng(seed)
    keep = r.random((K, (N + block - 1) // block)) < density
    keep = np.repeat(keep, block, axis=1)[:, :N]
    q = (r.integers(-127, 128, (K, N)) * keep).astype(np.int8)
    s = (r.random(N) * 0.05 + 1e-3).astype(np.float32)
    return q, s


def check(A, Q, s, C, bias=None, residual=None, act="none", lo=-np.inf, hi=np.inf,
          after=False):
    """C against float64 of A @ (Q * s), within a bound from float32 rounding: the K-term
    sum (in the kernel, or of the dequantized products on the f32 tiles), the scale's
    multiply or the dequantization, and the epilogue's operations."""
    a = A.astype(np.float64)
    w = Q.astype(np.float64) * s.astype(np.float64)
    v = a @ w
    scale = np.abs(a) @ np.abs(w)
    if bias is not None:
        v = v + bias
        scale = scale + np.abs(bias)
    if residual is not None and not after:
        v = v + residual
        scale = scale + np.abs(residual)
    v = ref_act(v, act, lo, hi)
    if residual is not None and after:
        v = v + residual
        scale = scale + np.abs(residual)
    bound = 4 * np.finfo(np.float32).eps * (A.shape[1] + 3) * (scale + 1e-30) + 1e-30
    err = np.abs(C - v)
    assert np.all(err <= bound), f"worst {np.max(err / bound):.3g} of the bound"


def test_every_isa_has_the_entry(isa):
    assert T.qspmm_kernel(isa) == f"qc8w_spmm__{isa}"


@pytest.mark.parametrize("R", GROUPS)
@pytest.mark.parametrize("M", ROWS)
def test_qspmm_shapes(isa, R, M):
    K, N = 53, 37  # primes: a ragged last group for every R > 1
    A = np.random.default_rng(M).standard_normal((M, K)).astype(np.float32)
    Q, s = int8_sparse(K, N, 0.15, seed=R, block=R)
    for parts in (1, 3):
        check(A, Q, s, T.qspmm(A, Q, s, R, isa=isa, parts=parts))
    check(A, Q, s, T.qspmm(A, Q, s, R, isa=isa, tiles=False))


@pytest.mark.parametrize("R", GROUPS)
def test_qspmm_long_rows_and_vector_tails(isa, R):
    # K and stored pairs past 4 vectors per group: the unrolled loops and their tails
    for K in (100, 257, 1031):
        A = np.random.default_rng(K).standard_normal((2, K)).astype(np.float32)
        Q, s = int8_sparse(K, 35, 0.6, seed=K + R)
        for M in (1, 2):
            check(A[:M], Q, s, T.qspmm(A[:M], Q, s, R, isa=isa, parts=2))


@pytest.mark.parametrize("R", GROUPS)
def test_qspmm_degenerate_patterns(isa, R):
    rng = np.random.default_rng(1)
    K, N = 29, 19
    A = rng.standard_normal((40, K)).astype(np.float32)
    _, s = int8_sparse(K, N, 0.5, 2)
    zero = np.zeros((K, N), np.int8)
    one = zero.copy()
    one[7, 11] = -127                                # a single nonzero
    rows, _ = int8_sparse(K, N, 0.5, 3)
    rows[:, ::3] = 0                                 # empty output channels
    rows[::2, :] = 0                                 # unused inputs
    full = rng.integers(-127, 128, (K, N)).astype(np.int8)
    full[full == 0] = 1                              # no zeros at all
    for Q in (zero, one, rows, full):
        for M in (1, 2, 40):
            C = T.qspmm(A[:M], Q, s, R, isa=isa, parts=2)
            check(A[:M], Q, s, C)
            if not Q.any():
                assert np.all(C == 0)


@pytest.mark.parametrize("act", ["none", "relu", "clip", "sigmoid", "tanh", "gelu"])
@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("M", [1, 2, 35])
def test_qspmm_epilogues(isa, act, after, M):
    rng = np.random.default_rng(5)
    K, N = 31, 41
    A = rng.standard_normal((M, K)).astype(np.float32)
    Q, s = int8_sparse(K, N, 0.2, 6, block=4)
    bias = rng.standard_normal(N).astype(np.float32)
    res = rng.standard_normal((M, N)).astype(np.float32)
    for R in (1, 4, 16):
        C = T.qspmm(A, Q, s, R, bias=bias, residual=res, act=act, lo=-0.5, hi=0.75,
                    residual_after_act=after, isa=isa)
        check(A, Q, s, C, bias, res, act, -0.5, 0.75, after)


def test_qspmm_int32_indices_beyond_65536_inputs(isa):
    K, N = 70001, 3
    Q = np.zeros((K, N), np.int8)
    Q[[0, 65535, 65536, 70000], [0, 1, 2, 0]] = [1, -2, 3, 127]
    s = np.array([0.5, 0.25, 2.0], np.float32)
    A = np.random.default_rng(0).standard_normal((5, K)).astype(np.float32)
    for M in (1, 2, 5):
        for R in (1, 4):
            check(A[:M], Q, s, T.qspmm(A[:M], Q, s, R, isa=isa))


def test_qspmm_is_exact_on_representable_sums(isa):
    # integer activations and power-of-two scales: every partial sum is exact in float32
    rng = np.random.default_rng(3)
    Q, _ = int8_sparse(200, 40, 0.3, 4)
    s = (2.0 ** rng.integers(-8, 3, 40)).astype(np.float32)
    A = rng.integers(-8, 9, (2, 200)).astype(np.float32)
    want = A.astype(np.float64) @ (Q.astype(np.float64) * s)
    for R in GROUPS:
        np.testing.assert_array_equal(T.qspmm(A, Q, s, R, isa=isa), want)


# ------------------------------------------------------------------ plans

def int8_pruned(g: rt.Graph, sparsity: float, block=None) -> rt.Graph:
    kw = {"structure": "block", "block": block} if block else {}
    return rt.quantize(rt.prune(g, sparsity, scope="layer", min_params=0, **kw), "int8")


def _int8_layers(s, g: rt.Graph) -> list[dict]:
    return [r for r in s.plan_summary() if r["op"] in ("gemm", "conv", "conv1x1")
            and r["weight_format"] in ("csr", "bsr")]


@pytest.mark.parametrize("isa_name", SUPPORTED_ISAS)
@pytest.mark.parametrize("block", [None, (16, 1)])
def test_mlp_int8_sparse_plan_matches_reference(isa_name, block):
    g = int8_pruned(zoo.mlp((96, 160, 48, 10)), 0.9, block)
    assert all(w.arrays["values"].dtype == np.int8 for w in g.weights.values()
               if w.format in ("csr", "bsr"))
    for mode in ("sparse", "auto"):
        s = rt.compile(g, threads=2, isa=isa_name, sparse=mode)
        layers = _int8_layers(s, g)
        if mode == "sparse":
            assert layers and all(r["computed_as"] == "int8w sparse" for r in layers), layers
            assert all(f"qc8w_spmm__{isa_name}" in r["kernel"] for r in layers)
        for batch in (1, 2, 3, 70):
            x = np.random.default_rng(batch).standard_normal((batch, 96)).astype(np.float32)
            ref = run_reference(g, x)[g.outputs[0]]
            np.testing.assert_allclose(s.run(x), ref, rtol=1e-4, atol=1e-5)


def small_cnn() -> rt.Graph:
    """3x3 convs (stride 1 and 2, padded), a 1x1 conv with a residual add, a Dense head;
    no BatchNorm (folding it into an int8 kernel re-quantizes the kernel, so the plan
    would not compute the reference's graph)."""
    nn = rt.nn
    x = nn.Input((3, 12, 12), name="input")
    h = nn.Conv2D(16, 3, padding="same", activation="relu", name="c1")(x)
    r = nn.Conv2D(24, 3, strides=2, padding="same", activation="relu", name="c2")(h)
    h = nn.Conv2D(24, 1, name="pw")(r)
    h = nn.Add(name="add")([r, h])
    h = nn.GlobalAvgPool2D(name="gap")(h)
    y = nn.Dense(10, name="head")(h)
    return nn.Model(x, y, name="small_cnn", seed=0).graph


@pytest.mark.parametrize("isa_name", SUPPORTED_ISAS)
def test_cnn_int8_sparse_plan_matches_reference(isa_name):
    # 3x3 convs (im2col), 1x1 convs and the Dense head with int8 csr/bsr weights
    for block in (None, (4, 1)):
        g = int8_pruned(small_cnn(), 0.8, block)
        s = rt.compile(g, threads=2, isa=isa_name, sparse="sparse")
        layers = _int8_layers(s, g)
        assert any(r["op"] == "conv" and "im2col+qc8w_spmm" in r["kernel"] for r in layers)
        assert any(r["op"] in ("conv1x1", "gemm") for r in layers)
        assert all(r["computed_as"] == "int8w sparse" for r in layers), layers
        dense = rt.compile(g, threads=1, isa=isa_name, sparse="dense")
        assert all(r["computed_as"] == "f32" for r in _int8_layers(dense, g))
        for batch in (1, 4):
            x = np.random.default_rng(batch).standard_normal(
                (batch,) + tuple(g.inputs[0].shape[1:])).astype(np.float32)
            ref = run_reference(g, x)[g.outputs[0]]
            np.testing.assert_allclose(s.run(x), ref, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(dense.run(x), ref, rtol=1e-4, atol=1e-5)


def test_static_batch_of_one_keeps_only_the_int8_row_kernel():
    g = int8_pruned(zoo.mlp((512, 512, 10)), 0.9)
    fixed = rt.Graph(inputs=[rt.ValueInfo(g.inputs[0].name, (1, 512))], outputs=g.outputs,
                     nodes=g.nodes, weights=g.weights, name="fixed")
    s = rt.compile(fixed, threads=1, sparse="sparse")
    k = s.plan_summary()[0]["kernel"]
    assert "qc8w_spmm" in k and "f32_spmm" not in k, k
    x = np.random.default_rng(0).standard_normal((1, 512)).astype(np.float32)
    np.testing.assert_allclose(s.run(x), run_reference(g, x)[g.outputs[0]],
                               rtol=1e-4, atol=1e-5)


def test_int8_sparse_weights_are_smaller_than_float():
    g = rt.prune(zoo.mlp((512, 512, 10)), 0.9, scope="layer", min_params=0)
    fixed = lambda h: rt.Graph(inputs=[rt.ValueInfo(h.inputs[0].name, (1, 512))],  # noqa: E731
                               outputs=h.outputs, nodes=h.nodes, weights=h.weights, name="f")
    f32 = rt.compile(fixed(g), threads=1, sparse="sparse")
    q8 = rt.compile(fixed(rt.quantize(g, "int8")), threads=1, sparse="sparse")
    b32, b8 = f32._plan.packed_weight_bytes(), q8._plan.packed_weight_bytes()
    assert b8 < 0.6 * b32, (b8, b32)
