"""Model files (.pyrt): `rt.save(graph, path)` / `rt.load(path)`.

A versioned container, never pickle: loading a file cannot run code, and every
number read from it is checked before it is used.

Layout (all integers little-endian):

    offset  size  field
    0       8     magic b"\\x89PYRT\\r\\n\\x1a" (PNG-style: catches text-mode mangling)
    8       4     format version (uint32) = 2 (version 1 is still read)
    12      4     flags (uint32) = 0, reserved
    16      8     header length L in bytes (uint64)
    24      4     CRC-32 of the header bytes (uint32)
    28      4     reserved (uint32) = 0
    32      L     header: UTF-8 (ASCII) JSON, described below
    ...           zero padding up to data_start = 32 + L rounded up to a multiple of 64
    data_start    data section of `data_size` bytes: the raw arrays, each C-contiguous,
                  little-endian, at a 64-byte aligned offset relative to data_start;
                  the bytes between arrays are zero. The file ends exactly there.

Header JSON:

    {"format": "pyruntime.model", "version": 2, "producer": "pyruntime <version>",
     "name": str,
     "inputs":  [{"name": str, "shape": [int | null, ...], "dtype": str}, ...],
     "outputs": [str, ...],
     "nodes":   [{"op": str, "name": str, "inputs": [str], "outputs": [str],
                  "attrs": {str: value}}, ...],
     "weights": [{"name": str, "format": str,
                  "shape": [int, ...] | null, "attrs": {str: value},
                  "arrays": [{"key": str, "dtype": str, "shape": [int, ...],
                              "offset": int, "nbytes": int, "crc32": int}, ...]}, ...],
     "data_size": int}

Weights: each is stored as its format's raw arrays (pyruntime.formats: f32 `data`;
f16 `data` float16; bf16 `data` uint16; qc8 `data` int8 + `scale` float32; csr/bsr
`values` float32 or int8 [+ `scale`], `indices` int32 or uint16, `indptr` int32), so a
compressed weight takes its compressed size on disk. "shape" is the logical shape (the
dense view's; null when the writer could not tell, e.g. an unknown format without a
`data` array) and "attrs" the format's attributes (qc8/csr/bsr: "axis"; bsr: "block" as a
$tuple), encoded like node attributes. With `validate` (the default) `load` checks every
weight against its format (WeightFormatError inside, reported as ModelFormatError naming
the weight) along with the rest of the graph.

Version 1 (pyruntime before weight formats; every weight f32) is the same layout without
"shape" and "attrs" in weight entries; it is read as weights with no given shape and no
attributes. Version 2 is written.

Attribute values: JSON null/bool/int/str/list as themselves; finite floats as JSON
numbers (Python's repr round-trips exactly, -0.0 included). Everything JSON cannot say
exactly is a one-key tagged object:
    {"$float": "7ff8000000000001"}   non-finite float, the IEEE-754 bits in hex (so inf,
                                     -inf and NaN payloads survive bit-exactly)
    {"$tuple": [...]}                tuple (JSON arrays decode to lists)
    {"$dict": [[key, value], ...]}   dict with str keys
    {"$bytes": "<base64>"}           bytes
    {"$array": {"dtype": str, "shape": [...], "b64": "<base64>"}}   small numpy array
NumPy scalars are stored as the equal Python bool/int/float.

Array dtypes: float16, float32, float64, int8, uint8, int16, uint16, int32, int64,
uint32, uint64, bool. Checksums: CRC-32 (zlib) of the header and of every array.
"""

from __future__ import annotations

import base64
import json
import math
import os
import struct
import tempfile
import zlib
from collections.abc import Iterable
from typing import Any, BinaryIO

import numpy as np

from . import formats
from .errors import Error, GraphError, ModelFormatError, UnsupportedOpError
from .graph import Graph, Node, ValueInfo, Weight

__all__ = ["save", "load", "dumps", "loads", "MAGIC", "FORMAT_VERSION"]

