"""16-bit weight GEMM records (f16w_gemm, bf16w_gemm): every variant this CPU can run
against a float64 numpy reference that uses the exactly widened weights.

The packers round float32 B to the weight type (round to nearest even), so the
reference is A @ widen(round(B)) with numpy's float16 and bit-arithmetic bf16. Bounds
come from float32 rounding; the AVX512-BF16 variant's vdpbf16ps tiles (M > 12) also
round each activation to bf16: a relative error of at most 2^-8 per activation (bf16
keeps 8 significant bits, so half an ulp is 2^-8 of the value, not 2^-9: measured, a
2^-9 bound fails at K = 1)."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import _core

from conftest import ref_act

T = _core.testing
U = 2.0 ** -24          # float32 unit roundoff
U_BF16 = 2.0 ** -8      # bf16 unit roundoff (8 significant bits): vdpbf16ps's activations
ENTRIES = ("f16w_gemm", "bf16w_gemm")
ACTS = ("none", "relu", "clip", "sigmoid", "tanh", "gelu")
DP_ROWS = 12  # the AVX512-BF16 variant uses vdpbf16ps tiles for M above one row tile


def bf16_round(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 (round to nearest even, NaN kept NaN) -> float32, by bit arithmetic."""
    x = np.asarray(x, np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    nan = np.isnan(x)
    r = np.where(nan, (u | 0x400000) & 0xFFFF0000, r)
    return r.astype(np.uint32).view(np.float32)


def widen(entry: str, B: np.ndarray) -> np.ndarray:
    """The weights the kernel multiplies: B rounded to the entry's type, as float64."""
    with np.errstate(over="ignore"):
        w = B.astype(np.float16).astype(np.float32) if entry == "f16w_gemm" else bf16_round(B)
    return w.astype(np.float64)


def variants(entry: str) -> list[str]:
    return [v["name"] for v in T.gemm_variants(entry) if v["runnable"]]


ALL = [(e, v) for e in ENTRIES for v in variants(e)]
IDS = [v for _, v in ALL]


def rounds_activations(variant: str, M: int) -> bool:
    return variant.endswith("__avx512bf16") and M > DP_ROWS


def reference(entry, variant, A, B, bias=None, residual=None, act="none", lo=0.0, hi=0.0,
              residual_after_act=False):
    """float64 epilogue(A @ widen(B)) and a per-element bound derived from the rounding.

    A K-term float32 dot product is within (K + 1) u sum|a b| of the exact one in any
    order, with or without FMA; bias and residual adds add u |operands| each; an
    activation scales the input error by its largest slope (gelu 1.13) and adds a few
    ulp of its own (libm / vector math). vdpbf16ps tiles add 2^-8 sum|a b|."""
    K = A.shape[1]
    A64, W = A.astype(np.float64), widen(entry, B)
    v = A64 @ W
    mag = np.abs(A64) @ np.abs(W)
    err = (K + 1) * U * mag
    if rounds_activations(variant, A.shape[0]):
        err = err + U_BF16 * mag + K * 2.0 ** -126 * (np.abs(A64).sum(1, keepdims=True) + 1)
    scale = mag.copy()
    if bias is not None:
        v = v + bias.astype(np.float64)
        scale = scale + np.abs(bias)
    if residual is not None:
        scale = scale + np.abs(residual)
        if not residual_after_act:
            v = v + residual.astype(np.float64)
    err = err + 2 * U * scale
    v = ref_act(v, act, lo, hi)
    slope = 1.13 if act == "gelu" else 1.0
    err = slope * err
    if act in ("sigmoid", "tanh", "gelu"):
        err = err + 1e-6 + 8 * U * np.abs(v)
    if residual is not None and residual_after_act:
        v = v + residual.astype(np.float64)
        err = err + U * (np.abs(v) + np.abs(residual))
    return v, err + 1e-30


def check(C, ref_err):
    ref, tol = ref_err
    assert C.dtype == np.float32 and C.shape == ref.shape
    err = np.abs(C.astype(np.float64) - ref)
    bad = ~(err <= tol)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{bad.sum()} of {bad.size} elements off; first at {i}: "
                             f"got {C[i]!r}, want {ref[i]!r} (tol {tol[i]:.3g})")


