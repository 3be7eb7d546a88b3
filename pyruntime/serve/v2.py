"""The KServe v2 / Open Inference Protocol, as Triton and KServe speak it over HTTP:
model metadata, and infer requests and responses with JSON tensors and the binary tensor
data extension. Pure functions over bytes and numpy arrays, no web framework, so the
uvicorn server (serve/http.py) and the Ray Serve deployment (serve/ray.py) share them.

Requests: a JSON object `{"id"?, "parameters"?, "inputs": [{"name", "shape",
"datatype", "data"? | "parameters": {"binary_data_size": n}}], "outputs"?: [{"name",
"parameters"?: {"binary_data": bool}}]}`. With the binary extension the JSON is the
first `Inference-Header-Content-Length` bytes of the body and the binary tensors follow
in input order (row-major, little-endian). Responses carry each output as JSON `data`
(flattened, row-major) or, when `binary_data` (per output) or `binary_data_output`
(request parameter) asks, as bytes after the JSON, with the header length returned the
same way. A request-level `timeout` parameter is in microseconds (Triton's unit)."""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple, Sequence

import numpy as np

from ..errors import Error, InputError

__all__ = ["BadRequest", "ModelNotFound", "RequestTooLarge", "TensorInfo", "ParsedRequest",
           "DATATYPES", "HEADER_LENGTH", "model_metadata", "parse_infer", "encode_infer",
           "error_body"]

#: The header that carries the JSON part's length in the binary tensor extension.
HEADER_LENGTH = "inference-header-content-length"

#: v2 datatype name -> numpy dtype (little-endian), and back.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
_NAMES = {v: k for k, v in DATATYPES.items()}


class BadRequest(InputError):
    """A request the protocol or the model cannot take (HTTP 400): malformed JSON or
    binary header, a wrong datatype or shape, an unknown input or output name."""


class ModelNotFound(Error, KeyError):
    """No model of that name is served (HTTP 404)."""

    def __str__(self) -> str:          # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RequestTooLarge(InputError):
    """The request body is larger than the server's limit (HTTP 413)."""


class TensorInfo(NamedTuple):
    """One model input or output as the protocol states it: shape with -1 for a
    dynamic dim, datatype name."""
    name: str
    shape: tuple[int, ...]
    datatype: str


class ParsedRequest(NamedTuple):
    """A decoded infer request: arrays by input name, the outputs to return with
    whether each goes binary, the request id, the timeout in seconds (or None)."""
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[tuple[str, bool]]
    timeout: float | None


def tensor_info(io: Any) -> TensorInfo:
    """An IOInfo (name, shape with None for the batch, dtype) as the protocol says it."""
    dt = _NAMES.get(np.dtype(io.dtype))
    if dt is None:
        raise InputError(f"tensor {io.name!r}: dtype {io.dtype} has no v2 datatype")
    return TensorInfo(io.name, tuple(-1 if d is None else int(d) for d in io.shape), dt)


def model_metadata(name: str, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo],
                   platform: str = "pyruntime") -> dict[str, Any]:
    """`GET /v2/models/{name}`: name, versions, platform, inputs and outputs."""
    def t(i: TensorInfo) -> dict[str, Any]:
        return {"name": i.name, "datatype": i.datatype, "shape": list(i.shape)}
    return {"name": name, "versions": ["1"], "platform": platform,
            "inputs": [t(i) for i in inputs], "outputs": [t(o) for o in outputs]}


def _want(cond: bool, msg: str) -> None:
    if not cond:
        raise BadRequest(msg)


def _shape_ok(shape: Sequence[int], want: Sequence[int]) -> bool:
    return len(shape) == len(want) and all(w == -1 or s == w for s, w in zip(shape, want))


def _header(body: bytes, header_length: str | None) -> tuple[dict[str, Any], memoryview]:
    """The JSON object and the binary part after it."""
    n = len(body)
    if header_length is not None:
        try:
            hl = int(header_length)
        except ValueError:
            raise BadRequest(f"Inference-Header-Content-Length: expected an integer, got "
                             f"{header_length[:40]!r}") from None
        _want(0 < hl <= n, f"Inference-Header-Content-Length: expected 1..{n} (the body's "
                           f"length), got {hl}")
    else:
        hl = n
    mv = memoryview(body)
    try:
        obj = json.loads(mv[:hl].tobytes() if hl != n else body)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BadRequest(f"request header: expected a JSON object, got malformed JSON "
                         f"({type(e).__name__}: {str(e)[:200]})") from None
    _want(isinstance(obj, dict), f"request: expected a JSON object, got "
                                 f"{type(obj).__name__}")
    return obj, mv[hl:]


def _timeout(params: Any) -> float | None:
    t = params.get("timeout") if isinstance(params, dict) else None
    if t is None:
        return None
    _want(not isinstance(t, bool) and isinstance(t, (int, float)) and math.isfinite(t)
          and t > 0, f"parameters.timeout: expected a positive number of microseconds, "
                     f"got {t!r}")
    return float(t) / 1e6