MAGIC = b"\x89PYRT\r\n\x1a"
FORMAT_VERSION = 2
#: Versions this reader accepts (1: before weight formats, no weight "shape"/"attrs").
READ_VERSIONS = (1, 2)
_PREFIX = struct.Struct("<8sIIQII")      # magic, version, flags, header_len, header_crc, reserved
ALIGN = 64
_FORMAT_NAME = "pyruntime.model"
_DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
           "int64", "uint32", "uint64", "bool")
_MAX_NDIM = 32
_CHUNK = 1 << 20
_TAGS = ("$float", "$tuple", "$dict", "$bytes", "$array")


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


# =========================================================================== saving

def _le(a: np.ndarray) -> np.ndarray:
    """C-contiguous, little-endian copy-if-needed of `a` (0-d arrays stay 0-d, unlike
    np.ascontiguousarray)."""
    a = np.asarray(a, order="C")
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return a


def _dtype_name(dt: np.dtype, where: str) -> str:
    name = np.dtype(dt).name
    if name not in _DTYPES:
        raise GraphError(f"cannot save {where}: dtype {np.dtype(dt)} is not storable; "
                         f"supported: {', '.join(_DTYPES)}")
    return name


def _encode_attr(v: Any, where: str) -> Any:
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isfinite(f):
            return f
        return {"$float": struct.pack(">d", f).hex()}
    if isinstance(v, tuple):
        return {"$tuple": [_encode_attr(x, f"{where}[{i}]") for i, x in enumerate(v)]}
    if isinstance(v, list):
        return [_encode_attr(x, f"{where}[{i}]") for i, x in enumerate(v)]
    if isinstance(v, dict):
        for k in v:
            if not isinstance(k, str):
                raise GraphError(f"cannot save {where}: dict keys must be str, got {k!r}")
        return {"$dict": [[k, _encode_attr(x, f"{where}[{k!r}]")] for k, x in v.items()]}
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, np.ndarray):
        a = _le(v)
        return {"$array": {"dtype": _dtype_name(a.dtype, where), "shape": list(a.shape),
                           "b64": base64.b64encode(a.tobytes()).decode("ascii")}}
    raise GraphError(f"cannot save {where}: attribute values of type {type(v).__name__} "
                     f"are not storable (use None, bool, int, float, str, list, tuple, dict, "
                     f"bytes or numpy arrays)")


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise GraphError(f"cannot save: {where} must be a str, got {v!r}")
    return v


def _shape_out(shape: Any, where: str) -> list:
    try:
        dims = list(shape)
    except TypeError:
        raise GraphError(f"cannot save: {where} shape must be a sequence, got {shape!r}") from None
    out = []
    for d in dims:
        if d is None:
            out.append(None)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and int(d) >= 0:
            out.append(int(d))
        else:
            raise GraphError(f"cannot save: {where} shape {shape!r} has a bad dim {d!r}")
    return out


def _weight_shape(w: Weight, wname: str) -> list | None:
    """The logical shape to store: the one given, else the format's, else null."""
    shape = w._shape
    if shape is None:
        try:
            shape = formats.logical_shape(w)
        except Error:
            return None
    return _shape_out(shape, f"weight {wname!r}")