def rand(rng, *shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def test_every_level_has_both_entries():
    for e in ENTRIES:
        levels = {v["level"] for v in T.gemm_variants(e)}
        assert levels == {"scalar", "avx2", "avx512"}, (e, levels)
    names = [v["name"] for v in T.gemm_variants("bf16w_gemm")]
    assert "bf16w_gemm_12x32__avx512bf16" in names and "bf16w_gemm_12x32__avx512" in names
    for isa in ("scalar", "avx2", "avx512"):
        if _core.isa_supported(isa):
            table = _core.kernels_for(isa)
            for e in ENTRIES:
                suffix = "__avx512bf16" if (e, isa) == ("bf16w_gemm", "avx512") and fast_bf16_dot() else "__" + isa
                assert table[e].startswith(e + "_") and table[e].endswith(suffix), table[e]


def fast_bf16_dot() -> bool:
    """The vdpbf16ps kernel wins the table on AMD cores with AVX512-BF16 (Zen 4: 2.6x
    the plain kernel), not on Intel's (Sapphire Rapids: 0.63x); read from /proc/cpuinfo,
    independently of the runtime's CPUID code."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo to read the vendor from")
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                      if ln.startswith("flags")), []))
    return "AuthenticAMD" in text and "avx512_bf16" in flags


@pytest.mark.parametrize("entry,variant", ALL, ids=IDS)
@pytest.mark.parametrize("M", [1, 2, 3, 5, 13, 131])
@pytest.mark.parametrize("K", [1, 3, 17, 255, 1031])
def test_matches_float64(entry, variant, M, K):
    rng = np.random.default_rng(M * 7919 + K)
    A = rand(rng, M, K)
    for N in (1, 7, 16, 17, 33, 100, 257):
        if M == 131 and N not in (17, 257):
            continue  # the long ones: a ragged and a multi-chunk width
        B = rand(rng, K, N, lo=-2.0, hi=2.0)
        check(T.gemm(A, B, entry=entry, variant=variant), reference(entry, variant, A, B))


@pytest.mark.parametrize("entry,variant", ALL, ids=IDS)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("M,N,K", [(1, 33, 17), (3, 100, 255), (13, 47, 1031), (29, 257, 600)])
def test_epilogues(entry, variant, act, M, N, K):
    rng = np.random.default_rng(M + N + K)
    A, B = rand(rng, M, K), rand(rng, K, N)
    bias, res = rand(rng, N), rand(rng, M, N, lo=-2, hi=2)
    kw = dict(lo=-0.4, hi=0.6) if act == "clip" else {}
    for after in (False, True):
        C = T.gemm(A, B, bias=bias, residual=res, act=act, residual_after_act=after,
                   entry=entry, variant=variant, **kw)
        check(C, reference(entry, variant, A, B, bias, res, act, residual_after_act=after, **kw))
    check(T.gemm(A, B, bias=bias, act=act, entry=entry, variant=variant, **kw),
          reference(entry, variant, A, B, bias, None, act, **kw))


@pytest.mark.parametrize("entry,variant", ALL, ids=IDS)
@pytest.mark.parametrize("M,N,K", [(1, 100, 1031), (13, 130, 1031), (40, 70, 600)])
def test_in_place_residual(entry, variant, M, N, K):
    """out is the residual: it must be read before C is written (K above every K block)."""
    rng = np.random.default_rng(K)
    A, B = rand(rng, M, K), rand(rng, K, N)
    res = rand(rng, M, N)
    for after in (False, True):
        out = res.copy()
        C = T.gemm(A, B, residual=out, out=out, act="relu", residual_after_act=after,
                   entry=entry, variant=variant)
        assert C is out or np.shares_memory(C, out)
        check(out, reference(entry, variant, A, B, None, res, "relu", residual_after_act=after))


@pytest.mark.parametrize("entry,variant", ALL, ids=IDS)
@pytest.mark.parametrize("M,N,K", [(1, 257, 33), (13, 97, 17), (131, 130, 300)])
def test_column_and_row_blocks(entry, variant, M, N, K):
    """Blocks as the executor's threads call run (n0 on multiples of nr), on 2 threads."""
    rng = np.random.default_rng(N)
    A, B, bias = rand(rng, M, K), rand(rng, K, N), rand(rng, N)
    want = reference(entry, variant, A, B, bias, None, "tanh")
    for ms, ns in ((1, 2), (2, 3), (3, 5)):
        for threads in (1, 2):
            C = T.gemm(A, B, bias=bias, act="tanh", m_split=ms, n_split=ns, threads=threads,
                       entry=entry, variant=variant)
            check(C, want)


@pytest.mark.parametrize("entry,variant", ALL, ids=IDS)
def test_padded_strides_and_nonfinite_activations(entry, variant):
    rng = np.random.default_rng(3)
    M, N, K = 17, 45, 70
    Ap = rand(rng, M, K + 5)
    A = Ap[:, :K]
    A[2, 3], A[5, 0], A[16, 69] = np.inf, -np.inf, np.nan
    B = rand(rng, K, N)
    out = np.full((M, N + 3), 7.0, np.float32)
    T.gemm(A, B, out=out[:, :N], entry=entry, variant=variant)
    assert (out[:, N:] == 7.0).all()
    W = widen(entry, B)
    with np.errstate(invalid="ignore", over="ignore"):
        ref = A.astype(np.float64) @ W
    for r in (2, 5, 16):
        assert np.array_equal(np.isnan(out[r, :N]), np.isnan(ref[r])), r
        fin = np.isfinite(ref[r])
        assert np.array_equal(out[r, :N][~fin & ~np.isnan(ref[r])], ref[r][~fin & ~np.isnan(ref[r])])


# ------------------------------------------------------------------ packer rounding

def through_kernel(entry, variant, values: np.ndarray) -> np.ndarray:
    """The packed weights widened back: C = [[1]] @ B with B = values as one row (K = 1)."""
    B = np.ascontiguousarray(values, np.float32).reshape(1, -1)
    return T.gemm(np.ones((1, 1), np.float32), B, entry=entry, variant=variant)[0]


def edge_values(entry: str) -> np.ndarray:
    rng = np.random.default_rng(11)
    f32 = lambda bits: np.array(bits, np.uint32).view(np.float32)  # noqa: E731
    v = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754942e-38,
         3.4028235e38, -3.4028235e38]
    if entry == "f16w_gemm":
        h = np.arange(1, 0x7C00, 37, dtype=np.uint16).view(np.float16).astype(np.float32)
        nxt = np.nextafter(h, np.float32(np.inf))
        mid = ((h.astype(np.float64) + np.nextafter(h.astype(np.float16), np.float16(np.inf))
                .astype(np.float64)) / 2).astype(np.float32)  # ties (exact in float32)
        v += [65504.0, 65519.996, 65520.0, 65536.0, 1e5, 2.0 ** -24, 2.0 ** -25,
              2.0 ** -25 * 1.0000001, 3 * 2.0 ** -26, 2.0 ** -14, 2.0 ** -14 * (1 - 2 ** -11),
              6.1e-5, 5.96e-8, 2.98e-8]
        v = np.concatenate([np.array(v, np.float32), h, nxt, mid, -mid,
                            rng.uniform(-7e4, 7e4, 3000).astype(np.float32),
                            (rng.standard_normal(3000) * 2.0 ** rng.integers(-30, 18, 3000)).astype(np.float32)])
    else:
        ties = f32(rng.integers(0, 0x7F7F, 2000, dtype=np.uint32) << 16 | 0x8000)
        v = np.concatenate([np.array(v, np.float32), ties, -ties,
                            f32([0x7F7FFFFF, 0x7F7F7FFF, 0x7F7F8000, 0x7F800001, 0xFF800001,
                                 0x7FC00000, 0x00000001, 0x00008000, 0x00018000, 0x007FFFFF]),
                            f32(rng.integers(0, 2 ** 32, 5000, dtype=np.uint64).astype(np.uint32))])
    return v.astype(np.float32)