def parse_infer(body: bytes, header_length: str | None, inputs: Sequence[TensorInfo],
                outputs: Sequence[TensorInfo]) -> ParsedRequest:
    """Decode and check an infer request against the model's inputs and outputs; every
    refusal is a BadRequest saying what was expected and what came."""
    obj, rest = _header(body, header_length)
    params = obj.get("parameters") or {}
    _want(isinstance(params, dict), "parameters: expected a JSON object")
    tin = obj.get("inputs")
    _want(isinstance(tin, list) and len(tin) > 0,
          f"inputs: expected a non-empty list of tensors, got {type(tin).__name__}")
    by_name = {i.name: i for i in inputs}
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for k, t in enumerate(tin):
        _want(isinstance(t, dict), f"inputs[{k}]: expected a JSON object")
        name = t.get("name")
        info = by_name.get(name)  # type: ignore[arg-type]
        _want(info is not None, f"inputs[{k}]: unknown input {name!r}; expected one of "
                                f"{sorted(by_name)}")
        _want(name not in arrays, f"input {name!r} given twice")
        shape = t.get("shape")
        _want(isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape),
              f"input {name!r}: expected shape as a list of non-negative integers, got "
              f"{shape!r}")
        _want(_shape_ok(shape, info.shape), f"input {name!r}: expected shape "
              f"{list(info.shape)} (-1: any size), got {shape}")
        dt = t.get("datatype")
        _want(dt == info.datatype, f"input {name!r}: expected datatype {info.datatype}, "
                                   f"got {dt!r}")
        dtype = DATATYPES[info.datatype]
        count = math.prod(shape)
        tp = t.get("parameters") or {}
        size = tp.get("binary_data_size") if isinstance(tp, dict) else None
        if size is not None:
            _want("data" not in t, f"input {name!r}: expected either data or "
                                   f"binary_data_size, got both")
            want = count * dtype.itemsize
            _want(type(size) is int and size == want, f"input {name!r}: expected "
                  f"binary_data_size {want} ({shape} x {dtype.itemsize} bytes), got {size!r}")
            _want(offset + size <= len(rest), f"input {name!r}: expected {size} binary bytes"
                  f" at offset {offset}, but the body has {len(rest) - offset} left")
            a = np.frombuffer(rest[offset:offset + size], dtype=dtype).reshape(shape)
            offset += size
        else:
            data = t.get("data")
            _want(isinstance(data, list), f"input {name!r}: expected data (a list of "
                  f"numbers) or parameters.binary_data_size")
            try:
                a = np.asarray(data, dtype=dtype)
            except (ValueError, TypeError, OverflowError):
                raise BadRequest(f"input {name!r}: expected numbers for datatype "
                                 f"{info.datatype} in data") from None
            _want(a.size == count and a.ndim in (1, len(shape)),
                  f"input {name!r}: expected {count} values for shape {shape}, got "
                  f"{a.size} (shape {list(a.shape)})")
            a = a.reshape(shape)
        arrays[name] = a
    _want(offset == len(rest), f"binary data: expected {offset} bytes after the JSON header "
                               f"(the inputs' binary_data_size), got {len(rest)}")
    missing = [i.name for i in inputs if i.name not in arrays]
    _want(not missing, f"inputs: missing {missing}; expected {[i.name for i in inputs]}")
    all_binary = params.get("binary_data_output") is True
    out_names = {o.name for o in outputs}
    req_out = obj.get("outputs")
    if req_out is None:
        outs = [(o.name, all_binary) for o in outputs]
    else:
        _want(isinstance(req_out, list), "outputs: expected a list of {name, parameters}")
        outs = []
        for k, o in enumerate(req_out):
            _want(isinstance(o, dict) and o.get("name") in out_names,
                  f"outputs[{k}]: unknown output {o.get('name') if isinstance(o, dict) else o!r}"
                  f"; expected one of {sorted(out_names)}")
            op = o.get("parameters") or {}
            b = op.get("binary_data") if isinstance(op, dict) else None
            outs.append((o["name"], all_binary if b is None else b is True))
    rid = obj.get("id")
    return ParsedRequest(None if rid is None else str(rid), arrays, outs, _timeout(params))


def encode_infer(model: str, rid: str | None, results: dict[str, np.ndarray],
                 outputs: Sequence[tuple[str, bool]]) -> tuple[bytes, int | None]:
    """The response body and, when some output is binary, the JSON header's length (for
    the Inference-Header-Content-Length header; None: the body is all JSON)."""
    tensors = []
    blobs: list[bytes] = []
    for name, binary in outputs:
        a = np.ascontiguousarray(results[name])
        dt = _NAMES[a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype]
        t: dict[str, Any] = {"name": name, "datatype": dt, "shape": list(a.shape)}
        if binary:
            b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
            t["parameters"] = {"binary_data_size": len(b)}
            blobs.append(b)
        else:
            t["data"] = a.ravel().tolist()
        tensors.append(t)
    head: dict[str, Any] = {"model_name": model, "model_version": "1"}
    if rid is not None:
        head["id"] = rid
    head["outputs"] = tensors
    j = json.dumps(head, separators=(",", ":")).encode()
    if not blobs:
        return j, None
    return b"".join([j, *blobs]), len(j)


def error_body(message: str) -> bytes:
    """`{"error": "..."}` as the protocol answers every failure."""
    return json.dumps({"error": message}).encode()
