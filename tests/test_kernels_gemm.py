"""f32 GEMM kernels (every ISA this machine has) against a float64 numpy reference.

The testing binding packs B with the ISA's own config and calls `run` over a grid of
blocks exactly as the executor does, so the block contract (n0 on multiples of nr, rows
offset by the caller, bias by absolute column) is tested here too."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import _core

from conftest import ref_act

T = _core.testing
#: Test-only kernel: AVX2 vectors in the AVX-512 kernel's tile shape (12 rows, two
#: vectors per row, same blocking), so the template paths AVX-512 takes run here.
AVX512_SHAPE = "avx2_12x16"
#: The narrow-output kernels (GemmConfig::narrow): AVX-512's 14x16 and its AVX2 mirror
#: 14x8, the narrow kernel of AVX512_SHAPE.
NARROW = ("avx512/narrow", AVX512_SHAPE + "/narrow")
ACTS = ("none", "relu", "clip", "sigmoid", "tanh", "gelu")



def reference(A, B, bias=None, residual=None, act="none", lo=0.0, hi=0.0,
              residual_after_act=False):
    """float64 epilogue(A @ B) and a per-element error bound for an fp32 kernel."""
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    v = A64 @ B64
    scale = np.abs(A64) @ np.abs(B64)
    if bias is not None:
        v = v + bias.astype(np.float64)
        scale = scale + np.abs(bias)
    if residual is not None:
        scale = scale + np.abs(residual)
        if not residual_after_act:
            v = v + residual.astype(np.float64)
    v = ref_act(v, act, lo, hi)
    if residual is not None and residual_after_act:
        v = v + residual.astype(np.float64)
    # gelu's slope reaches ~1.13, the others are <= 1: one bound serves all.
    tol = 2e-5 * scale + 2e-6 * np.abs(v) + 1e-30
    return v, tol


def check(C, ref_tol):
    ref, tol = ref_tol
    assert C.dtype == np.float32 and C.shape == ref.shape
    err = np.abs(C.astype(np.float64) - ref)
    bad = ~(err <= tol)
    if bad.any():
        i = np.argwhere(bad)[0]
        raise AssertionError(f"{bad.sum()} of {bad.size} elements off; first at {tuple(i)}: "
                             f"got {C[tuple(i)]!r}, want {ref[tuple(i)]!r} (tol {tol[tuple(i)]:.3g})")


def rand(rng, *shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


@pytest.fixture(params=[
    *(pytest.param(i, marks=pytest.mark.skipif(not _core.isa_supported(i), reason=f"CPU lacks {i}"))
      for i in ("scalar", "avx2", "avx512")),
    pytest.param(AVX512_SHAPE, marks=pytest.mark.skipif(not _core.isa_supported("avx2"),
                                                        reason="CPU lacks avx2")),
    pytest.param(NARROW[0], marks=pytest.mark.skipif(not _core.isa_supported("avx512"),
                                                     reason="CPU lacks avx512")),
    pytest.param(NARROW[1], marks=pytest.mark.skipif(not _core.isa_supported("avx2"),
                                                     reason="CPU lacks avx2")),
])
def isa(request) -> str:
    """conftest's `isa` plus the AVX-512-shaped AVX2 kernel and the narrow kernels."""
    return request.param


def test_config_names_the_kernel(isa):
    cfg = T.gemm_config(isa)
    if isa == AVX512_SHAPE:
        assert cfg["name"] == "f32_gemm_12x16__avx2"
        assert cfg["narrow"] == "f32_gemm_14x8__avx2"
        return
    if isa in NARROW:
        base = isa.split("/")[0]
        assert cfg["name"] == T.gemm_config(base)["narrow"] and cfg["narrow"] is None
        assert cfg["nr"] < T.gemm_config(base)["nr"]
        return
    assert re.fullmatch(rf"f32_gemm_{cfg['mr']}x{cfg['nr']}__{isa}", cfg["name"]), cfg
    assert _core.kernels_for(isa)["f32_gemm"] == cfg["name"]
    width = {"scalar": 1, "avx2": 8, "avx512": 16}[isa]
    assert cfg["mr"] >= 1 and cfg["nr"] % width == 0


