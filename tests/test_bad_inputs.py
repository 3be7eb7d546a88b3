"""The bad-input matrix: one row per distinct bad input across the public API.

Every row names the call, the typed `pyruntime.Error` subclass it must raise (or, for
inputs with a documented result, a check of that result) and a regex the message must
match, so the error says what was wrong. A crash, a hang, an untyped exception or a
silently wrong answer fails the row. `test_matrix_size` keeps the table at >= 40 rows.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import _core, fileformat
from pyruntime.graph import Graph, Node, ValueInfo, Weight

from test_formats import patch_array, patch_header

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

# ---------------------------------------------------------------- fixtures (built once)

_CACHE: dict[str, Any] = {}


def _once(key: str, make: Callable[[], Any]) -> Any:
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def mlp() -> rt.Session:
    """Input "input" [N, 8] -> [N, 4]."""
    return _once("mlp", lambda: rt.compile(rt.zoo.mlp((8, 16, 4), seed=1), threads=1))


def cnn() -> rt.Session:
    return _once("cnn", lambda: rt.compile(rt.zoo.tiny_cnn(input_shape=(3, 8, 8)), threads=1))


def two_in() -> rt.Session:
    """Inputs a, b [N, 5] -> Add -> [N, 5]."""
    def make():
        g = Graph([ValueInfo("a", (None, 5)), ValueInfo("b", (None, 5))], ["y"],
                  [Node("Add", ["a", "b"], ["y"], name="add")])
        return rt.compile(g, threads=1)
    return _once("two", make)


def x8(n: int = 3) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, 8)).astype(np.float32)


def gemm_graph(w_shape=(8, 4), in_shape=(None, 8), **attrs) -> Graph:
    w = np.ones(w_shape, np.float32)
    return Graph([ValueInfo("x", in_shape)], ["y"],
                 [Node("Gemm", ["x", "w"], ["y"], attrs, name="fc")], {"w": Weight.f32(w)})


def relu_graph(in_shape) -> Graph:
    return Graph([ValueInfo("x", in_shape)], ["y"], [Node("Relu", ["x"], ["y"], name="r")])


def prune_graph(fmt: str = "f32") -> Graph:
    """An MLP 32 -> 64 -> 4 (fc1's kernel, 2048 entries, is prunable by default);
    fmt "qc8": fc1's kernel quantized."""
    g = rt.zoo.mlp((32, 64, 4), seed=1)
    if fmt == "qc8":
        g.weights["fc1.weight"] = Weight.qc8(g.weights["fc1.weight"].numpy())
    return g


def model_bytes() -> bytes:
    return _once("bytes", lambda: fileformat.dumps(rt.zoo.mlp((8, 16, 4), seed=1)))


def rewrite_header(data: bytes, edit: Callable[[dict], None]) -> bytes:
    """A .pyrt file whose JSON header went through `edit`, re-checksummed and re-aligned,
    so only the edited field is wrong (the loader's checks past the CRC are reached)."""
    magic, ver, flags, hlen, _crc, res = fileformat._PREFIX.unpack_from(data)
    start = fileformat._PREFIX.size
    old_data_start = -(-(start + hlen) // 64) * 64
    header = json.loads(data[start:start + hlen])
    edit(header)
    h = json.dumps(header).encode()
    prefix = fileformat._PREFIX.pack(magic, ver, flags, len(h), zlib.crc32(h), res)
    body = prefix + h
    body += b"\0" * (-len(body) % 64)
    return body + data[old_data_start:]


def onnx_model(nodes, inits=(), in_shape=("N", 8), out_shape=("N", 4), opset=13) -> bytes:
    g = helper.make_graph(
        list(nodes), "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        initializer=[numpy_helper.from_array(np.asarray(a, np.float32), n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m.SerializeToString()


def onnx_external_data(location: str) -> bytes:
    """A Gemm whose weight lives in an external file `location` (16 bytes)."""
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 2],
                    data_location=TensorProto.EXTERNAL)
    for k, v in (("location", location), ("length", "16")):
        e = t.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
                          initializer=[t])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m.SerializeToString()


def external_data_in_cwd(tmp_dir) -> Any:
    """Regression (found by this harness): ONNX *bytes* naming external data made
    load_onnx read that file from the working directory into the weights."""
    import os
    old = os.getcwd()
    os.chdir(tmp_dir)
    try:
        with open("secret.bin", "wb") as f:
            f.write(b"SECRETSECRETSECR")
        return rt.load_onnx(onnx_external_data("secret.bin"))
    finally:
        os.chdir(old)


def onnx_gemm(**attrs) -> bytes:
    return onnx_model([helper.make_node("Gemm", ["x", "w"], ["y"], **attrs)],
                      [("w", np.ones((8, 4)))])


def fmt_graph(w: Weight) -> Graph:
    """A Gemm [N, 6] @ w [6, 4] whose weight is `w` (any format, maybe malformed)."""
    return Graph([ValueInfo("x", (None, 6))], ["y"], [Node("Gemm", ["x", "w"], ["y"], name="fc")],
                 {"w": w})


def fmt_weight(fmt: str, **edits) -> Weight:
    """A valid [6, 4] weight of `fmt` ("csr8"/"bsr8": int8 values) with arrays replaced."""
    a = np.arange(24, dtype=np.float32).reshape(6, 4) - 11.5
    a[::2, 1] = 0
    w = {"f32": lambda: Weight.f32(a), "f16": lambda: Weight.f16(a),
         "bf16": lambda: Weight.bf16(a), "qc8": lambda: Weight.qc8(a),
         "csr": lambda: Weight.csr(a), "csr8": lambda: Weight.csr(a, dtype=np.int8),
         "bsr": lambda: Weight.bsr(a, (2, 3))}[fmt]()
    for k, v in edits.items():
        if v is None:
            del w.arrays[k]
        else:
            w.arrays[k] = v(w.arrays[k]) if callable(v) else v
    return w


def huge_sparse_graph() -> Graph:
    """A Gemm whose csr weight stores one value of a [2**30, 16] matrix: a file of about a
    kilobyte whose dense view would take 64 GiB."""
    w = Weight.csr((np.ones(1, np.float32), np.zeros(1, np.int32),
                    np.r_[0, np.ones(16, np.int32)].astype(np.int32)), shape=(1 << 30, 16))
    return Graph([ValueInfo("x", (None, 1 << 30))], ["y"],
                 [Node("Gemm", ["x", "w"], ["y"], name="fc")], {"w": w})


