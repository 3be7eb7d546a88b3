"""Model files: bit-exact round trips and a corruption matrix where every bad file must
raise rt.ModelFormatError (pytest.raises fails on any other exception type)."""

from __future__ import annotations

import io
import json
import math
import pickle
import struct
import zipfile
import zlib

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import fileformat as ff
from pyruntime import nn, zoo
from pyruntime.graph import Graph, Node, ValueInfo, Weight


# --------------------------------------------------------------------------- helpers

def same_value(a, b) -> bool:
    """Type-exact, bit-exact equality of attribute values (NaN payloads, -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a == b


def assert_identical(g1: Graph, g2: Graph) -> None:
    assert g1.name == g2.name
    assert [(v.name, v.shape, v.dtype) for v in g1.inputs] == \
        [(v.name, v.shape, v.dtype) for v in g2.inputs]
    for v in g2.inputs:
        assert type(v.shape) is tuple and isinstance(v.dtype, np.dtype)
    assert g1.outputs == g2.outputs
    assert len(g1.nodes) == len(g2.nodes)
    for a, b in zip(g1.nodes, g2.nodes):
        assert (a.op, a.name, a.inputs, a.outputs) == (b.op, b.name, b.inputs, b.outputs)
        assert same_value(a.attrs, b.attrs), (a.name, a.attrs, b.attrs)
    assert list(g1.weights) == list(g2.weights)
    for k, w1 in g1.weights.items():
        w2 = g2.weights[k]
        assert w1.format == w2.format and list(w1.arrays) == list(w2.arrays)
        assert same_value(w1.attrs, w2.attrs), (k, w1.attrs, w2.attrs)
        assert _shape_or_none(w1) == _shape_or_none(w2), k
        for key, x in w1.arrays.items():
            y = w2.arrays[key]
            assert y.dtype == x.dtype.newbyteorder("=") and y.dtype.isnative
            assert y.shape == x.shape and y.flags.c_contiguous and y.flags.writeable
            assert np.ascontiguousarray(x).astype(y.dtype).tobytes() == y.tobytes(), (k, key)


def _shape_or_none(w: Weight):
    try:
        return w.shape
    except rt.WeightFormatError:
        return None


def odd_graph() -> Graph:
    """Every storable dtype, odd bit patterns and every attr encoding."""
    nan_payload = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_DEAD_BEEF))[0]
    f32_bits = np.array([0x7FC0_1234, 0xFF80_0001, 0x8000_0000, 0x0000_0001, 0x7F80_0000,
                         0xFF80_0000, 0x3F80_0000], np.uint32).view(np.float32)
    big_endian = np.arange(6, dtype=">f4").reshape(2, 3)
    strided = np.arange(20, dtype=np.float32).reshape(4, 5)[:, ::2]
    arrays = {
        "f32": Weight.f32(f32_bits),
        "be": Weight("f32", {"data": big_endian}),
        "strided": Weight("f32", {"data": strided}),
        "scalar": Weight("f32", {"data": np.array(-0.0, np.float32)}),
        "empty": Weight("f32", {"data": np.zeros((0, 3), np.float32)}),
        "q": Weight("int8", {"data": np.array([[-128, 127, 0]], np.int8),
                             "scale": np.array([0.5], np.float32),
                             "zero_point": np.array([3], np.int32)}),
        "sparse": Weight("sparse", {"values": np.array([1.5, -2.0], np.float64),
                                    "indices": np.array([0, 2**40], np.int64),
                                    "indptr": np.array([0, 1, 2], np.uint64),
                                    "mask": np.array([True, False, True]),
                                    "h": np.array([1, 0x7C01, 0x8000], np.uint16).view(np.float16),
                                    "u8": np.arange(5, dtype=np.uint8),
                                    "i16": np.array([-3], np.int16),
                                    "u32": np.array([2**32 - 1], np.uint32)}),
    }
    attrs = {
        "ints": (1, -2, 2**70), "floats": [0.1, -0.0, 1e-310, 1e308, 5e-324],
        "inf": math.inf, "ninf": -math.inf, "nan": nan_payload, "negnan": -math.nan,
        "none": None, "flag": True, "off": False, "text": "päd \u2603 \"q\" \\ \n",
        "nested": [(1, (2.5, [3])), {"k": (math.inf,), "": []}], "empty_t": (),
        "blob": b"\x00\xff\x80", "arr": np.array([[1, 2]], np.int64),
        "farr": np.array([np.nan, -0.0], np.float32), "dict": {"a": 1, "b": [1.0]},
        "tag_like": ["$tuple", "$float"],
    }
    nodes = [Node("Conv", ["x", "f32", "", "q"], ["y"], attrs, name="weird node/ü"),
             Node("Identity", ["y"], ["z"])]
    return Graph([ValueInfo("x", (None, 3, 4, 4)), ValueInfo("i64", (2,), np.dtype(np.int64))],
                 ["z", "y"], nodes, arrays, name="odd \u00e9")


def build_file(header: dict, data: bytes = b"", *, version: int = ff.FORMAT_VERSION,
               crc: int | None = None,
               flags: int = 0) -> bytes:
    """A container with an arbitrary header (valid checksum unless `crc` is given)."""
    h = json.dumps(header).encode()
    pre = ff._PREFIX.pack(ff.MAGIC, version, flags, len(h),
                          zlib.crc32(h) if crc is None else crc, 0)
    start = ff._align(len(pre) + len(h))
    return pre + h + b"\0" * (start - len(pre) - len(h)) + data


def split(b: bytes) -> tuple[dict, bytes]:
    """(header dict, data section) of a valid file."""
    hlen = struct.unpack_from("<Q", b, 16)[0]
    header = json.loads(b[32:32 + hlen])
    return header, b[ff._align(32 + hlen):]


def small_graph() -> Graph:
    x = nn.Input((3,), name="x")
    h = nn.Dense(4, activation="relu", name="a")(x)
    return nn.Model(x, nn.Dense(2, name="b")(h), name="small").graph


@pytest.fixture(scope="module")
def small_bytes() -> bytes:
    return ff.dumps(small_graph())


def bad(data, match: str | None = None) -> rt.ModelFormatError:
    with pytest.raises(rt.ModelFormatError, match=match) as ei:
        rt.load(data)
    return ei.value


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("make", [zoo.mlp, zoo.tiny_cnn, zoo.mobilenetv2_style,
                                  lambda: zoo.mobilenetv2_style((3, 33, 47), 0.35, 5, 3)],
                         ids=["mlp", "tiny_cnn", "mobilenetv2", "mobilenetv2_small"])
def test_roundtrip_zoo(make, tmp_path):
    g = make()
    p = tmp_path / "m.pyrt"
    rt.save(g, p)
    assert_identical(g, rt.load(p))
    assert_identical(g, rt.load(str(p)))
    assert p.read_bytes() == ff.dumps(g)          # deterministic bytes


def test_roundtrip_odd_graph(tmp_path):
    g = odd_graph()
    b = ff.dumps(g)
    g2 = ff.loads(b, validate=False)
    assert_identical(g, g2)
    a = g2.nodes[0].attrs
    assert struct.pack("<d", a["nan"]) == struct.pack("<Q", 0x7FF8_0000_DEAD_BEEF)
    assert math.copysign(1.0, a["floats"][1]) == -1.0 and a["floats"][2] == 1e-310
    assert type(a["ints"]) is tuple and a["ints"][2] == 2**70
    assert type(a["nested"][0]) is tuple and type(a["nested"][0][1][1]) is list
    assert a["tag_like"] == ["$tuple", "$float"]
    assert g2.weights["be"].arrays["data"].dtype == np.dtype("float32")
    np.testing.assert_array_equal(g2.weights["be"].arrays["data"], np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(g2.weights["strided"].arrays["data"],
                                  np.arange(20, dtype=np.float32).reshape(4, 5)[:, ::2])
    assert g2.weights["scalar"].arrays["data"].shape == ()
    assert g2.inputs[1].dtype == np.int64
    # second round trip gives the same bytes
    assert ff.dumps(g2) == b


def test_numpy_scalars_become_python():
    g = Graph([ValueInfo("x", (None, 2))], ["y"],
              [Node("Clip", ["x"], ["y"], {"min": np.float32(-0.5), "max": np.float64(6),
                                           "n": np.int64(3), "b": np.bool_(True)})])
    a = ff.loads(ff.dumps(g), validate=False).nodes[0].attrs
    assert a == {"min": -0.5, "max": 6.0, "n": 3, "b": True}
    assert [type(v) for v in a.values()] == [float, float, int, bool]


def test_file_objects_and_bytes(tmp_path):
    g = zoo.tiny_cnn()
    buf = io.BytesIO()
    rt.save(g, buf)
    b = buf.getvalue()
    assert b == ff.dumps(g)
    assert_identical(g, rt.load(io.BytesIO(b)))
    assert_identical(g, rt.load(b))
    assert_identical(g, rt.load(bytearray(b)))
    assert_identical(g, rt.load(memoryview(b)))
    f = io.BytesIO(b"junk" + b)   # a file object positioned after some other data
    f.seek(4)
    assert_identical(g, rt.load(f))
    p = tmp_path / "x.pyrt"
    p.write_bytes(b)
    with open(p, "rb") as fh:
        assert_identical(g, rt.load(fh))

    class Pipe:                                    # readable, not seekable
        def __init__(self, data):
            self.f = io.BytesIO(data)

        def read(self, n=-1):
            return self.f.read(n)

    assert_identical(g, rt.load(Pipe(b)))
    with pytest.raises(rt.ModelFormatError, match="truncated"):
        rt.load(Pipe(b[:-3]))


def test_save_is_atomic_and_rejects_unstorable(tmp_path):
    p = tmp_path / "m.pyrt"
    g = small_graph()
    rt.save(g, p)
    before = p.read_bytes()
    bad_g = small_graph()
    bad_g.weights["a.weight"] = Weight("f32", {"data": np.zeros(3, np.complex64)})
    with pytest.raises(rt.GraphError, match="complex64"):
        rt.save(bad_g, p)
    assert p.read_bytes() == before                # the old file is untouched
    bad_g = small_graph()
    bad_g.nodes[0].attrs["fn"] = print
    with pytest.raises(rt.GraphError, match="attr 'fn'"):
        rt.save(bad_g, tmp_path / "n.pyrt")
    bad_g = small_graph()
    bad_g.weights["a.weight"] = Weight("f32", {"data": [1.0, 2.0]})
    with pytest.raises(rt.GraphError, match="numpy array"):
        ff.dumps(bad_g)
    with pytest.raises(rt.GraphError, match="rt.Graph"):
        ff.dumps("not a graph")
    x = nn.Input((2,))
    with pytest.raises(rt.GraphError, match="model.graph"):
        rt.save(nn.Model(x, nn.Dense(1)(x)), tmp_path / "m2.pyrt")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.pyrt"]   # no temp files left


def test_layout(small_bytes):
    b = small_bytes
    magic, version, flags, hlen, hcrc, res = struct.unpack_from("<8sIIQII", b)
    assert (magic, version, flags, res) == (b"\x89PYRT\r\n\x1a", 2, 0, 0)
    assert zlib.crc32(b[32:32 + hlen]) == hcrc
    header, data = split(b)
    assert header["format"] == "pyruntime.model" and header["data_size"] == len(data)
    for w in header["weights"]:
        for a in w["arrays"]:
            assert a["offset"] % 64 == 0
            assert zlib.crc32(data[a["offset"]:a["offset"] + a["nbytes"]]) == a["crc32"]
    assert (32 + hlen + (-(32 + hlen)) % 64) % 64 == 0
    assert b"pickle" not in b and b[:2] != b"\x80\x04"


def test_missing_file_is_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        rt.load(tmp_path / "nope.pyrt")


# --------------------------------------------------------------------------- corruption

def test_truncated_everywhere(small_bytes):
    b = small_bytes
    for n in range(len(b)):
        with pytest.raises(rt.ModelFormatError):
            rt.load(b[:n])
    assert "truncated" in str(bad(b[:len(b) - 1]))
    assert "truncated" in str(bad(b[:10]))
    assert "truncated" in str(bad(b""))


def test_every_byte_flip_detected(small_bytes):
    """Magic, prefix fields, header (CRC), padding (must be zero) and data (CRC): no byte of
    the file can change without the load failing."""
    b = small_bytes
    for i in range(len(b)):
        for mask in (0x01, 0x80):
            c = bytearray(b)
            c[i] ^= mask
            with pytest.raises(rt.ModelFormatError):
                rt.load(bytes(c))


def test_flip_messages(small_bytes):
    b = bytearray(small_bytes)
    header, data = split(small_bytes)
    hlen = struct.unpack_from("<Q", b, 16)[0]
    c = bytearray(b)
    c[40] ^= 1
    assert "header checksum" in str(bad(bytes(c)))
    c = bytearray(b)
    c[-1] ^= 1
    e = str(bad(bytes(c)))
    assert "checksum mismatch in weight 'b.bias'" in e
    c = bytearray(b)
    c[32 + hlen] = 7   # padding after the header
    assert "padding after the header" in str(bad(bytes(c)))
    c = bytearray(b)
    struct.pack_into("<I", c, 8, 3)
    assert "unsupported format version 3" in str(bad(bytes(c)))
    assert "reads versions 1, 2" in str(bad(bytes(c)))
    c = bytearray(b)
    struct.pack_into("<I", c, 12, 1)
    assert "reserved" in str(bad(bytes(c)))
    c = bytearray(b)
    struct.pack_into("<Q", c, 16, 2**63)
    assert "header length" in str(bad(bytes(c)))
    assert "trailing" in str(bad(bytes(b) + b"\0"))


def test_sampled_truncation_and_flips_on_cnn():
    b = ff.dumps(zoo.tiny_cnn())
    rng = np.random.default_rng(0)
    for n in sorted(set(rng.integers(0, len(b), 200).tolist()) | {31, 32, 33, len(b) - 1}):
        with pytest.raises(rt.ModelFormatError):
            rt.load(b[:n])
    for i in rng.integers(0, len(b), 300).tolist():
        c = bytearray(b)
        c[i] ^= int(rng.integers(1, 256))
        with pytest.raises(rt.ModelFormatError):
            rt.load(bytes(c))


def test_foreign_files(tmp_path):
    assert "zip" in str(bad(_zip_bytes()))
    assert "pickle" in str(bad(pickle.dumps({"a": 1})))
    assert "npy" in str(bad(_npy_bytes()))
    assert "HDF5" in str(bad(b"\x89HDF\r\n\x1a\n" + b"\0" * 100))
    assert "bad magic" in str(bad(b"hello world, this is a text file\n" * 3))
    assert "bad magic" in str(bad(np.random.default_rng(1).bytes(1000)))
    assert "bad magic" in str(bad(b"\x00"))
    onnx = pytest.importorskip("onnx")
    from onnx import helper, TensorProto
    gr = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                           [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    p = tmp_path / "m.onnx"
    onnx.save(helper.make_model(gr), p)
    assert "load_onnx" in str(bad(p))


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.pkl", b"x")
    return buf.getvalue()


def _npy_bytes() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    return buf.getvalue()


def test_header_not_json(small_bytes):
    assert "not valid JSON" in str(bad(build_file_raw(b"{not json")))
    assert "not valid JSON" in str(bad(build_file_raw(b"\xff\xfe\x00")))
    assert "not valid JSON" in str(bad(build_file_raw(b'{"a": NaN}')))
    assert "not valid JSON" in str(bad(build_file_raw(b'{"a": 1, "a": 2}')))
    assert "not valid JSON" in str(bad(build_file_raw(b'{"a": 1e999}')))
    assert "not valid JSON" in str(bad(build_file_raw(b"[" * 100000 + b"]" * 100000)))
    assert "JSON object" in str(bad(build_file_raw(b"[1, 2]")))


def build_file_raw(h: bytes) -> bytes:
    pre = ff._PREFIX.pack(ff.MAGIC, ff.FORMAT_VERSION, 0, len(h), zlib.crc32(h), 0)
    return pre + h + b"\0" * (ff._align(32 + len(h)) - 32 - len(h))


def _mutated(small_bytes, fn, data: bytes | None = None) -> bytes:
    header, d = split(small_bytes)
    fn(header)
    return build_file(header, d if data is None else data)


def _arr(h, w=0):
    """The (only) array of weight number w; the small graph's weights are
    a.weight, a.bias, b.weight, b.bias."""
    return h["weights"][w]["arrays"][0]


SCHEMA_CASES = [
    ("missing name", lambda h: h.pop("name"), "missing field 'name'"),
    ("unknown field", lambda h: h.update(extra=1), "unknown fields"),
    ("format name", lambda h: h.update(format="other"), "format"),
    ("version disagree", lambda h: h.update(version=1), "disagrees"),
    ("nodes not list", lambda h: h.update(nodes={}), "nodes: expected a JSON array"),
    ("node op type", lambda h: h["nodes"][0].update(op=3), r"nodes\[0\].op"),
    ("node empty op", lambda h: h["nodes"][0].update(op=""), "empty"),
    ("node input type", lambda h: h["nodes"][0]["inputs"].append(None), r"inputs\[3\]"),
    ("attr bad tag", lambda h: h["nodes"][1]["attrs"].update(z={"$evil": 1}), "tagged"),
    ("attr two keys", lambda h: h["nodes"][1]["attrs"].update(z={"$tuple": [], "x": 1}),
     "tagged"),
    ("attr float hex", lambda h: h["nodes"][1]["attrs"].update(z={"$float": "zz"}),
     "16 hex digits"),
    ("attr dict pair", lambda h: h["nodes"][1]["attrs"].update(z={"$dict": [[1, 2]]}),
     "expected a string"),
    ("attr b64", lambda h: h["nodes"][1]["attrs"].update(z={"$bytes": "***"}), "base64"),
    ("attr array size", lambda h: h["nodes"][1]["attrs"].update(
        z={"$array": {"dtype": "float32", "shape": [1000000], "b64": "AAAA"}}), "needs"),
    ("input shape negative", lambda h: h["inputs"][0].update(shape=[None, -3]),
     r"inputs\[0\].shape\[1\]"),
    ("input dtype", lambda h: h["inputs"][0].update(dtype="object"), "unsupported dtype"),
    ("array dtype", lambda h: _arr(h).update(dtype="complex64"), "unsupported dtype"),
    ("array dtype type", lambda h: _arr(h).update(dtype=5), "expected a string"),
    ("negative dim", lambda h: _arr(h).update(shape=[-3, 4]), "out of range"),
    ("absurd dim", lambda h: _arr(h).update(shape=[10**30]), "out of range"),
    ("huge dims", lambda h: _arr(h).update(shape=[2**31, 2**31]), r"nbytes.*!="),
    ("float dim", lambda h: _arr(h).update(shape=[3.0, 4]), "expected an integer"),
    ("bool dim", lambda h: _arr(h).update(shape=[True, 12]), "expected an integer"),
    ("too many dims", lambda h: _arr(h).update(shape=[1] * 40), "dimensions"),
    ("nbytes wrong", lambda h: _arr(h).update(nbytes=_arr(h)["nbytes"] - 4), r"nbytes"),
    ("offset misaligned", lambda h: _arr(h).update(offset=4), "aligned"),
    ("offset negative", lambda h: _arr(h).update(offset=-64), "out of range"),
    ("offset beyond", lambda h: _arr(h).update(offset=ff._align(h["data_size"])),
     "outside the data"),
    ("overlap", lambda h: _arr(h, 1).update(offset=_arr(h, 0)["offset"]), "overlaps"),
    ("crc range", lambda h: _arr(h).update(crc32=2**32), "out of range"),
    ("duplicate weight", lambda h: h["weights"].append(h["weights"][0]), "duplicate weight"),
    ("duplicate key", lambda h: h["weights"][0]["arrays"].append(_arr(h)), "duplicate array"),
    ("data_size short", lambda h: h.update(data_size=h["data_size"] - 64), "trailing|outside"),
    ("data_size type", lambda h: h.update(data_size="12"), "expected an integer"),
    ("weights entry", lambda h: h["weights"].append([]), "expected a JSON object"),
    ("deep attr", lambda h: h["nodes"][1]["attrs"].update(z=_deep(50000)), "JSON|malformed"),
]


def _deep(n):
    v: list = []
    for _ in range(n):
        v = [v]
    return v


@pytest.mark.parametrize("name,fn,match", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_schema_errors(small_bytes, name, fn, match):
    import sys
    if name == "deep attr":
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(100000)   # so that json.dumps can write the hostile file
        try:
            data = _mutated(small_bytes, fn)
        finally:
            sys.setrecursionlimit(old)
    else:
        data = _mutated(small_bytes, fn)
    bad(data, match)


def test_mutation_helper_is_faithful(small_bytes):
    """The schema cases above start from a file that loads."""
    assert_identical(small_graph(), rt.load(_mutated(small_bytes, lambda h: None)))


def test_no_allocation_beyond_file_size(small_bytes):
    """A header promising a 16 TiB array fails on the size check, before allocating."""
    def huge(h):
        a = _arr(h)
        a.update(shape=[2**42], nbytes=2**44, offset=0)
        h["weights"][0]["arrays"] = [a]
        h["data_size"] = 2**44
    e = bad(_mutated(small_bytes, huge))
    assert "truncated" in str(e) and "17592186044416" in str(e)


def test_crc_mismatch_in_data(small_bytes):
    header, data = split(small_bytes)
    d = bytearray(data)
    a = _arr(header, 2)
    assert header["weights"][2]["name"] == "b.weight"
    struct.pack_into("<f", d, a["offset"], 123.0)
    e = str(bad(build_file(header, bytes(d))))
    assert "checksum mismatch in weight 'b.weight' array 'data'" in e


def test_header_crc_field_checked(small_bytes):
    header, data = split(small_bytes)
    e = str(bad(build_file(header, data, crc=1234)))
    assert "header checksum mismatch" in e and "0x000004d2" in e


def test_nonzero_gap_between_arrays(small_bytes):
    header, data = split(small_bytes)
    a = _arr(header, 0)
    d = bytearray(data)
    end = a["offset"] + a["nbytes"]
    assert end % 64 != 0     # a.weight is 3x4 floats = 48 bytes: there is a gap
    d[end] = 1
    assert "padding between arrays" in str(bad(build_file(header, bytes(d))))


# --------------------------------------------------------------------------- properties

from hypothesis import given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

_scalars = (st.none() | st.booleans() | st.integers() | st.text(max_size=8)
            | st.floats(allow_nan=True, allow_infinity=True, width=64) | st.binary(max_size=8))
_attr_values = st.recursive(
    _scalars, lambda c: st.lists(c, max_size=3) | st.lists(c, max_size=3).map(tuple)
    | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=12)


@given(attrs=st.dictionaries(st.text(min_size=1, max_size=6), _attr_values, max_size=5),
       name=st.text(max_size=10))
@settings(max_examples=60, deadline=None)
def test_attrs_roundtrip_property(attrs, name):
    g = Graph([ValueInfo("x", (None, 2))], ["y"], [Node("Custom", ["x"], ["y"], attrs, name)],
              name=name)
    g2 = ff.loads(ff.dumps(g), validate=False)
    assert same_value(g.nodes[0].attrs, g2.nodes[0].attrs)
    assert g2.nodes[0].name == name and g2.name == name


@given(st.lists(st.sampled_from(ff._DTYPES).flatmap(
    lambda dt: hnp.arrays(np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                         max_side=6))), max_size=4))
@settings(max_examples=50, deadline=None)
def test_arrays_roundtrip_property(arrays):
    g = Graph([], [], [], {f"w{i}": Weight("raw", {"data": a}) for i, a in enumerate(arrays)})
    g2 = ff.loads(ff.dumps(g), validate=False)
    assert_identical(g, g2)


def test_load_validates_the_graph(tmp_path):
    g = small_graph()
    g.nodes[1].inputs = ["nowhere"]                 # dangling input: an inconsistent file
    b = ff.dumps(g)
    e = bad(b, "stored graph is invalid")
    assert "nowhere" in str(e)
    assert ff.loads(b, validate=False).nodes[1].inputs == ["nowhere"]
    g = small_graph()
    g.nodes[1].op = "FancyOp"                       # a sound file with an op we cannot run
    with pytest.raises(rt.UnsupportedOpError, match="FancyOp"):
        rt.load(ff.dumps(g))