def _build(graph: Graph) -> tuple[bytes, list[tuple[int, np.ndarray]], int]:
    """The header bytes, the (offset, array) list, and the data section size."""
    if not isinstance(graph, Graph):
        hint = " (pass model.graph)" if isinstance(getattr(graph, "graph", None), Graph) else ""
        raise GraphError(f"save expects an rt.Graph, got {type(graph).__name__}{hint}")
    from . import __version__
    inputs = []
    for i, vi in enumerate(graph.inputs):
        if not isinstance(vi, ValueInfo):
            raise GraphError(f"cannot save: graph.inputs[{i}] is not a ValueInfo: {vi!r}")
        inputs.append({"name": _str(vi.name, f"inputs[{i}].name"),
                       "shape": _shape_out(vi.shape, f"input {vi.name!r}"),
                       "dtype": _dtype_name(vi.dtype, f"input {vi.name!r}")})
    nodes = []
    for i, n in enumerate(graph.nodes):
        if not isinstance(n, Node):
            raise GraphError(f"cannot save: graph.nodes[{i}] is not a Node: {n!r}")
        where = f"node {i} ({n.name!r})"
        if not isinstance(n.attrs, dict):
            raise GraphError(f"cannot save {where}: attrs must be a dict")
        attrs = {}
        for k, v in n.attrs.items():
            attrs[_str(k, f"{where} attr name")] = _encode_attr(v, f"{where} attr {k!r}")
        nodes.append({"op": _str(n.op, f"{where} op"), "name": _str(n.name, f"{where} name"),
                      "inputs": [_str(x, f"{where} input") for x in n.inputs],
                      "outputs": [_str(x, f"{where} output") for x in n.outputs],
                      "attrs": attrs})
    weights = []
    placed: list[tuple[int, np.ndarray]] = []
    off = 0
    for wname, w in graph.weights.items():
        _str(wname, "weight name")
        if not isinstance(w, Weight) or not isinstance(w.arrays, dict):
            raise GraphError(f"cannot save: weight {wname!r} is not an rt.Weight: {w!r}")
        arrays = []
        for key, arr in w.arrays.items():
            where = f"weight {wname!r} array {key!r}"
            _str(key, f"{where} key")
            if not isinstance(arr, np.ndarray):
                raise GraphError(f"cannot save {where}: expected a numpy array, got "
                                 f"{type(arr).__name__}")
            _dtype_name(arr.dtype, where)
            a = _le(arr)
            off = _align(off)
            flat = a.reshape(-1).view(np.uint8)
            arrays.append({"key": key, "dtype": a.dtype.name, "shape": list(a.shape),
                           "offset": off, "nbytes": int(a.nbytes),
                           "crc32": zlib.crc32(flat)})
            placed.append((off, flat))
            off += a.nbytes
        if not isinstance(w.attrs, dict):
            raise GraphError(f"cannot save weight {wname!r}: attrs must be a dict")
        wattrs = {_str(k, f"weight {wname!r} attr name"):
                  _encode_attr(v, f"weight {wname!r} attr {k!r}") for k, v in w.attrs.items()}
        weights.append({"name": wname, "format": _str(w.format, f"weight {wname!r} format"),
                        "shape": _weight_shape(w, wname), "attrs": wattrs, "arrays": arrays})
    header = {"format": _FORMAT_NAME, "version": FORMAT_VERSION,
              "producer": f"pyruntime {__version__}",
              "name": _str(graph.name, "graph name"), "inputs": inputs,
              "outputs": [_str(o, "graph output") for o in graph.outputs],
              "nodes": nodes, "weights": weights, "data_size": off}
    text = json.dumps(header, allow_nan=False, ensure_ascii=True, separators=(",", ":"))
    return text.encode("ascii"), placed, off


def _write(f: BinaryIO, built: tuple[bytes, list[tuple[int, np.ndarray]], int]) -> None:
    hdr, placed, data_size = built
    f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(hdr), zlib.crc32(hdr), 0))
    f.write(hdr)
    pos = _PREFIX.size + len(hdr)
    data_start = _align(pos)
    f.write(b"\0" * (data_start - pos))
    pos = 0
    for off, flat in placed:
        f.write(b"\0" * (off - pos))
        f.write(flat)
        pos = off + flat.size
    assert pos == data_size