def _with(i, v):
    def f(a):
        a = a.copy()
        a.reshape(-1)[i] = v
        return a
    return f


def formats_bytes() -> bytes:
    return _once("fbytes", lambda: fileformat.dumps(
        rt.zoo.tiny_cnn_formats(seed=0, input_shape=(3, 8, 8))))


def v1_bytes() -> bytes:
    from pathlib import Path
    return (Path(__file__).parent / "data" / "v1_mlp.pyrt").read_bytes()


# ---------------------------------------------------------------- result checks

def same_as_contiguous(out: np.ndarray, x: np.ndarray) -> None:
    assert np.array_equal(out, mlp().run(np.ascontiguousarray(x, np.float32)))


def check_batch0(out: np.ndarray) -> None:
    assert out.shape == (0, 4) and out.dtype == np.float32


def check_readonly(x: np.ndarray) -> Callable[[Any], None]:
    before = x.copy()

    def check(out: np.ndarray) -> None:
        assert np.array_equal(x, before) and not x.flags.writeable
        assert np.array_equal(out, mlp().run(before))
    return check


def check_nan_rows(out: np.ndarray) -> None:
    # Row 1 holds a NaN: every output of that row is NaN, the others are finite and
    # equal the clean run's.
    clean = mlp().run(x8(3))
    assert np.isnan(out[1]).all()
    assert np.array_equal(out[[0, 2]], clean[[0, 2]])


def check_inf_rows(out: np.ndarray) -> None:
    clean = mlp().run(x8(3))
    assert not np.isfinite(out[2]).all()
    assert np.array_equal(out[:2], clean[:2])


def with_nan() -> np.ndarray:
    x = x8(3)
    x[1, 3] = np.nan
    return x


def with_inf() -> np.ndarray:
    x = x8(3)
    x[2, :] = np.inf
    return x


def readonly() -> np.ndarray:
    x = x8(3)
    x.flags.writeable = False
    return x


def huge_batch_view(dtype=np.float32) -> np.ndarray:
    """A (2**40, 8) array that costs 32 bytes: a zero-stride broadcast view."""
    return np.broadcast_to(np.ones((1, 8), dtype), (1 << 40, 8))


# ---------------------------------------------------------------- the matrix

@dataclass
class Row:
    id: str
    call: Callable[[], Any]
    error: type | None          # the typed error, or None for a documented result
    match: str = ""             # regex on the message (errors)
    check: Callable[[Any], None] | None = None  # for documented results


def _isa_lacking() -> str | None:
    for isa in ("avx512", "avx2"):
        if not _core.isa_supported(isa):
            return isa
    return None