def test_avx512_shape_mirror_matches_the_avx512_kernel():
    """The AVX2 stand-in must keep the AVX-512 tile: same rows, same vectors per row."""
    real = T.gemm_config("avx512", check_cpu=False)
    assert real["name"] == f"f32_gemm_{real['mr']}x{real['nr']}__avx512"
    if not _core.isa_supported("avx2"):
        pytest.skip("CPU lacks avx2")
    mirror = T.gemm_config(AVX512_SHAPE)
    assert mirror["mr"] == real["mr"] and mirror["nr"] // 8 == real["nr"] // 16
    real_n = T.gemm_config("avx512/narrow", check_cpu=False)
    mirror_n = T.gemm_config(NARROW[1])
    assert real_n["name"] == real["narrow"] == f"f32_gemm_{real_n['mr']}x{real_n['nr']}__avx512"
    assert mirror_n["mr"] == real_n["mr"] and mirror_n["nr"] // 8 == real_n["nr"] // 16


SHAPES = [  # (M, N, K): 1, primes, non-multiples of every vector width, both tails at once
    (1, 1, 1), (1, 7, 3), (2, 17, 13), (3, 33, 31), (7, 13, 64), (13, 100, 17),
    (17, 31, 257), (33, 64, 100), (64, 257, 33), (100, 3, 7), (257, 65, 2), (31, 1, 257),
    (6, 16, 256), (12, 32, 300), (14, 48, 1), (15, 47, 513), (1, 1000, 1024), (2, 129, 777), (29, 37, 2100), (3, 5, 1500),
    (197, 307, 2053),  # several M blocks x N chunks x K blocks at once
]


@pytest.mark.parametrize("M,N,K", SHAPES)
def test_shapes_against_float64(isa, rng, M, N, K):
    A, B = rand(rng, M, K), rand(rng, K, N)
    check(T.gemm(A, B, isa=isa), reference(A, B))


def test_k_zero_gives_the_epilogue_of_zero(isa, rng):
    A, B = np.zeros((5, 0), np.float32), np.zeros((0, 19), np.float32)
    bias, res = rand(rng, 19), rand(rng, 5, 19)
    C = T.gemm(A, B, bias=bias, residual=res, act="relu", isa=isa)
    np.testing.assert_array_equal(C, np.maximum(bias + res, 0))


def test_empty_m_and_n(isa, rng):
    assert T.gemm(np.zeros((0, 4), np.float32), rand(rng, 4, 9), isa=isa).shape == (0, 9)
    assert T.gemm(rand(rng, 3, 4), np.zeros((4, 0), np.float32), isa=isa).shape == (3, 0)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("after", [False, True])
def test_every_epilogue(isa, rng, act, after):
    M, N, K = 19, 43, 1029  # two K blocks: the epilogue follows partial sums in C
    A, B = rand(rng, M, K), rand(rng, K, N) / 16
    bias, res = rand(rng, N), rand(rng, M, N, lo=-2, hi=2)
    kw = dict(bias=bias, residual=res, act=act, lo=-0.3, hi=0.45, residual_after_act=after)
    C = T.gemm(A, B, isa=isa, **kw)
    check(C, reference(A, B, **kw))
    if act in ("relu", "clip") and not after:  # the activation really bounds the output
        lo = 0.0 if act == "relu" else -0.3
        assert C.min() >= lo and (act == "relu" or C.max() <= 0.45)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("after", [False, True])
def test_epilogue_over_several_panels_at_small_k(isa, rng, act, after):
    """Small K, several panels: the kernels walk row tiles outside and panels inside
    (the chunk's B fits in L1). Bias and residual move with each panel, the last one is
    ragged; also under the executor's column splits and written over its residual."""
    M, N, K = 29, 150, 16
    A, B = rand(rng, M, K), rand(rng, K, N)
    bias, res = rand(rng, N), rand(rng, M, N, lo=-2, hi=2)
    kw = dict(bias=bias, residual=res, act=act, lo=-0.3, hi=0.45, residual_after_act=after)
    want = reference(A, B, **kw)
    for n_split in (1, 3):
        check(T.gemm(A, B, isa=isa, n_split=n_split, m_split=2, **kw), want)
    inplace = res.copy()
    T.gemm(A, B, isa=isa, out=inplace, **dict(kw, residual=inplace))
    check(inplace, want)


@pytest.mark.parametrize("act", ["none", "relu", "gelu"])
def test_bias_only_and_residual_only(isa, rng, act):
    M, N, K = 9, 70, 40
    A, B = rand(rng, M, K), rand(rng, K, N)
    bias, res = rand(rng, N), rand(rng, M, N)
    check(T.gemm(A, B, bias=bias, act=act, isa=isa), reference(A, B, bias=bias, act=act))
    check(T.gemm(A, B, residual=res, act=act, isa=isa),
          reference(A, B, residual=res, act=act))


