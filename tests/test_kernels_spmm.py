"""Sparse x dense kernels (f32_spmm, every ISA) against an independent float64 reference,
and the CPU plan's sparse steps (Gemm, 1x1 and im2col convs) against the reference
evaluator."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import _core, zoo
from pyruntime.reference import run_reference

from conftest import SUPPORTED_ISAS, isa_w16_params, ref_act

T = _core.testing
GROUPS = (1, 2, 4, 8, 16)


@pytest.fixture(params=isa_w16_params())
def isa(request) -> str:
    """Every ISA plus avx2w16 (the AVX-512 template logic from AVX2 halves)."""
    return request.param


def sparse_matrix(K: int, N: int, density: float, seed: int, block: int = 1) -> np.ndarray:
    """B [K, N] with about `density` nonzeros, in blocks of `block` output channels."""
    r = np.random.default_rng(seed)
    keep = r.random((K, (N + block - 1) // block)) < density
    keep = np.repeat(keep, block, axis=1)[:, :N]
    return (r.standard_normal((K, N)) * keep).astype(np.float32)


def check(A, B, C, bias=None, residual=None, act="none", lo=-np.inf, hi=np.inf, after=False):
    """C against float64, within a bound from float32 rounding of each product's terms."""
    a, b = A.astype(np.float64), B.astype(np.float64)
    v = a @ b
    scale = np.abs(a) @ np.abs(b)
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
    bound = 4 * np.finfo(np.float32).eps * (A.shape[1] + 2) * (scale + 1e-30) + 1e-30
    err = np.abs(C - v)
    assert np.all(err <= bound), f"worst {np.max(err / bound):.3g} of the bound"


# Rows: 1 and 2 (row kernel), tiles of 1..4 vectors and ragged tails at every width.
ROWS = (1, 2, 3, 7, 16, 17, 33, 47, 64, 65, 131)


@pytest.mark.parametrize("R", GROUPS)
@pytest.mark.parametrize("M", ROWS)
def test_spmm_shapes(isa, R, M):
    K, N = 53, 37  # primes: ragged last group for every R > 1
    A = np.random.default_rng(M).standard_normal((M, K)).astype(np.float32)
    B = sparse_matrix(K, N, 0.15, seed=R)
    for parts in (1, 3):
        check(A, B, T.spmm(A, B, R, isa=isa, parts=parts))


@pytest.mark.parametrize("R", GROUPS)
def test_spmm_degenerate_patterns(isa, R):
    rng = np.random.default_rng(1)
    K, N = 29, 19
    A = rng.standard_normal((40, K)).astype(np.float32)
    zero = np.zeros((K, N), np.float32)
    one = zero.copy()
    one[7, 11] = 2.5                                  # a single nonzero
    rows = sparse_matrix(K, N, 0.5, 3)
    rows[:, ::3] = 0                                  # empty output channels
    rows[::2, :] = 0                                  # unused inputs
    full = rng.standard_normal((K, N)).astype(np.float32)  # 0% sparsity stored sparse
    for B in (zero, one, rows, full):
        for M in (1, 2, 40):
            check(A[:M], B, T.spmm(A[:M], B, R, isa=isa, parts=2))


@pytest.mark.parametrize("act", ["none", "relu", "clip", "sigmoid", "tanh", "gelu"])
@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("M", [1, 2, 35])
def test_spmm_epilogues(isa, act, after, M):
    rng = np.random.default_rng(5)
    K, N = 31, 41
    A = rng.standard_normal((M, K)).astype(np.float32)
    B = sparse_matrix(K, N, 0.2, 6, block=4)
    bias = rng.standard_normal(N).astype(np.float32)
    res = rng.standard_normal((M, N)).astype(np.float32)
    C = T.spmm(A, B, 4, bias=bias, residual=res, act=act, lo=-0.5, hi=0.75,
               residual_after_act=after, isa=isa)
    check(A, B, C, bias, res, act, -0.5, 0.75, after)


def test_spmm_int32_indices_beyond_65536_inputs(isa):
    K, N = 70001, 3
    B = np.zeros((K, N), np.float32)
    B[[0, 65535, 65536, 70000], [0, 1, 2, 0]] = [1.0, 2.0, 3.0, 4.0]
    assert T.spmm_info(B, 1)["idx_bytes"] == 4
    assert T.spmm_info(B[:65536], 1)["idx_bytes"] == 2
    A = np.random.default_rng(0).standard_normal((5, K)).astype(np.float32)
    for M in (1, 5):
        check(A[:M], B, T.spmm(A[:M], B, 1, isa=isa))


