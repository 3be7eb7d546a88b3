"""Export a Graph as a serialized `jax.export` artifact (StableHLO) and load it back.

`export(graph, path, platforms=("cpu", "cuda", "tpu"), batch=None)` lowers the graph
once per named platform into one artifact; `load(path)` gives an `XlaModel` that runs it
on whatever JAX backend is present (no pyruntime native code involved, so the file can
be served from a TPU host with just `jax` and `pyruntime` installed).

Where the weights live: INSIDE the artifact. They are closed over as constants of the
StableHLO module, so one file is the whole model; nothing is stored beside it.

File layout (little-endian), never pickle:

    offset  size  field
    0       8     magic b"\\x89PYRTXLA"
    8       4     container version (uint32) = 1
    12      4     flags (uint32) = 0
    16      8     header length H (uint64)
    24      8     payload length P (uint64)
    32      4     CRC-32 of the header (uint32)
    36      4     CRC-32 of the payload (uint32)
    40      H     header: UTF-8 JSON {"format": "pyruntime.xla", "version": 1, "producer",
                  "jax_version", "name", "platforms", "batch", "precision",
                  "weights": "inside", "inputs": [{"name", "shape"}], "outputs": [...]}
    40+H    P     payload: the bytes of `jax.export.Exported.serialize()` (flatbuffers)
                  The file ends exactly there.

Every length and checksum is checked before use; a foreign or damaged file raises
`rt.ModelFormatError`.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from typing import Any, Sequence

import numpy as np

from ..errors import (Error, GraphError, InputError, ModelFormatError,
                      ShapeError)
from ..graph import Graph
from ..inputs import InputSpec, IOInfo
from ..shapes import infer_shapes
from ._deps import require
from .to_jax import PRECISIONS, lower

__all__ = ["export", "load", "XlaModel", "PlatformError", "PLATFORMS", "current_platform",
           "MAGIC"]

MAGIC = b"\x89PYRTXLA"
VERSION = 1
_PREFIX = struct.Struct("<8sIIQQII")
_FORMAT = "pyruntime.xla"
#: Platform names jax.export lowers for.
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
_F32 = np.dtype(np.float32)
_MAX_HEADER = 1 << 24


class PlatformError(Error, RuntimeError):
    """The artifact was not lowered for the JAX backend present (or a platform name is
    unknown). Lists the artifact's platforms and the backend found."""


def current_platform() -> str:
    """The jax.export platform name of JAX's default backend: cpu, cuda, rocm or tpu."""
    jax = require("jax")
    backend = jax.default_backend()
    if backend == "gpu":
        version = str(getattr(jax.devices()[0].client, "platform_version", "")).lower()
        return "rocm" if "rocm" in version else "cuda"
    return backend


def _check_platforms(platforms: Any) -> tuple[str, ...]:
    if isinstance(platforms, str):
        platforms = (platforms,)
    try:
        plats = tuple(platforms)
    except TypeError:
        raise InputError(f"platforms must be a sequence of names from {PLATFORMS}, "
                         f"got {platforms!r}") from None
    bad = [p for p in plats if p not in PLATFORMS]
    if not plats or bad or len(set(plats)) != len(plats):
        raise PlatformError(f"platforms must be distinct names from {PLATFORMS} (\"gpu\" is "
                            f"spelled \"cuda\" or \"rocm\"), got {platforms!r}")
    return plats