def test_clip_with_infinite_bound(isa, rng):
    A, B = rand(rng, 8, 30, lo=-3, hi=3), rand(rng, 30, 21)
    kw = dict(act="clip", lo=-math.inf, hi=0.5)
    check(T.gemm(A, B, isa=isa, **kw), reference(A, B, **kw))


def test_clip_bounds_crossed(isa, rng):
    """lo > hi gives hi everywhere (np.clip, ONNX Clip), in every kernel alike."""
    A, B = rand(rng, 13, 9, lo=-3, hi=3), rand(rng, 9, 37)
    C = T.gemm(A, B, act="clip", lo=2.0, hi=1.0, isa=isa)
    np.testing.assert_array_equal(C, np.full_like(C, 1.0))


def test_activation_of_infinite_sums(isa, rng):
    """A row of A holding +inf/-inf (B all positive) sends +-inf into the epilogue:
    gelu(-inf) is its limit 0, not -inf * 0 = NaN; sigmoid and tanh saturate."""
    A, B = rand(rng, 4, 5), rand(rng, 5, 19, lo=0.5, hi=1.0)
    A[1, 2], A[2, 3] = np.inf, -np.inf
    expect = {"gelu": (np.inf, 0.0), "sigmoid": (1.0, 0.0), "tanh": (1.0, -1.0),
              "relu": (np.inf, 0.0)}
    for act, (pos, neg) in expect.items():
        C = T.gemm(A, B, act=act, isa=isa)
        np.testing.assert_array_equal(C[1], np.full(19, pos, np.float32), err_msg=act)
        np.testing.assert_array_equal(C[2], np.full(19, neg, np.float32), err_msg=act)
        assert np.isfinite(C[[0, 3]]).all(), act


def test_nan_propagates_through_relu_and_clip(isa, rng):
    A, B = rand(rng, 7, 11), rand(rng, 11, 37)
    A[3, 5] = np.nan
    for act in ("none", "relu", "clip"):
        C = T.gemm(A, B, act=act, lo=-1.0, hi=1.0, isa=isa)
        assert np.isnan(C[3]).all(), act
        assert not np.isnan(np.delete(C, 3, axis=0)).any(), act


@pytest.mark.parametrize("m_split,n_split", [(2, 1), (1, 3), (3, 4), (5, 7), (40, 2)])
def test_block_grid_like_the_executor(isa, rng, m_split, n_split):
    M, N, K = 37, 301, 1100  # K > every kernel's K block: partial sums pass through C
    A, B = rand(rng, M, K), rand(rng, K, N)
    bias, res = rand(rng, N), rand(rng, M, N)
    kw = dict(bias=bias, residual=res, act="relu")
    C = T.gemm(A, B, isa=isa, m_split=m_split, n_split=n_split, **kw)
    check(C, reference(A, B, **kw))


def test_strided_rows_and_untouched_padding(isa, rng):
    M, N, K = 23, 53, 37
    lda, ldr, ldc = 41, 59, 61  # primes, wider than the rows
    A = rand(rng, M, lda)[:, :K]
    B = rand(rng, K, 67)[:, :N]
    res = rand(rng, M, ldr)[:, :N]
    bias = rand(rng, N)
    sentinel = np.float32(-7.5e33)
    buf = np.full((M + 1, ldc), sentinel, np.float32)
    out = buf[:M, :N]
    kw = dict(bias=bias, residual=res, act="clip", lo=-0.5, hi=0.5)
    C = T.gemm(A, B, isa=isa, out=out, m_split=2, n_split=2, **kw)
    assert C is out or np.shares_memory(C, buf)
    check(out, reference(A, B, **kw))
    assert (buf[:M, N:] == sentinel).all() and (buf[M] == sentinel).all()


def test_in_place_residual(isa, rng):
    """The executor may write the output over its residual input."""
    M, N, K = 29, 83, 1300  # K blocked unless the kernel notices the alias
    A, B = rand(rng, M, K), rand(rng, K, N)
    for after in (False, True):
        res = rand(rng, M, N)
        want = reference(A, B, residual=res.copy(), act="tanh", residual_after_act=after)
        T.gemm(A, B, residual=res, act="tanh", residual_after_act=after, isa=isa, out=res,
               m_split=2)
        check(res, want)


