"""Property-based fuzzing (hypothesis) of the three doors strangers' data comes through:
`Session.run` (random shapes, dtypes, strides), random conv/pool geometry through
`rt.compile`, and mutated model files through `rt.load` / `rt.load_onnx`.

The property everywhere: a typed `pyruntime.Error` or a correct answer; never a crash,
an untyped exception or a wrong number. The run length is `PYRUNTIME_FUZZ_EXAMPLES`
examples per test (default 40, CI-sized; see README "Reliability" for long runs).
Under the sanitizer build (tools/sanitize.sh) every example is also a memory check.
"""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import pyruntime as rt  # noqa: E402
from pyruntime import _core, fileformat  # noqa: E402
from pyruntime.graph import Graph, Node, ValueInfo, Weight  # noqa: E402
from pyruntime.reference import run_reference  # noqa: E402

EXAMPLES = int(os.environ.get("PYRUNTIME_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 40,
                suppress_health_check=list(HealthCheck), database=None)
ISAS = [i for i in ("scalar", "avx2", "avx512") if _core.isa_supported(i)]

_SESS: dict = {}


def mlp_session() -> rt.Session:
    if "mlp" not in _SESS:
        _SESS["mlp_graph"] = rt.zoo.mlp((8, 16, 4), seed=3)
        _SESS["mlp"] = rt.compile(_SESS["mlp_graph"], threads=2)
    return _SESS["mlp"]


def cnn_session() -> rt.Session:
    if "cnn" not in _SESS:
        _SESS["cnn_graph"] = rt.zoo.tiny_cnn(seed=3, input_shape=(3, 8, 8))
        _SESS["cnn"] = rt.compile(_SESS["cnn_graph"], threads=2)
    return _SESS["cnn"]


# ---------------------------------------------------------------- Session.run

DTYPES = ["float32", "float64", "float16", "int8", "uint8", "int32", "int64", "bool",
          "complex64"]


@st.composite
def run_inputs(draw, tail: tuple):
    """An array for a model whose input is (None, *tail): maybe the right shape, maybe
    not; any dtype; C order, Fortran order, strided, reversed or broadcast."""
    batch = draw(st.integers(0, 9))
    shape = (batch, *tail)
    kind = draw(st.sampled_from(["ok", "ok", "ok", "rank+", "rank-", "dim"]))
    if kind == "rank+":
        shape = shape + (draw(st.integers(1, 3)),)
    elif kind == "rank-":
        shape = shape[:-1]
    elif kind == "dim":
        i = draw(st.integers(1, len(shape) - 1))
        shape = shape[:i] + (shape[i] + draw(st.sampled_from([-1, 1, 5])),) + shape[i + 1:]
        shape = tuple(max(0, d) for d in shape)
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    layout = draw(st.sampled_from(["C", "F", "step", "reverse", "broadcast"]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    base = rng.standard_normal(shape) * 3
    if layout == "step" and shape:
        big = np.repeat(base, 2, axis=-1) if shape[-1] else base
        x = big[..., ::2] if shape[-1] else big
    elif layout == "reverse" and shape:
        x = base[::-1]
    elif layout == "broadcast" and shape:
        x = np.broadcast_to(base[:1] if batch else base, shape)
    elif layout == "F":
        x = np.asfortranarray(base)
    else:
        x = base
    if dtype.kind == "c":
        x = x.astype(dtype)
    else:
        x = x.astype(dtype) if layout != "broadcast" else np.broadcast_to(
            np.ascontiguousarray(x).astype(dtype), shape)
    return kind, x


def _check_run(sess: rt.Session, graph: Graph, kind: str, x: np.ndarray) -> None:
    if x.dtype.kind not in "iuf":
        with pytest.raises(rt.DTypeError, match=str(x.dtype)):
            sess.run(x)
        return
    if kind != "ok":
        with pytest.raises(rt.ShapeError, match="expected shape"):
            sess.run(x)
        return
    got = sess.run(x)
    flat = np.ascontiguousarray(x, dtype=np.float32)
    assert np.array_equal(got, sess.run(flat), equal_nan=True)  # layout never matters
    if x.shape[0]:
        ref = run_reference(graph, flat)[graph.outputs[0]]
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * scale)
    else:
        assert got.shape[0] == 0


@FUZZ
@given(run_inputs((8,)))
def test_run_mlp_random_arrays(case):
    kind, x = case
    _check_run(mlp_session(), _SESS["mlp_graph"], kind, x)


@FUZZ
@given(run_inputs((3, 8, 8)))
def test_run_cnn_random_arrays(case):
    kind, x = case
    _check_run(cnn_session(), _SESS["cnn_graph"], kind, x)


# ---------------------------------------------------------------- compile over geometry

@FUZZ
@given(op=st.sampled_from(["Conv", "DWConv", "MaxPool", "AveragePool"]),
       c=st.integers(1, 5), oc=st.integers(1, 6), h=st.integers(1, 9), w=st.integers(1, 9),
       kh=st.integers(1, 4), kw=st.integers(1, 4), s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       d=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       pads=st.tuples(*[st.integers(0, 3)] * 4), ceil=st.integers(0, 1),
       cip=st.integers(0, 1), act=st.sampled_from([None, "relu", "clip", "gelu"]),
       batch=st.integers(1, 3), threads=st.integers(1, 3), isa=st.sampled_from(ISAS),
       seed=st.integers(0, 1000))
def test_compile_random_geometry(op, c, oc, h, w, kh, kw, s, d, pads, ceil, cip, act, batch,
                                 threads, isa, seed):
    rng = np.random.default_rng(seed)
    weights = {}
    if op in ("Conv", "DWConv"):
        group = c if op == "DWConv" else 1
        o = c if op == "DWConv" else oc
        weights["w"] = Weight.f32(rng.standard_normal((o, c // group, kh, kw)) / (kh * kw * c) ** .5)
        weights["b"] = Weight.f32(rng.standard_normal(o))
        attrs = dict(strides=s, pads=pads, dilations=d, group=group)
        if act:
            attrs["activation"] = act
            if act == "clip":
                attrs.update(act_min=-0.5, act_max=0.5)
        node = Node("Conv", ["x", "w", "b"], ["y"], attrs, name="op")
    else:
        attrs = dict(kernel_shape=(kh, kw), strides=s, pads=pads, ceil_mode=ceil, dilations=d)
        if op == "AveragePool":
            attrs["count_include_pad"] = cip
        node = Node(op, ["x"], ["y"], attrs, name="op")
    g = Graph([ValueInfo("x", (None, c, h, w))], ["y"], [node], weights)
    try:
        sess = rt.compile(g, threads=threads, isa=isa)
    except rt.Error:
        return  # geometry the IR rejects (e.g. window bigger than the padded input)
    x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
    got = sess.run(x)
    ref = run_reference(g, x)["y"]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(ref).max())))


# ---------------------------------------------------------------- rt.load

def _valid_file(kind: str = "cnn") -> bytes:
    """A valid model file: the tiny CNN, or the same CNN with its weights in every weight
    format ("formats": f16, bf16, qc8, csr, bsr, int8 sparse)."""
    key = f"file-{kind}"
    if key not in _SESS:
        make = rt.zoo.tiny_cnn if kind == "cnn" else rt.zoo.tiny_cnn_formats
        _SESS[key] = fileformat.dumps(make(seed=1, input_shape=(3, 8, 8)))
    return _SESS[key]


def _use(g: Graph) -> None:
    """A graph that loaded must compile (or fail typed) and run."""
    try:
        sess = rt.compile(g, threads=1)
    except rt.Error:
        return
    for i in sess.inputs:
        shape = tuple(2 if d is None else d for d in i.shape)
        if np.prod(shape) <= 1 << 16:
            sess.run({i.name: np.ones(shape, np.float32)})


@FUZZ
@given(st.data())
def test_load_mutated_bytes(data):
    b = bytearray(_valid_file(data.draw(st.sampled_from(["cnn", "formats"]))))
    for _ in range(data.draw(st.integers(1, 4))):
        what = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if not b:
            break
        pos = data.draw(st.integers(0, max(0, len(b) - 1)))
        if what == "flip":
            b[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif what == "truncate":
            del b[pos:]
        elif what == "insert":
            b[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif b:
            del b[pos:pos + data.draw(st.integers(1, 16))]
    try:
        g = rt.load(bytes(b))
    except (rt.ModelFormatError, rt.UnsupportedOpError):
        return
    _use(g)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 64), 1 << 64) | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@FUZZ
@given(st.data())
def test_load_mutated_header(data):
    """Header fields replaced by arbitrary JSON, the header CRC fixed up, so the checks
    past the checksum (schema, shapes, offsets, graph validity) are what is tested."""
    from test_bad_inputs import rewrite_header
    raw = _valid_file(data.draw(st.sampled_from(["cnn", "formats"])))
    header = json.loads(raw[32:32 + int.from_bytes(raw[16:24], "little")])
    paths = [p for p in _paths(header) if p]
    path = data.draw(st.sampled_from(paths))
    if data.draw(st.booleans()):
        value = data.draw(JSON_VALUES)
    else:  # numbers near the edges are the interesting ones for sizes
        value = data.draw(st.sampled_from([0, -1, 1, 2 ** 31, 2 ** 32 + 1, 2 ** 62, 2 ** 63,
                                           2 ** 64 - 1, [1 << 40, 1 << 40], [None, 1 << 62],
                                           [], "float64", {"$float": "7ff0000000000000"}]))

    def edit(h):
        o = h
        for k in path[:-1]:
            o = o[k]
        o[path[-1]] = copy.deepcopy(value)

    try:
        b = rewrite_header(raw, edit)
    except (TypeError, ValueError, OverflowError):
        assume(False)  # not representable as JSON
    try:
        g = rt.load(b)
    except (rt.ModelFormatError, rt.UnsupportedOpError):
        return
    _use(g)


# ---------------------------------------------------------------- weight formats

_FORMATS = ["f16", "bf16", "qc8", "csr", "csr8", "bsr", "bsr8"]


def _format_weight(fmt: str, a: np.ndarray, block: tuple[int, int]) -> Weight:
    return {"f16": lambda: Weight.f16(a), "bf16": lambda: Weight.bf16(a),
            "qc8": lambda: Weight.qc8(a), "csr": lambda: Weight.csr(a),
            "csr8": lambda: Weight.csr(a, dtype=np.int8), "bsr": lambda: Weight.bsr(a, block),
            "bsr8": lambda: Weight.bsr(a, block, dtype=np.int8)}[fmt]()


EDGE_VALUES = [0, 1, -1, 2, -128, 127, 255, 65535, 65536, 2 ** 31 - 1, -(2 ** 31), np.nan,
               np.inf, -np.inf, -0.0, 1e-45, 3e38]


@FUZZ
@given(st.data())
def test_format_arrays_mutated(data):
    """A Gemm weight of a random format and shape with one array mutated (an element set
    to an edge value, the array cut or grown, its dtype changed, an attribute or the shape
    changed): validation raises a typed error, or the weight is valid and a compiled
    Session computes what the float64 reference computes from its dense view; the file
    round trip is bit-exact or fails with ModelFormatError."""
    fmt = data.draw(st.sampled_from(_FORMATS))
    br, bc = data.draw(st.sampled_from([(1, 1), (2, 1), (1, 4), (2, 2), (4, 4)]))
    k, n = bc * data.draw(st.integers(1, 5)), br * data.draw(st.integers(1, 5))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    a = (rng.standard_normal((k, n)) * (rng.random((k, n)) < 0.5)).astype(np.float32)
    w = _format_weight(fmt, a, (br, bc))
    key = data.draw(st.sampled_from(sorted(w.arrays) + ["attrs", "shape"]))
    how = data.draw(st.sampled_from(["set", "cut", "grow", "dtype"]))
    if key == "attrs":
        if w.attrs:
            name = data.draw(st.sampled_from(sorted(w.attrs)))
            w.attrs[name] = data.draw(st.sampled_from([0, 1, 2, -1, (2, 2), (0, 1), (1,), None]))
    elif key == "shape":
        w._shape = data.draw(st.sampled_from([(k, n), (n, k), (k * n,), (k, n, 1), (k + 1, n)]))
    else:
        arr = w.arrays[key]
        if how == "set" and arr.size:
            i = data.draw(st.integers(0, arr.size - 1))
            v = data.draw(st.sampled_from(EDGE_VALUES))
            flat = arr.reshape(-1).copy()
            with np.errstate(invalid="ignore", over="ignore"):
                try:
                    flat[i] = np.array(v).astype(arr.dtype)
                except (OverflowError, ValueError):
                    flat[i] = 0
            w.arrays[key] = flat.reshape(arr.shape)
        elif how == "cut" and arr.ndim and arr.shape[0]:
            w.arrays[key] = arr[:-1]
        elif how == "grow" and arr.ndim:
            w.arrays[key] = np.concatenate([arr, arr[-1:] if arr.shape[0] else arr[:0]])
        elif how == "dtype":
            w.arrays[key] = arr.astype(data.draw(st.sampled_from(
                [np.float32, np.float64, np.int8, np.int32, np.int64, np.uint16, np.float16])))
    g = Graph([ValueInfo("x", (None, k))], ["y"], [Node("Gemm", ["x", "w"], ["y"], name="fc")],
              {"w": w})
    try:
        sess = rt.compile(g, threads=1)
    except rt.Error as e:
        event(f"rejected: {type(e).__name__}")
        assert isinstance(e, (rt.WeightFormatError, rt.WeightShapeError)), repr(e)
        assert ("'w'" if isinstance(e, rt.WeightFormatError) else "'fc'") in str(e)
        with pytest.raises((rt.ModelFormatError, rt.GraphError)):
            rt.load(fileformat.dumps(g))
        return
    event(f"valid {fmt}")
    x = rng.standard_normal((3, k)).astype(np.float32)
    ref = run_reference(g, x)["y"]
    got = sess.run(x)
    scale = max(1.0, float(np.nanmax(np.abs(ref), initial=0.0, where=np.isfinite(ref))))
    if any(r["computed_as"] == "int8 dynamic" for r in sess.plan_summary()):
        # int8 kernels: each row of x quantized to 8 bits, half a step per input times
        # the column's sum |w|
        step = (np.maximum(x.max(1), 0) - np.minimum(x.min(1), 0)) / 255
        bound = 0.5 * step[:, None] * np.abs(w.numpy()).sum(0)[None, :] * 1.001
        assert np.all(np.abs(got - ref) <= bound + 1e-5 * scale)
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * scale)
    g2 = rt.load(fileformat.dumps(g))
    assert g2.weights["w"].numpy().tobytes() == w.numpy().tobytes()


# ---------------------------------------------------------------- rt.load_onnx

onnx = pytest.importorskip("onnx")


def _onnx_model():
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p1"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["g"], transB=1),
        helper.make_node("Softmax", ["g"], ["y"], axis=1),
    ]
    inits = [("w1", rng.standard_normal((4, 3, 3, 3))), ("b1", rng.standard_normal(4)),
             ("w2", rng.standard_normal((5, 64))), ("b2", rng.standard_normal(5))]
    g = helper.make_graph(
        nodes, "fuzz",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        initializer=[numpy_helper.from_array(a.astype(np.float32), n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


@FUZZ
@given(st.data())
def test_onnx_mutated_bytes(data):
    b = bytearray(_onnx_model().SerializeToString())
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(b) - 1))
        if data.draw(st.booleans()):
            b[pos] = data.draw(st.integers(0, 255))
        else:
            del b[pos:pos + data.draw(st.integers(1, 8))]
    try:
        g = rt.load_onnx(bytes(b))
    except rt.Error:
        return
    _use(g)


@FUZZ
@given(st.data())
def test_onnx_mutated_attributes(data):
    """Structured mutation: one attribute of one node, or one dim of one initializer or
    of the input, set to an edge value."""
    from onnx import helper, numpy_helper
    m = _onnx_model()
    edge = st.sampled_from([0, -1, 1, 2, 3, 7, 2 ** 31, 2 ** 62, -(2 ** 62)])
    what = data.draw(st.sampled_from(["attr", "init", "input"]))
    if what == "attr":
        nodes = [n for n in m.graph.node if n.attribute]
        node = data.draw(st.sampled_from(nodes))
        attr = data.draw(st.sampled_from(list(node.attribute)))
        if attr.ints:
            vals = [data.draw(edge) for _ in range(data.draw(st.integers(0, 5)))]
            new = helper.make_attribute(attr.name, vals, attr_type=onnx.AttributeProto.INTS)
        else:
            new = helper.make_attribute(attr.name, data.draw(edge))
        node.attribute.remove(attr)
        node.attribute.append(new)
    elif what == "init":
        i = data.draw(st.integers(0, len(m.graph.initializer) - 1))
        t = m.graph.initializer[i]
        a = numpy_helper.to_array(t)
        shape = list(a.shape)
        j = data.draw(st.integers(0, len(shape)))
        if j == len(shape) or data.draw(st.booleans()):
            a = a.reshape(-1)[: max(1, a.size // 2)]
        else:
            shape[j] = max(1, shape[j] + data.draw(st.sampled_from([-1, 1])))
            a = np.resize(a, shape)
        m.graph.initializer[i].CopyFrom(numpy_helper.from_array(a.astype(np.float32), t.name))
    else:
        dims = m.graph.input[0].type.tensor_type.shape.dim
        j = data.draw(st.integers(1, 3))
        dims[j].dim_value = data.draw(st.sampled_from([1, 2, 7, 2 ** 31, 2 ** 40, 2 ** 62]))
    try:
        g = rt.load_onnx(m.SerializeToString())
    except rt.Error:
        return
    _use(g)