@pytest.mark.parametrize("entry,variant", ALL, ids=IDS)
def test_packer_rounds_to_nearest_even(entry, variant):
    x = edge_values(entry)
    got = through_kernel(entry, variant, x)
    want = widen(entry, x)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), x[np.isnan(got) != nan][:5]
    bad = got[~nan] != want[~nan]
    assert not bad.any(), (x[~nan][bad][:5], got[~nan][bad][:5], want[~nan][bad][:5])
    if entry == "f16w_gemm":  # overflow goes to inf with the sign
        assert list(through_kernel(entry, variant, np.array([65520.0, -1e6], np.float32))) == [np.inf, -np.inf]


@pytest.mark.parametrize("entry,variant", ALL, ids=IDS)
def test_every_16bit_pattern_round_trips_exactly(entry, variant):
    """All 65536 weights (subnormals, inf, NaN included) pack and widen exactly."""
    bits = np.arange(65536, dtype=np.uint32)
    if entry == "f16w_gemm":
        x = bits.astype(np.uint16).view(np.float16).astype(np.float32)
    else:
        x = (bits << 16).view(np.float32)
    got = through_kernel(entry, variant, x)
    nan = np.isnan(x)
    assert np.isnan(got[nan]).all()
    assert np.array_equal(got[~nan], x[~nan])
    assert np.array_equal(np.signbit(got[~nan & (x != 0)]), np.signbit(x[~nan & (x != 0)]))


