"""Quantized depthwise conv (qu8_dwconv) kernels, every variant this CPU runs, against numpy.

The integer accumulator is checked exactly (int64 numpy; the AVX2 / AVX-512 kernels
accumulate in float, exact below 2^24, the AVX512-VNNI one's 3x3 / 5x5 paths in int32), float outputs within a bound from float32 rounding of the
epilogue, uint8 outputs within one step of the float64 reference's quantization and
exactly equal away from rounding edges. `variant=` picks each kernel by name."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import _core

from conftest import check_float, check_u8, ref_act

T = _core.testing
ACTS = ("none", "relu", "clip", "sigmoid", "tanh", "gelu")
VARIANTS = [v["name"] for v in T.qdwconv_variants() if v["runs"]]
EPS = 2.0 ** -24


@pytest.fixture(params=VARIANTS)
def variant(request) -> str:
    return request.param


def out_size(n, k, s, p0, p1, d):
    return (n + p0 + p1 - (d * (k - 1) + 1)) // s + 1


def acc_ref(x, w, zp, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1)):
    """Exact int64 sum over taps inside the image of (x - zp) * w (padding adds 0)."""
    H, W, C = x.shape
    KH, KW = w.shape[2:]
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = strides, pads, dilations
    OH, OW = out_size(H, KH, sh, pt, pb, dh), out_size(W, KW, sw, pl, pr, dw)
    xp = np.zeros((H + pt + pb, W + pl + pr, C), np.int64)
    xp[pt:pt + H, pl:pl + W] = x.astype(np.int64) - zp
    acc = np.zeros((OH, OW, C), np.int64)
    for kh in range(KH):
        for kw in range(KW):
            win = xp[kh * dh: kh * dh + (OH - 1) * sh + 1: sh, kw * dw: kw * dw + (OW - 1) * sw + 1: sw]
            acc += win * w[:, 0, kh, kw].astype(np.int64)
    return acc


def reference(acc, a_scale, w_scale, bias=None, residual=None, act="none", lo=-np.inf, hi=np.inf,
              residual_after_act=False):
    """float64 epilogue of the exact accumulator, and a per-element bound for float32."""
    v = acc.astype(np.float64) * (np.float64(a_scale) * w_scale.astype(np.float64))
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
    # Roundings: the scale product, the multiply, the bias and residual adds (each <=
    # 2^-24 of the magnitude so far); slopes <= 1.13; the vector sigmoid/tanh/erf add a
    # few ulp of the result (erf 1e-7 absolute, times |x| / 2 in gelu).
    tol = 8 * EPS * 1.13 * mag + 64 * EPS * np.abs(v) + 1e-30
    if act == "gelu":
        tol = tol + 1e-7 * mag
    return v, tol


def rand_x(rng, H, W, C):
    return rng.integers(0, 256, size=(H, W, C), dtype=np.uint8)


def rand_w(rng, C, KH, KW):
    return rng.integers(-127, 128, size=(C, 1, KH, KW), dtype=np.int8)


def run(x, w, a_scale, a_zp, w_scale, variant, **kw):
    return T.qdwconv(x, w, a_scale, a_zp, w_scale, variant=variant, **kw)


def test_every_variant_is_listed_and_the_tables_hold_the_best():
    vs = T.qdwconv_variants()
    names = [v["name"] for v in vs]
    assert names[0] == "qu8_dwconv__scalar" and all(n.startswith("qu8_dwconv__") for n in names)
    assert rt.info()["kernels"]["qu8_dwconv"] in names
    assert vs[0]["max_taps"] == 0 and all(0 < v["max_taps"] <= 518 for v in vs[1:])
    for isa in ("scalar", "avx2", "avx512"):
        if _core.isa_supported(isa):
            level = [v for v in vs if v["level"] == isa and v["runs"]]
            best = f"qu8_dwconv__{isa}"
            if isa == "avx512" and "avx512vnni" in rt.info()["usable_features"]:
                best = "qu8_dwconv__avx512vnni"  # the integer kernel where VNNI is there
            assert level[-1]["name"] == best


# (C, H, W, (KH, KW), strides, pads (t, l, b, r), dilations): every channel count, every
# kernel shape, strides 1-2, dilation 2, asymmetric pads, prime H/W from 1 to 13.
CS = (1, 3, 8, 15, 16, 17, 33, 64, 100)
KS = ((3, 3), (5, 5), (1, 1), (2, 3), (7, 7))
GEOMS = (((1, 1), (1, 1, 1, 1), (1, 1)), ((2, 2), (1, 1, 1, 1), (1, 1)),
         ((1, 2), (0, 2, 1, 0), (1, 1)), ((2, 1), (2, 0, 0, 1), (2, 2)),
         ((1, 1), (0, 0, 0, 0), (2, 1)), ((2, 2), (2, 2, 2, 2), (1, 1)))
HWS = ((1, 1), (2, 3), (5, 7), (7, 5), (11, 13), (13, 2), (3, 11))


def cases():
    out = []
    i = 0
    for c in CS:
        for k in KS:
            s, p, d = GEOMS[i % len(GEOMS)]
            h, w = HWS[i % len(HWS)]
            i += 1
            kh, kw = k
            if (h + p[0] + p[2] < d[0] * (kh - 1) + 1) or (w + p[1] + p[3] < d[1] * (kw - 1) + 1):
                h, w = h + d[0] * (kh - 1), w + d[1] * (kw - 1)  # make the window fit
            out.append((c, h, w, k, s, p, d))
    return out


@pytest.mark.parametrize("C,H,W,K,s,p,d", cases())
def test_accumulator_is_exact(variant, rng, C, H, W, K, s, p, d):
    x, w = rand_x(rng, H, W, C), rand_w(rng, C, *K)
    for zp in (0, 128, 255):
        y = run(x, w, 1.0, zp, np.ones(C, np.float32), variant, strides=s, pads=p, dilations=d)
        want = acc_ref(x, w, zp, s, p, d)
        np.testing.assert_array_equal(y.astype(np.int64), want)


@pytest.mark.parametrize("K,s", [((3, 3), 1), ((3, 3), 2), ((5, 5), 1), ((5, 5), 2)])
@pytest.mark.parametrize("C", [16, 17, 40])
def test_fast_path_rows_of_every_length(variant, rng, K, s, C):
    """Interior runs of 1..13 pixels (the 6/4-pixel groups, their halves and singles)."""
    for W in range(K[1], K[1] + 14):
        x, w = rand_x(rng, 5, W, C), rand_w(rng, C, *K)
        pads = (K[0] // 2, K[1] // 2, K[0] // 2, K[1] // 2)
        for pp in (pads, (0, 0, 0, 0)):
            y = run(x, w, 1.0, 77, np.ones(C, np.float32), variant, strides=(s, s), pads=pp)
            np.testing.assert_array_equal(y.astype(np.int64), acc_ref(x, w, 77, (s, s), pp))


@pytest.mark.parametrize("b", [127, -127])
@pytest.mark.parametrize("K", [(3, 3), (5, 5), (7, 7), (22, 22)])
def test_saturation_edges(variant, b, K):
    """255 x +-127 in every tap; zp 255 takes it back to exactly 0 but one tap."""
    C = 33
    H, W = K[0] + 2, K[1] + 3
    x = np.full((H, W, C), 255, np.uint8)
    w = np.full((C, 1) + K, b, np.int8)
    y = run(x, w, 1.0, 0, np.ones(C, np.float32), variant)
    assert (y == np.float32(255 * b * K[0] * K[1])).all()
    x[1, 2, 5] = 254
    y = run(x, w, 1.0, 255, np.ones(C, np.float32), variant)
    np.testing.assert_array_equal(y.astype(np.int64), acc_ref(x, w, 255))
    assert y[0, 0, 5] == -b and np.count_nonzero(y) == int(((acc_ref(x, w, 255)) != 0).sum())


def test_too_many_taps_for_float_accumulation(rng):
    x, w = rand_x(rng, 24, 24, 3), rand_w(rng, 3, 23, 23)
    for v in T.qdwconv_variants():
        if not v["runs"]:
            continue
        if v["max_taps"]:
            with pytest.raises(rt.InputError, match="taps"):
                run(x, w, 1.0, 0, np.ones(3, np.float32), v["name"])
        else:  # the scalar variant takes any kernel (int32)
            y = run(x, w, 1.0, 9, np.ones(3, np.float32), v["name"])
            np.testing.assert_array_equal(y.astype(np.int64), acc_ref(x, w, 9))


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("after", [False, True])
def test_every_epilogue_float_and_u8(variant, rng, act, after):
    for C, H, W, K, s in ((17, 7, 11, (3, 3), 1), (40, 9, 8, (5, 5), 2), (5, 6, 5, (2, 3), 1)):
        x, w = rand_x(rng, H, W, C), rand_w(rng, C, *K)
        a_scale, a_zp = np.float32(0.017), int(rng.integers(0, 256))
        ws = rng.uniform(0.0005, 0.002, C).astype(np.float32)
        pads = (1, 1, 1, 1)
        acc = acc_ref(x, w, a_zp, (s, s), pads)
        bias = rng.uniform(-1, 1, C).astype(np.float32)
        res = rng.uniform(-1, 1, acc.shape).astype(np.float32)
        kw = dict(bias=bias, residual=res, act=act, lo=-0.4, hi=0.6, residual_after_act=after)
        y = run(x, w, a_scale, a_zp, ws, variant, strides=(s, s), pads=pads, **kw)
        v, tol = reference(acc, a_scale, ws, **kw)
        check_float(y, (v, tol))
        q = run(x, w, a_scale, a_zp, ws, variant, strides=(s, s), pads=pads, out_u8=True,
                out_scale=0.02, out_zp=100, **kw)
        check_u8(q, v, np.float32(0.02), 100)


def test_bias_only_and_u8_clamps(variant, rng):
    C = 19
    x, w = rand_x(rng, 6, 9, C), rand_w(rng, C, 3, 3)
    ws = np.full(C, 0.01, np.float32)
    bias = rng.uniform(-1, 1, C).astype(np.float32)
    acc = acc_ref(x, w, 128, pads=(1, 1, 1, 1))
    check_float(run(x, w, 1.0, 128, ws, variant, pads=(1, 1, 1, 1), bias=bias, act="relu"),
                reference(acc, 1.0, ws, bias=bias, act="relu"))
    for zp in (0, 128, 255):
        q = run(x, w, 1.0, 128, ws, variant, pads=(1, 1, 1, 1), out_u8=True, out_scale=0.01, out_zp=zp)
        v, _ = reference(acc, 1.0, ws)
        check_u8(q, v, np.float32(0.01), zp)
        assert (q == 0).any() and (q == 255).any()


@pytest.mark.parametrize("threads", [1, 2])
def test_row_splits_and_threads_give_the_same_bits(variant, rng, threads):
    old = T.min_parallel_us()
    T.set_min_parallel_us(0.0)
    try:
        C = 24
        x, w = rand_x(rng, 13, 11, C), rand_w(rng, C, 3, 3)
        ws = rng.uniform(0.001, 0.002, C).astype(np.float32)
        res = rng.uniform(-1, 1, (13, 11, C)).astype(np.float32)
        kw = dict(pads=(1, 1, 1, 1), residual=res, act="clip", lo=0.0, hi=6.0)
        one = run(x, w, 0.02, 3, ws, variant, **kw)
        q1 = run(x, w, 0.02, 3, ws, variant, out_u8=True, out_scale=0.05, out_zp=7, **kw)
        for split in (2, 3, 13):
            np.testing.assert_array_equal(
                run(x, w, 0.02, 3, ws, variant, row_split=split, threads=threads, **kw), one)
            np.testing.assert_array_equal(
                run(x, w, 0.02, 3, ws, variant, row_split=split, threads=threads, out_u8=True,
                    out_scale=0.05, out_zp=7, **kw), q1)
    finally:
        T.set_min_parallel_us(old)


def test_simd_matches_scalar_bit_for_bit_without_libm_activations(rng):
    """Same float operations in the same order: every variant equals the scalar one."""
    C = 37
    x, w = rand_x(rng, 9, 10, C), rand_w(rng, C, 3, 3)
    ws = rng.uniform(0.001, 0.002, C).astype(np.float32)
    bias = rng.uniform(-1, 1, C).astype(np.float32)
    res = rng.uniform(-1, 1, (9, 10, C)).astype(np.float32)
    for act in ("none", "relu", "clip"):
        kw = dict(pads=(1, 1, 1, 1), bias=bias, residual=res, act=act, lo=-0.3, hi=0.5)
        want = run(x, w, 0.02, 131, ws, "qu8_dwconv__scalar", **kw)
        wq = run(x, w, 0.02, 131, ws, "qu8_dwconv__scalar", out_u8=True, out_scale=0.01, out_zp=128, **kw)
        for v in VARIANTS[1:]:
            np.testing.assert_array_equal(run(x, w, 0.02, 131, ws, v, **kw), want)
            np.testing.assert_array_equal(
                run(x, w, 0.02, 131, ws, v, out_u8=True, out_scale=0.01, out_zp=128, **kw), wq)


def test_bad_inputs_raise_typed_errors(rng):
    x, w, ws = rand_x(rng, 5, 5, 6), rand_w(rng, 6, 3, 3), np.ones(6, np.float32)

    def q(*args, **kw):
        return T.qdwconv(*args, **{"variant": "qu8_dwconv__scalar", **kw})

    with pytest.raises(rt.DTypeError, match="uint8"):
        q(x.astype(np.int8), w, 1.0, 0, ws)
    with pytest.raises(rt.DTypeError, match="int8"):
        q(x, w.astype(np.uint8), 1.0, 0, ws)
    with pytest.raises(rt.DTypeError, match="numpy"):
        q(x.tolist(), w, 1.0, 0, ws)
    with pytest.raises(rt.ShapeError, match="3-D"):
        q(x[None], w, 1.0, 0, ws)
    with pytest.raises(rt.ShapeError, match=r"\[C=6, 1, KH, KW\]"):
        q(x, w[:5], 1.0, 0, ws)
    with pytest.raises(rt.ShapeError, match=r"w_scale must have shape \(6,\)"):
        q(x, w, 1.0, 0, ws[:5])
    with pytest.raises(rt.DTypeError, match="float32"):
        q(x, w, 1.0, 0, ws.astype(np.float64))
    with pytest.raises(rt.InputError, match=r"a_zp must be in \[0, 255\]"):
        q(x, w, 1.0, 256, ws)
    with pytest.raises(rt.InputError, match=r"out_zp must be in \[0, 255\]"):
        q(x, w, 1.0, 0, ws, out_u8=True, out_zp=-1)
    with pytest.raises(rt.InputError, match="out_scale"):
        q(x, w, 1.0, 0, ws, out_u8=True, out_scale=0.0)
    with pytest.raises(rt.InputError, match="-128"):
        q(x, np.full((6, 1, 3, 3), -128, np.int8), 1.0, 0, ws)
    with pytest.raises(rt.ShapeError, match="bias"):
        q(x, w, 1.0, 0, ws, bias=np.ones(5, np.float32))
    with pytest.raises(rt.ShapeError, match="residual"):
        q(x, w, 1.0, 0, ws, residual=np.ones((5, 5, 6), np.float32))
    with pytest.raises(rt.ShapeError, match="larger than the padded input"):
        q(x[:2], w, 1.0, 0, ws)
    with pytest.raises(rt.InputError, match="strides"):
        q(x, w, 1.0, 0, ws, strides=(0, 1))
    with pytest.raises(rt.InputError, match="activation"):
        q(x, w, 1.0, 0, ws, act="swish")
    with pytest.raises(rt.InputError, match="row_split"):
        q(x, w, 1.0, 0, ws, row_split=0)
    with pytest.raises(rt.IsaError, match="unknown qu8_dwconv variant"):
        T.qdwconv(x, w, 1.0, 0, ws, variant="qu8_dwconv__nope")
    with pytest.raises(rt.IsaError):
        T.qdwconv(x, w, 1.0, 0, ws, isa="sse9")


# The integer 3x3 / 5x5 kernels (qu8_dwconv__avx512vnni: vpdpbusd over columns of 4 input
# rows, zero-point bytes for padding, two output rows per pass for 3x3 stride 1, channel
# blocks of 64 with 16-channel tails): channel counts around every block and vector edge,
# H/W from 1, strides 1-2, pads 0-2 (asymmetric too), zero points 0 / 128 / 255, against
# the int64 numpy sum; row splits that start on odd rows.
INT_CS = (1, 3, 7, 13, 16, 17, 31, 48, 64, 67, 144, 960)
INT_HWS = ((1, 1), (2, 2), (1, 7), (7, 1), (2, 5), (3, 3), (5, 7), (13, 11))
INT_PADS = ((0, 0, 0, 0), (1, 1, 1, 1), (2, 2, 2, 2), (0, 1, 2, 0), (2, 0, 1, 2))


def int_cases():
    out = []
    i = 0
    for c in INT_CS:
        for k in (3, 5):
            for s in (1, 2):
                for _ in range(2):
                    h, w = INT_HWS[i % len(INT_HWS)]
                    p = INT_PADS[(i * 3) % len(INT_PADS)]
                    i += 1
                    if h + p[0] + p[2] < k or w + p[1] + p[3] < k:
                        h, w = max(h, k), max(w, k)
                    out.append((c, h, w, k, s, p))
    return out


@pytest.mark.parametrize("C,H,W,K,s,p", int_cases())
def test_integer_kernels_accumulate_exactly(variant, rng, C, H, W, K, s, p):
    x, w = rand_x(rng, H, W, C), rand_w(rng, C, K, K)
    for zp in (0, 128, 255):
        want = acc_ref(x, w, zp, (s, s), p)
        for split in (1, 3):
            y = run(x, w, 1.0, zp, np.ones(C, np.float32), variant, strides=(s, s), pads=p,
                    row_split=split)
            np.testing.assert_array_equal(y.astype(np.int64), want)


@pytest.mark.parametrize("K,s", [(3, 1), (3, 2), (5, 1), (5, 2)])
@pytest.mark.parametrize("C", [17, 64, 131])
def test_integer_kernels_saturation_edges_with_padding(variant, K, s, C):
    """x 0 / 255 against w +-127, padded: sums at the int8 x uint8 extremes, and zp 255
    (every padded tap is 255 in the kernel's buffer and must cancel exactly)."""
    H, W = 2 * K + 1, 2 * K + 3
    pads = (K // 2, K // 2, K // 2 + 1, K // 2)
    for xv, b, zp in ((255, 127, 0), (255, -127, 0), (0, 127, 255), (0, -127, 255), (255, 127, 255)):
        x = np.full((H, W, C), xv, np.uint8)
        w = np.full((C, 1, K, K), b, np.int8)
        w[::2, 0, 0, 0] = -b
        y = run(x, w, 1.0, zp, np.ones(C, np.float32), variant, strides=(s, s), pads=pads)
        np.testing.assert_array_equal(y.astype(np.int64), acc_ref(x, w, zp, (s, s), pads))


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("res", [None, "before", "after"])
def test_integer_kernels_epilogues_match_scalar(variant, rng, act, res):
    """Every epilogue (uint8 and float out, residual or not, every activation) on the
    integer paths: bit for bit the scalar variant's (vector sigmoid/tanh/gelu: within
    1e-6 relative / one uint8 step), and within the float64 reference's bounds."""
    for C, H, W, K, s in ((67, 9, 10, 3, 1), (33, 7, 9, 3, 2), (20, 8, 7, 5, 1), (144, 5, 6, 5, 2)):
        x, w = rand_x(rng, H, W, C), rand_w(rng, C, K, K)
        zp = int(rng.integers(0, 256))
        ws = rng.uniform(0.0005, 0.002, C).astype(np.float32)
        bias = rng.uniform(-1, 1, C).astype(np.float32)
        pads = (K // 2,) * 4
        acc = acc_ref(x, w, zp, (s, s), pads)
        kw = dict(strides=(s, s), pads=pads, bias=bias, act=act, lo=-0.4, hi=0.6)
        if res is not None:
            kw.update(residual=rng.uniform(-1, 1, acc.shape).astype(np.float32),
                      residual_after_act=res == "after")
        exact = act in ("none", "relu", "clip")
        for u8 in (False, True):
            # out_scale 0.004: values reach past +-512 steps, the clamps' range
            qk = dict(out_u8=True, out_scale=0.004 if act == "none" else 0.02, out_zp=3) if u8 else {}
            y = run(x, w, 0.02, zp, ws, variant, **kw, **qk)
            ys = run(x, w, 0.02, zp, ws, "qu8_dwconv__scalar", **kw, **qk)
            if exact:
                np.testing.assert_array_equal(y, ys)
            elif u8:
                assert np.abs(y.astype(np.int64) - ys).max() <= 1
            else:
                np.testing.assert_allclose(y, ys, rtol=1e-6, atol=1e-6)
            ref = reference(acc, 0.02, ws, bias=bias, act=act, lo=-0.4, hi=0.6,
                            residual=kw.get("residual"), residual_after_act=res == "after")
            if u8:
                check_u8(y, ref[0], np.float32(qk["out_scale"]), 3)
            else:
                check_float(y, ref)