def save(graph: Graph, path: str | os.PathLike | BinaryIO) -> None:
    """Write `graph` to `path` (str/PathLike; written atomically via a temporary file and
    rename, so a crash never leaves a half-written model) or to a writable binary file
    object. Raises GraphError if the graph holds something that cannot be stored."""
    if hasattr(path, "write") and not isinstance(path, (str, bytes, os.PathLike)):
        _write(path, _build(graph))   # type: ignore[arg-type]
        return
    target = os.fspath(path)
    built = _build(graph)   # fails on unstorable graphs before touching the file system
    d = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=".pyrt-", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            _write(f, built)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def dumps(graph: Graph) -> bytes:
    """The .pyrt bytes of `graph`."""
    import io
    buf = io.BytesIO()
    _write(buf, _build(graph))
    return buf.getvalue()


# =========================================================================== loading

class _Source:
    """Random access to the bytes of a model, with a known total size."""

    def __init__(self, size: int, what: str) -> None:
        self.size = size
        self.what = what

    def readinto(self, off: int, buf: memoryview) -> None:
        raise NotImplementedError

    def read(self, off: int, n: int) -> bytes:
        b = bytearray(n)
        self.readinto(off, memoryview(b))
        return bytes(b)


class _BytesSource(_Source):
    def __init__(self, data: bytes | bytearray | memoryview, what: str) -> None:
        self.mv = memoryview(data).cast("B")
        super().__init__(len(self.mv), what)

    def readinto(self, off: int, buf: memoryview) -> None:
        buf[:] = self.mv[off:off + len(buf)]


class _FileSource(_Source):
    def __init__(self, f: BinaryIO, size: int, what: str) -> None:
        self.f = f
        super().__init__(size, what)

    def readinto(self, off: int, buf: memoryview) -> None:
        self.f.seek(off)
        got = 0
        while got < len(buf):
            n = self.f.readinto(buf[got:])
            if not n:
                raise ModelFormatError(f"{self.what}: file shrank while reading (wanted "
                                       f"{len(buf)} bytes at offset {off}, got {got})")
            got += n