def test_large_gemm_and_gemv(isa, rng):
    A, B = rand(rng, 256, 1024), rand(rng, 1024, 1024)
    bias = rand(rng, 1024)
    check(T.gemm(A, B, bias=bias, isa=isa, m_split=2), reference(A, B, bias=bias))
    check(T.gemm(A[:1], B, bias=bias, isa=isa), reference(A[:1], B, bias=bias))


def test_repeat_recomputes_the_same_result(isa, rng):
    """repeat= (for timing) reruns the whole grid; the result must not accumulate."""
    A, B, bias = rand(rng, 20, 50), rand(rng, 50, 33), rand(rng, 33)
    np.testing.assert_array_equal(T.gemm(A, B, bias=bias, isa=isa, repeat=3, m_split=2),
                                  T.gemm(A, B, bias=bias, isa=isa, m_split=2))


def test_pack_holds_every_weight_once(isa, rng):
    cfg = T.gemm_config(isa)
    for K, N in [(1, 1), (5, 3), (13, 37), (64, 2 * cfg["nr"] + 1)]:
        B = rand(rng, K, N, lo=0.5, hi=1.5)  # no zeros: padding is the only zeros
        packed = T.gemm_pack(B, isa)
        assert packed.dtype == np.float32 and packed.ndim == 1
        assert packed.nbytes == T.gemm_packed_bytes(K, N, isa) >= K * N * 4
        nz = packed[packed != 0]
        assert nz.size == K * N and (packed[packed == 0].size == packed.size - K * N)
        np.testing.assert_array_equal(np.sort(nz), np.sort(B.ravel()))


def test_bad_input_raises_typed_errors(rng):
    def gemm(*args, **kw):  # scalar runs everywhere; the checks come before any kernel
        return T.gemm(*args, **{"isa": "scalar", **kw})

    A, B = rand(rng, 4, 5), rand(rng, 5, 6)
    with pytest.raises(rt.DTypeError, match="float32"):
        gemm(A.astype(np.float64), B)
    with pytest.raises(rt.DTypeError, match="numpy"):
        gemm(A.tolist(), B)
    with pytest.raises(rt.ShapeError, match="2-D"):
        gemm(A.ravel(), B)
    with pytest.raises(rt.ShapeError, match="5 rows"):
        gemm(A, B[:4])
    with pytest.raises(rt.InputError, match="unit stride"):
        gemm(np.ascontiguousarray(A.T).T, B)  # Fortran order
    with pytest.raises(rt.InputError, match="unit stride"):
        gemm(rand(rng, 4, 10)[:, ::2], B)
    with pytest.raises(rt.ShapeError, match=r"bias must have shape \(6,\)"):
        gemm(A, B, bias=rand(rng, 5))
    with pytest.raises(rt.DTypeError, match="bias"):
        gemm(A, B, bias=np.zeros(6))
    with pytest.raises(rt.ShapeError, match="residual"):
        gemm(A, B, residual=rand(rng, 6, 4))
    with pytest.raises(rt.InputError, match="unknown activation"):
        gemm(A, B, act="swish")
    with pytest.raises(rt.IsaError, match="unknown ISA"):
        gemm(A, B, isa="sse9")
    with pytest.raises(rt.InputError, match="n_split"):
        gemm(A, B, n_split=0)
    with pytest.raises(rt.InputError, match="repeat"):
        gemm(A, B, repeat=0)
    with pytest.raises(rt.IsaError, match="unknown ISA"):
        T.gemm_config("avx1024", check_cpu=False)
    with pytest.raises(rt.IsaError, match="no narrow variant"):
        gemm(A, B, isa="scalar/narrow")
    with pytest.raises(rt.IsaError, match="no narrow variant"):
        T.gemm_config("scalar/narrow", check_cpu=False)
    with pytest.raises(rt.InputError, match="overlap"):
        buf = rand(rng, 4, 12)
        gemm(buf[:, :5], B, out=buf[:, 4:10])
    ro = np.zeros((4, 6), np.float32)
    ro.flags.writeable = False
    with pytest.raises(rt.InputError, match="writable"):
        gemm(A, B, out=ro)
    # ValueError/TypeError callers keep working
    with pytest.raises(ValueError):
        gemm(A, B[:4])
    with pytest.raises(TypeError):
        gemm(A.astype(np.float16), B)


def test_unsupported_isa_is_a_clear_error(rng):
    missing = [i for i in ("avx2", "avx512") if not _core.isa_supported(i)]
    if not missing:
        pytest.skip("this CPU has every ISA")
    with pytest.raises(rt.IsaError, match="not supported"):
        T.gemm(rand(rng, 2, 2), rand(rng, 2, 2), isa=missing[0])