def export(graph: Graph, path: str | os.PathLike, platforms: Sequence[str] = ("cpu", "cuda", "tpu"),
           batch: int | None = None, *, precision: str = "highest") -> None:
    """Write `graph` as a jax.export artifact lowered for every platform in `platforms`.

    batch=None keeps a symbolic batch dimension (any batch size >= 1 runs, one artifact);
    an int fixes it. The weights are stored inside the artifact (as StableHLO constants).
    `precision` is the matmul/conv precision ("highest" = true fp32 on TPU too; see
    `rt.xla.lower`). The file is written atomically (temp file + rename).
    """
    jax = require("jax")
    export_mod = require("jax.export")
    plats = _check_platforms(platforms)
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, (int, np.integer))
                              or batch < 1):
        raise InputError(f"batch must be None (symbolic) or a positive int, got {batch!r}")
    if not isinstance(graph, Graph):
        raise GraphError(f"export() expects an rt.Graph, got {type(graph).__name__}")
    shapes = infer_shapes(graph)
    fn, params = lower(graph, precision=precision)
    in_names = [v.name for v in graph.inputs]
    out_names = list(graph.outputs)
    sym = export_mod.symbolic_shape("batch")[0] if batch is None else int(batch)
    specs = []
    for n in in_names:
        s = shapes[n]
        if s[0] is not None and batch is not None and s[0] != batch:
            raise ShapeError(f"input {n!r} has a fixed batch {s[0]}, but batch={batch} was "
                             f"asked for")
        specs.append(jax.ShapeDtypeStruct((sym if s[0] is None else s[0],) + tuple(s[1:]),
                                          np.float32))

    def model(*xs: Any) -> tuple:
        out = fn(params, dict(zip(in_names, xs)))
        return tuple(out[o] for o in out_names)

    try:
        exp = export_mod.export(jax.jit(model), platforms=plats)(*specs)
    except Error:
        raise
    except Exception as e:  # noqa: BLE001 - a lowering failure inside JAX, say which step
        raise Error(f"jax.export failed for graph {graph.name!r} on platforms {plats}: "
                    f"{type(e).__name__}: {e}") from e
    payload = bytes(exp.serialize())

    def shape_json(s: tuple) -> list:
        return [None if d is None else int(d) for d in s]

    fixed = None if batch is None else int(batch)
    header = {
        "format": _FORMAT, "version": VERSION,
        "producer": f"pyruntime {_version()}", "jax_version": jax.__version__,
        "name": graph.name, "platforms": list(plats), "batch": fixed,
        "precision": precision, "weights": "inside",
        "inputs": [{"name": n, "shape": shape_json(
            (fixed if shapes[n][0] is None else shapes[n][0],) + shapes[n][1:])}
            for n in in_names],
        "outputs": [{"name": o, "shape": shape_json(
            (fixed if shapes[o][0] is None else shapes[o][0],) + shapes[o][1:])}
            for o in out_names],
    }
    hb = json.dumps(header, sort_keys=True).encode()
    prefix = _PREFIX.pack(MAGIC, VERSION, 0, len(hb), len(payload), zlib.crc32(hb),
                          zlib.crc32(payload))
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".pyrtxla-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(prefix + hb + payload)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _version() -> str:
    from .. import __version__
    return __version__


