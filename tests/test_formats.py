"""Weight formats (pyruntime.formats): every format against an independent float64 numpy
computation, one test per check rule (typed error naming the weight, through graphs, the
compiler and files), bit-exact file round trips, corrupted files of every format, and
compiled Sessions running every format against the float64 reference of the dense views.
"""

from __future__ import annotations

import json
import math
import zlib

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import fileformat as ff
from pyruntime import formats
from pyruntime.graph import Graph, Node, ValueInfo, Weight
from pyruntime.reference import run_reference

from conftest import SUPPORTED_ISAS
from test_fileformat import assert_identical, build_file, split

I8, I32, U16, F32 = np.int8, np.int32, np.uint16, np.float32


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def pruned(shape, density=0.4, seed=0) -> np.ndarray:
    r = rng(seed)
    a = r.standard_normal(shape).astype(F32)
    return a * (r.random(shape) < density)


def matrix(a: np.ndarray, axis: int) -> np.ndarray:
    """The documented [R, C] sparse matrix, written independently of formats.py."""
    if a.ndim == 2 and axis == 1:
        return a.T
    assert axis == 0
    return a.reshape(a.shape[0], -1)


# =========================================================================== f16 / bf16

def half_step_f16(a: np.ndarray) -> np.ndarray:
    """Half the spacing of float16 numbers at |a| (subnormals: 2**-24 apart)."""
    e = np.floor(np.log2(np.maximum(np.abs(a), 2.0 ** -14)))
    return 2.0 ** (e - 11)


def half_step_bf16(a: np.ndarray) -> np.ndarray:
    """Half the spacing of bfloat16 numbers at |a| (8 significand bits, float32's range)."""
    e = np.floor(np.log2(np.maximum(np.abs(a), 2.0 ** -126)))
    return 2.0 ** (e - 8)


def spread(n: int, lo: float, hi: float, seed: int = 0) -> np.ndarray:
    """float32 values with log-uniform magnitudes in [lo, hi] and random signs."""
    r = rng(seed)
    mag = np.exp(r.uniform(np.log(lo), np.log(hi), n))
    return (mag * r.choice([-1.0, 1.0], n)).astype(F32)