def _foreign(head: bytes) -> str:
    """A guess at what a file without our magic is, for the error message."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return ("a zip archive (e.g. a PyTorch .pt or numpy .npz); it is not a pyruntime "
                "model")
    if head.startswith(b"\x93NUMPY"):
        return "a numpy .npy file"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (e.g. a Keras .h5 model)"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "a Python pickle, which pyruntime never loads"
    if head[:1] == b"\x08":
        return "possibly an ONNX model (protobuf); use rt.load_onnx"
    if head.startswith(b"\x89PYRT"):
        return "a damaged pyruntime header"
    return "not a pyruntime model"


class _Checker:
    """Schema checks on the decoded header, with paths in the messages."""

    def __init__(self, what: str) -> None:
        self.what = what

    def fail(self, where: str, msg: str) -> ModelFormatError:
        return ModelFormatError(f"{self.what}: header {where}: {msg}")

    def obj(self, v: Any, where: str, required: Iterable[str],
            optional: Iterable[str] = ()) -> dict:
        if not isinstance(v, dict):
            raise self.fail(where, f"expected a JSON object, got {type(v).__name__}")
        req = tuple(required)
        for k in req:
            if k not in v:
                raise self.fail(where, f"missing field {k!r}")
        extra = set(v) - set(req) - set(optional)
        if extra:
            raise self.fail(where, f"unknown fields {sorted(extra)}")
        return v

    def str_(self, v: Any, where: str, nonempty: bool = False) -> str:
        if not isinstance(v, str):
            raise self.fail(where, f"expected a string, got {type(v).__name__}")
        if nonempty and not v:
            raise self.fail(where, "must not be empty")
        return v

    def list_(self, v: Any, where: str) -> list:
        if not isinstance(v, list):
            raise self.fail(where, f"expected a JSON array, got {type(v).__name__}")
        return v

    def int_(self, v: Any, where: str, lo: int = 0, hi: int | None = None) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(where, f"expected an integer, got {v!r}")
        if v < lo or (hi is not None and v > hi):
            top = "inf" if hi is None else hi
            raise self.fail(where, f"value {v} out of range [{lo}, {top}]")
        return v

    def dtype(self, v: Any, where: str) -> np.dtype:
        s = self.str_(v, where)
        if s not in _DTYPES:
            raise self.fail(where, f"unsupported dtype {s!r}; expected one of {list(_DTYPES)}")
        return np.dtype(s).newbyteorder("<")

    def shape(self, v: Any, where: str, allow_none: bool) -> tuple:
        dims = self.list_(v, where)
        if len(dims) > _MAX_NDIM:
            raise self.fail(where, f"{len(dims)} dimensions (at most {_MAX_NDIM})")
        out = []
        for i, d in enumerate(dims):
            if d is None and allow_none:
                out.append(None)
            else:
                out.append(self.int_(d, f"{where}[{i}]", 0, 1 << 62))
        return tuple(out)

    def attr(self, v: Any, where: str) -> Any:
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [self.attr(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if not isinstance(v, dict) or len(v) != 1 or next(iter(v)) not in _TAGS:
            raise self.fail(where, f"expected a plain JSON value or one of the tagged objects "
                                   f"{list(_TAGS)}, got {json.dumps(v)[:80]}")
        tag, x = next(iter(v.items()))
        if tag == "$float":
            s = self.str_(x, where)
            try:
                if len(s) != 16:
                    raise ValueError
                f = struct.unpack(">d", bytes.fromhex(s))[0]
            except ValueError:
                raise self.fail(where, f"$float must be 16 hex digits, got {s[:40]!r}") from None
            return f
        if tag == "$tuple":
            return tuple(self.attr(y, f"{where}[{i}]")
                         for i, y in enumerate(self.list_(x, where)))
        if tag == "$dict":
            out = {}
            for i, kv in enumerate(self.list_(x, where)):
                if not isinstance(kv, list) or len(kv) != 2:
                    raise self.fail(f"{where}[{i}]", "$dict items must be [key, value] pairs")
                k = self.str_(kv[0], f"{where}[{i}] key")
                if k in out:
                    raise self.fail(where, f"duplicate $dict key {k!r}")
                out[k] = self.attr(kv[1], f"{where}[{k!r}]")
            return out
        if tag == "$bytes":
            return self.b64(x, where)
        d = self.obj(x, where, ("dtype", "shape", "b64"))
        dt = self.dtype(d["dtype"], f"{where}.dtype")
        shape = self.shape(d["shape"], f"{where}.shape", allow_none=False)
        raw = self.b64(d["b64"], f"{where}.b64")
        if len(raw) != math.prod(shape) * dt.itemsize:
            raise self.fail(where, f"$array data has {len(raw)} bytes but shape {shape} of "
                                   f"{dt.name} needs {math.prod(shape) * dt.itemsize}")
        return np.frombuffer(raw, dtype=dt).reshape(shape).astype(dt.newbyteorder("="))

    def b64(self, x: Any, where: str) -> bytes:
        s = self.str_(x, where)
        try:
            return base64.b64decode(s.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            raise self.fail(where, "invalid base64") from None


def _no_dup_keys(pairs: list[tuple[str, Any]]) -> dict:
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


def _finite_float(s: str) -> float:
    f = float(s)
    if not math.isfinite(f):
        raise ValueError(f"number {s[:40]} overflows a float")
    return f


def _reject_constant(s: str) -> Any:
    raise ValueError(f"non-standard JSON constant {s}")


def _parse(src: _Source, validate: bool) -> Graph:
    what = src.what
    size = src.size
    head = src.read(0, min(size, _PREFIX.size))
    if head[:len(MAGIC)] != MAGIC[:len(head)] or size < len(MAGIC):
        if size < len(MAGIC) and head == MAGIC[:len(head)]:
            raise ModelFormatError(f"{what}: truncated: {size} bytes is shorter than the "
                                   f"{_PREFIX.size}-byte file prefix")
        raise ModelFormatError(f"{what}: bad magic bytes {head[:8]!r} (expected {MAGIC!r}): "
                               f"this is {_foreign(head)}")
    if size < _PREFIX.size:
        raise ModelFormatError(f"{what}: truncated: {size} bytes is shorter than the "
                               f"{_PREFIX.size}-byte file prefix")
    _, version, flags, hlen, hcrc, reserved = _PREFIX.unpack(head)
    if version not in READ_VERSIONS:
        raise ModelFormatError(f"{what}: unsupported format version {version}; this pyruntime "
                               f"reads versions {', '.join(map(str, READ_VERSIONS))}"
                               + (" (the file is newer: upgrade pyruntime)"
                                  if version > FORMAT_VERSION else ""))
    if flags != 0 or reserved != 0:
        raise ModelFormatError(f"{what}: reserved prefix fields must be 0, got flags={flags:#x}"
                               f" reserved={reserved:#x} (corrupt prefix)")
    if hlen == 0:
        raise ModelFormatError(f"{what}: header length is 0")
    if hlen > size - _PREFIX.size:
        raise ModelFormatError(f"{what}: truncated or corrupt: header length {hlen} at offset "
                               f"16 exceeds the {size - _PREFIX.size} bytes after the prefix")
    hdr = src.read(_PREFIX.size, hlen)
    if zlib.crc32(hdr) != hcrc:
        raise ModelFormatError(f"{what}: header checksum mismatch (stored {hcrc:#010x}, "
                               f"computed {zlib.crc32(hdr):#010x}): the header is corrupt")
    try:
        text = hdr.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=_no_dup_keys, parse_float=_finite_float,
                         parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ModelFormatError(f"{what}: header is not valid JSON: {e}") from None

    ck = _Checker(what)
    top = ck.obj(doc, "(top level)", ("format", "version", "name", "inputs", "outputs",
                                      "nodes", "weights", "data_size"), ("producer",))
    if top["format"] != _FORMAT_NAME:
        raise ck.fail("format", f"expected {_FORMAT_NAME!r}, got {top['format']!r}")
    if top["version"] != version:
        raise ck.fail("version", f"{top['version']!r} disagrees with the prefix's {version}")
    if "producer" in top:
        ck.str_(top["producer"], "producer")
    name = ck.str_(top["name"], "name")
    data_size = ck.int_(top["data_size"], "data_size")

    inputs = []
    for i, vi in enumerate(ck.list_(top["inputs"], "inputs")):
        w = f"inputs[{i}]"
        ck.obj(vi, w, ("name", "shape", "dtype"))
        inputs.append(ValueInfo(ck.str_(vi["name"], f"{w}.name"),
                                ck.shape(vi["shape"], f"{w}.shape", allow_none=True),
                                ck.dtype(vi["dtype"], f"{w}.dtype").newbyteorder("=")))
    outputs = [ck.str_(o, f"outputs[{i}]")
               for i, o in enumerate(ck.list_(top["outputs"], "outputs"))]
    nodes = []
    for i, n in enumerate(ck.list_(top["nodes"], "nodes")):
        w = f"nodes[{i}]"
        ck.obj(n, w, ("op", "name", "inputs", "outputs", "attrs"))
        attrs_in = n["attrs"]
        if not isinstance(attrs_in, dict):
            raise ck.fail(f"{w}.attrs", "expected a JSON object")
        attrs = {k: ck.attr(v, f"{w}.attrs[{k!r}]") for k, v in attrs_in.items()}
        nodes.append(Node(ck.str_(n["op"], f"{w}.op", nonempty=True),
                          [ck.str_(x, f"{w}.inputs[{j}]")
                           for j, x in enumerate(ck.list_(n["inputs"], f"{w}.inputs"))],
                          [ck.str_(x, f"{w}.outputs[{j}]")
                           for j, x in enumerate(ck.list_(n["outputs"], f"{w}.outputs"))],
                          attrs, ck.str_(n["name"], f"{w}.name")))

    # weights: plan every array and check the layout before reading or allocating anything
    plan: list[tuple[int, int, str, str, np.dtype, tuple, int, int]] = []
    wspecs: list[tuple[str, str, list[str], tuple | None, dict]] = []
    seen_w: set[str] = set()
    for i, wd in enumerate(ck.list_(top["weights"], "weights")):
        w = f"weights[{i}]"
        ck.obj(wd, w, ("name", "format", "arrays") + (("shape", "attrs") if version >= 2 else ()))
        wname = ck.str_(wd["name"], f"{w}.name")
        if wname in seen_w:
            raise ck.fail(f"{w}.name", f"duplicate weight name {wname!r}")
        seen_w.add(wname)
        w = f"weights[{i}] ({wname!r})"
        fmt = ck.str_(wd["format"], f"{w}.format", nonempty=True)
        wshape, wattrs = None, {}
        if version >= 2:
            if wd["shape"] is not None:
                wshape = ck.shape(wd["shape"], f"{w}.shape", allow_none=False)
            if not isinstance(wd["attrs"], dict):
                raise ck.fail(f"{w}.attrs", "expected a JSON object")
            wattrs = {k: ck.attr(v, f"{w}.attrs[{k!r}]") for k, v in wd["attrs"].items()}
        keys: list[str] = []
        for j, ad in enumerate(ck.list_(wd["arrays"], f"{w}.arrays")):
            aw = f"{w}.arrays[{j}]"
            ck.obj(ad, aw, ("key", "dtype", "shape", "offset", "nbytes", "crc32"))
            key = ck.str_(ad["key"], f"{aw}.key", nonempty=True)
            if key in keys:
                raise ck.fail(f"{aw}.key", f"duplicate array key {key!r}")
            keys.append(key)
            aw = f"{w}.arrays[{key!r}]"
            dt = ck.dtype(ad["dtype"], f"{aw}.dtype")
            shape = ck.shape(ad["shape"], f"{aw}.shape", allow_none=False)
            off = ck.int_(ad["offset"], f"{aw}.offset")
            nbytes = ck.int_(ad["nbytes"], f"{aw}.nbytes")
            crc = ck.int_(ad["crc32"], f"{aw}.crc32", 0, 0xFFFFFFFF)
            need = math.prod(shape) * dt.itemsize
            if nbytes != need:
                raise ck.fail(f"{aw}.nbytes", f"{nbytes} != {need} = prod(shape {shape}) x "
                                              f"{dt.itemsize} ({dt.name})")
            if off % ALIGN:
                raise ck.fail(f"{aw}.offset", f"{off} is not {ALIGN}-byte aligned")
            if off + nbytes > data_size:
                raise ck.fail(f"{aw}", f"bytes [{off}, {off + nbytes}) lie outside the data "
                                       f"section of {data_size} bytes")
            plan.append((off, nbytes, wname, key, dt, shape, crc, len(plan)))
        wspecs.append((wname, fmt, keys, wshape, wattrs))

    data_start = _align(_PREFIX.size + hlen)
    expect = data_start + data_size
    if size < expect:
        raise ModelFormatError(f"{what}: truncated: the header describes {expect} bytes "
                               f"(data section {data_size} bytes at offset {data_start}) but "
                               f"the file has {size}")
    if size > expect:
        raise ModelFormatError(f"{what}: {size - expect} unexpected trailing bytes after the "
                               f"data section (file should be {expect} bytes)")
    plan.sort(key=lambda p: (p[0], p[7]))
    prev_end, prev_name = 0, None
    for off, nbytes, wname, key, *_ in plan:
        if off < prev_end:
            raise ModelFormatError(f"{what}: array {wname!r}[{key!r}] at data offset {off} "
                                   f"overlaps {prev_name} which ends at {prev_end}")
        prev_end, prev_name = off + nbytes, f"{wname!r}[{key!r}]"

    def check_zero(start: int, end: int, label: str) -> None:
        pos = start
        while pos < end:
            n = min(_CHUNK, end - pos)
            if src.read(pos, n).count(0) != n:
                raise ModelFormatError(f"{what}: non-zero bytes in {label} at file offsets "
                                       f"[{pos}, {pos + n}): the file is corrupt")
            pos += n

    check_zero(_PREFIX.size + hlen, data_start, "the padding after the header")
    arrays: dict[tuple[str, str], np.ndarray] = {}
    pos = 0
    for off, nbytes, wname, key, dt, shape, crc, _ in plan:
        check_zero(data_start + pos, data_start + off, "the padding between arrays")
        # allocation is bounded: nbytes lies inside the data section, whose size is checked
        a = np.empty(shape, dtype=dt)
        flat = a.reshape(-1).view(np.uint8)
        if nbytes:
            src.readinto(data_start + off, memoryview(flat))
        got = zlib.crc32(flat)
        if got != crc:
            raise ModelFormatError(f"{what}: checksum mismatch in weight {wname!r} array {key!r}"
                                   f" (file offsets [{data_start + off}, "
                                   f"{data_start + off + nbytes}), stored {crc:#010x}, "
                                   f"computed {got:#010x}): the data is corrupt")
        arrays[(wname, key)] = a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))
        pos = off + nbytes
    check_zero(data_start + pos, data_start + data_size, "the padding at the end")

    weights = {wname: Weight(fmt, {k: arrays[(wname, k)] for k in keys}, wshape, wattrs)
               for wname, fmt, keys, wshape, wattrs in wspecs}
    g = Graph(inputs=inputs, outputs=outputs, nodes=nodes, weights=weights, name=name)
    if validate:
        _validate(g, what)
    return g


def _validate(g: Graph, what: str) -> None:
    """pyruntime.shapes.validate on the loaded graph. An inconsistent graph (dangling
    names, bad attributes, malformed weights of any format, shape mismatches) is a
    ModelFormatError; ops this pyruntime cannot run keep their UnsupportedOpError, since
    the file itself is fine."""
    from . import shapes
    from .errors import Error
    try:
        shapes.validate(g)
    except UnsupportedOpError:
        raise
    except Error as e:
        raise ModelFormatError(f"{what}: the stored graph is invalid: {e}") from e


def _guard(src: _Source, validate: bool) -> Graph:
    """Parse, turning any unexpected failure on hostile input into ModelFormatError."""
    try:
        return _parse(src, validate)
    except (ModelFormatError, UnsupportedOpError, OSError):
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError,
            MemoryError, struct.error) as e:
        raise ModelFormatError(f"{src.what}: malformed model file ({type(e).__name__}: {e})") \
            from e


def load(path: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO,
         validate: bool = True) -> Graph:
    """Read a .pyrt model from a path, a bytes-like object, or a readable binary file
    object. Any truncated, corrupted, foreign or inconsistent input raises
    ModelFormatError saying what is wrong and where; I/O failures (missing file) raise
    the usual OSError. With `validate` (default), the graph is also checked by
    pyruntime.shapes.validate: an inconsistent graph or a malformed weight of any format
    is a ModelFormatError (naming the weight), an op this pyruntime does not support an
    UnsupportedOpError. Without it the weights come back as stored, unchecked."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        return _guard(_BytesSource(path, "model bytes"), validate)
    if hasattr(path, "read") and not isinstance(path, (str, os.PathLike)):
        f = path
        what = f"model file {getattr(f, 'name', '<file object>')!r}"
        if hasattr(f, "seekable") and f.seekable():
            start = f.tell()
            end = f.seek(0, os.SEEK_END)
            f.seek(start)
            if start:
                data = f.read()
                return _guard(_BytesSource(data, what), validate)
            return _guard(_FileSource(f, end, what), validate)
        return _guard(_BytesSource(f.read(), what), validate)
    p = os.fspath(path)
    with open(p, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return _guard(_FileSource(f, size, f"model file {p!r}"), validate)


def loads(data: bytes | bytearray | memoryview, validate: bool = True) -> Graph:
    """`load` from bytes."""
    return _guard(_BytesSource(data, "model bytes"), validate)