def _read(path: str | os.PathLike | bytes | bytearray | memoryview) -> tuple[dict, bytes]:
    if isinstance(path, (bytes, bytearray, memoryview)):
        data, where = bytes(path), "<bytes>"
    else:
        where = os.fspath(path)
        with open(where, "rb") as f:
            data = f.read()
    if len(data) < _PREFIX.size:
        raise ModelFormatError(f"{where}: {len(data)} bytes is too short for a pyruntime XLA "
                               f"artifact (the fixed prefix alone is {_PREFIX.size})")
    magic, ver, flags, hlen, plen, hcrc, pcrc = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        hint = (" (it is a pyruntime model file: load it with rt.load)"
                if data[:8] == b"\x89PYRT\r\n\x1a" else "")
        raise ModelFormatError(f"{where}: not a pyruntime XLA artifact: expected magic "
                               f"{MAGIC!r}, got {data[:8]!r}{hint}")
    if ver != VERSION or flags != 0:
        raise ModelFormatError(f"{where}: container version {ver} flags {flags}; this "
                               f"pyruntime reads version {VERSION} with flags 0")
    if hlen > _MAX_HEADER or _PREFIX.size + hlen + plen != len(data):
        raise ModelFormatError(f"{where}: header {hlen} + payload {plen} bytes after the "
                               f"{_PREFIX.size}-byte prefix, but the file has {len(data)} "
                               f"bytes (truncated or damaged)")
    hb = data[_PREFIX.size:_PREFIX.size + hlen]
    payload = data[_PREFIX.size + hlen:]
    if zlib.crc32(hb) != hcrc or zlib.crc32(payload) != pcrc:
        raise ModelFormatError(f"{where}: checksum mismatch (the file is damaged)")
    try:
        header = json.loads(hb.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{where}: header is not UTF-8 JSON: {e}") from None
    _check_header(header, where)
    return header, payload


def _check_header(h: Any, where: str) -> None:
    def bad(what: str) -> ModelFormatError:
        return ModelFormatError(f"{where}: header {what}")

    if not isinstance(h, dict) or h.get("format") != _FORMAT or h.get("version") != VERSION:
        raise bad(f"is not {_FORMAT} version {VERSION}")
    plats = h.get("platforms")
    if not isinstance(plats, list) or not plats or not all(p in PLATFORMS for p in plats):
        raise bad(f"platforms {plats!r} are not names from {PLATFORMS}")
    for key in ("inputs", "outputs"):
        items = h.get(key)
        if not isinstance(items, list) or not items:
            raise bad(f"{key} must be a non-empty list")
        for it in items:
            ok = (isinstance(it, dict) and isinstance(it.get("name"), str)
                  and isinstance(it.get("shape"), list) and len(it["shape"]) >= 1
                  and all((d is None and k == 0) or (type(d) is int and d >= 1)
                          for k, d in enumerate(it["shape"])))
            if not ok:
                raise bad(f"{key} entry {it!r} is not {{name, shape}}")
    if not isinstance(h.get("name"), str):
        raise bad("name must be a string")


def load(path: str | os.PathLike | bytes | bytearray | memoryview, *,
         check_platform: bool = True) -> "XlaModel":
    """Read an artifact written by `export` and return a callable `XlaModel`.

    Raises ModelFormatError for a foreign or damaged file, and PlatformError when
    the artifact was not lowered for JAX's default backend (pass check_platform=False
    to only inspect it, e.g. a TPU-only artifact on a laptop).
    """
    require("jax")
    export_mod = require("jax.export")
    header, payload = _read(path)
    try:
        exp = export_mod.deserialize(bytearray(payload))
    except Exception as e:  # noqa: BLE001 - flatbuffer/MLIR errors come in many types
        raise ModelFormatError(f"{path if isinstance(path, (str, os.PathLike)) else '<bytes>'}:"
                               f" the jax.export payload cannot be read: {e}") from None
    if tuple(exp.platforms) != tuple(header["platforms"]) or \
            len(exp.in_avals) != len(header["inputs"]) or \
            len(exp.out_avals) != len(header["outputs"]):
        raise ModelFormatError("the artifact's header and its jax.export payload disagree "
                               f"(platforms {header['platforms']} vs {exp.platforms}, "
                               f"{len(header['inputs'])}/{len(exp.in_avals)} inputs)")
    model = XlaModel(header, exp)
    if check_platform:
        model._check_platform()
    return model


class XlaModel:
    """A loaded XLA artifact. `model(x)` / `model.run(x)` behave like `Session.run`.

    `inputs`/`outputs` are IOInfo records (None = symbolic batch), `platforms` the
    platforms it was lowered for, `exported` the underlying `jax.export.Exported`.
    Inputs of other integer/float dtypes are converted to float32; wrong shapes give
    ShapeError, wrong dtypes DTypeError, a missing backend PlatformError.
    """

    def __init__(self, header: dict, exported: Any) -> None:
        jax = require("jax")
        self.name: str = header["name"]
        self.platforms: tuple[str, ...] = tuple(header["platforms"])
        self.batch: int | None = header.get("batch")
        self.precision: str = header.get("precision", "highest")
        self.jax_version: str = header.get("jax_version", "")
        self.exported = exported
        self.inputs = [IOInfo(i["name"], tuple(i["shape"]), _F32) for i in header["inputs"]]
        self.outputs = [IOInfo(o["name"], tuple(o["shape"]), _F32) for o in header["outputs"]]
        #: The input check every Session kind and the load balancer share.
        self.spec = InputSpec(self.inputs)
        self._call = jax.jit(exported.call)

    def __repr__(self) -> str:
        ins = ", ".join(f"{i.name}{i.shape}" for i in self.inputs)
        return (f"XlaModel({self.name!r}, platforms={self.platforms}, inputs=[{ins}], "
                f"outputs={[o.name for o in self.outputs]})")

    def _check_platform(self) -> str:
        plat = current_platform()
        if plat not in self.platforms:
            raise PlatformError(f"artifact {self.name!r} was lowered for {self.platforms}, "
                                f"but JAX's backend here is {plat!r}: export it again with "
                                f"platforms including {plat!r}")
        return plat

    def run(self, x: Any) -> Any:
        """One array in -> one array out (single input/output), or a dict by name."""
        xs, single = self.spec.ordered(x)
        if not self.spec.static and self.spec.batch(xs) == 0:
            outs = tuple(np.zeros((0,) + tuple(o.shape[1:]), _F32) for o in self.outputs)
        else:
            self._check_platform()
            try:
                outs = tuple(np.asarray(y) for y in self._call(*xs))
            except ValueError as e:  # shape/platform mismatches jax detects itself
                raise ShapeError(f"the artifact rejected the inputs "
                                 f"{[a.shape for a in xs]}: {e}") from None
        if single and len(outs) == 1:
            return outs[0]
        return {o.name: y for o, y in zip(self.outputs, outs)}

    __call__ = run
