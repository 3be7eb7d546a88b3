"""ONNX import: `load_onnx(path | bytes | ModelProto) -> rt.Graph` in the canonical IR.

This module is the driver (inputs, initializers, liveness, constant folding, the
conversion loop and its helpers); proto.py loads and describes ONNX, and the op
converters live by family in convert_elementwise.py, convert_tensor.py,
convert_linear.py and convert_spatial.py.

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
  run-time C when beta == 1). transA: folded on a constant A, else Transpose + Gemm
  when A has a fixed first dim (a symbolic-batch A is refused).
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

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ..errors import GraphError, ModelFormatError, ShapeError, UnsupportedOpError
from ..graph import Graph, Node, ValueInfo, Weight, fresh_name
from .convert_elementwise import ElementwiseOps
from .convert_linear import LinearOps
from .convert_quant import MS_OPS, QPASS, QuantOps
from .convert_spatial import SpatialOps
from .convert_tensor import TensorOps
from .proto import (ARITY, ATTR_TYPES, BATCH, KNOWN_ATTRS, NO_FOLD, OP_ATTR_TYPES,
                    QUANT_OPS, SHAPE_MOVES, SUPPORTED_OPS, Unsupported, import_onnx, load_proto,
                    node_label)

__all__ = ["load_onnx", "SUPPORTED_OPS"]


def load_onnx(model: "str | os.PathLike | bytes | Any") -> Graph:
    """Import an ONNX model (path, serialized bytes or onnx.ModelProto) as an rt.Graph.

    Raises UnsupportedOpError listing every op/variant pyruntime cannot run,
    ModelFormatError for malformed models, ShapeError for unusable input shapes,
    MissingDependencyError when the `onnx` package is not installed.
    """
    onnx = import_onnx()
    proto = load_proto(onnx, model)
    return _Importer(onnx, proto).run()


class _Importer(ElementwiseOps, TensorOps, LinearOps, SpatialOps, QuantOps):
    """One import: ONNX graph -> canonical IR nodes + weights. The `_op_<Op>` converters
    come from the mixins, one per op family."""

    def __init__(self, onnx: Any, model: Any) -> None:
        self.onnx = onnx
        self.model = model
        self.g = model.graph
        self.opset = self._default_opset()
        self.consts: dict[str, np.ndarray] = {}      # name -> constant value (any dtype)
        self.symbolic: set[str] = set()              # int64 consts holding BATCH
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
        self._quant_init()

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
                    raise ModelFormatError(f"{node_label(n, i)}: output {o!r} is already "
                                           "defined (ONNX names must be assigned once)")
                producer[o] = i
                self.names.add(o)
        available = set(self.consts) | set(self.shapes)
        for i, n in enumerate(nodes):
            for x in n.input:
                if x and x not in available:
                    if x in producer:
                        raise ModelFormatError(
                            f"{node_label(n, i)}: input {x!r} is used before the node that "
                            "produces it (nodes are not in topological order)")
                    raise ModelFormatError(f"{node_label(n, i)}: input {x!r} is not a graph "
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
            label = node_label(node, index)
            try:
                self._convert(node, index)
            except Unsupported as e:
                self.issues.append(f"{label}: {e}")
        for o in self.graph_outputs:
            if o in self.pending_pads:
                self.issues.append(f"graph output {o!r} comes from a Pad; Pad is supported only "
                                   "where it merges into a following Conv/pool")
            why = self.integer_reason(o)
            if why is not None:
                self.issues.append(f"graph output {o!r}: {why}; pyruntime's outputs are "
                                   "float (end the graph with a DequantizeLinear)")
            elif o in self.consts:
                self.issues.append(f"graph output {o!r} is a constant (computed from "
                                   "initializers only); pyruntime graphs compute outputs from "
                                   "their inputs")
        if self.issues:
            lines = "\n".join(f"  - {m}" for m in self.issues)
            raise UnsupportedOpError(
                f"the ONNX model (opset {self.opset}) uses {len(self.issues)} unsupported "
                f"op(s)/variant(s):\n{lines}\n"
                f"pyruntime imports: {', '.join(SUPPORTED_OPS)}; quantized: "
                f"{', '.join(QUANT_OPS)} (see pyruntime/onnx/)")
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
        if node.domain not in ("", "ai.onnx") and not (node.domain == "com.microsoft"
                                                       and op in MS_OPS):
            raise Unsupported(f"op {node.domain}::{op} (custom domain) is not supported")
        present = [x for x in node.input if x]
        if op in ARITY:
            lo, hi = ARITY[op]
            if not lo <= len(node.input) <= hi or (lo and not node.input[0]):
                raise ModelFormatError(
                    f"{node_label(node, index)}: has inputs {list(node.input)}; {op} takes "
                    f"{lo if lo == hi else f'{lo} to {hi}'} (the first one required)")
            if not node.output or not node.output[0]:
                raise ModelFormatError(f"{node_label(node, index)}: has no output")
        if op == "Constant":
            self._check_attrs(node)
            self._constant(node)
            return
        if op == "Shape" and present and present[0] not in self.consts:
            self._check_attrs(node)
            self._shape_of(node)
            return
        if op == "DequantizeLinear" and present and all(x in self.consts for x in present):
            self._check_attrs(node)
            self.dq_const(node)   # remembered as int8 data + scales for qc8 weights
            return
        if present and all(x in self.consts for x in present) and op not in NO_FOLD:
            sym = [x for x in present if x in self.symbolic]
            if sym and (op not in SHAPE_MOVES or (op == "Cast" and self.attrs(node).get(
                    "to") != self.onnx.TensorProto.INT64)):
                raise Unsupported(f"op {op} computes with the run-time batch size (via "
                                   f"{sym}); only data movement of shape values (Gather, "
                                   "Concat, Unsqueeze, Slice, ... into a Reshape) is supported")
            self._fold(node)
            if sym:
                self.symbolic.update(o for o in node.output
                                     if o and np.any(self.consts[o] == BATCH))
            return
        fn: Callable[[Any], None] | None = getattr(self, f"_op_{op}", None)
        if fn is None or op not in KNOWN_ATTRS:
            raise Unsupported(f"op {op} is not supported")
        self._check_attrs(node)
        if op in QPASS and node.input[0] in self.qpend:
            self.qpass(node, fn)
            return
        fn(node)

    def _check_attrs(self, node: Any) -> None:
        unknown = sorted(str(a.name) for a in node.attribute
                         if a.name not in KNOWN_ATTRS[node.op_type])
        if unknown:
            raise Unsupported(f"attribute(s) {', '.join(unknown)} not understood")

    # ---------------------------------------------------------------- helpers
    def attrs(self, node: Any) -> dict[str, Any]:
        """The node's attributes as Python values, each checked for its ONNX type."""
        h = self.onnx.helper
        ap = self.onnx.AttributeProto
        out = {}
        for a in node.attribute:
            want = OP_ATTR_TYPES.get((node.op_type, a.name), ATTR_TYPES.get(a.name))
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
            raise Unsupported(f"{what} {name!r} is the output of a Pad; Pad is supported "
                               "only where it merges into the pads of the Conv/pool after it")
        why = self.integer_reason(name)
        if why is not None:
            raise Unsupported(f"{what}: {why}")
        if name in self.consts:
            raise Unsupported(f"{what} {name!r} is a constant, but pyruntime computes this "
                               "operand at run time (only parameter inputs may be constant)")
        return name

    def const(self, name: str, what: str) -> np.ndarray:
        if name in self.symbolic:
            raise Unsupported(f"{what} {name!r} depends on the run-time batch size")
        if name not in self.consts:
            raise Unsupported(f"{what} {name!r} must be a constant (initializer or Constant "
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
        return fresh_name(base, self.names)

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
            raise Unsupported(f"optional output(s) {extra} are used; only the first output "
                               "is supported")
        return outs[0]

    def inp(self, node: Any, i: int) -> str:
        return node.input[i] if len(node.input) > i else ""

    # ------------------------------------------------------------ constants
    def _constant(self, node: Any) -> None:
        a = self.attrs(node)
        out = self.only_output(node)
        if "value" in a:
            val = self.tensor(a["value"], f"{node_label(node, 0)} value")
        elif "value_float" in a:
            val = np.array(a["value_float"], dtype=np.float32)
        elif "value_floats" in a:
            val = np.array(a["value_floats"], dtype=np.float32)
        elif "value_int" in a:
            val = np.array(a["value_int"], dtype=np.int64)
        elif "value_ints" in a:
            val = np.array(a["value_ints"], dtype=np.int64)
        elif "sparse_value" in a or "value_string" in a or "value_strings" in a:
            raise Unsupported("sparse/string Constant values are not supported")
        else:
            raise ModelFormatError(f"Constant node {node.name!r} has no value attribute")
        self.consts[out] = np.asarray(val)

    def _shape_of(self, node: Any) -> None:
        """Shape of a run-time tensor: its dims, with BATCH for the symbolic batch."""
        x = node.input[0]
        s = self.shapes.get(x)
        if s is None:
            raise Unsupported(f"Shape of {x!r}, whose rank is unknown here")
        a = self.attrs(node)
        r = len(s)
        dims = [(BATCH if i == 0 else None) if d is None else int(d) for i, d in enumerate(s)]
        dims = dims[int(a.get("start", 0)):int(a.get("end", r))]
        if any(d is None for d in dims):
            raise Unsupported(f"Shape of {x!r} {self._shape_str(x)} has unknown dims")
        out = self.only_output(node)
        self.consts[out] = np.array(dims, dtype=np.int64)
        if BATCH in dims:
            self.symbolic.add(out)

    def _fold(self, node: Any) -> None:
        """Evaluate a node whose inputs are all constant with onnx's reference evaluator."""
        oh = self.onnx.helper
        try:
            from onnx.reference import ReferenceEvaluator  # noqa: PLC0415
        except ImportError:  # pragma: no cover - very old onnx
            raise Unsupported(f"op {node.op_type} on constants (constant folding needs "
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
            raise Unsupported(f"op {node.op_type} on constant inputs could not be folded "
                               f"({type(e).__name__}: {e})") from None
        for o, v in zip([o for o in node.output if o], res):
            self.consts[o] = np.asarray(v)

    # ------------------------------------------------------------------ ops

    def _shape_str(self, name: str) -> str:
        s = self.shapes.get(name)
        return "[?]" if s is None else "[" + ", ".join("N" if d is None else str(d)
                                                         for d in s) + "]"
