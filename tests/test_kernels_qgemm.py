"""int8 GEMM (qs8_qc8w_gemm) kernels, every variant this CPU runs, against numpy.

The accumulator is checked exactly (int64 numpy), float outputs within a bound from
float32 rounding of the epilogue, uint8 outputs within one step of the float64
reference's quantization, and exactly equal away from rounding edges. `variant=` picks
each kernel by name, so the AVX2 and AVX-512 kernels without VNNI run here too on a
machine whose tables hold the VNNI ones, and the AVX-VNNI tile runs with vpdpbusd
emulated in AVX2 (qs8_qc8w_gemm_6x16__avxvnni_emu: few machines have AVX-VNNI)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import _core

from conftest import check_float, check_u8, ref_act

T = _core.testing
ACTS = ("none", "relu", "clip", "sigmoid", "tanh", "gelu")
VARIANTS = [v["name"] for v in T.qgemm_variants() if v["runs"]]
EPS = 2.0 ** -24


@pytest.fixture(params=VARIANTS)
def variant(request) -> str:
    return request.param


def rand_a(rng, M, K):
    return rng.integers(0, 256, size=(M, K), dtype=np.uint8)


def rand_b(rng, K, N):
    return rng.integers(-127, 128, size=(K, N), dtype=np.int8)


def acc_ref(A, B, a_zp):
    """The exact int64 sum of (a - zp) * b."""
    zp = np.broadcast_to(np.asarray(a_zp, dtype=np.int64).reshape(-1, 1), (A.shape[0], 1))
    return (A.astype(np.int64) - zp) @ B.astype(np.int64)


def reference(A, B, a_scale, a_zp, w_scale, bias=None, residual=None, act="none", lo=0.0,
              hi=0.0, residual_after_act=False):
    """float64 epilogue of the exact accumulator, and a per-element bound for float32."""
    acc = acc_ref(A, B, a_zp).astype(np.float64)
    s = np.asarray(a_scale, dtype=np.float64).reshape(-1, 1) * w_scale.astype(np.float64)
    v = acc * s
    mag = np.abs(v)
    if bias is not None:
        v = v + bias
        mag = mag + np.abs(bias)
    if residual is not None:
        mag = mag + np.abs(residual)
        if not residual_after_act:
            v = v + residual
    v = ref_act(v, act, lo, hi)
    if residual is not None and residual_after_act:
        v = v + residual
        mag = mag + np.abs(residual)
    # Roundings: the scale product, the int -> float conversion, the multiply, the bias
    # and residual adds (each <= 2^-24 of the magnitude so far); the activations' slope is
    # <= 1.13 and libm's sigmoid/tanh/erf add a few ulp of the result.
    tol = 8 * EPS * 1.13 * mag + 8 * EPS * np.abs(v) + 1e-30
    return v, tol


def run(A, B, a_scale, a_zp, w_scale, variant, **kw):
    return T.qgemm(A, B, a_scale, a_zp, w_scale, variant=variant, **kw)


def test_every_variant_is_listed_and_the_tables_hold_the_best():
    names = [v["name"] for v in T.qgemm_variants()]
    assert names[0] == "qs8_qc8w_gemm_4x8__scalar" and all(n.startswith("qs8_qc8w_gemm_") for n in names)
    assert rt.info()["kernels"]["qs8_qc8w_gemm"] in names
    # the AVX-VNNI tile also runs with vpdpbusd emulated in AVX2 (test-only)
    assert [v["name"] for v in T.qgemm_variants() if v["testing"]] == \
        ["qs8_qc8w_gemm_6x16__avxvnni_emu"]
    for isa in ("scalar", "avx2", "avx512"):
        if _core.isa_supported(isa):
            cfg = T.qgemm_config(isa)
            level = [v for v in T.qgemm_variants()
                     if v["level"] == isa and v["runs"] and not v["testing"]]
            assert cfg["name"] == level[-1]["name"]  # the last one that fits wins


def test_config_names_the_tile(variant):
    cfg = T.qgemm_config(variant=variant)
    assert cfg["name"] == variant and f"_{cfg['mr']}x{cfg['nr']}__" in variant


# Every value of each list appears in some triple, and every pair of M and K.
MS, KS, NS = (1, 2, 3, 5, 7, 13, 64, 131), (1, 3, 4, 5, 17, 64, 255, 1031), (1, 7, 16, 17, 33, 100, 257)
SHAPES = [(m, k, NS[(i + j) % len(NS)]) for i, m in enumerate(MS) for j, k in enumerate(KS)
          if m * k * NS[(i + j) % len(NS)] <= 3_000_000]


@pytest.mark.parametrize("M,K,N", SHAPES)
def test_accumulator_is_exact(variant, rng, M, K, N):
    A, B = rand_a(rng, M, K), rand_b(rng, K, N)
    zp = rng.integers(0, 256, size=M).astype(np.int32)
    C = run(A, B, np.ones(M, np.float32), zp, np.ones(N, np.float32), variant)
    want = acc_ref(A, B, zp)
    assert np.abs(want).max() < 2 ** 24  # so float32 holds it exactly
    np.testing.assert_array_equal(C.astype(np.int64), want)


@pytest.mark.parametrize("b", [127, -127])
def test_saturation_edges_of_the_accumulator(variant, b):
    """255 x +-127 in every product: a 16-bit pair sum (vpmaddubsw) would saturate."""
    for M, K, N in ((3, 64, 17), (5, 4099, 33)):
        A = np.full((M, K), 255, np.uint8)
        B = np.full((K, N), b, np.int8)
        C = run(A, B, 1.0, 0, np.ones(N, np.float32), variant)
        assert (C == np.float32(255 * b * K)).all()
        # Zero point 255 takes the (large) sum back to 0 exactly, and one row off the
        # maximum must show as exactly one product.
        A[0, 7] = 254
        C = run(A, B, 1.0, 255, np.ones(N, np.float32), variant)
        want = np.zeros((M, N))
        want[0] = -b
        np.testing.assert_array_equal(C, want)


def edge_rows(rng, M, K):
    """Rows of 0 and 255 only (the kernels without VNNI: a - 128 = -128 and 127), alternating in
    k, in pairs of k, random, and next to 128 (a - 128 = -1, 0)."""
    k = np.arange(K)
    rows = [np.zeros(K), np.full(K, 255), np.where(k % 2, 0, 255), np.where(k % 4 < 2, 255, 0),
            rng.choice([0, 255], K), rng.choice([0, 1, 127, 128, 129, 254, 255], K)]
    return np.array([rows[i % len(rows)] for i in range(M)], dtype=np.uint8)


def edge_cols(rng, K, N):
    """Columns of +-127 only: all 127, all -127, alternating in k and in pairs of k, random,
    and a mix with -1, 0, 1."""
    k = np.arange(K)
    cols = [np.full(K, 127), np.full(K, -127), np.where(k % 2, -127, 127), np.where(k % 4 < 2, 127, -127),
            rng.choice([-127, 127], K), rng.choice([-127, -1, 0, 1, 127], K)]
    return np.array([cols[j % len(cols)] for j in range(N)], dtype=np.int8).T.copy()


@pytest.mark.parametrize("zp", [0, 128, 255])
@pytest.mark.parametrize("K", [1, 2, 3, 4, 5, 7, 64, 515, 1031, 4099])
def test_extreme_activations_and_weights_are_exact(variant, rng, zp, K):
    """a in {0, 255} against w = +-127, K up to 4099: every 16-bit pair of a vpmaddubsw
    scheme at its limit (the kernels without VNNI: a - 128 = -128 times a weight flipped to -128
    makes -32768 per pair), and large int32 sums that the zero point takes back. Exact
    against int64: compared as integers where float32 holds the sum, else as float32 of
    the exact sum (the kernel converts an exact int32 with the same rounding)."""
    M, N = 13, 37
    A, B = edge_rows(rng, M, K), edge_cols(rng, K, N)
    C = run(A, B, np.ones(M, np.float32), np.full(M, zp, np.int32), np.ones(N, np.float32), variant)
    want = acc_ref(A, B, zp)
    small = np.abs(want) < 2 ** 24
    np.testing.assert_array_equal(C.astype(np.int64)[small], want[small])
    np.testing.assert_array_equal(C[~small], want[~small].astype(np.float32))
    if zp == 128 and K <= 1031:
        assert small.all()  # 128 * 127 * K < 2^24: these compare every element as an integer


def test_long_k_of_random_values_with_zero_point_is_exact(variant, rng):
    M, K, N = 4, 4099, 40
    A = rng.integers(200, 256, size=(M, K), dtype=np.uint8)
    B = rng.integers(100, 128, size=(K, N), dtype=np.int8)
    zp = np.full(M, 228, np.int32)
    C = run(A, B, np.ones(M, np.float32), zp, np.ones(N, np.float32), variant)
    want = acc_ref(A, B, zp)
    assert np.abs(want).max() < 2 ** 24
    np.testing.assert_array_equal(C.astype(np.int64), want)


@pytest.mark.parametrize("M,K", [(50, 2051), (130, 256), (7, 12001), (4, 30000)])
def test_row_blocks_and_rows_too_long_for_the_prepared_block(variant, rng, M, K):
    """The kernels without VNNI prepare a row block of A in a fixed stack buffer (as many
    whole tiles as fit it): several blocks with a partial last one (50 x 2051, 130 x 256),
    and rows so long that not one tile fits, read in place (7 x 12001, 4 x 30000)."""
    N = 40
    A = rand_a(rng, M, K)
    A[::3, : K // 2] = 0  # long runs of a - 128 = -128 (the per-row fix at its largest)
    B = rand_b(rng, K, N) // 8
    zp = rng.integers(0, 256, size=M).astype(np.int32)
    C = run(A, B, np.ones(M, np.float32), zp, np.ones(N, np.float32), variant)
    want = acc_ref(A, B, zp)
    assert np.abs(want).max() < 2 ** 24
    np.testing.assert_array_equal(C.astype(np.int64), want)


@pytest.mark.parametrize("zp", [0, 255])
@pytest.mark.parametrize("per_row", [False, True])
def test_scales_and_zero_points(variant, rng, zp, per_row):
    M, K, N = 7, 67, 45
    A, B = rand_a(rng, M, K), rand_b(rng, K, N)
    ws = rng.uniform(0.001, 0.01, N).astype(np.float32)
    if per_row:
        a_scale = rng.uniform(0.001, 0.02, M).astype(np.float32)
        a_zp = np.full(M, zp, np.int32)
        a_zp[1] = 128
    else:
        a_scale, a_zp = 0.013, zp
    C = run(A, B, a_scale, a_zp, ws, variant)
    check_float(C, reference(A, B, np.float32(a_scale), a_zp, ws))


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("after", [False, True])
def test_every_epilogue_float_and_u8(variant, rng, act, after):
    for M, K, N in ((3, 37, 50), (13, 100, 33)):
        A, B = rand_a(rng, M, K), rand_b(rng, K, N)
        a_scale = rng.uniform(0.01, 0.02, M).astype(np.float32)
        a_zp = rng.integers(0, 256, M).astype(np.int32)
        ws = rng.uniform(0.0005, 0.001, N).astype(np.float32)
        bias = rng.uniform(-1, 1, N).astype(np.float32)
        res = rng.uniform(-1, 1, (M, N)).astype(np.float32)
        kw = dict(bias=bias, residual=res, act=act, lo=-0.4, hi=0.6, residual_after_act=after)
        C = run(A, B, a_scale, a_zp, ws, variant, **kw)
        v, tol = reference(A, B, a_scale, a_zp, ws, **kw)
        check_float(C, (v, tol))
        Q = run(A, B, a_scale, a_zp, ws, variant, out_u8=True, out_scale=0.02, out_zp=100, **kw)
        check_u8(Q, v, np.float32(0.02), 100)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("after", [False, True])
def test_uint8_residual(variant, rng, act, after):
    """A residual the graph keeps as uint8 (an inverted-residual block's input): the same
    result as its dequantized float form, for float and uint8 outputs, per tensor (the
    static layers that take it) and per row."""
    for M, K, N in ((1, 9, 17), (5, 37, 50), (13, 100, 33)):
        A, B = rand_a(rng, M, K), rand_b(rng, K, N)
        ws = rng.uniform(0.0005, 0.001, N).astype(np.float32)
        bias = rng.uniform(-1, 1, N).astype(np.float32)
        R = rng.integers(0, 256, (M, N)).astype(np.uint8)
        R[0, :2] = (0, 255)  # the grid's ends
        rs, rz = np.float32(0.007), 131
        res = (R.astype(np.float64) - rz) * np.float64(rs)
        for a_scale, a_zp in ((0.013, 77), (rng.uniform(0.01, 0.02, M).astype(np.float32),
                                            rng.integers(0, 256, M).astype(np.int32))):
            kw = dict(bias=bias, act=act, lo=-0.4, hi=0.6, residual_after_act=after)
            v, tol = reference(A, B, np.float32(a_scale), a_zp, ws, residual=res, **kw)
            C = run(A, B, a_scale, a_zp, ws, variant, residual=R, res_scale=rs, res_zp=rz, **kw)
            check_float(C, (v, tol))
            Q = run(A, B, a_scale, a_zp, ws, variant, residual=R, res_scale=rs, res_zp=rz,
                    out_u8=True, out_scale=0.02, out_zp=100, **kw)
            check_u8(Q, v, np.float32(0.02), 100)


def test_uint8_residual_threads_match_one_thread(variant, rng):
    old = T.min_parallel_us()
    T.set_min_parallel_us(0.0)  # split whatever the size
    try:
        for M, K, N in ((1, 300, 500), (131, 64, 100)):
            A, B = rand_a(rng, M, K), rand_b(rng, K, N)
            ws = rng.uniform(0.0005, 0.001, N).astype(np.float32)
            R = rng.integers(0, 256, (M, N)).astype(np.uint8)
            kw = dict(residual=R, res_scale=0.01, res_zp=40, out_u8=True, out_scale=0.02, out_zp=9)
            np.testing.assert_array_equal(run(A, B, 0.01, 5, ws, variant, threads=2, **kw),
                                          run(A, B, 0.01, 5, ws, variant, **kw))
    finally:
        T.set_min_parallel_us(old)


def test_u8_output_clamps_at_0_and_255(variant, rng):
    M, K, N = 5, 33, 40
    A, B = rand_a(rng, M, K), rand_b(rng, K, N)
    ws = np.full(N, 0.01, np.float32)
    for zp in (0, 255, 128):
        Q = run(A, B, 1.0, 128, ws, variant, out_u8=True, out_scale=0.001, out_zp=zp)
        v, _ = reference(A, B, 1.0, 128, ws)
        check_u8(Q, v, np.float32(0.001), zp)
        assert (Q == 0).any() and (Q == 255).any()


@pytest.mark.parametrize("act", ["none", "relu", "gelu"])
def test_bias_only_residual_only(variant, rng, act):
    M, K, N = 6, 20, 70
    A, B = rand_a(rng, M, K), rand_b(rng, K, N)
    ws = rng.uniform(0.0005, 0.001, N).astype(np.float32)
    bias = rng.uniform(-1, 1, N).astype(np.float32)
    res = rng.uniform(-1, 1, (M, N)).astype(np.float32)
    check_float(run(A, B, 0.01, 3, ws, variant, bias=bias, act=act),
                reference(A, B, np.float32(0.01), 3, ws, bias=bias, act=act))
    check_float(run(A, B, 0.01, 3, ws, variant, residual=res, act=act),
                reference(A, B, np.float32(0.01), 3, ws, residual=res, act=act))


@pytest.mark.parametrize("n_split", [2, 3, 5])
def test_column_blocks(variant, rng, n_split):
    for M in (1, 2, 3, 9):
        A, B = rand_a(rng, M, 45), rand_b(rng, 45, 260)
        zp = rng.integers(0, 256, M).astype(np.int32)
        C = run(A, B, np.ones(M, np.float32), zp, np.ones(260, np.float32), variant, n_split=n_split)
        np.testing.assert_array_equal(C.astype(np.int64), acc_ref(A, B, zp))


def test_threads_split_like_the_executor(variant, rng):
    old = T.min_parallel_us()
    T.set_min_parallel_us(0.0)  # split whatever the size
    try:
        for M, K, N in ((1, 300, 500), (3, 64, 257), (131, 64, 100), (64, 255, 33)):
            A, B = rand_a(rng, M, K), rand_b(rng, K, N)
            a_scale = rng.uniform(0.01, 0.02, M).astype(np.float32)
            zp = rng.integers(0, 256, M).astype(np.int32)
            ws = rng.uniform(0.0005, 0.001, N).astype(np.float32)
            res = rng.uniform(-1, 1, (M, N)).astype(np.float32)
            C = run(A, B, a_scale, zp, ws, variant, residual=res, threads=2)
            check_float(C, reference(A, B, a_scale, zp, ws, residual=res))
            one = run(A, B, a_scale, zp, ws, variant, residual=res)
            np.testing.assert_array_equal(C, one)  # same kernel calls, same bits
            Q = run(A, B, a_scale, zp, ws, variant, residual=res, threads=2, out_u8=True,
                    out_scale=0.01, out_zp=9)
            np.testing.assert_array_equal(Q, run(A, B, a_scale, zp, ws, variant, residual=res,
                                                 out_u8=True, out_scale=0.01, out_zp=9))
    finally:
        T.set_min_parallel_us(old)


def test_k_zero_and_empty(variant, rng):
    B = np.zeros((0, 9), np.int8)
    bias = rng.uniform(-1, 1, 9).astype(np.float32)
    C = run(np.zeros((4, 0), np.uint8), B, 1.0, 7, np.ones(9, np.float32), variant, bias=bias)
    np.testing.assert_array_equal(C, np.broadcast_to(bias, (4, 9)))
    assert run(np.zeros((0, 5), np.uint8), rand_b(rng, 5, 3), 1.0, 0, np.ones(3, np.float32),
               variant).shape == (0, 3)


# ------------------------------------------------------------------ quantize_rows

def quantize_ref(x):
    """float32 arithmetic exactly as QGemmConfig::quantize_rows specifies it."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # denormal scales
        return _quantize_ref(x.astype(np.float32))


def _quantize_ref(x):
    lo = np.minimum(np.float32(0), x.min(axis=1, initial=np.float32(0)))
    hi = np.maximum(np.float32(0), x.max(axis=1, initial=np.float32(0)))
    scale = np.where(hi == lo, np.float32(1), (hi - lo) / np.float32(255)).astype(np.float32)
    zp = np.clip(np.rint(-lo / scale), 0, 255).astype(np.int32)
    inv = (np.float32(1) / scale).astype(np.float32)
    q = np.clip(np.rint(x * inv[:, None]) + zp[:, None], 0, 255).astype(np.uint8)
    return q, scale, zp


# 32 / 64 floats: one packed store of the ymm / zmm kernels (4 vectors); 63, 65 around it
@pytest.mark.parametrize("K", [1, 3, 8, 15, 16, 17, 32, 63, 64, 65, 100, 128, 1031])
def test_quantize_rows_against_numpy(variant, rng, K):
    x = rng.standard_normal((9, K)).astype(np.float32) * rng.uniform(0.1, 10, (9, 1)).astype(np.float32)
    x[1] = 0.0                     # all zero: scale 1, zp 0
    x[2] = np.abs(x[2]) + 0.5      # all positive: lo = 0, zp 0
    x[3] = -np.abs(x[3]) - 0.5     # all negative: hi = 0, zp 255
    x[4] = 2.5                     # constant
    x[5] = -2.5
    x[6] = np.abs(x[6]) * np.float32(1e-41) + np.float32(1e-44)  # denormal scale: clamped
    x[7] *= np.float32(1e-27)                                    # tiny, normal scale
    q, s, z = T.quantize_rows(x, variant=variant)
    rq, rs, rz = quantize_ref(x)
    np.testing.assert_array_equal(s, rs)
    np.testing.assert_array_equal(z, rz)
    np.testing.assert_array_equal(q, rq)
    assert s[1] == 1 and z[1] == 0 and (q[1] == 0).all()
    assert z[2] == 0 and z[3] == 255 and q[3].min() == 0 and q[2].max() == 255
    # Dequantized values are within half a step of x.
    err = np.abs((q.astype(np.float64) - z[:, None]) * s[:, None] - x)
    assert (err <= 0.5 * s[:, None] * (1 + 1e-5) + 1e-7).all()


@pytest.mark.parametrize("K", [1, 3, 15, 16, 17, 32, 64, 65, 100, 1031])
@pytest.mark.parametrize("scale,zp", [(0.03125, 0), (0.0173, 131), (1.5, 255)])
def test_static_quantize_against_numpy(variant, rng, K, scale, zp):
    """QGemmConfig::quantize: float32 x * (1 / scale), round half to even, + zp, clamped;
    saturating at both ends."""
    x = rng.standard_normal((5, K)).astype(np.float32) * np.float32(4 * 255 * scale)
    x[0, 0] = 1e30                                   # saturates at 255
    x[1, 0] = -1e30                                  # and at 0
    x[2, K // 2] = 3e4 * scale                       # past int16 before the clamp
    x[3, K - 1] = -3e4 * scale
    q = T.quantize(x, scale, zp, variant=variant)
    inv = np.float32(1) / np.float32(scale)
    want = np.clip(np.rint(x * inv) + zp, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(q, want)
    assert q[0, 0] == 255 and q[1, 0] == 0
    with pytest.raises(rt.InputError):
        T.quantize(x, 0.0, zp, variant=variant)
    with pytest.raises(rt.InputError):
        T.quantize(x, scale, 256, variant=variant)


def test_quantize_then_gemm_approximates_float(variant, rng):
    x = rng.standard_normal((3, 200)).astype(np.float32)
    W = rng.standard_normal((200, 30)).astype(np.float32)
    ws = (np.abs(W).max(axis=0) / 127).astype(np.float32)
    Bq = np.clip(np.rint(W / ws), -127, 127).astype(np.int8)
    q, s, z = T.quantize_rows(x, variant=variant)
    C = run(q, Bq, s, z, ws, variant)
    ref = x.astype(np.float64) @ W
    assert np.abs(C - ref).max() < 0.05 * np.abs(ref).max()


# ------------------------------------------------------------------ bad inputs

def test_bad_inputs_raise_typed_errors(rng):
    A, B, ws = rand_a(rng, 4, 5), rand_b(rng, 5, 6), np.ones(6, np.float32)

    def q(*args, **kw):
        return T.qgemm(*args, **{"variant": "qs8_qc8w_gemm_4x8__scalar", **kw})

    with pytest.raises(rt.DTypeError, match="uint8"):
        q(A.astype(np.int8), B, 1.0, 0, ws)
    with pytest.raises(rt.DTypeError, match="int8"):
        q(A, B.astype(np.uint8), 1.0, 0, ws)
    with pytest.raises(rt.DTypeError, match="numpy"):
        q(A.tolist(), B, 1.0, 0, ws)
    with pytest.raises(rt.ShapeError, match="2-D"):
        q(A.ravel(), B, 1.0, 0, ws)
    with pytest.raises(rt.ShapeError, match="5 rows"):
        q(A, B[:4], 1.0, 0, ws)
    with pytest.raises(rt.ShapeError, match=r"w_scale must have shape \(6,\)"):
        q(A, B, 1.0, 0, ws[:5])
    with pytest.raises(rt.DTypeError, match="float32"):
        q(A, B, 1.0, 0, ws.astype(np.float64))
    with pytest.raises(rt.ShapeError, match=r"per row must have shape \(4,\)"):
        q(A, B, np.ones(3, np.float32), np.zeros(3, np.int32), ws)
    with pytest.raises(rt.InputError, match=r"a_zp must be in \[0, 255\]"):
        q(A, B, 1.0, 256, ws)
    with pytest.raises(rt.InputError, match=r"a_zp must be in \[0, 255\]"):
        q(A, B, np.ones(4, np.float32), np.array([0, -1, 0, 0], np.int32), ws)
    with pytest.raises(rt.InputError, match="both be per row"):
        q(A, B, np.ones(4, np.float32), 0, ws)
    with pytest.raises(rt.InputError, match=r"out_zp must be in \[0, 255\]"):
        q(A, B, 1.0, 0, ws, out_u8=True, out_zp=300)
    with pytest.raises(rt.InputError, match="out_scale"):
        q(A, B, 1.0, 0, ws, out_u8=True, out_scale=0.0)
    with pytest.raises(rt.InputError, match="-128"):
        q(A, np.full((5, 6), -128, np.int8), 1.0, 0, ws)
    with pytest.raises(rt.ShapeError, match="bias"):
        q(A, B, 1.0, 0, ws, bias=np.ones(5, np.float32))
    with pytest.raises(rt.ShapeError, match="residual"):
        q(A, B, 1.0, 0, ws, residual=np.ones((4, 5), np.float32))
    with pytest.raises(rt.InputError, match="activation"):
        q(A, B, 1.0, 0, ws, act="swish")
    with pytest.raises(rt.IsaError, match="unknown qs8_qc8w_gemm variant"):
        T.qgemm(A, B, 1.0, 0, ws, variant="qs8_qc8w_gemm_nope")
    with pytest.raises(rt.IsaError):
        T.qgemm(A, B, 1.0, 0, ws, isa="sse9")
    with pytest.raises(rt.DTypeError, match="float32"):
        T.quantize_rows(np.ones((2, 3)), isa="scalar")
    with pytest.raises(rt.ShapeError, match="2-D"):
        T.quantize_rows(np.ones(3, np.float32), isa="scalar")


# Whole row tiles of the lean epilogues (tile_u8, tile_f32) as (M, K, N): short K (the 1x1
# convs), one-vector and partial panels (N = 16, 24, 45), rows past the last whole tile.
WHOLE_TILE_SHAPES = ((8, 16, 16), (17, 4, 24), (24, 24, 96), (41, 37, 144), (16, 1, 45), (33, 96, 64))


@pytest.mark.parametrize("act", ("none", "relu", "clip"))
def test_static_uint8_whole_tiles(variant, rng, act):
    """The static uint8 epilogue of whole row tiles (one scale and zero point, the path of
    the int8 1x1 convolutions): short K, one-vector and partial panels (N = 16, 24, 45),
    a uint8 residual or none, one and two threads, against the float64 reference, and
    bit-equal to the same product one row at a time (the general epilogue)."""
    for M, K, N in WHOLE_TILE_SHAPES:
        A, B = rand_a(rng, M, K), rand_b(rng, K, N)
        ws = rng.uniform(0.002, 0.004, N).astype(np.float32)
        bias = rng.uniform(-0.5, 0.5, N).astype(np.float32)
        R = rng.integers(0, 256, (M, N)).astype(np.uint8)
        rs, rz = np.float32(0.006), 120
        for res in (None, R):
            kw = dict(bias=bias, act=act, lo=-0.3, hi=0.5, out_u8=True, out_scale=0.004, out_zp=90)
            if res is not None:
                kw.update(residual=res, res_scale=rs, res_zp=rz)
            ref_res = None if res is None else (R.astype(np.float64) - rz) * np.float64(rs)
            v, _ = reference(A, B, np.float32(0.02), 7, ws, bias=bias, residual=ref_res, act=act,
                             lo=-0.3, hi=0.5)
            for threads in (1, 2):
                Q = run(A, B, 0.02, 7, ws, variant, threads=threads, **kw)
                check_u8(Q, v, np.float32(0.004), 90)
            rows = np.concatenate([run(A[m:m + 1], B, 0.02, 7, ws, variant,
                                       **{**kw, **({} if res is None else {"residual": R[m:m + 1]})})
                                   for m in range(M)])
            np.testing.assert_array_equal(Q, rows)


@pytest.mark.parametrize("act", ("none", "relu", "clip"))
def test_float_whole_tiles(variant, rng, act):
    """The float epilogue of whole row tiles without a residual (the path of a dynamically
    quantized MLP's layers): per-row and per-tensor scales, with and without a bias, the
    same shapes as the uint8 case, one and two threads, against the float64 reference,
    and bit-equal to the same product one row at a time (the general epilogue)."""
    for M, K, N in WHOLE_TILE_SHAPES:
        A, B = rand_a(rng, M, K), rand_b(rng, K, N)
        ws = rng.uniform(0.002, 0.004, N).astype(np.float32)
        for per_row in (False, True):
            a_scale = rng.uniform(0.01, 0.02, M).astype(np.float32) if per_row else 0.015
            a_zp = rng.integers(0, 256, M).astype(np.int32) if per_row else 77
            for bias in (None, rng.uniform(-0.5, 0.5, N).astype(np.float32)):
                kw = dict(bias=bias, act=act, lo=-0.3, hi=0.5)
                ref = reference(A, B, np.float32(a_scale) if not per_row else a_scale, a_zp, ws, **kw)
                for threads in (1, 2):
                    C = run(A, B, a_scale, a_zp, ws, variant, threads=threads, **kw)
                    check_float(C, ref)
                rows = np.concatenate([
                    run(A[m:m + 1], B, a_scale[m:m + 1] if per_row else a_scale,
                        a_zp[m:m + 1] if per_row else a_zp, ws, variant, **kw) for m in range(M)])
                np.testing.assert_array_equal(C, rows)