def test_f16_rounds_to_nearest_within_half_a_step():
    a = np.concatenate([spread(5000, 2.0 ** -24, 65000.0), [0.0, -0.0, 65504.0, -65504.0,
                                                            2.0 ** -24, 2.0 ** -14]]).astype(F32)
    w = Weight.f16(a.reshape(-1, 2))
    assert w.arrays["data"].dtype == np.float16 and w.shape == (len(a) // 2, 2)
    got = w.numpy().reshape(-1).astype(np.float64)
    assert w.numpy().dtype == F32
    err = np.abs(got - a.astype(np.float64))
    assert (err <= half_step_f16(a.astype(np.float64))).all()
    assert np.signbit(got[len(a) - 5]) and got[-4] == 65504.0
    # ties go to the even neighbour
    ties = np.array([1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 2048 + 1, 2048 + 3], F32)
    np.testing.assert_array_equal(Weight.f16(ties).numpy(), [1.0, 1 + 2.0 ** -9, 2048, 2052])
    # non-finite values stay what they are
    special = Weight.f16(np.array([np.inf, -np.inf, np.nan], F32)).numpy()
    assert special[0] == np.inf and special[1] == -np.inf and np.isnan(special[2])
    assert Weight.f16(a).nbytes == 2 * len(a)


@pytest.mark.parametrize("value", [65520.0, -1e5, 3e38])
def test_f16_overflow_is_an_error(value):
    with pytest.raises(rt.WeightFormatError, match=r"does not fit float16.*65504"):
        Weight.f16(np.array([1.0, value], F32))
    Weight.f16(np.array([65519.0], F32))   # rounds down to 65504


def test_bf16_rounds_to_nearest_even_from_float32():
    a = np.concatenate([spread(5000, 1e-44, 3e38), [0.0, -0.0, 1e-45, -3.3e38]]).astype(F32)
    w = Weight.bf16(a)
    assert w.arrays["data"].dtype == U16 and w.nbytes == 2 * len(a)
    got = w.numpy().astype(np.float64)
    # the dense view is the stored bits in the top half of a float32
    assert (w.numpy().view(np.uint32) & 0xFFFF == 0).all()
    assert np.array_equal(w.numpy().view(np.uint32) >> 16, w.arrays["data"].astype(np.uint32))
    err = np.abs(got - a.astype(np.float64))
    assert (err <= half_step_bf16(a.astype(np.float64))).all()
    assert np.signbit(got[-3])
    ties = np.array([1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, -(1 + 2.0 ** -8), 256 + 1, 256 + 3], F32)
    np.testing.assert_array_equal(Weight.bf16(ties).numpy(),
                                  [1.0, 1 + 2.0 ** -6, -1.0, 256, 260])


def test_bf16_nan_inf_and_overflow():
    bits = np.array([0x7F800001, 0xFF800001, 0x7FC00000, 0x7F800000, 0xFF800000], np.uint32)
    got = Weight.bf16(bits.view(F32)).numpy()
    # a NaN whose payload lives in the low bits must not truncate to Inf
    assert np.isnan(got[:3]).all() and np.signbit(got[1])
    assert got[3] == np.inf and got[4] == -np.inf
    with pytest.raises(rt.WeightFormatError, match="does not fit bfloat16"):
        Weight.bf16(np.array([np.finfo(F32).max], F32))


def test_float_constructors_reject_non_numbers():
    for make in (Weight.f16, Weight.bf16, Weight.qc8):
        with pytest.raises(rt.WeightFormatError, match="real numeric"):
            make(np.array(["a"]))


# =========================================================================== qc8

@pytest.mark.parametrize("shape,axis,expect_axis", [
    ((8, 3, 3, 3), None, 0),      # Conv [O, I, KH, KW]: output channels on axis 0
    ((17, 5), None, 1),           # Gemm [K, N]: output channels on axis 1
    ((7,), None, 0),
    ((4, 6, 5), 2, 2),
    ((4, 6, 5), -2, 1),
    ((1, 1), None, 1),
])
def test_qc8_error_within_half_a_scale(shape, axis, expect_axis):
    a = rng(1).standard_normal(shape) * rng(2).uniform(0.01, 10, shape[expect_axis]).reshape(
        [-1 if i == expect_axis else 1 for i in range(len(shape))])
    a = a.astype(F32)
    w = Weight.qc8(a, axis=axis)
    assert w.attrs == {"axis": expect_axis}
    q, s = w.arrays["data"], w.arrays["scale"]
    assert q.dtype == I8 and q.shape == a.shape and s.dtype == F32
    assert q.min() >= -127 and q.max() <= 127
    # independent scales: max |channel| / 127 in float64
    other = tuple(i for i in range(a.ndim) if i != expect_axis)
    want = np.abs(a.astype(np.float64)).max(axis=other) / 127
    np.testing.assert_allclose(s, want, rtol=1e-7)
    sb = s.astype(np.float64).reshape([-1 if i == expect_axis else 1 for i in range(a.ndim)])
    err = np.abs(w.numpy().astype(np.float64) - a)
    assert (err <= sb / 2 + 1e-6 * np.abs(a)).all()
    assert w.nbytes == a.size + 4 * shape[expect_axis]


def test_qc8_zero_channel_and_rules():
    a = np.zeros((3, 4), F32)
    a[:, 1] = [0.5, -1.0, 0.25]
    w = Weight.qc8(a)
    np.testing.assert_array_equal(w.arrays["scale"], np.array([1, 1 / 127, 1, 1], F32))
    np.testing.assert_array_equal(w.numpy()[:, [0, 2, 3]], 0)
    assert w.arrays["data"][1, 1] == -127
    with pytest.raises(rt.WeightFormatError, match="rank-3 weight has no default"):
        Weight.qc8(np.ones((2, 2, 2)))
    with pytest.raises(rt.WeightFormatError, match="non-finite"):
        Weight.qc8(np.array([[1.0, np.nan]]))
    with pytest.raises(rt.WeightFormatError, match="axis"):
        Weight.qc8(np.ones((2, 2)), axis=2)
    with pytest.raises(rt.WeightFormatError, match="scalar"):
        Weight.qc8(np.float32(1))


def test_output_axis_convention():
    assert formats.OUTPUT_AXIS == {"Gemm": 1, "Conv": 0}
    assert formats.default_axis(2, None) == 1 and formats.default_axis(4, None) == 0


# =========================================================================== csr

@pytest.mark.parametrize("shape,axis", [((12, 9), 1), ((6, 4, 3, 3), 0), ((9, 12), 0),
                                        ((1, 7), 1), ((7, 1), 1), ((1, 1, 1, 1), 0),
                                        ((5,), 0)])
def test_csr_matches_an_independent_construction(shape, axis):
    a = pruned(shape, 0.4, seed=len(shape))
    w = Weight.csr(a, axis=axis if len(shape) != 2 or axis != 1 else None)
    assert w.format == "csr" and w.shape == shape and w.attrs == {"axis": axis}
    m = matrix(a, axis) if a.ndim != 1 else a.reshape(-1, 1)
    vals, cols, ptr = [], [], [0]
    for row in m:                                   # rows = output channels
        nz = np.flatnonzero(row)
        vals += list(row[nz])
        cols += list(nz)
        ptr.append(len(vals))
    np.testing.assert_array_equal(w.arrays["values"], np.array(vals, F32))
    np.testing.assert_array_equal(w.arrays["indices"], cols)
    np.testing.assert_array_equal(w.arrays["indptr"], ptr)
    assert w.arrays["indptr"].dtype == I32 and w.arrays["indices"].dtype == U16
    np.testing.assert_array_equal(w.numpy(), a)           # exact: f32 values
    np.testing.assert_array_equal(formats.pattern(w), a != 0)
    assert w.nbytes == 4 * len(vals) + 2 * len(vals) + 4 * (len(ptr))


def test_csr_int8_error_within_half_a_row_scale():
    a = pruned((10, 32), 0.5, seed=3) * rng(4).uniform(0.1, 5, (10, 1)).astype(F32)
    w = Weight.csr(a, axis=0, dtype=np.int8)
    assert w.arrays["values"].dtype == I8 and w.arrays["scale"].shape == (10,)
    want = np.abs(a.astype(np.float64)).max(axis=1) / 127
    np.testing.assert_allclose(w.arrays["scale"], want, rtol=1e-7)
    d = w.numpy().astype(np.float64)
    assert (d[a == 0] == 0).all()
    err = np.abs(d - a)
    assert (err <= w.arrays["scale"].astype(np.float64)[:, None] / 2 + 1e-6 * np.abs(a)).all()
    assert w.arrays["values"].min() >= -127


def test_csr_zero_nnz_and_all_dense():
    z = Weight.csr(np.zeros((4, 3), F32))
    assert z.arrays["values"].shape == (0,) and list(z.arrays["indptr"]) == [0, 0, 0, 0]
    np.testing.assert_array_equal(z.numpy(), np.zeros((4, 3)))
    zi = Weight.csr(np.zeros((4, 3), F32), dtype=np.int8)
    np.testing.assert_array_equal(zi.arrays["scale"], np.ones(3, F32))
    dense = rng(5).uniform(0.5, 1.0, (4, 3)).astype(F32)
    d = Weight.csr(dense)
    assert d.arrays["values"].size == 12 and list(d.arrays["indptr"]) == [0, 4, 8, 12]
    np.testing.assert_array_equal(d.numpy(), dense)


def test_csr_index_dtype_picks_uint16_where_columns_fit():
    a = np.zeros((65536, 1), F32)
    a[[0, 65535], 0] = 1.0
    assert Weight.csr(a).arrays["indices"].dtype == U16       # Gemm: C = K = 65536
    b = np.zeros((65537, 1), F32)
    b[65536, 0] = 2.0
    w = Weight.csr(b)
    assert w.arrays["indices"].dtype == I32 and list(w.arrays["indices"]) == [65536]
    np.testing.assert_array_equal(w.numpy(), b)
    assert Weight.csr(a, index_dtype=np.int32).arrays["indices"].dtype == I32
    with pytest.raises(rt.WeightFormatError, match="uint16 indices cannot address 65537"):
        Weight.csr(b, index_dtype=np.uint16)
    with pytest.raises(rt.WeightFormatError, match="int32 or uint16"):
        Weight.csr(a, index_dtype=np.int64)
    with pytest.raises(rt.WeightFormatError, match="float32 or int8"):
        Weight.csr(a, dtype=np.float16)


def test_csr_from_parts():
    w = Weight.csr((np.array([1.5, -2.0], F32), np.array([2, 0], I32), np.array([0, 1, 1, 2], I32)),
                   shape=(3, 3), axis=0)
    np.testing.assert_array_equal(w.numpy(), [[0, 0, 1.5], [0, 0, 0], [-2, 0, 0]])
    q = Weight.csr((np.array([127, -3], I8), np.array([1, 0], U16), np.array([0, 1, 2], I32),
                    np.array([0.5, 2.0], F32)), shape=(3, 2))          # Gemm [K=3, N=2]
    np.testing.assert_array_equal(q.numpy(), [[0, -6], [63.5, 0], [0, 0]])
    with pytest.raises(rt.WeightFormatError, match="shape="):
        Weight.csr((np.ones(1, F32), np.zeros(1, I32), np.array([0, 1], I32)))
    with pytest.raises(rt.WeightFormatError, match="strictly increasing"):
        Weight.csr((np.ones(2, F32), np.array([1, 1], I32), np.array([0, 2], I32)), shape=(1, 3),
                   axis=0)


# =========================================================================== bsr

@pytest.mark.parametrize("shape,axis,block", [((16, 8, 1, 1), 0, (4, 2)), ((12, 32), 1, (16, 4)),
                                              ((16, 4, 3, 3), 0, (16, 1)), ((3, 5), 0, (3, 5)),
                                              ((3, 5), 0, (1, 1)), ((1, 8), 1, (8, 1))])
def test_bsr_matches_an_independent_construction(shape, axis, block):
    a = pruned(shape, 0.3, seed=sum(shape))
    w = Weight.bsr(a, block, axis=axis)
    assert w.attrs == {"axis": axis, "block": block} and w.shape == shape
    m = matrix(a, axis)
    br, bc = block
    vals, cols, ptr = [], [], [0]
    for r0 in range(0, m.shape[0], br):
        for c0 in range(0, m.shape[1], bc):
            blk = m[r0:r0 + br, c0:c0 + bc]
            if (blk != 0).any():
                vals.append(blk)
                cols.append(c0 // bc)
        ptr.append(len(vals))
    np.testing.assert_array_equal(w.arrays["values"], np.array(vals, F32).reshape(-1, br, bc))
    np.testing.assert_array_equal(w.arrays["indices"], cols)
    np.testing.assert_array_equal(w.arrays["indptr"], ptr)
    np.testing.assert_array_equal(w.numpy(), a)
    pat = np.zeros(m.shape, bool)
    for r in range(len(ptr) - 1):
        for c in cols[ptr[r]:ptr[r + 1]]:
            pat[r * br:(r + 1) * br, c * bc:(c + 1) * bc] = True
    assert np.array_equal(matrix(formats.pattern(w), axis), pat)


def test_bsr_vnni_block_layout():
    """A (16, 4) int8 block is 16 output channels x 4 consecutive inputs, row-major: the
    64 bytes one vpdpbusd reads (each 32-bit lane: 4 inputs of one output channel)."""
    a = rng(6).standard_normal((8, 32)).astype(F32)       # Gemm [K=8, N=32]: M = a.T [32, 8]
    w = Weight.bsr(a, (16, 4), dtype=np.int8)
    v = w.arrays["values"]
    assert v.shape == (4, 16, 4) and v.flags.c_contiguous and v.dtype == I8
    q = np.clip(np.rint(a.T.astype(np.float64) / w.arrays["scale"][:, None]), -127, 127)
    np.testing.assert_array_equal(v[1], q[0:16, 4:8])     # block row 0, block column 1
    np.testing.assert_array_equal(v[3], q[16:32, 4:8])
    lanes = v[1].reshape(16, 4).view(np.int32)[:, 0]        # lane i = 4 inputs of channel i
    np.testing.assert_array_equal(lanes.view(I8).reshape(16, 4), q[0:16, 4:8])
    err = np.abs(w.numpy().astype(np.float64) - a)
    assert (err <= w.arrays["scale"].astype(np.float64)[None, :] / 2 + 1e-6 * np.abs(a)).all()


def test_bsr_blocks_stored_whole_and_zero_nnz():
    a = np.zeros((4, 4), F32)
    a[1, 2] = 3.0                                     # one nonzero: its whole block is kept
    w = Weight.bsr(a, (2, 2), axis=0)
    np.testing.assert_array_equal(w.arrays["values"], [[[0, 0], [3, 0]]])   # row 1, col 0
    assert list(w.arrays["indptr"]) == [0, 1, 1]
    z = Weight.bsr(np.zeros((4, 6), F32), (2, 3), axis=0)
    assert z.arrays["values"].shape == (0, 2, 3)
    np.testing.assert_array_equal(z.numpy(), 0)


@pytest.mark.parametrize("shape,block", [((6, 4), (4, 2)), ((6, 4), (3, 3)), ((5, 5), (2, 2))])
def test_bsr_ragged_block_edges_rejected(shape, block):
    with pytest.raises(rt.WeightFormatError, match=r"must divide the matrix.*ragged"):
        Weight.bsr(np.ones(shape, F32), block, axis=0)


def test_bsr_block_argument():
    for bad in [(0, 1), (2,), "2x2", (1.0, 2), (True, 1)]:
        with pytest.raises(rt.WeightFormatError, match="two positive ints"):
            Weight.bsr(np.ones((4, 4), F32), bad, axis=0)


# =========================================================================== encode_like

@pytest.mark.parametrize("make", [
    lambda a: Weight.f32(a), lambda a: Weight.f16(a), lambda a: Weight.bf16(a),
    lambda a: Weight.qc8(a), lambda a: Weight.csr(a), lambda a: Weight.csr(a, dtype=np.int8),
    lambda a: Weight.bsr(a, (2, 3)), lambda a: Weight.bsr(a, (2, 3), dtype=np.int8)],
    ids=["f32", "f16", "bf16", "qc8", "csr", "csr-int8", "bsr", "bsr-int8"])
def test_encode_like_keeps_format_and_pattern(make):
    a = pruned((6, 4), 0.5, seed=9)                  # Gemm [K=6, N=4]
    w = make(a)
    scaled = w.numpy() * np.array([2.0, -0.5, 1.0, 3.0], F32)   # per output channel
    scaled = scaled + (w.numpy() == 0) * 7.0          # entries outside any pattern
    n = formats.encode_like(scaled, w)
    assert n.format == w.format and n.attrs == w.attrs and n.shape == w.shape
    for k in ("indices", "indptr"):
        if k in w.arrays:
            np.testing.assert_array_equal(n.arrays[k], w.arrays[k])
            assert n.arrays[k].dtype == w.arrays[k].dtype
    p = formats.pattern(w)
    if p is not None:                                 # sparse: outside the pattern -> 0
        np.testing.assert_array_equal(n.numpy()[~p], 0)
    with pytest.raises(rt.WeightFormatError, match="logical shape"):
        formats.encode_like(np.ones((4, 6)), w)


def test_trainable_and_describe():
    a = pruned((6, 4), 0.5)
    assert [formats.trainable(m(a)) for m in (Weight.f32, Weight.f16, Weight.bf16, Weight.qc8)] \
        == [True, True, True, False]
    assert formats.trainable(Weight.csr(a)) and not formats.trainable(Weight.csr(a, dtype=I8))
    d = formats.describe(Weight.bsr(a, (2, 2), dtype=I8))
    assert d.startswith("bsr (6, 4) axis=1 block=(2, 2)") and "int8 values" in d
    assert "bytes" in repr(Weight.csr(a)) and "csr (6, 4)" in repr(Weight.csr(a))
    assert "malformed" in repr(Weight("csr", {}))


# =========================================================================== the rules

def base(fmt: str) -> Weight:
    """A small valid weight of each format (Gemm [K=6, N=4] unless said)."""
    a = pruned((6, 4), 0.5, seed=11)
    a[0, :] = [1, -2, 3, -4]                       # every output channel nonzero
    return {"f32": lambda: Weight.f32(a), "f16": lambda: Weight.f16(a),
            "bf16": lambda: Weight.bf16(a), "qc8": lambda: Weight.qc8(a),
            "csr": lambda: Weight.csr(a), "csr8": lambda: Weight.csr(a, dtype=I8),
            "bsr": lambda: Weight.bsr(a, (2, 3)),
            "bsr8": lambda: Weight.bsr(a, (2, 3), dtype=I8)}[fmt]()


def edit(fmt: str, arrays=None, drop=(), attrs=None, shape="keep", **kw) -> Weight:
    w = base(fmt)
    for k in drop:
        w.arrays.pop(k)
    for k, v in (arrays or {}).items():
        w.arrays[k] = v(w.arrays.get(k)) if callable(v) else v
    if attrs is not None:
        w.attrs = attrs
    if shape != "keep":
        w._shape = shape
    return w


def setitem(i, v, dtype=None):
    def f(a):
        a = a.copy() if dtype is None else a.astype(dtype)
        a[i] = v
        return a
    return f


def csr_rows(values, indices, indptr, shape=(3, 4), int8=False):
    """A csr weight with the given (possibly bad) parts, axis 0."""
    arrays = {"values": np.asarray(values, I8 if int8 else F32),
              "indices": np.asarray(indices, I32), "indptr": np.asarray(indptr, I32)}
    if int8:
        arrays["scale"] = np.ones(shape[0], F32)
    return Weight("csr", arrays, shape=shape, attrs={"axis": 0})


# (id, weight factory, regex the message must match, storable in a file)
RULES = [
    # ---- every format
    ("unknown-format", lambda: Weight("int4", {"data": np.ones(2, F32)}),
     r"unknown format 'int4'; expected one of f32, f16, bf16, qc8, csr, bsr", True),
    ("not-a-weight", lambda: np.ones(3, F32), r"expected an rt.Weight.*ndarray", False),
    ("missing-array", lambda: edit("csr", drop=["indptr"]), r"missing \['indptr'\]", True),
    ("unexpected-array", lambda: edit("f32", arrays={"scale": np.ones(4, F32)}),
     r"unexpected \['scale'\]", True),
    ("array-not-numpy", lambda: edit("f16", arrays={"data": [1.0, 2.0]}),
     r"array 'data' must be a numpy array, got list", False),
    ("arrays-not-dict", lambda: Weight("f32", [np.ones(2, F32)]), r"arrays must be a dict",
     False),
    ("missing-attr", lambda: edit("qc8", attrs={}), r"expected attributes \['axis'\], got \[\]",
     True),
    ("unknown-attr", lambda: edit("f32", attrs={"axis": 1}),
     r"expected attributes \[\], got \['axis'\]", True),
    ("shape-not-ints", lambda: edit("csr", shape=(6.0, 4)), r"shape must be a tuple of "
     r"non-negative ints", False),
    ("shape-negative", lambda: edit("csr", shape=(-6, 4)), r"non-negative ints", False),
    ("dense-shape-mismatch", lambda: edit("f16", shape=(4, 6)),
     r"shape \(4, 6\) differs from the shape \(6, 4\) its arrays imply", True),
    ("too-large", lambda: Weight("csr", {"values": np.zeros(0, F32),
                                         "indices": np.zeros(0, I32),
                                         "indptr": np.zeros(2, I32)},
                                 shape=(1 << 35, 1), attrs={"axis": 1}),
     r"34359738368 elements; at most 17179869184", True),
    # ---- dense formats
    ("f32-dtype", lambda: edit("f32", arrays={"data": lambda a: a.astype(np.float64)}),
     r"array 'data' must be float32, got float64", True),
    ("f16-dtype", lambda: edit("f16", arrays={"data": lambda a: a.astype(F32)}),
     r"must be float16, got float32", True),
    ("bf16-dtype", lambda: edit("bf16", arrays={"data": lambda a: a.view(np.float16)}),
     r"must be uint16, got float16", True),
    # ---- qc8
    ("qc8-data-dtype", lambda: edit("qc8", arrays={"data": lambda a: a.view(np.uint8)}),
     r"'data' must be int8, got uint8", True),
    ("qc8-scalar", lambda: Weight("qc8", {"data": np.array(3, I8), "scale": np.ones(1, F32)},
                                  attrs={"axis": 0}), r"rank >= 1, got a scalar", True),
    ("qc8-minus-128", lambda: edit("qc8", arrays={"data": setitem((2, 1), -128)}),
     r"'data' must lie in \[-127, 127\].*-128 at flat index 9", True),
    ("qc8-axis-range", lambda: edit("qc8", attrs={"axis": 2}),
     r"'axis' \(output channels\) must be an int in \[0, 2\).*got 2", True),
    ("qc8-axis-bool", lambda: edit("qc8", attrs={"axis": True}), r"'axis'.*got True", True),
    ("qc8-axis-str", lambda: edit("qc8", attrs={"axis": "1"}), r"'axis'.*got '1'", True),
    ("qc8-scale-length", lambda: edit("qc8", arrays={"scale": lambda s: s[:3]}),
     r"'scale' must have length 4 \(one per output channel\), got 3", True),
    ("qc8-scale-dtype", lambda: edit("qc8", arrays={"scale": lambda s: s.astype(np.float64)}),
     r"'scale' must be float32, got float64", True),
    ("qc8-scale-rank", lambda: edit("qc8", arrays={"scale": lambda s: s.reshape(2, 2)}),
     r"'scale' must have rank 1", True),
    ("qc8-scale-zero", lambda: edit("qc8", arrays={"scale": setitem(1, 0.0)}),
     r"scales must be finite and > 0, got scale\[1\] = 0.0", True),
    ("qc8-scale-negative", lambda: edit("qc8", arrays={"scale": setitem(3, -0.5)}),
     r"scale\[3\] = -0.5", True),
    ("qc8-scale-nan", lambda: edit("qc8", arrays={"scale": setitem(0, np.nan)}),
     r"scale\[0\] = nan", True),
    ("qc8-scale-inf", lambda: edit("qc8", arrays={"scale": setitem(2, np.inf)}),
     r"scale\[2\] = inf", True),
    # ---- csr
    ("csr-no-shape", lambda: edit("csr", shape=None), r"logical shape must be given", True),
    ("csr-scalar-shape", lambda: edit("csr", shape=()), r"shape must have rank >= 1", True),
    ("csr-values-dtype", lambda: edit("csr", arrays={"values": lambda v: v.astype(np.float64)}),
     r"'values' must be float32 or int8, got float64", True),
    ("csr-values-rank", lambda: edit("csr", arrays={"values": lambda v: v[:, None]}),
     r"'values' must have rank 1", True),
    ("csr-indices-dtype", lambda: edit("csr", arrays={"indices": lambda i: i.astype(np.int64)}),
     r"'indices' must be int32 or uint16, got int64", True),
    ("csr-indices-uint8", lambda: edit("csr", arrays={"indices": lambda i: i.astype(np.uint8)}),
     r"'indices' must be int32 or uint16, got uint8", True),
    ("csr-indptr-dtype", lambda: edit("csr", arrays={"indptr": lambda p: p.astype(np.int64)}),
     r"'indptr' must be int32, got int64", True),
    ("csr-indptr-length", lambda: edit("csr", arrays={"indptr": lambda p: p[:-1]}),
     r"'indptr' must have length 5 \(value rows \+ 1\), got 4", True),
    ("csr-indptr-start", lambda: csr_rows([1, 2], [0, 1], [1, 1, 2, 2]),
     r"indptr must start at 0, got indptr\[0\] = 1", True),
    ("csr-indptr-decreasing", lambda: csr_rows([1, 2], [0, 1], [0, 2, 1, 2]),
     r"must not decrease, got indptr\[1\] = 2 > indptr\[2\] = 1", True),
    ("csr-indptr-end", lambda: csr_rows([1, 2, 3], [0, 1, 2], [0, 1, 2, 2]),
     r"indptr must end at the number of stored values 3, got indptr\[3\] = 2", True),
    ("csr-indices-length", lambda: edit("csr", arrays={"indices": lambda i: i[:-1]}),
     r"'indices' must have length \d+ \(one per stored value\)", True),
    ("csr-index-negative", lambda: csr_rows([1, 2], [0, -1], [0, 1, 2, 2]),
     r"column indices must lie in \[0, 4\), got indices\[1\] = -1", True),
    ("csr-index-too-big", lambda: csr_rows([1, 2], [4, 0], [0, 1, 2, 2]),
     r"lie in \[0, 4\), got indices\[0\] = 4", True),
    ("csr-unsorted-row", lambda: csr_rows([1, 2, 3], [0, 3, 1], [0, 1, 3, 3]),
     r"strictly increasing within a row.*got 3 then 1 in row 1", True),
    ("csr-duplicate-in-row", lambda: csr_rows([1, 2], [2, 2], [0, 0, 0, 2]),
     r"no duplicates.*got 2 then 2 in row 2", True),
    ("csr-int8-without-scale", lambda: edit("csr8", drop=["scale"]),
     r"int8 values need a 'scale' array", True),
    ("csr-f32-with-scale", lambda: edit("csr", arrays={"scale": np.ones(4, F32)}),
     r"'scale' array is only for int8 values; these values are float32", True),
    ("csr-int8-minus-128", lambda: edit("csr8", arrays={"values": setitem(0, -128)}),
     r"'values' must lie in \[-127, 127\]", True),
    ("csr-scale-length", lambda: edit("csr8", arrays={"scale": lambda s: s[:2]}),
     r"'scale' must have length 4", True),
    ("csr-scale-negative", lambda: edit("csr8", arrays={"scale": setitem(0, -1.0)}),
     r"finite and > 0", True),
    # ---- bsr
    ("bsr-no-block", lambda: edit("bsr", attrs={"axis": 1}),
     r"expected attributes \['axis', 'block'\], got \['axis'\]", True),
    ("bsr-block-not-ints", lambda: edit("bsr", attrs={"axis": 1, "block": (2, 0)}),
     r"'block' must be two positive ints", True),
    ("bsr-block-str", lambda: edit("bsr", attrs={"axis": 1, "block": "2x3"}),
     r"'block' must be two positive ints.*'2x3'", True),
    ("bsr-ragged-rows", lambda: edit("bsr", attrs={"axis": 1, "block": (3, 3)}),
     r"block \(3, 3\) must divide the matrix \[4, 6\].*ragged", True),
    ("bsr-ragged-cols", lambda: edit("bsr", attrs={"axis": 1, "block": (2, 4)}),
     r"block \(2, 4\) must divide the matrix \[4, 6\]", True),
    ("bsr-values-block", lambda: edit("bsr", attrs={"axis": 1, "block": (4, 3)}),
     r"'values' must be \[nnzb, 4, 3\].*got shape", True),
    ("bsr-values-rank", lambda: edit("bsr", arrays={"values": lambda v: v.reshape(v.shape[0], -1)}),
     r"'values' must have rank 3", True),
    ("bsr-block-index", lambda: edit("bsr", arrays={"indices": setitem(0, 2)}),
     r"column indices must lie in \[0, 2\), got indices\[0\] = 2", True),
    ("bsr-indptr-length", lambda: edit("bsr", arrays={"indptr": np.zeros(5, I32)}),
     r"'indptr' must have length 3 \(block rows \+ 1\), got 5", True),
    ("bsr-unsorted", lambda: Weight("bsr", {"values": np.ones((2, 2, 3), F32),
                                            "indices": np.array([1, 0], U16),
                                            "indptr": np.array([0, 2, 2], I32)},
                                    shape=(6, 4), attrs={"axis": 1, "block": (2, 3)}),
     r"strictly increasing within a row.*got 1 then 0 in row 0", True),
    ("bsr-int8-without-scale", lambda: edit("bsr8", drop=["scale"]), r"need a 'scale'", True),
    ("bsr-scale-per-block-row", lambda: edit("bsr8", arrays={"scale": lambda s: s[::2]}),
     r"'scale' must have length 4 \(one per output channel\), got 2", True),
]


def _graph_with(w) -> Graph:
    return Graph([ValueInfo("x", (None, 6))], ["y"], [Node("Relu", ["x"], ["y"], name="r")],
                 {"bad_w": w})


@pytest.mark.parametrize("rule", RULES, ids=[r[0] for r in RULES])
def test_rule_rejected_by_validation(rule):
    _, make, match, _ = rule
    with pytest.raises(rt.WeightFormatError, match=match) as ei:
        formats.check(make(), "bad_w")
    assert "weight 'bad_w'" in str(ei.value)
    assert isinstance(ei.value, rt.GraphError) and isinstance(ei.value, rt.Error)
    g = _graph_with(make())
    with pytest.raises(rt.WeightFormatError, match=match) as ei:
        g.validate()
    assert str(ei.value).startswith("weight 'bad_w'")
    with pytest.raises(rt.WeightFormatError, match="'bad_w'"):
        rt.compile(_graph_with(make()), threads=1)
    if isinstance(make(), Weight) and make().format in formats.FORMATS:
        with pytest.raises(rt.WeightFormatError, match=match):
            make().numpy()          # the dense view checks first: never a crash later


@pytest.mark.parametrize("rule", [r for r in RULES if r[3]], ids=[r[0] for r in RULES if r[3]])
def test_rule_rejected_by_load(rule):
    _, make, match, _ = rule
    data = ff.dumps(_graph_with(make()))     # save stores what it is given, unchecked
    with pytest.raises(rt.ModelFormatError, match="stored graph is invalid: weight 'bad_w'") as ei:
        rt.load(data)
    assert isinstance(ei.value.__cause__, rt.WeightFormatError)
    assert __import__("re").search(match, str(ei.value))
    w = rt.load(data, validate=False).weights["bad_w"]   # stored as given
    assert w.format == make().format


def test_every_rule_is_distinct():
    assert len({r[0] for r in RULES}) == len(RULES) >= 60


def test_valid_bases_pass_and_validation_reads_weights_once_more():
    for fmt in ("f32", "f16", "bf16", "qc8", "csr", "csr8", "bsr", "bsr8"):
        formats.check(base(fmt), fmt)
        _graph_with(base(fmt)).validate()


# =========================================================================== files

def every_format_graph() -> Graph:
    return rt.zoo.tiny_cnn_formats(seed=2, input_shape=(3, 8, 8))


def test_save_load_every_format_bit_exact(tmp_path):
    g = every_format_graph()
    fmts = {w.format for w in g.weights.values()}
    assert fmts == set(formats.FORMATS)
    p = tmp_path / "m.pyrt"
    rt.save(g, p)
    g2 = rt.load(p)
    assert_identical(g, g2)
    for k, w in g.weights.items():
        w2 = g2.weights[k]
        assert w2.shape == w.shape and w2.attrs == w.attrs and type(w2.attrs.get("block",
                                                                                  ())) is tuple
        assert w2.numpy().tobytes() == w.numpy().tobytes()
    assert ff.dumps(g2) == p.read_bytes()                  # deterministic, stable
    header, _ = split(p.read_bytes())
    entry = {w["name"]: w for w in header["weights"]}
    assert entry["logits.weight"]["shape"] == [16, 10]
    assert entry["logits.weight"]["attrs"] == {"axis": 1, "block": {"$tuple": [2, 4]}}
    assert entry["conv1.weight"]["attrs"] == {"axis": 0} and entry["dw.weight"]["attrs"] == {}
    assert {a["key"]: a["dtype"] for a in entry["project.weight"]["arrays"]} == {
        "indices": "uint16", "indptr": "int32", "values": "int8", "scale": "float32"}
    # compact: each weight takes its arrays' bytes, nothing dense
    assert header["data_size"] < sum(w.nbytes for w in g.weights.values()) + 64 * 3 * 24


def test_sparse_file_is_compact():
    a = pruned((256, 256), 0.05, seed=1)
    sizes = {f: len(ff.dumps(_graph_with(w)))
             for f, w in [("f32", Weight.f32(a)), ("csr", Weight.csr(a)),
                          ("csr8", Weight.csr(a, dtype=I8)), ("f16", Weight.f16(a))]}
    nnz = int((a != 0).sum())
    assert sizes["f32"] > 256 * 256 * 4
    assert sizes["csr"] < nnz * 6 + 257 * 4 + 2048
    assert sizes["csr8"] < nnz * 3 + 257 * 8 + 2048
    assert sizes["f16"] < 256 * 256 * 2 + 2048


def test_version1_file_still_loads():
    """tests/data/v1_mlp.pyrt was written by the version-1 writer (before formats)."""
    from pathlib import Path
    b = (Path(__file__).parent / "data" / "v1_mlp.pyrt").read_bytes()
    assert int.from_bytes(b[8:12], "little") == 1
    g = rt.load(b)
    want = rt.zoo.mlp((5, 4, 3), seed=7)
    for k, w in want.weights.items():
        assert g.weights[k].format == "f32" and g.weights[k].attrs == {}
        assert g.weights[k].numpy().tobytes() == w.numpy().tobytes()
    x = np.linspace(-1, 1, 10, dtype=F32).reshape(2, 5)
    np.testing.assert_array_equal(rt.compile(g, threads=1).run(x),
                                  rt.compile(want, threads=1).run(x))
    # a version-1 header has no weight shape/attrs fields: adding them is an error there
    hdr, data = split(b)
    hdr["weights"][0]["attrs"] = {}
    with pytest.raises(rt.ModelFormatError, match="unknown fields.*attrs"):
        rt.load(build_file(hdr, data, version=1))
    # and a version-2 header needs them
    hdr, data = split(b)
    hdr["version"] = 2
    with pytest.raises(rt.ModelFormatError, match="missing field 'shape'"):
        rt.load(build_file(hdr, data, version=2))
    # a version-1 file naming another format gets no shape or attrs: rejected on load
    hdr, data = split(b)
    hdr["weights"][0]["format"] = "qc8"
    with pytest.raises(rt.ModelFormatError, match=r"weight 'fc1.weight' \(qc8\)"):
        rt.load(build_file(hdr, data, version=1))


def patch_array(b: bytes, wname: str, key: str, fn) -> bytes:
    """The file with weight `wname`'s array `key` replaced by fn(array) (same dtype and
    size) and its CRC recomputed: only the checks behind the checksum see the change."""
    header, data = split(b)
    d = bytearray(data)
    w = next(x for x in header["weights"] if x["name"] == wname)
    a = next(x for x in w["arrays"] if x["key"] == key)
    arr = np.frombuffer(data, np.dtype(a["dtype"]).newbyteorder("<"),
                        count=math.prod(a["shape"]), offset=a["offset"]).reshape(a["shape"])
    new = np.ascontiguousarray(fn(arr.copy()), dtype=arr.dtype)
    assert new.nbytes == a["nbytes"]
    d[a["offset"]:a["offset"] + a["nbytes"]] = new.tobytes()
    a["crc32"] = zlib.crc32(new.tobytes())
    return build_file(header, bytes(d))


def patch_header(b: bytes, wname: str, fn) -> bytes:
    header, data = split(b)
    fn(next(x for x in header["weights"] if x["name"] == wname))
    return build_file(header, data)


def drop_array(b: bytes, wname: str, key: str) -> bytes:
    """The file without weight `wname`'s array `key` (its bytes zeroed, as padding)."""
    header, data = split(b)
    w = next(x for x in header["weights"] if x["name"] == wname)
    a = next(x for x in w["arrays"] if x["key"] == key)
    w["arrays"].remove(a)
    d = bytearray(data)
    d[a["offset"]:a["offset"] + a["nbytes"]] = bytes(a["nbytes"])
    return build_file(header, bytes(d))


def _set(i, v):
    def f(a):
        a.reshape(-1)[i] = v
        return a
    return f


def _attr(k, v):
    return lambda w: w["attrs"].__setitem__(k, v)


# (id, corruption of the every-format file, regex)
CORRUPT = [
    ("qc8-scale-nan", lambda b: patch_array(b, "conv1.weight", "scale", _set(2, np.nan)),
     r"'conv1.weight' \(qc8\): scales must be finite"),
    ("qc8-data-128", lambda b: patch_array(b, "conv1.weight", "data", _set(5, -128)),
     r"'conv1.weight' \(qc8\).*\[-127, 127\]"),
    ("qc8-axis-attr", lambda b: patch_header(b, "conv1.weight", _attr("axis", 4)),
     r"'conv1.weight' \(qc8\): attribute 'axis'"),
    ("qc8-no-attrs", lambda b: patch_header(b, "logits.bias", lambda w: w.update(attrs={})),
     r"'logits.bias' \(qc8\): expected attributes \['axis'\]"),
    ("f16-shape", lambda b: patch_header(b, "dw.weight", lambda w: w.update(shape=[16, 9])),
     r"'dw.weight' \(f16\): shape \(16, 9\) differs"),
    ("f16-dtype", lambda b: patch_header(b, "dw.weight", lambda w: w["arrays"][0].update(
        dtype="int16")), r"'dw.weight' \(f16\): array 'data' must be float16, got int16"),
    ("bf16-dtype", lambda b: patch_header(b, "sep.depthwise", lambda w: w["arrays"][0].update(
        dtype="float16")), r"'sep.depthwise' \(bf16\).*must be uint16"),
    ("csr-indptr-decreasing", lambda b: patch_array(b, "sep.pointwise", "indptr",
                                                    _set(3, 0)),
     r"'sep.pointwise' \(csr\): indptr \(row pointers\) must not decrease"),
    ("csr-indptr-end", lambda b: patch_array(b, "sep.pointwise", "indptr", _set(-1, 1000)),
     r"'sep.pointwise' \(csr\): indptr must end at"),
    ("csr-index-range", lambda b: patch_array(b, "sep.pointwise", "indices", _set(0, 8)),
     r"'sep.pointwise' \(csr\): column indices must lie in \[0, 8\)"),
    ("csr-index-dup", lambda b: patch_array(b, "project.weight", "indices",
                                            lambda a: np.repeat(a[:1], len(a))),
     r"'project.weight' \(csr\): column indices must be strictly increasing"),
    ("csr-shape", lambda b: patch_header(b, "sep.pointwise", lambda w: w.update(shape=[16, 4, 1, 1])),
     r"'sep.pointwise' \(csr\): column indices must lie in \[0, 4\)"),
    ("csr-no-shape", lambda b: patch_header(b, "sep.pointwise", lambda w: w.update(shape=None)),
     r"'sep.pointwise' \(csr\): the logical shape must be given"),
    ("csr-scale-zero", lambda b: patch_array(b, "project.weight", "scale", _set(1, 0.0)),
     r"'project.weight' \(csr\): scales must be finite and > 0"),
    ("csr-drop-scale", lambda b: drop_array(b, "project.weight", "scale"),
     r"'project.weight' \(csr\): int8 values need a 'scale'"),
    ("bsr-block-attr", lambda b: patch_header(b, "expand.weight",
                                              _attr("block", {"$tuple": [3, 2]})),
     r"'expand.weight' \(bsr\): block \(3, 2\) must divide the matrix \[16, 8\]"),
    ("bsr-block-list-mismatch", lambda b: patch_header(b, "expand.weight", _attr("block", [2, 2])),
     r"'expand.weight' \(bsr\): array 'values' must be \[nnzb, 2, 2\]"),
    ("bsr-index-range", lambda b: patch_array(b, "logits.weight", "indices", _set(0, 9)),
     r"'logits.weight' \(bsr\): column indices must lie in \[0, 4\)"),
    ("bsr-indptr-start", lambda b: patch_array(b, "logits.weight", "indptr", _set(0, 1)),
     r"'logits.weight' \(bsr\): indptr must start at 0"),
    ("format-renamed", lambda b: patch_header(b, "dw.weight", lambda w: w.update(format="f8")),
     r"'dw.weight': unknown format 'f8'"),
    ("format-swapped", lambda b: patch_header(b, "dw.weight", lambda w: w.update(format="bf16")),
     r"'dw.weight' \(bf16\): array 'data' must be uint16, got float16"),
]


@pytest.fixture(scope="module")
def formats_file() -> bytes:
    return ff.dumps(every_format_graph())


@pytest.mark.parametrize("case", CORRUPT, ids=[c[0] for c in CORRUPT])
def test_corrupted_format_files(formats_file, case):
    _, corrupt, match = case
    bad = corrupt(formats_file)
    with pytest.raises(rt.ModelFormatError, match=match):
        rt.load(bad)


def test_corruption_helpers_are_faithful(formats_file):
    same = patch_array(formats_file, "sep.pointwise", "indptr", lambda a: a)
    assert_identical(rt.load(same), every_format_graph())
    assert_identical(rt.load(patch_header(formats_file, "dw.weight", lambda w: None)),
                     every_format_graph())


def test_every_byte_flip_of_a_sparse_file_detected():
    g = _graph_with(Weight.bsr(pruned((6, 4), 0.5, seed=2), (2, 2), dtype=I8))
    b = ff.dumps(g)
    for i in range(len(b)):
        c = bytearray(b)
        c[i] ^= 0x10
        with pytest.raises(rt.ModelFormatError):
            rt.load(bytes(c))


# =========================================================================== consumers

def gemm_graph(w: Weight, k: int, bias: Weight | None = None) -> Graph:
    ins = ["x", "w"] + (["b"] if bias is not None else [])
    ws = {"w": w, **({"b": bias} if bias is not None else {})}
    return Graph([ValueInfo("x", (None, k))], ["y"], [Node("Gemm", ins, ["y"], name="fc")], ws)


FORMAT_MAKERS = {
    "f16": Weight.f16, "bf16": Weight.bf16, "qc8": Weight.qc8, "csr": Weight.csr,
    "csr-int32": lambda a: Weight.csr(a, index_dtype=np.int32),
    "csr-int8": lambda a: Weight.csr(a, dtype=I8), "bsr-16x1": lambda a: Weight.bsr(a, (16, 1)),
    "bsr-16x4-int8": lambda a: Weight.bsr(a, (16, 4), dtype=I8),
}


@pytest.mark.parametrize("isa", SUPPORTED_ISAS)
@pytest.mark.parametrize("fmt", list(FORMAT_MAKERS))
def test_session_gemm_every_format_matches_reference(fmt, isa):
    a = pruned((36, 32), 0.3, seed=4)                      # Gemm [K=36, N=32]
    w = FORMAT_MAKERS[fmt](a)
    g = gemm_graph(w, 36, Weight.f16(rng(1).standard_normal(32)))
    x = rng(2).standard_normal((5, 36)).astype(F32)
    s = rt.compile(g, threads=2, isa=isa)
    ref = run_reference(g, x)["y"]
    # the reference is computed in float64 from the same dense view
    np.testing.assert_allclose(ref, x.astype(np.float64) @ w.numpy().astype(np.float64)
                               + g.weights["b"].numpy(), rtol=1e-12, atol=1e-12)
    got = s.run(x).astype(np.float64)
    wd = np.abs(w.numpy().astype(np.float64))
    if fmt == "qc8":  # int8 kernels: activations quantized per row, half a step each
        step = (np.maximum(x.max(1), 0) - np.minimum(x.min(1), 0)) / 255
        bound = 0.5 * step[:, None] * wd.sum(0)[None, :] * 1.001 + 1e-5
    elif fmt == "bf16":  # vdpbf16ps rounds the activations to bf16 too (2**-9 relative)
        bound = 2.0 ** -8 * (np.abs(x) @ wd) + 1e-5
    else:
        bound = 1e-5 + 1e-5 * np.abs(ref)
    assert np.all(np.abs(got - ref) <= bound)
    row = next(r for r in s.plan_summary() if r["op"] in ("gemm", "qgemm", "qgemm_chain"))
    assert row["weight_format"] == w.format
    if fmt in ("f16", "bf16"):  # 16-bit kernels, never sparse
        assert row["computed_as"] == fmt
    elif fmt == "qc8":
        assert row["computed_as"] == "int8 dynamic"
    elif w.arrays.get("values") is not None and w.arrays["values"].dtype == np.int8:
        # int8 csr/bsr: the int8 sparse row kernel where the cost model says sparse
        assert row["computed_as"] in ("f32", "f32 sparse", "f32 sparse|dense", "int8w sparse",
                                      "int8w sparse|dense")
    else:  # 70% zeros: the sparse kernel for a few rows, the dense one from some rows on
        assert row["computed_as"] in ("f32", "f32 sparse", "f32 sparse|dense")


@pytest.mark.parametrize("isa", SUPPORTED_ISAS)
def test_session_every_format_cnn_matches_reference(isa):
    g = every_format_graph()
    x = rng(3).standard_normal((4, 3, 8, 8)).astype(F32)
    ref = run_reference(g, x)["logits"]
    got = rt.compile(g, threads=2, isa=isa).run(x)
    # conv1 is qc8, so the int8 kernels quantize its input (per image, 8 bits: a step of
    # range / 255) and the error of that step flows through the net: 1% of the output's
    # range; every other format computes exactly on its dense view (1e-5)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-2 * float(np.abs(ref).max()))
    rows = rt.compile(g, threads=1).plan_summary()  # a fused block joins formats with +
    fmts = {f for r in rows if r["weight_format"] for f in r["weight_format"].split("+")}
    assert {"qc8", "bsr", "f16", "csr", "bf16"} <= fmts


def test_conv_sparse_uses_o_by_fan_in_matrix():
    """A 4-D conv weight in csr is the matrix [O, I*KH*KW] (rows = output channels)."""
    a = pruned((5, 3, 3, 3), 0.5, seed=8)
    w = Weight.csr(a)
    assert len(w.arrays["indptr"]) == 6
    rows = np.repeat(np.arange(5), np.diff(w.arrays["indptr"]))
    np.testing.assert_array_equal(a.reshape(5, 27)[rows, w.arrays["indices"]],
                                  w.arrays["values"])
    g = Graph([ValueInfo("x", (None, 3, 7, 7))], ["y"],
              [Node("Conv", ["x", "w"], ["y"], {"pads": (1, 1, 1, 1)}, name="c")], {"w": w})
    x = rng(1).standard_normal((2, 3, 7, 7)).astype(F32)
    np.testing.assert_allclose(rt.compile(g, threads=1).run(x), run_reference(g, x)["y"],
                               rtol=1e-5, atol=1e-5)


def _conv_bn_graph(w: Weight, bn_scale: np.ndarray) -> Graph:
    c = w.shape[0]
    r = rng(7)
    ws = {"w": w, "s": Weight.f32(bn_scale), "b": Weight.f32(r.standard_normal(c)),
          "m": Weight.f32(r.standard_normal(c)), "v": Weight.f32(r.uniform(0.5, 2, c))}
    return Graph([ValueInfo("x", (None, 4, 6, 6))], ["y"],
                 [Node("Conv", ["x", "w"], ["c"], {"pads": (1, 1, 1, 1)}, name="conv"),
                  Node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"], name="bn")], ws)


@pytest.mark.parametrize("fmt,folds", [
    ("f32", True), ("qc8", True), ("csr", True), ("csr-int8", True), ("bsr-8x1", True),
    ("bsr-int8", True), ("f16", False), ("bf16", False), ("qc8-axis1", False)])
def test_fold_batchnorm_keeps_formats(fmt, folds):
    a = pruned((8, 4, 3, 3), 0.5, seed=12)
    w = {"f32": Weight.f32, "qc8": Weight.qc8, "csr": Weight.csr,
         "csr-int8": lambda a: Weight.csr(a, dtype=I8), "bsr-8x1": lambda a: Weight.bsr(a, (8, 1)),
         "bsr-int8": lambda a: Weight.bsr(a, (2, 4), dtype=I8), "f16": Weight.f16,
         "bf16": Weight.bf16, "qc8-axis1": lambda a: Weight.qc8(a, axis=1)}[fmt](a)
    scale = np.array([1.5, -0.7, 0.0, 2.0, -3.0, 0.25, 1.0, -1.0], F32)   # signs and a zero
    g = _conv_bn_graph(w, scale)
    o = rt.passes.fold_batchnorm(g)
    ops = [n.op for n in o.nodes]
    assert ops == (["Conv"] if folds else ["Conv", "BatchNormalization"]), ops
    wn = o.nodes[0].inputs[1]
    assert o.weights[wn].format == w.format and o.weights[wn].attrs == w.attrs
    if formats.pattern(w) is not None:
        for k in ("indices", "indptr"):
            np.testing.assert_array_equal(o.weights[wn].arrays[k], w.arrays[k])
    x = rng(5).standard_normal((2, 4, 6, 6)).astype(F32)
    want = run_reference(g, x)["y"]
    got = run_reference(o, x)["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    # qc8 runs on the int8 kernels (input quantized per image to 8 bits: at most half a
    # step, range / 510, per input times sum |w| over 36 inputs), bf16 on vdpbf16ps where
    # the CPU has it (activations rounded to bf16: 2**-9 relative); others exactly
    tol = {"qc8": 3e-2, "bf16": 4e-3}.get(w.format, 1e-5)
    np.testing.assert_allclose(rt.compile(g, threads=1).run(x), want, rtol=tol,
                               atol=tol * float(np.abs(want).max()))


def test_fold_batchnorm_skips_what_the_format_cannot_hold():
    """W * 3 would pass float16's 65504: the BatchNorm stays, nothing raises."""
    g = _conv_bn_graph(Weight.f16(np.full((2, 4, 1, 1), 60000.0, F32)), np.array([3.0, 1.0], F32))
    g.nodes[0].attrs["pads"] = (0, 0, 0, 0)
    o = rt.passes.fold_batchnorm(g)
    assert [n.op for n in o.nodes] == ["Conv", "BatchNormalization"]
    assert o.weights["w"].format == "f16"
    q = _conv_bn_graph(Weight.qc8(np.ones((2, 4, 1, 1), F32)), np.array([np.inf, 1.0], F32))
    assert [n.op for n in rt.passes.fold_batchnorm(q).nodes] == ["Conv", "BatchNormalization"]


def test_summary_shows_format_and_bytes():
    s = every_format_graph().summary()
    assert "weight logits.weight: bsr (16, 10) axis=1 block=(2, 4)" in s
    assert "weight dw.weight: f16 (16, 1, 3, 3), 288 bytes" in s
    assert "weight conv1.weight: qc8 (8, 3, 3, 3) axis=0, 248 bytes" in s
    assert "bytes stored" in s.splitlines()[-1]
    g = _graph_with(Weight("csr", {}))
    assert "malformed" in g.summary()


def test_nn_count_params_uses_logical_shapes():
    from pyruntime import nn
    x = nn.Input((6,))
    m = nn.Model(x, nn.Dense(4, name="d")(x))
    n = m.count_params()
    m.graph.weights["d.weight"] = Weight.csr(pruned((6, 4), 0.2))
    assert m.count_params() == n == 28


def test_xla_and_onnx_use_the_dense_view():
    g = rt.zoo.tiny_cnn_formats(seed=4, input_shape=(3, 8, 8))
    x = rng(9).standard_normal((2, 3, 8, 8)).astype(F32)
    ref = run_reference(g, x)["logits"]
    try:
        import jax  # noqa: F401
    except ImportError:
        pass
    else:
        fn, params = rt.xla.lower(g)
        np.testing.assert_allclose(np.asarray(fn(params, x)), ref, rtol=1e-4, atol=1e-5)
        assert params["logits.weight"].dtype == np.float32
    ort = pytest.importorskip("onnxruntime")
    model = rt.to_onnx(g)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_trainer_keeps_formats_and_sparse_zeros():
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    from pyruntime import nn, train
    xin = nn.Input((8,), name="x")
    h = nn.Dense(12, activation="relu", name="a")(xin)
    g = nn.Model(xin, nn.Dense(3, name="b")(h), name="m", seed=0).to_graph()
    g.weights["a.weight"] = Weight.csr(pruned((8, 12), 0.4, seed=1))
    g.weights["a.bias"] = Weight.f16(g.weights["a.bias"].numpy() + 0.1)
    g.weights["b.weight"] = Weight.qc8(g.weights["b.weight"].numpy())
    before = {k: w.copy() for k, w in g.weights.items()}
    assert "b.weight" not in train.default_trainable(g)
    from pyruntime.train.core import _masks
    names = train.default_trainable(g)
    for masks in (None, "zeros"):     # the pattern masks training, whatever `masks` says
        np.testing.assert_array_equal(_masks(g, masks, names)["a.weight"],
                                      before["a.weight"].numpy() != 0)
    r = rng(3)
    x = r.standard_normal((96, 8)).astype(F32)
    y = r.integers(0, 3, 96)
    for masks in (None, "zeros"):
        t = train.fit(g, x, y, epochs=3, batch_size=32, learning_rate=5e-2, progress=False,
                      masks=masks)
        a = t.weights["a.weight"]
        assert a.format == "csr"
        for k in ("indices", "indptr"):       # the pattern is kept exactly
            np.testing.assert_array_equal(a.arrays[k], before["a.weight"].arrays[k])
        assert not np.array_equal(a.arrays["values"], before["a.weight"].arrays["values"])
        dense = a.numpy()
        assert (dense[before["a.weight"].numpy() == 0] == 0).all()
        assert t.weights["a.bias"].format == "f16"
        assert t.weights["b.weight"].format == "qc8"      # fixed: not trainable
        np.testing.assert_array_equal(t.weights["b.weight"].arrays["data"],
                                      before["b.weight"].arrays["data"])
    for k, w in g.weights.items():                       # the input graph is untouched
        for key, arr in w.arrays.items():
            np.testing.assert_array_equal(arr, before[k].arrays[key])
    with pytest.raises(rt.InputError, match="'b.weight' has format 'qc8' with int8 values"):
        train.fit(g, x, y, epochs=1, progress=False, trainable=["b.weight"])


def test_header_json_of_weights_is_plain(formats_file):
    header, _ = split(formats_file)
    assert header["version"] == 2
    json.dumps(header)   # plain JSON only
    for w in header["weights"]:
        assert set(w) == {"name", "format", "shape", "attrs", "arrays"}
