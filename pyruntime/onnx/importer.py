"""ONNX import: `load_onnx(path | bytes | ModelProto) -> rt.Graph` in the canonical IR.

The importer rewrites ONNX ops into the exact forms pyruntime/graph.py specifies (Gemm
with W stored [K, N] and alpha/beta folded in, explicit 4-value pads, ...), so the
passes and backends never see ONNX's many spellings of the same computation.

Policy:
- Parameters (Conv/Gemm weights, BatchNorm statistics, Clip bounds, Reshape shapes) must
  be constants: initializers, Constant nodes, or anything computed only from constants
  (such nodes are folded with onnx's reference evaluator).
- Every unsupported op or op variant is collected, then reported in ONE
  UnsupportedOpError naming each node; nothing is silently approximated.
- Malformed models (undecodable bytes, dangling names, bad attributes, inconsistent
  shapes) raise ModelFormatError; unusable input shapes raise ShapeError.
- Graph inputs run as float32. The first dimension may be symbolic (dim_param, 0 or
  missing -> None, the batch); other dimensions must be concrete.

Canonical forms worth knowing:
- Gemm: W = alpha * op(B) stored [K, N]; beta * C becomes the bias when it broadcasts as
  [N] (scalar, [1], [N], [1, N]), else a following Add (weight [M, N]/[M, 1], or a
  run-time C when beta == 1). transA only on constants (folded).
- MatMul(X, W const 2-D) -> Gemm; MatMul/Gemm + Add of a [N] weight -> one Gemm.
- Conv/pools: auto_pad becomes explicit (top, left, bottom, right) pads (SAME as in the
  spec, for the dilated kernel); pool ceil_mode is kept only where it changes the output.
  Pools with SAME padding and dilation are refused: onnxruntime pads those for the
  undilated kernel, the spec for the dilated one.
- Clip: opset < 11 defaults are +-FLT_MAX (the spec's), opset >= 11 absent bounds are
  +-inf; min > max becomes min = max (ONNX: every element is max).
- Softmax: opset >= 13 single axis as is; opset < 13 only where its "flatten from axis"
  equals a single axis (the last axis, or trailing dims of size 1).
- MaxPool storage_order is accepted when the Indices output is absent (it only affects
  Indices); Dropout is the inference identity (ratio ignored; training_mode must be
  false, or ratio 0); unused optional outputs are ignored, used ones are refused.
- GlobalMaxPool -> MaxPool with one H x W window.
- Nodes that no graph output depends on are dropped before conversion.
- Pad (constant mode) of H/W merges into the pads of the Conv / AveragePool (value 0)
  or MaxPool (value -inf) that consumes it; any other use of Pad is refused.
- Shape of a run-time tensor may feed data-movement ops (Gather, Unsqueeze, Concat,
  Slice, Cast to int64, ...) into a Reshape target: PyTorch's `x.view(x.size(0), -1)`
  becomes Reshape(0, -1). Any arithmetic on the batch size is refused.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable

import numpy as np

from ..errors import (GraphError, MissingDependencyError, ModelFormatError, ShapeError,
                     UnsupportedOpError)
from ..graph import Graph, Node, ValueInfo, Weight

__all__ = ["load_onnx", "SUPPORTED_OPS"]

#: ONNX ops (default domain) the importer understands, in at least some variants.
SUPPORTED_OPS = (
    "Add", "AveragePool", "BatchNormalization", "Clip", "Constant", "Conv", "Dropout",
    "Flatten", "Gelu", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Identity", "MatMul",
    "MaxPool", "Relu", "Reshape", "Sigmoid", "Softmax", "Tanh",
)

# Attributes each op may carry (anything else is reported, never silently ignored).
_KNOWN_ATTRS: dict[str, set[str]] = {
    "Add": {"broadcast", "axis", "consumed_inputs"},
    "AveragePool": {"auto_pad", "ceil_mode", "count_include_pad", "dilations",
                    "kernel_shape", "pads", "strides"},
    "BatchNormalization": {"epsilon", "momentum", "spatial", "is_test", "training_mode",
                           "consumed_inputs"},
    "Clip": {"min", "max", "consumed_inputs"},
    "Constant": {"value", "value_float", "value_floats", "value_int", "value_ints",
                 "value_string", "value_strings", "sparse_value"},
    "Conv": {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
    "Dropout": {"ratio", "is_test", "seed", "consumed_inputs"},
    "Flatten": {"axis"},
    "Gelu": {"approximate"},
    "Gemm": {"alpha", "beta", "transA", "transB", "broadcast"},
    "GlobalAveragePool": set(),
    "GlobalMaxPool": set(),
    "Identity": set(),
    "MatMul": set(),
    "MaxPool": {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads",
                "storage_order", "strides"},
    "Relu": {"consumed_inputs"},
    "Reshape": {"shape", "allowzero", "consumed_inputs"},
    "Sigmoid": {"consumed_inputs"},
    "Softmax": {"axis"},
    "Tanh": {"consumed_inputs"},
    "Shape": {"start", "end"},   # only feeding Reshape targets (see _shape_of)
    "Pad": {"mode", "pads", "value"},   # only merged into a following Conv/pool
}

# How many inputs each op takes in ONNX (min, max), "" placeholders included.
_ARITY: dict[str, tuple[int, int]] = {
    "Add": (2, 2), "AveragePool": (1, 1), "BatchNormalization": (5, 5), "Clip": (1, 3),
    "Constant": (0, 0), "Conv": (2, 3), "Dropout": (1, 3), "Flatten": (1, 1), "Gelu": (1, 1),
    "Gemm": (2, 3), "GlobalAveragePool": (1, 1), "GlobalMaxPool": (1, 1), "Identity": (1, 1), "MatMul": (2, 2),
    "MaxPool": (1, 1), "Relu": (1, 1), "Reshape": (1, 2), "Sigmoid": (1, 1),
    "Softmax": (1, 1), "Tanh": (1, 1), "Shape": (1, 1), "Pad": (1, 4),
}

# The ONNX type of every attribute we read (a wrong type is a malformed model).
_ATTR_TYPES: dict[str, str] = {
    "alpha": "FLOAT", "beta": "FLOAT", "transA": "INT", "transB": "INT", "broadcast": "INT",
    "axis": "INT", "epsilon": "FLOAT", "momentum": "FLOAT", "spatial": "INT",
    "is_test": "INT", "training_mode": "INT", "consumed_inputs": "INTS", "min": "FLOAT",
    "max": "FLOAT", "value": "TENSOR", "value_float": "FLOAT", "value_floats": "FLOATS",
    "value_int": "INT", "value_ints": "INTS", "value_string": "STRING",
    "value_strings": "STRINGS", "sparse_value": "SPARSE_TENSOR", "auto_pad": "STRING",
    "dilations": "INTS", "group": "INT", "kernel_shape": "INTS", "pads": "INTS",
    "strides": "INTS", "ratio": "FLOAT", "seed": "INT", "approximate": "STRING",
    "ceil_mode": "INT", "count_include_pad": "INT", "storage_order": "INT",
    "shape": "INTS", "allowzero": "INT", "start": "INT", "end": "INT",
    "mode": "STRING",
}
_OP_ATTR_TYPES: dict[tuple[str, str], str] = {("Pad", "value"): "FLOAT"}

# Ops whose outputs are random or otherwise must not be constant-folded.
_NO_FOLD = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
            "Multinomial", "Bernoulli"}

_FLT_MAX = float(np.finfo(np.float32).max)

# Inside shape tensors (Shape of a run-time tensor), the symbolic batch size is this
# sentinel. Only data-movement ops may touch such tensors (they carry it through
# unchanged); Reshape then reads it back as "copy dim 0" (ONNX's 0).
_BATCH = -(2 ** 62)
_SHAPE_MOVES = {"Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Identity", "Reshape",
                "Cast", "Flatten"}


class _Unsupported(Exception):
    """Internal: this node (variant) cannot be expressed; collected, then reported."""


def _import_onnx():
    try:
        import onnx  # noqa: PLC0415
        import onnx.numpy_helper  # noqa: F401, PLC0415
        import onnx.shape_inference  # noqa: F401, PLC0415
    except ImportError as e:
        raise MissingDependencyError(
            f"load_onnx needs the 'onnx' package ({e}); install it with "
            "`pip install pyruntime[onnx]`") from None
    return onnx


def _load_proto(onnx: Any, model: Any) -> Any:
    """A ModelProto from a ModelProto, bytes, or a path; decode failures -> ModelFormatError."""
    if isinstance(model, onnx.ModelProto):
        proto = model
    elif isinstance(model, (bytes, bytearray, memoryview)):
        try:
            proto = onnx.load_model_from_string(bytes(model))
        except Exception as e:  # DecodeError and friends from protobuf
            raise ModelFormatError(f"bytes are not a valid ONNX model: {e}") from None
    elif isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ONNX model file not found: {path!r}")
        try:
            proto = onnx.load(path)
        except Exception as e:  # DecodeError, missing external data, ...
            raise ModelFormatError(f"{path!r} is not a valid ONNX model: "
                                   f"{type(e).__name__}: {e}") from None
    else:
        raise TypeError(f"load_onnx expects a path, bytes or onnx.ModelProto, "
                        f"got {type(model).__name__}")
    if not proto.HasField("graph") or len(proto.graph.output) == 0:
        raise ModelFormatError("not an ONNX model: it has no graph or the graph has no outputs")
    return proto


def load_onnx(model: "str | os.PathLike | bytes | Any") -> Graph:
    """Import an ONNX model (path, serialized bytes or onnx.ModelProto) as an rt.Graph.

    Raises UnsupportedOpError listing every op/variant pyruntime cannot run,
    ModelFormatError for malformed models, ShapeError for unusable input shapes,
    MissingDependencyError when the `onnx` package is not installed.
    """
    onnx = _import_onnx()
    proto = _load_proto(onnx, model)
    return _Importer(onnx, proto).run()


def _node_label(node: Any, index: int) -> str:
    name = node.name or f"#{index}"
    return f"{node.op_type} node {name!r}"


def _pair(v: Any, what: str) -> tuple[int, int]:
    v = tuple(int(x) for x in v)
    if len(v) != 2:
        raise _Unsupported(f"{what} has {len(v)} values; only 2-D (2 values) is supported")
    return v


def _pool_overhang(size: int, k: int, s: int, d: int, p0: int, p1: int) -> bool:
    """True when ceil_mode adds a window that floor mode would not (ONNX's rule: the last
    window must start inside the input or the begin padding)."""
    span = size + p0 + p1 - ((k - 1) * d + 1)
    if span < 0:
        return False
    floor_out, ceil_out = span // s + 1, -(-span // s) + 1
    if (ceil_out - 1) * s >= size + p0:
        ceil_out -= 1
    return ceil_out > floor_out


class _Importer:
    """One import: ONNX graph -> canonical IR nodes + weights."""

    def __init__(self, onnx: Any, model: Any) -> None:
        self.onnx = onnx
        self.model = model
        self.g = model.graph
        self.opset = self._default_opset()
        self.consts: dict[str, np.ndarray] = {}      # name -> constant value (any dtype)
        self.symbolic: set[str] = set()              # int64 consts holding _BATCH
        # Pad outputs waiting to merge into a Conv/pool: name -> (source, [t, l, b, r], value)
        self.pending_pads: dict[str, tuple[str, list[int], float]] = {}
        self.shapes: dict[str, tuple] = {}           # name -> dims (int or None); no key = unknown
        self.nodes: list[Node] = []
        self.weights: dict[str, Weight] = {}
        self._weight_cache: dict[tuple[str, str], str] = {}
        self.issues: list[str] = []
        self.names: set[str] = set()                 # every name in use (for fresh names)
        self.consumers: dict[str, int] = {}          # name -> number of consuming (live) nodes
        self.graph_outputs = [o.name for o in self.g.output]

    # ----------------------------------------------------------------- set-up
    def _default_opset(self) -> int:
        versions = [o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")]
        if not versions:
            raise ModelFormatError("ONNX model declares no opset for the default domain "
                                   "(opset_import has no '' / 'ai.onnx' entry)")
        return int(versions[0])

    def tensor(self, t: Any, what: str) -> np.ndarray:
        """A TensorProto's values. External data is refused: onnx.load(path) has already
        read it from beside the model file, so what is left would be read relative to the
        process's working directory (bytes from a stranger naming local files)."""
        if t.data_location == self.onnx.TensorProto.EXTERNAL or len(t.external_data):
            loc = next((e.value for e in t.external_data if e.key == "location"), "?")
            raise ModelFormatError(f"{what} refers to external data {loc!r}: external data "
                                   f"is only read when the model is loaded from its file path")
        try:
            return np.asarray(self.onnx.numpy_helper.to_array(t))
        except Exception as e:
            raise ModelFormatError(f"{what} cannot be decoded: {type(e).__name__}: {e}") from None

    def _read_initializers(self) -> None:
        for t in self.g.initializer:
            if not t.name:
                raise ModelFormatError("an initializer has an empty name")
            if t.name in self.consts:
                raise ModelFormatError(f"initializer {t.name!r} is defined twice")
            self.consts[t.name] = self.tensor(t, f"initializer {t.name!r}")
            self.names.add(t.name)
        for st in self.g.sparse_initializer:
            self.issues.append(f"sparse initializer {st.values.name!r}: sparse initializers "
                               "are not supported (store it dense)")
            self.names.add(st.values.name)

    def _read_inputs(self) -> list[ValueInfo]:
        tp = self.onnx.TensorProto
        inputs: list[ValueInfo] = []
        seen: set[str] = set()
        for vi in self.g.input:
            if vi.name in self.consts:
                continue  # an initializer listed as input (IR < 4 style): a weight
            if not vi.name:
                raise ModelFormatError("a graph input has an empty name")
            if vi.name in seen:
                raise ModelFormatError(f"graph input {vi.name!r} is listed twice")
            seen.add(vi.name)
            self.names.add(vi.name)
            if not vi.type.HasField("tensor_type"):
                self.issues.append(f"graph input {vi.name!r}: only tensor inputs are supported "
                                   f"(got {vi.type.WhichOneof('value')})")
                continue
            tt = vi.type.tensor_type
            if tt.elem_type != tp.FLOAT:
                dt = tp.DataType.Name(tt.elem_type) if tt.elem_type in tp.DataType.values() \
                    else str(tt.elem_type)
                self.issues.append(f"graph input {vi.name!r}: dtype {dt}; pyruntime runs "
                                   "float32 models (input must be FLOAT)")
            if not tt.HasField("shape"):
                raise ShapeError(f"graph input {vi.name!r} has no shape (unknown rank); "
                                 "pyruntime needs the rank and all non-batch dimensions")
            dims: list[int | None] = []
            for i, d in enumerate(tt.shape.dim):
                fixed = d.HasField("dim_value") and d.dim_value > 0
                if fixed:
                    dims.append(int(d.dim_value))
                elif i == 0:
                    dims.append(None)  # symbolic batch
                else:
                    what = (f"symbolic {d.dim_param!r}" if d.HasField("dim_param")
                            else f"{d.dim_value}" if d.HasField("dim_value") else "missing")
                    raise ShapeError(
                        f"graph input {vi.name!r} dimension {i} is {what}; only the first "
                        "(batch) dimension may be symbolic, others must be positive integers "
                        f"(shape {self._dims_str(tt.shape)})")
            inputs.append(ValueInfo(vi.name, tuple(dims), np.dtype(np.float32)))
            self.shapes[vi.name] = tuple(dims)
        return inputs

    @staticmethod
    def _dims_str(shape: Any) -> str:
        return "[" + ", ".join(d.dim_param if d.HasField("dim_param") else
                               str(d.dim_value) if d.HasField("dim_value") else "?"
                               for d in shape.dim) + "]"

    def _infer_shapes(self) -> None:
        """Shapes of intermediate tensors from onnx's shape inference (best effort)."""
        try:
            inferred = self.onnx.shape_inference.infer_shapes(self.model)
        except Exception:
            return
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
            if vi.name in self.shapes or not vi.type.HasField("tensor_type"):
                continue
            tt = vi.type.tensor_type
            if not tt.HasField("shape"):
                continue
            self.shapes[vi.name] = tuple(int(d.dim_value) if d.HasField("dim_value") else None
                                         for d in tt.shape.dim)

    def _live_nodes(self) -> list[tuple[int, Any]]:
        """Nodes that contribute to a graph output, in order; checks names and topology."""
        nodes = list(self.g.node)
        producer: dict[str, int] = {}
        for i, n in enumerate(nodes):
            for o in n.output:
                if not o:
                    continue
                if o in producer or o in self.consts or o in self.shapes:
                    raise ModelFormatError(f"{_node_label(n, i)}: output {o!r} is already "
                                           "defined (ONNX names must be assigned once)")
                producer[o] = i
                self.names.add(o)
        available = set(self.consts) | set(self.shapes)
        for i, n in enumerate(nodes):
            for x in n.input:
                if x and x not in available:
                    if x in producer:
                        raise ModelFormatError(
                            f"{_node_label(n, i)}: input {x!r} is used before the node that "
                            "produces it (nodes are not in topological order)")
                    raise ModelFormatError(f"{_node_label(n, i)}: input {x!r} is not a graph "
                                           "input, initializer or node output (dangling name)")
            available.update(o for o in n.output if o)
        for o in self.graph_outputs:
            if o not in available:
                raise ModelFormatError(f"graph output {o!r} is not produced by any node, "
                                       "input or initializer")
        live: set[int] = set()
        stack = [producer[o] for o in self.graph_outputs if o in producer]
        while stack:
            i = stack.pop()
            if i in live:
                continue
            live.add(i)
            stack.extend(producer[x] for x in nodes[i].input if x in producer)
        for i in live:
            for x in nodes[i].input:
                if x:
                    self.consumers[x] = self.consumers.get(x, 0) + 1
        return [(i, nodes[i]) for i in sorted(live)]

    # -------------------------------------------------------------- main loop
    def run(self) -> Graph:
        self._read_initializers()
        inputs = self._read_inputs()
        live = self._live_nodes()
        self._infer_shapes()
        for index, node in live:
            label = _node_label(node, index)
            try:
                self._convert(node, index)
            except _Unsupported as e:
                self.issues.append(f"{label}: {e}")
        for o in self.graph_outputs:
            if o in self.pending_pads:
                self.issues.append(f"graph output {o!r} comes from a Pad; Pad is supported only "
                                   "where it merges into a following Conv/pool")
            if o in self.consts:
                self.issues.append(f"graph output {o!r} is a constant (computed from "
                                   "initializers only); pyruntime graphs compute outputs from "
                                   "their inputs")
        if self.issues:
            lines = "\n".join(f"  - {m}" for m in self.issues)
            raise UnsupportedOpError(
                f"the ONNX model (opset {self.opset}) uses {len(self.issues)} unsupported "
                f"op(s)/variant(s):\n{lines}\n"
                f"pyruntime imports: {', '.join(SUPPORTED_OPS)} (see pyruntime/onnx_import.py)")
        self._merge_matmul_add()
        graph = Graph(inputs=inputs, outputs=list(self.graph_outputs), nodes=self.nodes,
                      weights=self.weights, name=self.g.name or "graph")
        try:
            graph.validate()
        except (GraphError, ShapeError) as e:
            # The ONNX model is inconsistent in a way the per-op checks above let through
            # (e.g. shapes that do not fit together).
            raise ModelFormatError(f"the ONNX model imports to an invalid graph: {e}") from e
        return graph

    def _convert(self, node: Any, index: int) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise _Unsupported(f"op {node.domain}::{op} (custom domain) is not supported")
        present = [x for x in node.input if x]
        if op in _ARITY:
            lo, hi = _ARITY[op]
            if not lo <= len(node.input) <= hi or (lo and not node.input[0]):
                raise ModelFormatError(
                    f"{_node_label(node, index)}: has inputs {list(node.input)}; {op} takes "
                    f"{lo if lo == hi else f'{lo} to {hi}'} (the first one required)")
            if not node.output or not node.output[0]:
                raise ModelFormatError(f"{_node_label(node, index)}: has no output")
        if op == "Constant":
            self._check_attrs(node)
            self._constant(node)
            return
        if op == "Shape" and present and present[0] not in self.consts:
            self._check_attrs(node)
            self._shape_of(node)
            return
        if present and all(x in self.consts for x in present) and op not in _NO_FOLD:
            sym = [x for x in present if x in self.symbolic]
            if sym and (op not in _SHAPE_MOVES or (op == "Cast" and self.attrs(node).get(
                    "to") != self.onnx.TensorProto.INT64)):
                raise _Unsupported(f"op {op} computes with the run-time batch size (via "
                                   f"{sym}); only data movement of shape values (Gather, "
                                   "Concat, Unsqueeze, Slice, ... into a Reshape) is supported")
            self._fold(node)
            if sym:
                self.symbolic.update(o for o in node.output
                                     if o and np.any(self.consts[o] == _BATCH))
            return
        fn: Callable[[Any], None] | None = getattr(self, f"_op_{op}", None)
        if fn is None or op not in _KNOWN_ATTRS:
            raise _Unsupported(f"op {op} is not supported")
        self._check_attrs(node)
        fn(node)

    def _check_attrs(self, node: Any) -> None:
        unknown = sorted(str(a.name) for a in node.attribute
                         if a.name not in _KNOWN_ATTRS[node.op_type])
        if unknown:
            raise _Unsupported(f"attribute(s) {', '.join(unknown)} not understood")

    # ---------------------------------------------------------------- helpers
    def attrs(self, node: Any) -> dict[str, Any]:
        """The node's attributes as Python values, each checked for its ONNX type."""
        h = self.onnx.helper
        ap = self.onnx.AttributeProto
        out = {}
        for a in node.attribute:
            want = _OP_ATTR_TYPES.get((node.op_type, a.name), _ATTR_TYPES.get(a.name))
            if want is not None and a.type != getattr(ap, want):
                got = ap.AttributeType.Name(a.type) if a.type in ap.AttributeType.values() \
                    else str(a.type)
                raise ModelFormatError(f"{node.op_type} node {node.name!r}: attribute "
                                       f"{a.name!r} must be {want}, got {got}")
            try:
                out[a.name] = h.get_attribute_value(a)
            except Exception as e:
                raise ModelFormatError(f"{node.op_type} node {node.name!r}: attribute "
                                       f"{a.name!r} cannot be read: {e}") from None
        for k, v in list(out.items()):
            if isinstance(v, bytes):
                out[k] = v.decode("utf-8", "replace")
        return out

    def act(self, name: str, node: Any, what: str = "input") -> str:
        """A runtime-tensor input; constants are not accepted where a tensor is computed."""
        if name in self.pending_pads:
            raise _Unsupported(f"{what} {name!r} is the output of a Pad; Pad is supported "
                               "only where it merges into the pads of the Conv/pool after it")
        if name in self.consts:
            raise _Unsupported(f"{what} {name!r} is a constant, but pyruntime computes this "
                               "operand at run time (only parameter inputs may be constant)")
        return name

    def const(self, name: str, what: str) -> np.ndarray:
        if name in self.symbolic:
            raise _Unsupported(f"{what} {name!r} depends on the run-time batch size")
        if name not in self.consts:
            raise _Unsupported(f"{what} {name!r} must be a constant (initializer or Constant "
                               "node); run-time values are not supported here")
        return self.consts[name]

    def float_const(self, name: str, node: Any, what: str) -> np.ndarray:
        arr = self.const(name, what)
        if not np.issubdtype(arr.dtype, np.floating):
            raise ModelFormatError(f"{node.op_type} node {node.name!r}: {what} {name!r} has "
                                   f"dtype {arr.dtype}; expected a floating-point tensor")
        return arr

    def weight(self, src: str, arr: np.ndarray, tag: str = "") -> str:
        """Register a Weight; the source name is kept when the values are unchanged."""
        key = (src, tag)
        if key in self._weight_cache:
            return self._weight_cache[key]
        if not np.issubdtype(np.asarray(arr).dtype, np.floating):
            raise ModelFormatError(f"constant {src!r} used as a weight has dtype "
                                   f"{np.asarray(arr).dtype}; expected floating point")
        name = src if not tag else self.fresh(f"{src}_{tag}")
        self.weights[name] = Weight.f32(arr)
        self._weight_cache[key] = name
        self.names.add(name)
        return name

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def rank(self, name: str) -> int | None:
        s = self.shapes.get(name)
        return None if s is None else len(s)

    def emit(self, op: str, inputs: list[str], outputs: list[str], attrs: dict | None = None,
             name: str = "") -> None:
        self.nodes.append(Node(op, list(inputs), list(outputs), dict(attrs or {}), name))

    def used(self, name: str) -> bool:
        return bool(name) and (self.consumers.get(name, 0) > 0 or name in self.graph_outputs)

    def only_output(self, node: Any) -> str:
        outs = list(node.output)
        if not outs or not outs[0]:
            raise ModelFormatError(f"{node.op_type} node {node.name!r} has no output")
        extra = [o for o in outs[1:] if self.used(o)]
        if extra:
            raise _Unsupported(f"optional output(s) {extra} are used; only the first output "
                               "is supported")
        return outs[0]

    def inp(self, node: Any, i: int) -> str:
        return node.input[i] if len(node.input) > i else ""

    # ------------------------------------------------------------ constants
    def _constant(self, node: Any) -> None:
        a = self.attrs(node)
        out = self.only_output(node)
        if "value" in a:
            val = self.tensor(a["value"], f"{_node_label(node, 0)} value")
        elif "value_float" in a:
            val = np.array(a["value_float"], dtype=np.float32)
        elif "value_floats" in a:
            val = np.array(a["value_floats"], dtype=np.float32)
        elif "value_int" in a:
            val = np.array(a["value_int"], dtype=np.int64)
        elif "value_ints" in a:
            val = np.array(a["value_ints"], dtype=np.int64)
        elif "sparse_value" in a or "value_string" in a or "value_strings" in a:
            raise _Unsupported("sparse/string Constant values are not supported")
        else:
            raise ModelFormatError(f"Constant node {node.name!r} has no value attribute")
        self.consts[out] = np.asarray(val)

    def _shape_of(self, node: Any) -> None:
        """Shape of a run-time tensor: its dims, with _BATCH for the symbolic batch."""
        x = node.input[0]
        s = self.shapes.get(x)
        if s is None:
            raise _Unsupported(f"Shape of {x!r}, whose rank is unknown here")
        a = self.attrs(node)
        r = len(s)
        dims = [(_BATCH if i == 0 else None) if d is None else int(d) for i, d in enumerate(s)]
        dims = dims[int(a.get("start", 0)):int(a.get("end", r))]
        if any(d is None for d in dims):
            raise _Unsupported(f"Shape of {x!r} {self._shape_str(x)} has unknown dims")
        out = self.only_output(node)
        self.consts[out] = np.array(dims, dtype=np.int64)
        if _BATCH in dims:
            self.symbolic.add(out)

    def _fold(self, node: Any) -> None:
        """Evaluate a node whose inputs are all constant with onnx's reference evaluator."""
        oh = self.onnx.helper
        try:
            from onnx.reference import ReferenceEvaluator  # noqa: PLC0415
        except ImportError:  # pragma: no cover - very old onnx
            raise _Unsupported(f"op {node.op_type} on constants (constant folding needs "
                               "onnx.reference, onnx >= 1.13)") from None
        feeds = {x: self.consts[x] for x in node.input if x}
        ins = [oh.make_tensor_value_info(x, oh.np_dtype_to_tensor_dtype(v.dtype), v.shape)
               for x, v in feeds.items()]
        outs = [oh.make_empty_tensor_value_info(o) for o in node.output if o]
        graph = oh.make_graph([node], "fold", ins, outs)
        m = oh.make_model(graph, opset_imports=list(self.model.opset_import))
        try:
            res = ReferenceEvaluator(m).run(None, feeds)
        except Exception as e:
            raise _Unsupported(f"op {node.op_type} on constant inputs could not be folded "
                               f"({type(e).__name__}: {e})") from None
        for o, v in zip([o for o in node.output if o], res):
            self.consts[o] = np.asarray(v)

    # ------------------------------------------------------------------ ops
    def _op_Relu(self, node: Any) -> None:
        self.emit("Relu", [self.act(node.input[0], node)], [self.only_output(node)],
                  name=node.name)

    def _op_Sigmoid(self, node: Any) -> None:
        self.emit("Sigmoid", [self.act(node.input[0], node)], [self.only_output(node)],
                  name=node.name)

    def _op_Tanh(self, node: Any) -> None:
        self.emit("Tanh", [self.act(node.input[0], node)], [self.only_output(node)],
                  name=node.name)

    def _op_Gelu(self, node: Any) -> None:
        approx = self.attrs(node).get("approximate", "none")
        if approx != "none":
            raise _Unsupported(f"approximate={approx!r}; only the exact (erf) form "
                               "approximate='none' is supported")
        self.emit("Gelu", [self.act(node.input[0], node)], [self.only_output(node)],
                  name=node.name)

    def _op_Identity(self, node: Any) -> None:
        self.emit("Identity", [self.act(node.input[0], node)], [self.only_output(node)],
                  name=node.name)

    def _op_Dropout(self, node: Any) -> None:
        x = self.act(node.input[0], node)
        ratio_name, train_name = self.inp(node, 1), self.inp(node, 2)
        if train_name:
            t = self.const(train_name, "training_mode")
            if bool(np.asarray(t).reshape(-1)[0]):
                ratio = 0.5
                if ratio_name:
                    ratio = float(np.asarray(self.const(ratio_name, "ratio")).reshape(-1)[0])
                if ratio != 0.0:
                    raise _Unsupported(f"training_mode=True with ratio={ratio:g} is random; "
                                       "only inference Dropout is supported")
        # In inference the ratio is irrelevant (even when it is a run-time input).
        self.emit("Dropout", [x], [self.only_output(node)], name=node.name)

    def _op_Clip(self, node: Any) -> None:
        x = self.act(node.input[0], node)
        a = self.attrs(node)
        if self.opset < 11:
            lo = float(a.get("min", -_FLT_MAX))
            hi = float(a.get("max", _FLT_MAX))
        else:
            lo, hi = -math.inf, math.inf
            for i, what in ((1, "min"), (2, "max")):
                nm = self.inp(node, i)
                if not nm:
                    continue
                v = np.asarray(self.const(nm, f"Clip {what}"))
                if v.size != 1:
                    raise ModelFormatError(f"Clip node {node.name!r}: {what} must be a scalar, "
                                           f"got shape {v.shape}")
                if what == "min":
                    lo = float(v.reshape(-1)[0])
                else:
                    hi = float(v.reshape(-1)[0])
        if lo > hi:  # ONNX: every element becomes max; the IR requires min <= max
            lo = hi
        self.emit("Clip", [x], [self.only_output(node)], {"min": lo, "max": hi}, node.name)

    def _op_Softmax(self, node: Any) -> None:
        x = self.act(node.input[0], node)
        a = self.attrs(node)
        r = self.rank(x)
        if self.opset >= 13:
            axis = int(a.get("axis", -1))
            if axis >= 0 and r is not None:
                axis -= r
            if r is not None and not -r <= axis < 0:
                raise ModelFormatError(f"Softmax node {node.name!r}: axis {a.get('axis')} out "
                                       f"of range for rank {r}")
            if axis >= 0:
                raise _Unsupported(f"axis={axis} on an input of unknown rank")
        else:
            axis = int(a.get("axis", 1))
            if r is None:
                raise _Unsupported(f"opset-{self.opset} Softmax needs the input rank "
                                   "(unknown here)")
            if axis < 0:
                axis += r
            if not 0 <= axis < r:
                raise ModelFormatError(f"Softmax node {node.name!r}: axis {a.get('axis')} out "
                                       f"of range for rank {r}")
            trailing = self.shapes[x][axis + 1:]
            if axis == r - 1 or (trailing and all(d == 1 for d in trailing)):
                axis -= r
            else:
                raise _Unsupported(
                    f"opset-{self.opset} Softmax with axis={axis} on a rank-{r} input "
                    f"{self._shape_str(x)} normalises over the flattened dims {axis}..{r - 1} "
                    "together; pyruntime's Softmax is single-axis (use opset >= 13 or "
                    "axis = last)")
        self.emit("Softmax", [x], [self.only_output(node)], {"axis": axis}, node.name)

    def _shape_str(self, name: str) -> str:
        s = self.shapes.get(name)
        return "[?]" if s is None else "[" + ", ".join("N" if d is None else str(d)
                                                         for d in s) + "]"

    def _op_Flatten(self, node: Any) -> None:
        x = self.act(node.input[0], node)
        axis = int(self.attrs(node).get("axis", 1))
        r = self.rank(x)
        if axis < 0:
            if r is None:
                raise _Unsupported(f"axis={axis} on an input of unknown rank")
            axis += r
        if r is not None and not 0 <= axis <= r:
            raise ModelFormatError(f"Flatten node {node.name!r}: axis {axis} out of range "
                                   f"for rank {r}")
        self.emit("Flatten", [x], [self.only_output(node)], {"axis": axis}, node.name)

    def _op_Reshape(self, node: Any) -> None:
        x = self.act(node.input[0], node)
        a = self.attrs(node)
        if self.opset < 5:
            if "shape" not in a:
                raise ModelFormatError(f"Reshape node {node.name!r} has no shape attribute")
            shape = [int(v) for v in a["shape"]]
        else:
            sname = self.inp(node, 1)
            if not sname:
                raise ModelFormatError(f"Reshape node {node.name!r} has no shape input")
            arr = np.asarray(self.consts[sname] if sname in self.symbolic
                             else self.const(sname, "shape"))
            if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
                raise ModelFormatError(f"Reshape node {node.name!r}: shape {sname!r} must be a "
                                       f"1-D int64 tensor, got {arr.dtype} {arr.shape}")
            shape = [int(v) for v in arr]
            if _BATCH in shape:
                xs = self.shapes.get(x)
                if shape.index(_BATCH) != 0 or shape.count(_BATCH) != 1 or xs is None \
                        or not xs or xs[0] is not None:
                    raise _Unsupported(f"target shape {sname!r} uses the run-time batch size "
                                       "other than as dim 0 of a batched input")
                shape[0] = 0  # ONNX's "copy this dim from the input": the batch
        if int(a.get("allowzero", 0)) and 0 in shape:
            raise _Unsupported(f"allowzero=1 with a 0 in the target {shape} (literal "
                               "zero-size dims) is not supported")
        if len(shape) != 2:
            raise _Unsupported(f"target shape {shape} has rank {len(shape)}; pyruntime's "
                               "Reshape produces 2-D tensors only")
        if shape.count(-1) > 1 or any(v < -1 for v in shape):
            raise ModelFormatError(f"Reshape node {node.name!r}: invalid target shape {shape}")
        self.emit("Reshape", [x], [self.only_output(node)], {"shape": tuple(shape)}, node.name)

    def _op_Add(self, node: Any) -> None:
        if len(node.input) != 2:
            raise ModelFormatError(f"Add node {node.name!r} needs 2 inputs, has "
                                   f"{len(node.input)}")
        a_name, b_name = node.input[0], node.input[1]
        at = self.attrs(node)
        ins = []
        for nm in (a_name, b_name):
            if nm in self.consts:
                arr = self.float_const(nm, node, "operand")
                if self.opset < 7 and at.get("broadcast", 0) and "axis" in at and nm == b_name:
                    r = self.rank(a_name)
                    if r is None:
                        raise _Unsupported("legacy broadcast with axis needs the input rank")
                    axis = int(at["axis"]) % r
                    arr = arr.reshape(arr.shape + (1,) * (r - axis - arr.ndim))
                    ins.append(self.weight(nm, arr, "bcast"))
                else:
                    ins.append(self.weight(nm, arr))
            else:
                if self.opset < 7 and at.get("broadcast", 0) and "axis" in at and \
                        nm == b_name:
                    ra, rb = self.rank(a_name), self.rank(b_name)
                    if ra is None or rb is None or int(at["axis"]) % ra + rb != ra:
                        raise _Unsupported("legacy broadcast=1 with axis on a run-time B "
                                           "that is not aligned with A's trailing dims")
                ins.append(nm)
        self.emit("Add", ins, [self.only_output(node)], name=node.name)

    def _op_BatchNormalization(self, node: Any) -> None:
        x = self.act(node.input[0], node)
        a = self.attrs(node)
        if int(a.get("training_mode", 0)):
            raise _Unsupported("training_mode=1 (batch statistics) is not supported; "
                               "export the model in eval mode")
        if self.opset < 9 and int(a.get("spatial", 1)) == 0:
            raise _Unsupported("spatial=0 (per-activation statistics) is not supported")
        if len(node.input) != 5:
            raise ModelFormatError(f"BatchNormalization node {node.name!r} needs 5 inputs, "
                                   f"has {len(node.input)}")
        params = []
        c = None
        for nm, what in zip(node.input[1:], ("scale", "B", "mean", "var")):
            arr = self.float_const(nm, node, what)
            if arr.ndim != 1 or (c is not None and arr.shape[0] != c):
                raise ModelFormatError(f"BatchNormalization node {node.name!r}: {what} {nm!r} "
                                       f"has shape {arr.shape}; expected [C] like the others")
            c = arr.shape[0]
            params.append(self.weight(nm, arr))
        xs = self.shapes.get(x)
        if xs is not None and (len(xs) < 2 or (xs[1] is not None and xs[1] != c)):
            raise ModelFormatError(f"BatchNormalization node {node.name!r}: input "
                                   f"{self._shape_str(x)} does not have {c} channels in dim 1")
        self.emit("BatchNormalization", [x, *params], [self.only_output(node)],
                  {"epsilon": float(a.get("epsilon", 1e-5))}, node.name)

    def _op_GlobalAveragePool(self, node: Any) -> None:
        x = self.act(node.input[0], node)
        r = self.rank(x)
        if r is not None and r != 4:
            raise _Unsupported(f"input of rank {r}; only 2-D spatial inputs [N, C, H, W] "
                               "are supported")
        self.emit("GlobalAveragePool", [x], [self.only_output(node)], name=node.name)

    def _op_GlobalMaxPool(self, node: Any) -> None:
        """MaxPool with one window covering H x W (the IR has no GlobalMaxPool)."""
        x = self.act(node.input[0], node)
        hw = self._spatial(node, x)
        if hw is None:
            raise _Unsupported("GlobalMaxPool needs the input's spatial size, which is "
                               "unknown here")
        self.emit("MaxPool", [x], [self.only_output(node)],
                  {"kernel_shape": hw, "strides": (1, 1), "pads": (0, 0, 0, 0),
                   "dilations": (1, 1), "ceil_mode": 0}, node.name)

    # ---- Gemm / MatMul
    def _op_Gemm(self, node: Any) -> None:
        a = self.attrs(node)
        if len(node.input) < 2:
            raise ModelFormatError(f"Gemm node {node.name!r} needs inputs A and B")
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        trans_a, trans_b = int(a.get("transA", 0)), int(a.get("transB", 0))
        a_name, b_name, c_name = node.input[0], node.input[1], self.inp(node, 2)
        if trans_a:
            raise _Unsupported(f"transA=1 with a run-time A {a_name!r} (pyruntime's Gemm "
                               "takes X [M, K] untransposed)")
        x = self.act(a_name, node, "A")
        b = self.float_const(b_name, node, "B")
        if b.ndim != 2:
            raise ModelFormatError(f"Gemm node {node.name!r}: B {b_name!r} has shape "
                                   f"{b.shape}; expected 2-D")
        with np.errstate(all="ignore"):  # inf/nan weights stay as the model has them
            w = (b.T if trans_b else b).astype(np.float64) * alpha
        k, n = w.shape
        xs = self.shapes.get(x)
        if xs is not None:
            if len(xs) != 2:
                raise ModelFormatError(f"Gemm node {node.name!r}: A {a_name!r} has shape "
                                       f"{self._shape_str(x)}; expected 2-D [M, K]")
            if xs[1] is not None and xs[1] != k:
                raise ModelFormatError(f"Gemm node {node.name!r}: A {self._shape_str(x)} and "
                                       f"B{'^T' if trans_b else ''} {list(w.shape)} disagree "
                                       f"on K")
        tag = "" if (not trans_b and alpha == 1.0 and b.dtype == np.float32) else "kn"
        wname = self.weight(b_name, w if tag else b, tag)
        out = self.only_output(node)
        gemm_in = [x, wname]
        post_add: str | None = None
        if c_name and beta != 0.0:
            if c_name in self.consts:
                c = self.float_const(c_name, node, "C").astype(np.float64) * beta
                if c.size == 1 or c.shape in ((n,), (1, n)):
                    bias = np.broadcast_to(c.reshape(-1), (n,)) if c.size == 1 else c.reshape(n)
                    tag_c = "" if (beta == 1.0 and c.shape == (n,) and
                                   self.consts[c_name].dtype == np.float32) else "bias"
                    gemm_in.append(self.weight(c_name, bias if tag_c else
                                               self.consts[c_name], tag_c))
                else:
                    m = xs[0] if xs is not None else None
                    ok = c.ndim <= 2 and (c.ndim < 2 or c.shape[0] in (1, m) or m is None) \
                        and c.shape[-1] in (1, n)
                    if not ok:
                        raise ModelFormatError(f"Gemm node {node.name!r}: C {c_name!r} shape "
                                               f"{c.shape} does not broadcast to [M, {n}]")
                    post_add = self.weight(c_name, c, "" if beta == 1.0 else "beta")
            else:
                if beta != 1.0:
                    raise _Unsupported(f"beta={beta:g} with a run-time C {c_name!r}")
                post_add = c_name
        if post_add is None:
            self.emit("Gemm", gemm_in, [out], name=node.name)
        else:
            tmp = self.fresh(f"{out}_gemm")
            self.emit("Gemm", gemm_in, [tmp], name=node.name)
            self.emit("Add", [tmp, post_add], [out], name=f"{node.name}_bias" if node.name
                      else "")

    def _op_MatMul(self, node: Any) -> None:
        a_name, b_name = node.input[0], node.input[1]
        if a_name in self.consts or b_name not in self.consts:
            raise _Unsupported("only X @ W with a run-time 2-D X and a constant 2-D W is "
                               "supported" + (f" (B {b_name!r} is computed at run time)"
                                              if b_name not in self.consts else
                                              f" (A {a_name!r} is a constant)"))
        b = self.float_const(b_name, node, "B")
        r = self.rank(a_name)
        if b.ndim != 2 or (r is not None and r != 2):
            raise _Unsupported(f"A rank {r if r is not None else '?'} @ B rank {b.ndim}; only "
                               "2-D @ 2-D (-> Gemm) is supported")
        if r is None:
            raise _Unsupported("the rank of A is unknown; only 2-D @ 2-D is supported")
        xs = self.shapes[a_name]
        if xs[1] is not None and xs[1] != b.shape[0]:
            raise ModelFormatError(f"MatMul node {node.name!r}: A {self._shape_str(a_name)} "
                                   f"@ B {list(b.shape)}: inner dimensions differ")
        self.emit("Gemm", [a_name, self.weight(b_name, b)], [self.only_output(node)],
                  name=node.name)

    def _merge_matmul_add(self) -> None:
        """Gemm without bias followed by Add of a [N]/[1, N] weight -> Gemm with bias.

        PyTorch/TF exports spell Linear as MatMul + Add; the canonical IR has one Gemm.
        """
        producers = {o: i for i, n in enumerate(self.nodes) for o in n.outputs}
        uses: dict[str, int] = {}
        for n in self.nodes:
            for x in n.inputs:
                uses[x] = uses.get(x, 0) + 1
        drop: set[int] = set()
        for j, add in enumerate(self.nodes):
            if add.op != "Add":
                continue
            for pos in (0, 1):
                y, other = add.inputs[pos], add.inputs[1 - pos]
                i = producers.get(y)
                if i is None or other not in self.weights or i in drop:
                    continue
                gemm = self.nodes[i]
                if gemm.op != "Gemm" or len(gemm.inputs) != 2 or gemm.attrs:
                    continue
                if uses.get(y, 0) != 1 or y in self.graph_outputs:
                    continue
                n = self.weights[gemm.inputs[1]].shape[1]
                bshape = self.weights[other].shape
                if bshape not in ((n,), (1, n)):
                    continue
                bias = other if bshape == (n,) else self.weight(
                    other, self.weights[other].numpy().reshape(n), "vec")
                gemm.inputs.append(bias)
                gemm.outputs = list(add.outputs)
                drop.add(j)
                break
        if drop:
            self.nodes = [n for j, n in enumerate(self.nodes) if j not in drop]
            used = {x for n in self.nodes for x in n.inputs}
            for w in [w for w in self.weights if w not in used]:
                del self.weights[w]

    # ---- Pad (merged into the next Conv / pool)
    def _op_Pad(self, node: Any) -> None:
        x = self.act(node.input[0], node)
        a = self.attrs(node)
        mode = a.get("mode", "constant")
        if mode != "constant":
            raise _Unsupported(f"mode={mode!r}; only constant padding (merged into a "
                               "following Conv/pool) is supported")
        r = self.rank(x)
        if self.opset < 11:
            if "pads" not in a:
                raise ModelFormatError(f"Pad node {node.name!r} has no pads attribute")
            pads = [int(v) for v in a["pads"]]
            value = float(a.get("value", 0.0))
        else:
            pads = [int(v) for v in np.asarray(self.const(self.inp(node, 1), "pads"))
                    .reshape(-1)] if self.inp(node, 1) else []
            value = 0.0
            if self.inp(node, 2):
                v = np.asarray(self.const(self.inp(node, 2), "constant_value"))
                if v.size != 1:
                    raise ModelFormatError(f"Pad node {node.name!r}: constant_value must be "
                                           f"a scalar, got shape {v.shape}")
                value = float(v.reshape(-1)[0])
            if self.inp(node, 3):
                if r is None:
                    raise _Unsupported("Pad with axes on an input of unknown rank")
                axes = [int(v) % r for v in np.asarray(self.const(self.inp(node, 3), "axes"))
                        .reshape(-1)]
                if len(pads) != 2 * len(axes):
                    raise ModelFormatError(f"Pad node {node.name!r}: {len(pads)} pads for "
                                           f"{len(axes)} axes")
                full = [0] * (2 * r)
                for j, ax in enumerate(axes):
                    full[ax], full[ax + r] = pads[j], pads[j + len(axes)]
                pads = full
        if r is not None and len(pads) != 2 * r:
            raise ModelFormatError(f"Pad node {node.name!r}: {len(pads)} pads for a rank-{r} "
                                   "input")
        if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
            raise _Unsupported(f"pads {pads}; only non-negative padding of H and W of an "
                               "[N, C, H, W] tensor merges into a Conv/pool")
        self.pending_pads[self.only_output(node)] = (x, [pads[2], pads[3], pads[6], pads[7]],
                                                     value)

    def _padded_input(self, node: Any, name: str, need: str) -> tuple[str, list[int]]:
        """(source, extra pads) when `name` is a pending Pad with value `need`, else
        (name, zeros). need: "zero" or "-inf"."""
        if name not in self.pending_pads:
            return self.act(name, node, "X"), [0, 0, 0, 0]
        src, extra, value = self.pending_pads[name]
        ok = value == 0.0 if need == "zero" else value == -math.inf
        if not ok:
            raise _Unsupported(f"input {name!r} is a Pad with value {value:g}; only "
                               f"{'0' if need == 'zero' else '-inf'} padding merges into "
                               f"{node.op_type}")
        return src, extra

    # ---- Conv and pooling
    def _spatial(self, node: Any, x: str) -> tuple[int, int] | None:
        s = self.shapes.get(x)
        if s is None:
            return None
        if len(s) != 4:
            raise _Unsupported(f"input {x!r} has rank {len(s)}; only 2-D spatial inputs "
                               "[N, C, H, W] are supported")
        if s[2] is None or s[3] is None:
            return None
        return int(s[2]), int(s[3])

    def _pads(self, node: Any, a: dict, x: str, kernel: tuple[int, int],
              strides: tuple[int, int], dil: tuple[int, int]) -> list[int]:
        """Explicit (top, left, bottom, right) pads from pads/auto_pad."""
        auto = a.get("auto_pad", "NOTSET") or "NOTSET"
        if auto == "NOTSET":
            pads = [int(p) for p in a.get("pads", [0, 0, 0, 0])]
            if len(pads) != 4:
                raise _Unsupported(f"pads has {len(pads)} values; only 2-D (4 values) is "
                                   "supported")
            if any(p < 0 for p in pads):
                raise _Unsupported(f"negative pads {pads} (cropping) are not supported")
            return pads
        if auto == "VALID":
            return [0, 0, 0, 0]
        if auto not in ("SAME_UPPER", "SAME_LOWER"):
            raise ModelFormatError(f"{node.op_type} node {node.name!r}: unknown auto_pad "
                                   f"{auto!r}")
        hw = self._spatial(node, x)
        if hw is None:
            raise _Unsupported(f"auto_pad={auto} needs the input's spatial size, which is "
                               "unknown here")
        begin, end = [], []
        for size, k, s, d in zip(hw, kernel, strides, dil):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        return [begin[0], begin[1], end[0], end[1]]

    def _op_Conv(self, node: Any) -> None:
        a = self.attrs(node)
        x = node.input[0]
        src, extra = self._padded_input(node, x, "zero")
        if len(node.input) < 2:
            raise ModelFormatError(f"Conv node {node.name!r} has no weight input")
        w = self.float_const(node.input[1], node, "W")
        if w.ndim != 4:
            raise _Unsupported(f"{w.ndim - 2}-D convolution (W shape {list(w.shape)}); only "
                               "2-D Conv is supported")
        self._spatial(node, x)  # rank check
        kernel = tuple(int(v) for v in w.shape[2:])
        if "kernel_shape" in a and tuple(int(v) for v in a["kernel_shape"]) != kernel:
            raise ModelFormatError(f"Conv node {node.name!r}: kernel_shape "
                                   f"{list(a['kernel_shape'])} disagrees with W shape "
                                   f"{list(w.shape)}")
        strides = _pair(a.get("strides", [1, 1]), "strides")
        dil = _pair(a.get("dilations", [1, 1]), "dilations")
        if min(strides) < 1 or min(dil) < 1:
            raise ModelFormatError(f"Conv node {node.name!r}: strides {strides} and "
                                   f"dilations {dil} must be >= 1")
        group = int(a.get("group", 1))
        o, ipg = int(w.shape[0]), int(w.shape[1])
        xs = self.shapes.get(x)
        c_in = xs[1] if xs is not None else None
        if c_in is not None and c_in != ipg * group:
            raise ModelFormatError(f"Conv node {node.name!r}: input has {c_in} channels but "
                                   f"W {list(w.shape)} with group={group} expects {ipg * group}")
        if group != 1 and not (ipg == 1 and o == group):
            kind = (f"depthwise with channel multiplier {o // group}" if ipg == 1
                    else f"grouped convolution with group={group}")
            raise _Unsupported(f"{kind} (W {list(w.shape)}); only group=1 or depthwise "
                               "group=C_in=C_out is supported")
        pads = [p + q for p, q in zip(self._pads(node, a, x, kernel, strides, dil), extra)]
        ins = [src, self.weight(node.input[1], w)]
        bname = self.inp(node, 2)
        if bname:
            b = self.float_const(bname, node, "B")
            if b.shape != (o,):
                raise ModelFormatError(f"Conv node {node.name!r}: bias {bname!r} has shape "
                                       f"{b.shape}; expected ({o},)")
            ins.append(self.weight(bname, b))
        self.emit("Conv", ins, [self.only_output(node)],
                  {"strides": strides, "pads": tuple(pads), "dilations": dil, "group": group},
                  node.name)

    def _pool(self, node: Any, op: str) -> None:
        a = self.attrs(node)
        x = node.input[0]
        src, extra = self._padded_input(node, x, "-inf" if op == "MaxPool" else "zero")
        outs = list(node.output)
        if len(outs) > 1 and outs[1]:
            raise _Unsupported("the Indices output (second output) is not supported")
        if "kernel_shape" not in a:
            raise ModelFormatError(f"{op} node {node.name!r} has no kernel_shape")
        kernel = _pair(a["kernel_shape"], "kernel_shape")
        hw = self._spatial(node, x)
        strides = _pair(a.get("strides", [1, 1]), "strides")
        dil = _pair(a.get("dilations", [1, 1]), "dilations")
        if min(kernel) < 1 or min(strides) < 1 or min(dil) < 1:
            raise ModelFormatError(f"{op} node {node.name!r}: kernel_shape, strides and "
                                   "dilations must be >= 1")
        if op == "AveragePool" and dil != (1, 1):
            raise _Unsupported(f"dilations {list(dil)}; pyruntime's AveragePool has no "
                               "dilation")
        if dil != (1, 1) and a.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
            # The spec's output size ceil(in / stride) needs dilated-kernel padding, but
            # onnxruntime pads for the undilated kernel: the result would depend on whom
            # one believes, so refuse rather than guess.
            raise _Unsupported(f"auto_pad={a['auto_pad']} with dilations {list(dil)} (ONNX "
                               "runtimes disagree on its padding); use explicit pads")
        pads = self._pads(node, a, x, kernel, strides, dil)
        cip = int(a.get("count_include_pad", 0))
        ceil = int(a.get("ceil_mode", 0))
        if ceil:
            if a.get("auto_pad", "NOTSET") not in ("NOTSET", "", "VALID") and hw is None:
                raise _Unsupported("ceil_mode=1 with auto_pad needs the input's spatial size")
            if hw is not None and not any(
                    _pool_overhang(size, k, s, d, pads[i], pads[i + 2])
                    for i, (size, k, s, d) in enumerate(zip(hw, kernel, strides, dil))):
                ceil = 0  # ceil and floor give the same windows: canonical form is floor
        if any(extra):
            if op == "AveragePool" and not cip:
                if any(pads):
                    raise _Unsupported("a Pad before an AveragePool with its own pads and "
                                       "count_include_pad=0 (the Pad's zeros count, the "
                                       "pool's pads do not)")
                cip = 1  # the Pad's zeros are data: they count in every average
            pads = [p + q for p, q in zip(pads, extra)]
            ext = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
            if any(pads[i] >= ext[i % 2] for i in range(4)):
                raise _Unsupported(f"Pad merged into {op} gives pads {pads}, not smaller than "
                                   f"the window {ext} (a window would see padding only)")
        attrs: dict[str, Any] = {"kernel_shape": kernel, "strides": strides,
                                 "pads": tuple(pads), "ceil_mode": ceil}
        if op == "MaxPool":
            attrs["dilations"] = dil
            # storage_order only changes the Indices output, rejected above.
        else:
            attrs["count_include_pad"] = cip
        self.emit(op, [src], [outs[0]], attrs, node.name)

    def _op_MaxPool(self, node: Any) -> None:
        self._pool(node, "MaxPool")

    def _op_AveragePool(self, node: Any) -> None:
        self._pool(node, "AveragePool")