R = Row
ROWS: list[Row] = [
    # ---- Session.run: dtype
    R("run-bool", lambda: mlp().run(np.ones((2, 8), bool)), rt.DTypeError, r"float32.*bool"),
    R("run-complex", lambda: mlp().run(np.ones((2, 8), np.complex64)), rt.DTypeError, r"complex64"),
    R("run-object", lambda: mlp().run(np.full((2, 8), None, object)), rt.DTypeError, r"object"),
    R("run-string", lambda: mlp().run(np.full((2, 8), "a")), rt.DTypeError, r"<U1"),
    R("run-float64-converted", lambda: mlp().run(x8(3).astype(np.float64)), None,
      check=lambda o: np.testing.assert_array_equal(o, mlp().run(x8(3)))),
    R("run-int-converted", lambda: mlp().run(np.arange(16, dtype=np.int64).reshape(2, 8)), None,
      check=lambda o: np.testing.assert_array_equal(
          o, mlp().run(np.arange(16, dtype=np.float32).reshape(2, 8)))),
    # ---- rank / shape / batch
    R("run-rank-low", lambda: mlp().run(np.ones(8, np.float32)), rt.ShapeError,
      r"'input'.*\(None, 8\).*\(8,\)"),
    R("run-rank-high", lambda: mlp().run(np.ones((2, 8, 1), np.float32)), rt.ShapeError,
      r"'input'.*expected shape \(None, 8\).*\(2, 8, 1\)"),
    R("run-wrong-dim", lambda: mlp().run(np.ones((2, 7), np.float32)), rt.ShapeError,
      r"\(None, 8\).*\(2, 7\)"),
    R("run-scalar", lambda: mlp().run(np.float32(1.0)), rt.ShapeError, r"got \(\)"),
    R("run-cnn-nhwc", lambda: cnn().run(np.ones((1, 8, 8, 3), np.float32)), rt.ShapeError,
      r"\(None, 3, 8, 8\).*\(1, 8, 8, 3\)"),
    R("run-batch0", lambda: mlp().run(np.ones((0, 8), np.float32)), None, check=check_batch0),
    R("run-mixed-batch", lambda: two_in().run({"a": np.ones((2, 5), np.float32),
                                               "b": np.ones((3, 5), np.float32)}),
      rt.ShapeError, r"same batch size.*a: 2.*b: 3"),
    # ---- memory layout
    R("run-noncontiguous", lambda: mlp().run(x8(6)[::2]), None,
      check=lambda o: same_as_contiguous(o, x8(6)[::2])),
    R("run-fortran-order", lambda: mlp().run(np.asfortranarray(x8(5))), None,
      check=lambda o: same_as_contiguous(o, x8(5))),
    R("run-readonly", lambda: mlp().run(_CACHE.setdefault("ro", readonly())), None,
      check=lambda o: check_readonly(_CACHE["ro"])(o)),
    # ---- values
    R("run-nan", lambda: mlp().run(with_nan()), None, check=check_nan_rows),
    R("run-inf", lambda: mlp().run(with_inf()), None, check=check_inf_rows),
    # ---- huge sizes in run inputs (checked before any allocation or copy)
    R("run-huge-batch-f32", lambda: mlp().run(huge_batch_view()), rt.ShapeError,
      r"batch 1099511627776 is too large"),
    R("run-huge-batch-f64", lambda: mlp().run(huge_batch_view(np.float64)), rt.ShapeError,
      r"batch 1099511627776 is too large"),
    R("arena-huge-batch", lambda: mlp().arena_bytes(1 << 62), rt.ShapeError,
      r"too large.*overflow"),
    # ---- names
    R("run-unknown-name", lambda: mlp().run({"inptu": x8()}), rt.InputError,
      r"expected inputs \['input'\].*unknown \['inptu'\].*missing \['input'\]"),
    R("run-missing-input", lambda: two_in().run({"a": np.ones((2, 5), np.float32)}),
      rt.InputError, r"missing \['b'\]"),
    R("run-bare-array-multi-input", lambda: two_in().run(np.ones((2, 5), np.float32)),
      rt.InputError, r"2 inputs \['a', 'b'\].*dict"),
    R("run-ragged-list", lambda: mlp().run([[1.0] * 8, [1.0] * 7]), rt.InputError,
      r"cannot convert list"),
    # ---- compile arguments
    R("threads-zero", lambda: rt.compile(rt.zoo.mlp((4, 2)), threads=0), rt.InputError,
      r"threads.*got 0"),
    R("threads-negative", lambda: rt.compile(rt.zoo.mlp((4, 2)), threads=-3), rt.InputError,
      r"threads.*got -3"),
    R("threads-huge", lambda: rt.compile(rt.zoo.mlp((4, 2)), threads=1 << 40), rt.InputError,
      r"threads: expected 1\.\.1024"),
    R("threads-str", lambda: rt.compile(rt.zoo.mlp((4, 2)), threads="2"), rt.InputError,
      r"threads.*'2'"),
    R("threads-bool", lambda: rt.compile(rt.zoo.mlp((4, 2)), threads=True), rt.InputError,
      r"threads.*True"),
    R("threads-float", lambda: rt.compile(rt.zoo.mlp((4, 2)), threads=2.0), rt.InputError,
      r"threads.*2\.0"),
    R("isa-unknown", lambda: rt.compile(rt.zoo.mlp((4, 2)), isa="sse9"), rt.IsaError,
      r"unknown ISA 'sse9'"),
    pytest.param(R("isa-cpu-lacks", lambda: rt.compile(rt.zoo.mlp((4, 2)), isa=_isa_lacking()),
                   rt.IsaError, r"not supported by this CPU"),
                 marks=pytest.mark.skipif(_isa_lacking() is None, reason="CPU has every ISA")),
    R("device-unknown", lambda: rt.compile(rt.zoo.mlp((4, 2)), device="tpu"), rt.InputError,
      r"device 'tpu' is not available: expected one of \['cpu', 'cuda'\]"),
    R("device-cuda-with-cpu-options", lambda: rt.compile(rt.zoo.mlp((4, 2)), device="cuda",
                                                         threads=2),
      rt.InputError, r"threads, isa and sparse choose CPU kernels"),
    R("compile-sparse-mode", lambda: rt.compile(rt.zoo.mlp((4, 2)), sparse="always"),
      rt.InputError, r"sparse must be one of \('auto', 'dense', 'sparse'\), got 'always'"),
    R("compile-not-graph", lambda: rt.compile("model.onnx"), rt.InputError,
      r"expected a pyruntime.Graph, got str"),
    # ---- malformed graphs
    R("graph-cycle", lambda: rt.compile(Graph(
        [ValueInfo("x", (None, 4))], ["b"],
        [Node("Add", ["x", "b"], ["a"], name="n1"), Node("Relu", ["a"], ["b"], name="n2")])),
      rt.GraphError, r"cycle"),
    R("graph-dangling-input", lambda: rt.compile(Graph(
        [ValueInfo("x", (None, 4))], ["y"], [Node("Relu", ["nowhere"], ["y"], name="r")])),
      rt.GraphError, r"nowhere"),
    R("graph-dangling-output", lambda: rt.compile(Graph(
        [ValueInfo("x", (None, 4))], ["ghost"], [Node("Relu", ["x"], ["y"], name="r")])),
      rt.GraphError, r"ghost"),
    R("graph-duplicate-producer", lambda: rt.compile(Graph(
        [ValueInfo("x", (None, 4))], ["y"],
        [Node("Relu", ["x"], ["y"], name="a"), Node("Tanh", ["x"], ["y"], name="b")])),
      rt.GraphError, r"'y'"),
    R("graph-unsupported-op", lambda: rt.compile(Graph(
        [ValueInfo("x", (None, 4))], ["y"], [Node("LSTM", ["x"], ["y"], name="l")])),
      rt.UnsupportedOpError, r"LSTM"),
    R("graph-gemm-weight-shape", lambda: rt.compile(gemm_graph(w_shape=(7, 4))),
      rt.WeightShapeError, r"fc.*\(7, 4\)"),
    R("graph-conv-weight-shape", lambda: rt.compile(Graph(
        [ValueInfo("x", (None, 3, 8, 8))], ["y"],
        [Node("Conv", ["x", "w"], ["y"], name="c")],
        {"w": Weight.f32(np.ones((4, 2, 3, 3)))})), rt.WeightShapeError, r"'c'.*\(4, 2, 3, 3\)"),
    R("graph-bad-stride", lambda: rt.compile(Graph(
        [ValueInfo("x", (None, 3, 8, 8))], ["y"],
        [Node("Conv", ["x", "w"], ["y"], {"strides": (0, 1)}, name="c")],
        {"w": Weight.f32(np.ones((4, 3, 3, 3)))})), rt.GraphError, r"strides"),
    R("graph-bad-activation", lambda: rt.compile(gemm_graph(activation="swish")),
      rt.GraphError, r"swish"),
    R("graph-softmax-axis", lambda: rt.compile(Graph(
        [ValueInfo("x", (None, 4))], ["y"], [Node("Softmax", ["x"], ["y"], {"axis": 5}, name="s")])),
      rt.Error, r"axis"),
    R("graph-negative-dim", lambda: rt.compile(relu_graph((None, -4))), rt.GraphError,
      r"'x'.*positive integers.*\(None, -4\)"),
    R("graph-none-inner-dim", lambda: rt.compile(relu_graph((None, None))), rt.GraphError,
      r"'x'.*None allowed only as the first"),
    R("graph-huge-pads", lambda: rt.compile(Graph(
        [ValueInfo("x", (None, 3, 8, 8))], ["y"],
        [Node("Conv", ["x", "w"], ["y"], {"strides": (1 << 62, 1), "pads": (1 << 62, 0, 1 << 62, 0)},
              name="c")], {"w": Weight.f32(np.ones((4, 3, 3, 3)))})), rt.ShapeError,
      r"'c'.*too large"),
    R("graph-huge-dims", lambda: rt.compile(relu_graph((None, 1 << 40, 1 << 40))),
      rt.ShapeError, r"too large|overflow"),
    R("graph-huge-static", lambda: rt.compile(relu_graph((1 << 31, 1 << 31, 1 << 31))),
      rt.ShapeError, r"too large|overflow"),
    R("graph-huge-flatten", lambda: rt.compile(Graph(
        [ValueInfo("x", (None, 1 << 21, 1 << 21, 1 << 21))], ["y"],
        [Node("Flatten", ["x"], ["y"], name="f")])), rt.ShapeError, r"too large|overflow"),
    # ---- model files (rt.load)
    R("load-empty", lambda: rt.load(b""), rt.ModelFormatError, r"truncated|empty|too short"),
    R("load-truncated", lambda: rt.load(model_bytes()[:-100]), rt.ModelFormatError,
      r"truncated|ends|size"),
    R("load-bitflip-data", lambda: rt.load(model_bytes()[:-20] + bytes([model_bytes()[-20] ^ 1])
                                           + model_bytes()[-19:]),
      rt.ModelFormatError, r"checksum|padding"),
    R("load-bitflip-header", lambda: rt.load(model_bytes()[:40] + b"#" + model_bytes()[41:]),
      rt.ModelFormatError, r"header.*(CRC|checksum)"),
    R("load-foreign-onnx", lambda: rt.load(onnx_gemm()), rt.ModelFormatError, r"ONNX|not a"),
    R("load-foreign-zip", lambda: rt.load(b"PK\x03\x04" + b"\0" * 60), rt.ModelFormatError,
      r"zip|not a"),
    R("load-foreign-pickle", lambda: rt.load(b"\x80\x04\x95" + b"\0" * 60), rt.ModelFormatError,
      r"pickle|not a"),
    R("load-future-version", lambda: rt.load(model_bytes()[:8] + struct.pack("<I", 99)
                                             + model_bytes()[12:]),
      rt.ModelFormatError, r"version 99"),
    R("load-huge-weight-dims", lambda: rt.load(rewrite_header(model_bytes(), lambda h: h[
        "weights"][0]["arrays"][0].__setitem__("shape", [1 << 40, 1 << 40]))),
      rt.ModelFormatError, r"shape|nbytes|bytes"),
    R("load-huge-input-dims", lambda: rt.compile(rt.load(rewrite_header(
        model_bytes(), lambda h: h["inputs"][0].__setitem__("shape", [None, 1 << 62])))),
      rt.Error, r"(?i)too large|overflow|shape|expected"),
    R("load-huge-offset", lambda: rt.load(rewrite_header(model_bytes(), lambda h: h[
        "weights"][0]["arrays"][0].__setitem__("offset", 1 << 62))), rt.ModelFormatError,
      r"outside the data section"),
    R("load-wrong-weight-shape", lambda: rt.load(rewrite_header(model_bytes(), lambda h: h[
        "weights"][0]["arrays"][0].__setitem__("shape", h["weights"][0]["arrays"][0]["shape"][::-1]))),
      rt.ModelFormatError, r"invalid|shape"),
    R("load-bad-json", lambda: rt.load(rewrite_header(model_bytes(), lambda h: h.__setitem__(
        "nodes", "oops"))), rt.ModelFormatError, r"nodes.*JSON array"),
    R("load-missing-file", lambda: rt.load("/nonexistent/model.pyrt"), FileNotFoundError,
      r"nonexistent"),
    # ---- weight formats: malformed arrays through graphs (rt.compile validates)
    R("weight-unknown-format", lambda: rt.compile(fmt_graph(Weight("int4", {
        "data": np.ones((6, 4), np.float32)}))), rt.WeightFormatError,
      r"weight 'w': unknown format 'int4'; expected one of f32, f16, bf16, qc8, csr, bsr"),
    R("weight-f32-float64", lambda: rt.compile(fmt_graph(fmt_weight(
        "f32", data=lambda d: d.astype(np.float64)))), rt.WeightFormatError,
      r"'w' \(f32\): array 'data' must be float32, got float64"),
    R("weight-f16-float32-data", lambda: rt.compile(fmt_graph(fmt_weight(
        "f16", data=lambda d: d.astype(np.float32)))), rt.WeightFormatError,
      r"'w' \(f16\): array 'data' must be float16, got float32"),
    R("weight-bf16-float16-data", lambda: rt.compile(fmt_graph(fmt_weight(
        "bf16", data=lambda d: d.view(np.float16)))), rt.WeightFormatError,
      r"'w' \(bf16\): array 'data' must be uint16, got float16"),
    R("weight-qc8-scale-zero", lambda: rt.compile(fmt_graph(fmt_weight(
        "qc8", scale=_with(2, 0.0)))), rt.WeightFormatError,
      r"'w' \(qc8\): scales must be finite and > 0, got scale\[2\] = 0.0"),
    R("weight-qc8-minus-128", lambda: rt.compile(fmt_graph(fmt_weight(
        "qc8", data=_with(0, -128)))), rt.WeightFormatError, r"'w' \(qc8\).*\[-127, 127\]"),
    R("weight-qc8-scale-length", lambda: rt.compile(fmt_graph(fmt_weight(
        "qc8", scale=lambda s: s[:-1]))), rt.WeightFormatError,
      r"'scale' must have length 4 \(one per output channel\), got 3"),
    R("weight-sparse-huge-dense-view", lambda: rt.compile(rt.load(fileformat.dumps(
        huge_sparse_graph()))), rt.ShapeError,
      r"dense float32 views need 65536 MiB \(weight 'w' of shape \(1073741824, 16\)"),
    R("weight-csr-index-out-of-range", lambda: rt.compile(fmt_graph(fmt_weight(
        "csr", indices=_with(0, 6)))), rt.WeightFormatError,
      r"'w' \(csr\): column indices must lie in \[0, 6\), got indices\[0\] = 6"),
    R("weight-csr-indptr-decreasing", lambda: rt.compile(fmt_graph(fmt_weight(
        "csr", indptr=_with(2, 3)))), rt.WeightFormatError,
      r"'w' \(csr\): indptr \(row pointers\) must not decrease"),
    R("weight-csr-unsorted-row", lambda: rt.compile(fmt_graph(fmt_weight(
        "csr", indices=lambda i: i[::-1].copy()))), rt.WeightFormatError,
      r"strictly increasing within a row \(sorted, no duplicates\)"),
    R("weight-csr-int8-no-scale", lambda: rt.compile(fmt_graph(fmt_weight("csr8", scale=None))),
      rt.WeightFormatError, r"'w' \(csr\): int8 values need a 'scale' array"),
    R("weight-csr-no-shape", lambda: rt.compile(fmt_graph(Weight(
        "csr", dict(fmt_weight("csr").arrays), attrs={"axis": 1}))), rt.WeightFormatError,
      r"'w' \(csr\): the logical shape must be given"),
    R("weight-bsr-ragged-block", lambda: rt.compile(fmt_graph(Weight(
        "bsr", dict(fmt_weight("bsr").arrays), shape=(6, 4), attrs={"axis": 1, "block": (3, 3)}))),
      rt.WeightFormatError, r"'w' \(bsr\): block \(3, 3\) must divide the matrix \[4, 6\]"),
    R("weight-bsr-values-not-block", lambda: rt.compile(fmt_graph(fmt_weight(
        "bsr", values=lambda v: np.ascontiguousarray(v.reshape(-1, 3, 2))))),
      rt.WeightFormatError, r"'values' must be \[nnzb, 2, 3\]"),
    R("weight-sparse-huge-shape", lambda: rt.compile(fmt_graph(Weight(
        "csr", {"values": np.zeros(0, np.float32), "indices": np.zeros(0, np.int32),
                "indptr": np.zeros(5, np.int32)}, shape=(1 << 40, 4), attrs={"axis": 1}))),
      rt.WeightFormatError, r"'w' \(csr\): logical shape \(1099511627776, 4\).*at most"),
    # ---- weight formats: corrupted files (checksums repaired: the format checks catch it)
    R("load-qc8-scale-nan", lambda: rt.load(patch_array(formats_bytes(), "conv1.weight",
                                                        "scale", _with(0, np.nan))),
      rt.ModelFormatError, r"'conv1.weight' \(qc8\): scales must be finite"),
    R("load-csr-indptr-corrupt", lambda: rt.load(patch_array(formats_bytes(), "sep.pointwise",
                                                             "indptr", _with(4, 0))),
      rt.ModelFormatError, r"'sep.pointwise' \(csr\): indptr \(row pointers\) must not "
                           r"decrease"),
    R("load-csr-index-out-of-range", lambda: rt.load(patch_array(
        formats_bytes(), "project.weight", "indices", _with(0, 60000))), rt.ModelFormatError,
      r"'project.weight' \(csr\): column indices must lie in \[0, 16\)"),
    R("load-bsr-block-attr", lambda: rt.load(patch_header(formats_bytes(), "logits.weight",
                                                          lambda w: w["attrs"].update(
                                                              block={"$tuple": [3, 4]}))),
      rt.ModelFormatError, r"'logits.weight' \(bsr\): block \(3, 4\) must divide"),
    R("load-f16-shape-header", lambda: rt.load(patch_header(formats_bytes(), "dw.weight",
                                                            lambda w: w.update(shape=[9, 16]))),
      rt.ModelFormatError, r"'dw.weight' \(f16\): shape \(9, 16\) differs"),
    R("load-weight-format-renamed", lambda: rt.load(patch_header(
        formats_bytes(), "sep.depthwise", lambda w: w.update(format="int3"))),
      rt.ModelFormatError, r"'sep.depthwise': unknown format 'int3'"),
    R("load-v1-non-f32", lambda: rt.load(rewrite_header(v1_bytes(), lambda h: h["weights"][0]
                                                        .update(format="csr"))),
      rt.ModelFormatError, r"'fc1.weight' \(csr\): expected arrays"),
    # ---- weight formats: constructors and the registry's functions
    R("weight-f16-overflow", lambda: Weight.f16(np.array([1.0, 7e4], np.float32)),
      rt.WeightFormatError, r"Weight.f16: value 70000.0 at flat index 1 does not fit float16"),
    R("weight-bf16-overflow", lambda: Weight.bf16(np.array([3.4e38], np.float32)),
      rt.WeightFormatError, r"does not fit bfloat16"),
    R("weight-qc8-nan", lambda: Weight.qc8(np.array([[1.0, np.nan]], np.float32)),
      rt.WeightFormatError, r"Weight.qc8: cannot quantize non-finite values"),
    R("weight-qc8-rank3-no-axis", lambda: Weight.qc8(np.ones((2, 3, 4))), rt.WeightFormatError,
      r"rank-3 weight has no default output-channel axis; pass axis="),
    R("weight-bsr-ragged", lambda: Weight.bsr(np.ones((6, 4), np.float32), (4, 4)),
      rt.WeightFormatError, r"Weight.bsr: block \(4, 4\) must divide the matrix \[4, 6\]"),
    R("weight-csr-uint16-overflow", lambda: Weight.csr(np.ones((70000, 1), np.float32),
                                                       index_dtype=np.uint16),
      rt.WeightFormatError, r"uint16 indices cannot address 70000 columns"),
    R("weight-csr-parts-no-shape", lambda: Weight.csr((np.ones(1, np.float32),
                                                       np.zeros(1, np.int32),
                                                       np.array([0, 1], np.int32))),
      rt.WeightFormatError, r"need the logical shape="),
    R("weight-numpy-malformed", lambda: fmt_weight("csr", indptr=_with(0, 1)).numpy(),
      rt.WeightFormatError, r"weight \(csr\): indptr must start at 0, got indptr\[0\] = 1"),
    R("weight-encode-like-shape", lambda: rt.formats.encode_like(np.ones((4, 6)),
                                                                 fmt_weight("bsr")),
      rt.WeightFormatError, r"dense shape \(4, 6\) differs from the weight's logical shape"),
    R("weight-onnx-export-malformed", lambda: rt.to_onnx(fmt_graph(fmt_weight(
        "qc8", scale=_with(1, -1.0)))), rt.WeightFormatError, r"'w' \(qc8\): scales"),
    R("weight-save-attrs-not-dict", lambda: fileformat.dumps(fmt_graph(Weight(
        "qc8", fmt_weight("qc8").arrays, attrs=[("axis", 1)]))), rt.GraphError,
      r"cannot save weight 'w': attrs must be a dict"),
    # ---- pruning (rt.prune, rt.train.gradual_prune)
    R("prune-sparsity-above-one", lambda: rt.prune(prune_graph(), 1.5), rt.InputError,
      r"sparsity: expected a float in \[0, 1\), got 1.5"),
    R("prune-sparsity-nan", lambda: rt.prune(prune_graph(), float("nan")), rt.InputError,
      r"sparsity: expected a float in \[0, 1\), got nan"),
    R("prune-sparsity-string", lambda: rt.prune(prune_graph(), "90%"), rt.InputError,
      r"expected a float in \[0, 1\), got '90%'"),
    R("prune-structure-unknown", lambda: rt.prune(prune_graph(), 0.5, structure="channel"),
      rt.InputError, r"structure: expected one of \('unstructured', 'block'\), got 'channel'"),
    R("prune-block-zero", lambda: rt.prune(prune_graph(), 0.5, structure="block", block=(0, 1)),
      rt.InputError, r"block: expected two positive ints \(output channels, inputs\), got "
                     r"\(0, 1\)"),
    R("prune-block-unstructured", lambda: rt.prune(prune_graph(), 0.5, block=(4, 1)),
      rt.InputError, r"block=\(4, 1\) is only for structure='block'"),
    R("prune-scope-unknown", lambda: rt.prune(prune_graph(), 0.5, scope="model"),
      rt.InputError, r"scope: expected one of \('global', 'layer'\), got 'model'"),
    R("prune-include-unknown", lambda: rt.prune(prune_graph(), 0.5, include=["fc9"]),
      rt.InputError, r"include: 'fc9' is not a Conv/Gemm kernel weight or node.*kernels: "
                     r"\['fc1.weight', 'fc2.weight'\]"),
    R("prune-int8-weight", lambda: rt.prune(prune_graph("qc8"), 0.5), rt.InputError,
      r"'fc1.weight' \(qc8\) has int8 values.*prune before quantizing, or exclude it"),
    R("prune-nothing-prunable", lambda: rt.prune(rt.zoo.mlp((8, 16, 4)), 0.5), rt.InputError,
      r"no Conv/Gemm kernel to prune.*min_params=1024"),
    R("gradual-prune-end-epoch", lambda: rt.train.gradual_prune(
        prune_graph(), np.ones((4, 32), np.float32), np.zeros(4, np.int64), 0.5, epochs=3,
        end_epoch=3), rt.InputError, r"0 <= start_epoch <= end_epoch < epochs.*end_epoch=3, "
                                     r"epochs=3"),
    R("gradual-prune-initial-above-final", lambda: rt.train.gradual_prune(
        prune_graph(), np.ones((4, 32), np.float32), np.zeros(4, np.int64), 0.5, epochs=3,
        initial_sparsity=0.8), rt.InputError, r"initial_sparsity 0.8 must not exceed the "
                                              r"final sparsity 0.5"),
    # ---- quantization (rt.quantize, rt.quantize_report, the QDQ op)
    R("quantize-dtype-unknown", lambda: rt.quantize(prune_graph(), "int4"), rt.InputError,
      r"dtype must be one of \('int8', 'fp16', 'bf16'\), got 'int4'"),
    R("quantize-method-unknown", lambda: rt.quantize(prune_graph(), "fp16", method="kl"),
      rt.InputError, r"method must be one of .*got 'kl'"),
    R("quantize-calibration-shape", lambda: rt.quantize(
        prune_graph(), "int8", calibration=np.ones((4, 31), np.float32), progress=False),
      rt.ShapeError, r"calibration: input 'input': expected shape \(N, 32\), got \(4, 31\)"),
    R("quantize-calibration-nan", lambda: rt.quantize(
        prune_graph(), "int8", calibration=np.full((2, 32), np.nan, np.float32),
        progress=False), rt.InputError, r"NaN or infinite"),
    R("quantize-calibration-for-fp16", lambda: rt.quantize(
        prune_graph(), "fp16", calibration=np.ones((4, 32), np.float32)), rt.InputError,
      r"calibration data is used by dtype 'int8' only"),
    R("quantize-exclude-unknown", lambda: rt.quantize(prune_graph(), "int8", exclude=["fc9"]),
      rt.InputError, r"'fc9' is neither a node nor a weight; layers: \["),
    R("quantize-report-not-a-graph", lambda: rt.quantize_report(
        prune_graph(), None, np.ones((1, 32), np.float32)), rt.InputError,
      r"quantized must be a pyruntime.Graph, got NoneType"),
    R("quantize-report-no-rows", lambda: rt.quantize_report(
        prune_graph(), rt.quantize(prune_graph(), "int8"), np.ones((0, 32), np.float32)),
      rt.InputError, r"quantize_report: x: no values \(0 rows\)"),
    R("quantize-report-nan", lambda: rt.quantize_report(
        prune_graph(), rt.quantize(prune_graph(), "int8"), np.full((2, 32), np.inf)),
      rt.InputError, r"quantize_report: x: input 'input' has NaN or infinite values"),
    R("quantize-report-list", lambda: rt.quantize_report(
        prune_graph(), rt.quantize(prune_graph(), "int8"), [np.ones((2, 32))]),
      rt.InputError, r"x must be an array or a dict of arrays, got list"),
    R("qdq-zero-scale", lambda: rt.Graph(
        [rt.ValueInfo("x", (None, 4))], ["y"],
        [rt.Node("QDQ", ["x"], ["y"], {"scale": 0.0, "zero_point": 0}, name="q")],
        {}).validate(), rt.GraphError, r"scale.*expected a finite float32 value > 0, got 0.0"),
    R("qdq-zero-point-range", lambda: rt.Graph(
        [rt.ValueInfo("x", (None, 4))], ["y"],
        [rt.Node("QDQ", ["x"], ["y"], {"scale": 0.5, "zero_point": -1, "dtype": "uint8"},
                 name="q")], {}).validate(), rt.GraphError,
      r"zero_point must lie in \[0, 255\] for uint8, got -1"),
    # ---- ONNX import
    R("onnx-unsupported-op", lambda: rt.load_onnx(onnx_model(
        [helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,ij->ij")],
        out_shape=("N", 8))), rt.UnsupportedOpError, r"Einsum"),
    R("onnx-bad-attribute", lambda: rt.load_onnx(onnx_model(
        [helper.make_node("Flatten", ["x"], ["y"], axis=5)], out_shape=("N", 8))),
      rt.Error, r"axis"),
    R("onnx-external-data-bytes", lambda: external_data_in_cwd(_CACHE["tmp"]),
      rt.ModelFormatError, r"'w' refers to external data 'secret.bin'"),
    R("onnx-external-data-abs", lambda: rt.load_onnx(onnx_external_data("/etc/hostname")),
      rt.ModelFormatError, r"external data '/etc/hostname'"),
    R("onnx-not-a-model-type", lambda: rt.load_onnx(12), TypeError, r"path, bytes or onnx.ModelProto"),
    R("onnx-garbage", lambda: rt.load_onnx(b"\xff\x00garbage" * 10), rt.ModelFormatError,
      r"(?i)onnx|parse|protobuf"),
    R("onnx-truncated", lambda: rt.load_onnx(onnx_gemm()[:-30]), rt.ModelFormatError,
      r"(?i)onnx|parse|truncat"),
    R("onnx-wrong-weight-shape", lambda: rt.load_onnx(onnx_model(
        [helper.make_node("Gemm", ["x", "w"], ["y"])], [("w", np.ones((5, 4)))])),
      rt.Error, r"\(5, 4\)|5"),
    R("onnx-huge-dim", lambda: rt.compile(rt.load_onnx(onnx_model(
        [helper.make_node("Relu", ["x"], ["y"])], in_shape=("N", 1 << 40, 1 << 40),
        out_shape=("N", 1 << 40, 1 << 40)))), rt.ShapeError, r"too large|overflow"),
]


def _id(r: Any) -> str:
    return (r.values[0] if hasattr(r, "values") else r).id


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_bad_input(row: Row, tmp_path) -> None:
    _CACHE["tmp"] = tmp_path
    if row.error is None:
        out = row.call()
        assert row.check is not None
        row.check(out)
        return
    with pytest.raises(row.error, match=row.match) as ei:
        row.call()
    if row.error not in (FileNotFoundError, TypeError):  # Python's own argument errors
        assert isinstance(ei.value, rt.Error)


def test_matrix_size() -> None:
    ids = [_id(r) for r in ROWS]
    assert len(ids) == len(set(ids)) and len(ids) >= 40


# ---------------------------------------------------------------- the native plan builder
# pyruntime.compile never sends these (Python checks first), but `_core.Plan` is
# reachable, so its own checks keep every size product overflow-free and every step
# inside its buffers: a ValueError (SizeError for sizes), never UB or a crash.

def _plan(*sizes):
    p = _core.Plan(None, 1)
    return p, [p.add_value(n) for n in sizes]


_NONE = _core.Act.none


def _conv_geom(**kw):
    g = dict(H=4, W=4, C=2, OH=4, OW=4, OC=3, KH=1, KW=1, sh=1, sw=1, pt=0, pl=0, dh=1, dw=1,
             images=1)
    g.update(kw)
    return _core.ConvGeom(**g)


PLAN_ROWS = [
    ("value-over-cap", lambda: _plan(1 << 62), _core.SizeError, r"memory cap"),
    ("value-negative", lambda: _plan(-1), ValueError, r"negative"),
    ("gemm-overflow", lambda: (lambda p, v: p.gemm(v[0], v[1], 1 << 40, 1 << 40, 1 << 40,
                                                   np.ones(4, np.float32), None, -1, _NONE, 0, 0,
                                                   False))(*_plan(8, 8)),
     _core.SizeError, r"overflow"),
    ("gemm-negative", lambda: (lambda p, v: p.gemm(v[0], v[1], 1, -2, -4, np.ones(8, np.float32),
                                                   None, -1, _NONE, 0, 0, False))(*_plan(8, 8)),
     ValueError, r"negative"),
    ("gemm-sizes-mismatch", lambda: (lambda p, v: p.gemm(v[0], v[1], 2, 4, 4, np.ones(16, np.float32),
                                                         None, -1, _NONE, 0, 0, False))(*_plan(8, 4)),
     ValueError, r"gemm: sizes do not match"),
    ("gemm-residual-size", lambda: (lambda p, v: p.gemm(v[0], v[1], 1, 8, 4, np.ones(32, np.float32),
                                                        None, v[2], _NONE, 0, 0, False))(*_plan(8, 4, 3)),
     ValueError, r"residual"),
    ("conv-geom-overflow", lambda: (lambda p, v: p.conv(v[0], v[1], _conv_geom(H=1 << 40, W=1 << 40),
                                                        np.ones(6, np.float32), None, -1, _NONE, 0, 0,
                                                        False))(*_plan(32, 48)),
     _core.SizeError, r"overflow"),
    ("conv-huge-pad", lambda: (lambda p, v: p.conv(v[0], v[1], _conv_geom(pt=1 << 62),
                                                   np.ones(6, np.float32), None, -1, _NONE, 0, 0,
                                                   False))(*_plan(32, 48)),
     _core.SizeError, r"too large"),
    ("dwconv-oc-not-c", lambda: (lambda p, v: p.dwconv(v[0], v[1], _conv_geom(OC=3),
                                                       np.ones(2, np.float32), None, -1, _NONE, 0, 0,
                                                       False))(*_plan(32, 32)),
     ValueError, r"OC must equal C"),
    ("softmax-sizes", lambda: (lambda p, v: p.softmax(v[0], v[1], 4, 4))(*_plan(8, 8)),
     ValueError, r"softmax: sizes"),
    ("activation-sizes", lambda: (lambda p, v: p.activation(v[0], v[1], _core.Act.relu, 0, 0))(*_plan(8, 4)),
     ValueError, r"activation: sizes"),
    ("copy-sizes", lambda: (lambda p, v: p.copy(v[0], v[1]))(*_plan(8, 4)), ValueError,
     r"copy: sizes"),
    ("affine-sizes", lambda: (lambda p, v: p.affine(v[0], v[1], 4, 4, np.ones(4, np.float32),
                                                    np.ones(4, np.float32)))(*_plan(8, 8)),
     ValueError, r"affine: sizes"),
    ("gap-sizes", lambda: (lambda p, v: p.global_avgpool(v[0], v[1], 16, 2))(*_plan(32, 4)),
     ValueError, r"global_avgpool: sizes"),
    ("transpose-overflow", lambda: (lambda p, v: p.transpose(v[0], v[1], 1 << 40, 1 << 40))(*_plan(8, 8)),
     _core.SizeError, r"overflow"),
    ("add-stride-overflow", lambda: (lambda p, v: p.add(v[0], v[1], v[2], [-1, 2, 4],
                                                        [8, 1 << 62, 1], [8, 4, 1], True, True))(
        *_plan(8, 8, 8)), ValueError, r"overflow|outside"),
    ("output-shape-overflow", lambda: (lambda p, v: p.mark_output(v[0], [1 << 40, 1 << 40]))(*_plan(8)),
     _core.SizeError, r"overflow"),
    ("qgemm-weight-not-int8", lambda: (lambda p, v: p.qgemm(
        v[0], v[1], 1, 8, 4, np.ones(32, np.float32), np.ones(4, np.float32), None, -1, _NONE,
        0, 0, False, 0.5, 0, -1, -1, 0, 1.0, -1, 1.0, -1))(*_plan(2, 4)),
     ValueError, r"qgemm weight: expected an int8 array"),
    ("qgemm-weight-minus-128", lambda: (lambda p, v: p.qgemm(
        v[0], v[1], 1, 8, 4, np.full(32, -128, np.int8), np.ones(4, np.float32), None, -1,
        _NONE, 0, 0, False, 0.5, 0, -1, -1, 0, 1.0, -1, 1.0, -1))(*_plan(2, 4)),
     ValueError, r"\[-127, 127\]"),
    ("qgemm-input-zp-range", lambda: (lambda p, v: p.qgemm(
        v[0], v[1], 1, 8, 4, np.ones(32, np.int8), np.ones(4, np.float32), None, -1, _NONE,
        0, 0, False, 0.5, 300, -1, -1, 0, 1.0, -1, 1.0, -1))(*_plan(2, 4)),
     ValueError, r"zero point must lie in \[0, 255\]"),
    ("qgemm-w-scale-zero", lambda: (lambda p, v: p.qgemm(
        v[0], v[1], 1, 8, 4, np.ones(32, np.int8), np.zeros(4, np.float32), None, -1, _NONE,
        0, 0, False, 0.5, 0, -1, -1, 0, 1.0, -1, 1.0, -1))(*_plan(2, 4)),
     ValueError, r"w_scale: expected finite values > 0"),
    ("qgemm-sizes", lambda: (lambda p, v: p.qgemm(
        v[0], v[1], 1, 8, 4, np.ones(32, np.int8), np.ones(4, np.float32), None, -1, _NONE,
        0, 0, False, 0.5, 0, -1, -1, 0, 1.0, -1, 1.0, -1))(*_plan(8, 4)),
     ValueError, r"qgemm: sizes do not match"),
    ("qconv-dynamic-group", lambda: (lambda p, v: p.qconv(
        v[0], v[1], _conv_geom(KH=3, KW=3, pt=1, pl=1), False, np.ones(54, np.int8),
        np.ones(3, np.float32), None, -1, _NONE, 0, 0, False, 1.0, 0, v[2], v[3], 1, 1.0,
        -1, 1.0, -1))(*_plan(16, 48, 16, 16)),
     ValueError, r"one scale per image"),
    ("qgemm-residual-zp-range", lambda: (lambda p, v: p.qgemm(
        v[0], v[1], 1, 8, 4, np.ones(32, np.int8), np.ones(4, np.float32), None, v[2], _NONE,
        0, 0, False, 0.5, 0, -1, -1, 0, 1.0, -1, 1.0, 256))(*_plan(2, 4, 1)),
     ValueError, r"residual: zero point must lie in \[0, 255\]"),
    ("qgemm-residual-u8-sizes", lambda: (lambda p, v: p.qgemm(
        v[0], v[1], 1, 8, 4, np.ones(32, np.int8), np.ones(4, np.float32), None, v[2], _NONE,
        0, 0, False, 0.5, 0, -1, -1, 0, 1.0, -1, 1.0, 0))(*_plan(2, 4, 4)),
     ValueError, r"residual: size does not match"),
    ("qdwconv-residual-u8", lambda: (lambda p, v: p.qconv(
        v[0], v[1], _conv_geom(KH=3, KW=3, pt=1, pl=1, C=3), True, np.ones(27, np.int8),
        np.ones(3, np.float32), None, v[2], _NONE, 0, 0, False, 1.0, 0, -1, -1, 0, 1.0,
        -1, 0.5, 3))(*_plan(16, 48, 16)),
     ValueError, r"residual must be float"),
    ("qmaxpool-sizes", lambda: (lambda p, v: p.qmaxpool(v[0], v[1], _conv_geom(
        KH=2, KW=2, sh=2, sw=2, OH=2, OW=2, OC=2)))(*_plan(16, 16)),
     ValueError, r"qmaxpool: sizes do not match"),
    ("qmaxpool-channels", lambda: (lambda p, v: p.qmaxpool(v[0], v[1], _conv_geom()))(*_plan(16, 16)),
     ValueError, r"qmaxpool: OC must equal C"),
    ("qgap-zero-point", lambda: (lambda p, v: p.qglobal_avgpool(v[0], v[1], 16, 4, 1, 0.5, 300))(
        *_plan(16, 4)), ValueError, r"zero point must lie in \[0, 255\]"),
    ("qgap-sizes", lambda: (lambda p, v: p.qglobal_avgpool(v[0], v[1], 16, 4, 1, 0.5, 3))(
        *_plan(16, 5)), ValueError, r"qglobal_avgpool: sizes do not match"),
    ("quantize-sizes", lambda: (lambda p, v: p.quantize(v[0], v[1], 4, 3, 0.5, 0))(*_plan(12, 3)),
     ValueError, r"quantize: sizes do not match"),
    ("testing-dwconv-huge-dilation", lambda: _core.testing.dwconv(
        np.ones((4, 4, 2), np.float32), np.ones((2, 1, 3, 3), np.float32), dilations=(1 << 62, 1)),
     rt.InputError, r"dilations: 4611686018427387904 is too large"),
    ("testing-pool-huge-pads", lambda: _core.testing.maxpool(
        np.ones((4, 4, 2), np.float32), kernel=(2, 2), pads=(1 << 62, 0, 1 << 62, 0)),
     rt.InputError, r"pads.*too large"),
]


@pytest.mark.parametrize("row", PLAN_ROWS, ids=[r[0] for r in PLAN_ROWS])
def test_plan_builder_rejects(row):
    _, call, err, match = row
    with pytest.raises(err, match=match):
        call()


def test_onnx_external_data_from_a_path_still_loads(tmp_path):
    """The fix above keeps the supported way: external data beside a model file."""
    w = np.arange(4, dtype=np.float32).reshape(2, 2)
    (tmp_path / "w.bin").write_bytes(w.tobytes())
    (tmp_path / "m.onnx").write_bytes(onnx_external_data("w.bin"))
    g = rt.load_onnx(tmp_path / "m.onnx")
    x = np.ones((3, 2), np.float32)
    np.testing.assert_allclose(rt.compile(g, threads=1).run(x), x @ w, rtol=1e-6)