def test_spmm_packs_only_nonzero_pairs():
    B = sparse_matrix(64, 48, 0.1, 9, block=4)
    nz = int(np.count_nonzero(B))
    assert T.spmm_info(B, 1)["pairs"] == nz
    # blocks of 4 channels: one pair per input a block reads
    want = int(np.count_nonzero(np.abs(B).reshape(64, 12, 4).sum(axis=2)))
    assert T.spmm_info(B, 4)["pairs"] == want
    with pytest.raises(Exception, match="group size"):
        T.spmm_info(B, 3)


def test_nan_weight_propagates(isa):
    B = np.zeros((8, 4), np.float32)
    B[2, 1] = np.nan
    A = np.ones((3, 8), np.float32)
    C = T.spmm(A, B, 1, isa=isa)
    assert np.isnan(C[:, 1]).all() and not np.isnan(C[:, [0, 2, 3]]).any()


# ------------------------------------------------------------------ plans

def pruned_graph(g: rt.Graph, sparsity: float, block=None) -> rt.Graph:
    if block is None:
        return rt.prune(g, sparsity, scope="layer", min_params=0)
    return rt.prune(g, sparsity, structure="block", block=block, scope="layer", min_params=0)


@pytest.mark.parametrize("isa_name", SUPPORTED_ISAS)
@pytest.mark.parametrize("mode", ["sparse", "auto"])
def test_mlp_sparse_plan_matches_reference(isa_name, mode):
    g = pruned_graph(zoo.mlp((96, 160, 48, 10)), 0.9)
    s = rt.compile(g, threads=2, isa=isa_name, sparse=mode)
    kernels = [r["kernel"] for r in s.plan_summary() if r["op"] == "gemm"]
    assert all("f32_spmm" in k for k in kernels), kernels
    for batch in (1, 2, 3, 70):
        x = np.random.default_rng(batch).standard_normal((batch, 96)).astype(np.float32)
        ref = run_reference(g, x)[g.outputs[0]]
        np.testing.assert_allclose(s.run(x), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("isa_name", SUPPORTED_ISAS)
def test_cnn_sparse_plan_matches_reference(isa_name):
    # 3x3 convs through im2col + spmm, 1x1 convs and the Dense head on f32_spmm
    g = pruned_graph(zoo.tiny_cnn(), 0.8, block=(4, 1))
    s = rt.compile(g, threads=2, isa=isa_name, sparse="sparse")
    summary = s.plan_summary()
    assert any(r["op"] == "conv" and "im2col+f32_spmm" in r["kernel"] for r in summary)
    assert all(r["computed_as"] == "f32 sparse" for r in summary
               if r["op"] in ("conv", "conv1x1", "gemm") and r["weight_format"] in ("bsr", "csr"))
    for batch in (1, 4):
        x = np.random.default_rng(batch).standard_normal(
            (batch,) + tuple(g.inputs[0].shape[1:])).astype(np.float32)
        ref = run_reference(g, x)[g.outputs[0]]
        np.testing.assert_allclose(s.run(x), ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(rt.compile(g, threads=1, isa=isa_name, sparse="dense").run(x),
                                   ref, rtol=1e-4, atol=1e-5)


def test_auto_keeps_both_kernels_and_switches_by_rows():
    # 60% zeros: the sparse row kernel wins at one row, the dense GEMM at many
    g = pruned_graph(zoo.mlp((512, 512, 10)), 0.6)
    s = rt.compile(g, threads=1)
    k = s.plan_summary()[0]["kernel"]
    assert "f32_spmm" in k and "; dense " in k, k
    R, dense_from, sparse_from, density = _core.sparse_choice(
        np.ascontiguousarray(g.weights["fc1.weight"].numpy()), s.isa)
    assert 1 < dense_from < sparse_from and abs(density - 0.4) < 0.05
    for batch in (1, dense_from - 1, dense_from, dense_from + 5, min(sparse_from, 300)):
        x = np.random.default_rng(batch).standard_normal((batch, 512)).astype(np.float32)
        np.testing.assert_allclose(s.run(x), run_reference(g, x)[g.outputs[0]],
                                   rtol=1e-4, atol=1e-5)


def test_dense_weights_stay_dense_and_modes_are_checked():
    g = zoo.mlp((64, 32, 10))
    s = rt.compile(g, threads=1)
    assert all("f32_spmm" not in r["kernel"] for r in s.plan_summary())
    p = pruned_graph(g, 0.95)
    assert all("f32_spmm" not in r["kernel"]
               for r in rt.compile(p, threads=1, sparse="dense").plan_summary())
    with pytest.raises(rt.InputError, match="sparse must be one of"):
        rt.compile(g, sparse="yes")


def test_static_batch_keeps_only_the_kernel_that_runs():
    g = pruned_graph(zoo.mlp((512, 512, 10)), 0.6)
    x = np.random.default_rng(0).standard_normal((1, 512)).astype(np.float32)
    fixed = rt.Graph(inputs=[rt.ValueInfo(g.inputs[0].name, (1, 512))], outputs=g.outputs,
                     nodes=g.nodes, weights=g.weights, name="fixed")
    k = rt.compile(fixed, threads=1).plan_summary()[0]["kernel"]
    assert "f32_spmm" in k and "; dense " not in k, k
    np.testing.assert_allclose(rt.compile(fixed, threads=1).run(x),
                               run_reference(g, x)[g.outputs[0]], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("isa_name", SUPPORTED_ISAS)
@pytest.mark.parametrize("block", [None, (16, 1)])
def test_fused_blocks_run_sparse_pointwise_convs(isa_name, block):
    g = zoo.mobilenetv2_style(input_shape=(3, 32, 32), width=0.5, num_classes=10)
    pw = {n.inputs[1]: 0.9 for n in g.nodes
          if n.op == "Conv" and g.weights[n.inputs[1]].shape[2:] == (1, 1)}
    kw = {"structure": "block", "block": block} if block else {}
    p = rt.prune(g, pw, **kw)
    for threads in (1, 2):
        s = rt.compile(p, threads=threads, isa=isa_name, sparse="sparse")
        fused = [r for r in s.plan_summary() if r["op"] == "inverted_residual"]
        assert fused and all("f32_spmm" in r["kernel"] for r in fused)
        for batch in (1, 3):
            x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
            ref = run_reference(p, x)[p.outputs[0]]
            np.testing.assert_allclose(s.run(x), ref, rtol=2e-4, atol=2e-4)


def test_dense_band_between_the_row_kernel_and_full_tiles():
    # 70% zeros: the row kernel wins at one row, the dense GEMM at a few, full sparse tiles
    # again from some rows on (the cost model's band)
    g = pruned_graph(zoo.mlp((512, 512, 10)), 0.7)
    R, dense_from, sparse_from, _ = _core.sparse_choice(
        np.ascontiguousarray(g.weights["fc1.weight"].numpy()), "avx512" if "avx512" in
        SUPPORTED_ISAS else SUPPORTED_ISAS[-1])
    if sparse_from >= 2 ** 62:
        pytest.skip("no band for this ISA's rates")
    s = rt.compile(g, threads=2)
    k = s.plan_summary()[0]["kernel"]
    assert f"from {dense_from} rows to {sparse_from - 1}" in k, k
    for batch in (1, dense_from, sparse_from - 1, sparse_from, sparse_from + 7):
        x = np.random.default_rng(batch).standard_normal((batch, 512)).astype(np.float32)
        np.testing.assert_allclose(s.run(x), run_reference(g, x)[g.outputs[0]],
                                   rtol=1e-4, atol=1e-5)


def test_unstored_zeros_skip_infinite_inputs(isa):
    # documented: a pruned weight contributes nothing, also for inf/NaN activations
    # (the dense product gives 0 * inf = NaN); NaN weights and stored zeros do multiply
    A = np.array([[np.inf, 1.0, np.nan]], np.float32)
    B = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 0.0]], np.float32)
    for M in (1, 5):
        C = T.spmm(np.repeat(A, M, axis=0), B, 1, isa=isa)
        assert (C[:, 0] == 0).all() and np.isinf(C[:, 1]).all()


def test_spmm_entry_checks_its_arguments():
    A, B = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    with pytest.raises(rt.InputError, match="parts and repeat must be >= 1"):
        T.spmm(A, B, 1, parts=0)