@pytest.mark.parametrize("entry", ENTRIES)
def test_packed_bytes_are_half_of_f32(entry):
    for v in T.gemm_variants(entry):
        if not v["runnable"]:
            continue
        for K, N in ((1, 1), (17, 33), (1031, 257)):
            nb = T.gemm_packed_bytes(K, N, "scalar", entry=entry, variant=v["name"])
            f32 = T.gemm_packed_bytes(K, N, v["level"])
            assert K * N * 2 <= nb <= f32 // 2 + 4 * 32 * N, (v, K, N, nb)
            packed = T.gemm_pack(np.ones((K, N), np.float32), "scalar", entry=entry, variant=v["name"])
            assert packed.dtype == np.uint8 and packed.size == nb


# ------------------------------------------------------------------ bad arguments

def test_bad_arguments_raise_typed_errors():
    A, B = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    with pytest.raises(rt.InputError, match="entry must be"):
        T.gemm(A, B, entry="f8_gemm")
    with pytest.raises(rt.InputError, match="no f16w_gemm variant named"):
        T.gemm(A, B, entry="f16w_gemm", variant="f16w_gemm_99x99__scalar")
    with pytest.raises(rt.InputError, match="no bf16w_gemm variant named"):
        T.gemm(A, B, entry="bf16w_gemm", variant="f16w_gemm_4x8__scalar")
    with pytest.raises(rt.DTypeError):
        T.gemm(A, B.astype(np.float64), entry="f16w_gemm")
    with pytest.raises(rt.DTypeError):
        T.gemm(A, B.astype(np.float16), entry="bf16w_gemm")
    with pytest.raises(rt.ShapeError):
        T.gemm(A, np.ones((4, 4), np.float32), entry="bf16w_gemm")
    with pytest.raises(rt.InputError, match="threads"):
        T.gemm(A, B, entry="f16w_gemm", threads=0)
    with pytest.raises(rt.IsaError):
        T.gemm(A, B, entry="f16w_gemm", isa="avx1024")
    with pytest.raises(rt.IsaError, match="narrow"):
        T.gemm(A, B, entry="f16w_gemm", isa="avx2/narrow")
    for isa in ("scalar", "avx2", "avx512"):
        if not _core.isa_supported(isa):
            with pytest.raises(rt.IsaError):
                T.gemm(A, B, entry="bf16w_gemm", isa=isa)


def test_empty_shapes():
    for e in ENTRIES:
        assert T.gemm(np.zeros((0, 4), np.float32), rand(np.random.default_rng(0), 4, 9), entry=e).shape == (0, 9)
        assert T.gemm(rand(np.random.default_rng(0), 3, 4), np.zeros((4, 0), np.float32), entry=e).shape == (3, 0)
        C = T.gemm(np.ones((3, 0), np.float32), np.zeros((0, 5), np.float32), entry=e,
                   bias=np.arange(5, dtype=np.float32))
        assert np.array_equal(C, np.tile(np.arange(5, dtype=np.float32), (3, 1)))
