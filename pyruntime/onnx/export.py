"""ONNX export: `to_onnx(graph) -> onnx.ModelProto` for the IR ops of pyruntime/graph.py.

Its purpose is the baseline: a model built with `pyruntime.nn` (or imported and then
optimized) can be run by onnxruntime and compared with pyruntime, in tests and in bench/.
Fused epilogues (activation, residual add) are written back out as separate ONNX nodes,
so optimized graphs export too. The batch dimension (None) becomes dim_param "N".
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .. import formats
from ..errors import GraphError, UnsupportedOpError
from ..graph import Graph, Node, fresh_name
from .proto import import_onnx

__all__ = ["to_onnx"]

#: Lowest default-domain opset we write (Gemm with optional C, Clip bounds as inputs).
MIN_OPSET = 11


def to_onnx(graph: Graph, path: str | os.PathLike | None = None, *, opset: int = 17,
            name: str | None = None) -> Any:
    """`graph` as an ONNX ModelProto (float32, default domain, `opset` >= 11), also
    written to `path` when given. Any runtime can run it: weights are written dense, every
    format (pyruntime.formats) as its float32 dense view, so an f16, bf16 or sparse weight
    exports uncompressed and computes exactly as pyruntime's dense view does. A qc8
    weight is its int8 initializer + DequantizeLinear (per tensor, or per axis at opset
    >= 13; below that its dense view), a QDQ node QuantizeLinear + DequantizeLinear: the
    QDQ form onnxruntime runs on int8 kernels.

    Raises UnsupportedOpError listing every node that has no ONNX spelling at this opset,
    WeightFormatError for a malformed weight, GraphError for malformed nodes.
    """
    onnx = import_onnx()
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise UnsupportedOpError(f"to_onnx writes opset >= {MIN_OPSET}, asked for {opset!r}")
    model = _Exporter(onnx, graph, opset).run(name or graph.name or "graph")
    if path is not None:
        onnx.save_model(model, os.fspath(path))
    return model


class _Exporter:
    def __init__(self, onnx: Any, graph: Graph, opset: int) -> None:
        self.onnx = onnx
        self.h = onnx.helper
        self.graph = graph
        self.opset = opset
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.issues: list[str] = []
        self.names: set[str] = {v.name for v in graph.inputs} | set(graph.outputs) | \
            set(graph.weights) | {o for n in graph.nodes for o in n.outputs} | \
            {i for n in graph.nodes for i in n.inputs}

    def fresh(self, base: str) -> str:
        return fresh_name(base, self.names)

    def const(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str = "",
             **attrs: Any) -> None:
        self.nodes.append(self.h.make_node(op, inputs, outputs, name=name or None, **attrs))

    # -------------------------------------------------------------------
    def run(self, name: str) -> Any:
        h, tp = self.h, self.onnx.TensorProto
        for wname, w in self.graph.weights.items():
            if w.format == "qc8" and self._qc8(wname, w):
                continue
            arr = np.asarray(formats.dense_f32(w, wname), dtype=np.float32)
            self.inits.append(self.onnx.numpy_helper.from_array(arr, wname))
        for i, n in enumerate(self.graph.nodes):
            fn = getattr(self, f"_op_{n.op}", None)
            label = f"{n.op} node {n.name or '#' + str(i)!r}"
            if fn is None:
                self.issues.append(f"{label}: op {n.op} has no ONNX export")
                continue
            try:
                fn(n)
            except UnsupportedOpError as e:
                self.issues.append(f"{label}: {e}")
        if self.issues:
            lines = "\n".join(f"  - {m}" for m in self.issues)
            raise UnsupportedOpError(f"cannot export {len(self.issues)} node(s)/weight(s) to "
                                     f"ONNX opset {self.opset}:\n{lines}")
        inputs = []
        for v in self.graph.inputs:
            dims = [("N" if i == 0 else f"d{i}") if d is None else int(d)
                    for i, d in enumerate(v.shape)]
            inputs.append(h.make_tensor_value_info(v.name, tp.FLOAT, dims))
        outputs = [h.make_tensor_value_info(o, tp.FLOAT, None) for o in self.graph.outputs]
        g = h.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        opsets = [h.make_opsetid("", self.opset)]
        model = h.make_model(g, opset_imports=opsets, producer_name="pyruntime",
                             ir_version=h.find_min_ir_version_for(opsets))
        try:  # outputs get their shapes from onnx's inference (the checker wants them)
            inferred = self.onnx.shape_inference.infer_shapes(model)
            for out, inf in zip(model.graph.output, inferred.graph.output):
                out.CopyFrom(inf)
        except Exception:  # noqa: BLE001 - the checker below reports what is wrong
            pass
        try:
            self.onnx.checker.check_model(model)
        except self.onnx.checker.ValidationError as e:
            raise GraphError(f"exported ONNX model does not validate: {e}") from None
        return model

    # ------------------------------------------------------- quantized
    def _qc8(self, wname: str, w: Any) -> bool:
        """A qc8 weight as its int8 initializer + DequantizeLinear (per tensor when all
        scales are equal, else per axis: opset >= 13) whose output is the weight's name;
        False (write the dense view) where the opset has no per-axis DequantizeLinear."""
        formats.check(w, wname)
        scale = np.asarray(w.arrays["scale"], dtype=np.float32)
        per_tensor = scale.size > 0 and bool(np.all(scale == scale[0]))
        if not per_tensor and self.opset < 13:
            return False
        data = np.asarray(w.arrays["data"], dtype=np.int8)
        q = self.const(f"{wname}_quantized", data)
        s = self.const(f"{wname}_scale", scale[0] if per_tensor else scale)
        z = self.const(f"{wname}_zero_point",
                       np.zeros(() if per_tensor else scale.shape, dtype=np.int8))
        attrs = {} if per_tensor else {"axis": int(w.attrs["axis"])}
        self.node("DequantizeLinear", [q, s, z], [wname], f"{wname}_dequantize", **attrs)
        return True

    def _op_QDQ(self, n: Node) -> None:
        """QuantizeLinear + DequantizeLinear with the node's scale and zero point."""
        a = n.attrs
        dt = np.uint8 if a.get("dtype", "uint8") == "uint8" else np.int8
        out = n.outputs[0]
        s = self.const(f"{out}_scale", np.array(a["scale"], dtype=np.float32))
        z = self.const(f"{out}_zero_point", np.array(int(a.get("zero_point", 0)), dtype=dt))
        q = self.fresh(f"{out}_quantized")
        self.node("QuantizeLinear", [n.inputs[0], s, z], [q], f"{n.name}_q" if n.name else "")
        self.node("DequantizeLinear", [q, s, z], [out], n.name)

    # ------------------------------------------------------- epilogues
    def _activation(self, kind: str, x: str, y: str, n: Node, name: str = "") -> None:
        a = n.attrs
        if kind == "relu":
            self.node("Relu", [x], [y], name)
        elif kind == "sigmoid":
            self.node("Sigmoid", [x], [y], name)
        elif kind == "tanh":
            self.node("Tanh", [x], [y], name)
        elif kind == "gelu":
            self._gelu(x, y, name)
        elif kind == "clip":
            self._clip(x, y, float(a.get("act_min", -math.inf)),
                       float(a.get("act_max", math.inf)), name)
        else:
            raise UnsupportedOpError(f"unknown fused activation {kind!r}")

    def _with_epilogue(self, n: Node, core_op: str, core_inputs: list[str],
                       attrs: dict[str, Any]) -> None:
        """Emit the core op, then residual add / activation in the IR's order."""
        out = n.outputs[0]
        act = n.attrs.get("activation")
        residual = bool(n.attrs.get("residual", False))
        r = n.inputs[3] if len(n.inputs) > 3 and n.inputs[3] else ""
        if residual and not r:
            raise GraphError(f"{n.op} node {n.name!r}: residual=True but no 4th input")
        if not residual and r:
            raise GraphError(f"{n.op} node {n.name!r}: a 4th (residual) input but "
                             "residual is not set")
        after = bool(n.attrs.get("residual_after_act", False))
        steps: list[str] = []
        if residual and not after:
            steps.append("add")
        if act:
            steps.append("act")
        if residual and after:
            steps.append("add")
        cur = self.fresh(f"{out}_{core_op.lower()}") if steps else out
        self.node(core_op, core_inputs, [cur], n.name, **attrs)
        for k, step in enumerate(steps):
            nxt = out if k == len(steps) - 1 else self.fresh(f"{out}_{step}")
            if step == "add":
                self.node("Add", [cur, r], [nxt], f"{n.name}_residual" if n.name else "")
            else:
                self._activation(str(act), cur, nxt, n, f"{n.name}_act" if n.name else "")
            cur = nxt

    def _clip(self, x: str, y: str, lo: float, hi: float, name: str = "") -> None:
        ins = [x, "", ""]
        if lo != -math.inf:
            ins[1] = self.const(f"{y}_min", np.array(lo, dtype=np.float32))
        if hi != math.inf:
            ins[2] = self.const(f"{y}_max", np.array(hi, dtype=np.float32))
        while ins and ins[-1] == "":
            ins.pop()
        self.node("Clip", ins, [y], name)

    def _gelu(self, x: str, y: str, name: str = "") -> None:
        if self.opset >= 20:
            self.node("Gelu", [x], [y], name)
            return
        # 0.5 * x * (1 + erf(x / sqrt(2))), the exact form
        s = self.const(f"{y}_sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
        one = self.const(f"{y}_one", np.array(1.0, dtype=np.float32))
        half = self.const(f"{y}_half", np.array(0.5, dtype=np.float32))
        t = [self.fresh(f"{y}_t{i}") for i in range(4)]
        self.node("Div", [x, s], [t[0]])
        self.node("Erf", [t[0]], [t[1]])
        self.node("Add", [t[1], one], [t[2]])
        self.node("Mul", [x, t[2]], [t[3]])
        self.node("Mul", [t[3], half], [y], name)

    # ----------------------------------------------------------- ops
    def _op_Conv(self, n: Node) -> None:
        a = n.attrs
        ins = [n.inputs[0], n.inputs[1]]
        if len(n.inputs) > 2 and n.inputs[2]:
            ins.append(n.inputs[2])
        attrs = {"strides": list(a.get("strides", (1, 1))),
                 "pads": list(a.get("pads", (0, 0, 0, 0))),
                 "dilations": list(a.get("dilations", (1, 1))),
                 "group": int(a.get("group", 1))}
        if n.inputs[1] in self.graph.weights:
            attrs["kernel_shape"] = list(self.graph.weights[n.inputs[1]].shape[2:])
        self._with_epilogue(n, "Conv", ins, attrs)

    def _op_Gemm(self, n: Node) -> None:
        ins = [n.inputs[0], n.inputs[1]]
        if len(n.inputs) > 2 and n.inputs[2]:
            ins.append(n.inputs[2])
        self._with_epilogue(n, "Gemm", ins, {})

    def _op_BatchNormalization(self, n: Node) -> None:
        self.node("BatchNormalization", list(n.inputs[:5]), [n.outputs[0]], n.name,
                  epsilon=float(n.attrs.get("epsilon", 1e-5)))

    def _op_Relu(self, n: Node) -> None:
        self.node("Relu", [n.inputs[0]], [n.outputs[0]], n.name)

    def _op_Sigmoid(self, n: Node) -> None:
        self.node("Sigmoid", [n.inputs[0]], [n.outputs[0]], n.name)

    def _op_Tanh(self, n: Node) -> None:
        self.node("Tanh", [n.inputs[0]], [n.outputs[0]], n.name)

    def _op_Gelu(self, n: Node) -> None:
        self._gelu(n.inputs[0], n.outputs[0], n.name)

    def _op_Clip(self, n: Node) -> None:
        self._clip(n.inputs[0], n.outputs[0], float(n.attrs.get("min", -math.inf)),
                   float(n.attrs.get("max", math.inf)), n.name)

    def _op_Softmax(self, n: Node) -> None:
        axis = int(n.attrs.get("axis", -1))
        if self.opset < 13 and axis != -1:
            raise UnsupportedOpError(f"Softmax axis={axis} needs opset >= 13 (older opsets "
                                     "flatten the trailing dims)")
        self.node("Softmax", [n.inputs[0]], [n.outputs[0]], n.name, axis=axis)

    def _op_MaxPool(self, n: Node) -> None:
        a = n.attrs
        attrs = {"kernel_shape": list(a["kernel_shape"]),
                 "strides": list(a.get("strides", (1, 1))),
                 "pads": list(a.get("pads", (0, 0, 0, 0)))}
        dil = list(a.get("dilations", (1, 1)))
        if dil != [1, 1]:
            attrs["dilations"] = dil
        if int(a.get("ceil_mode", 0)):
            attrs["ceil_mode"] = 1
        self.node("MaxPool", [n.inputs[0]], [n.outputs[0]], n.name, **attrs)

    def _op_AveragePool(self, n: Node) -> None:
        a = n.attrs
        attrs = {"kernel_shape": list(a["kernel_shape"]),
                 "strides": list(a.get("strides", (1, 1))),
                 "pads": list(a.get("pads", (0, 0, 0, 0))),
                 "count_include_pad": int(a.get("count_include_pad", 0)),
                 "ceil_mode": int(a.get("ceil_mode", 0))}
        dil = list(a.get("dilations", (1, 1)))
        if dil != [1, 1]:
            if self.opset < 19:
                raise UnsupportedOpError(f"AveragePool dilations {dil} need opset >= 19 "
                                         f"(AveragePool-19 added them); pass opset=19")
            attrs["dilations"] = dil
        self.node("AveragePool", [n.inputs[0]], [n.outputs[0]], n.name, **attrs)

    def _op_Transpose(self, n: Node) -> None:
        self.node("Transpose", [n.inputs[0]], [n.outputs[0]], n.name,
                  perm=list(n.attrs.get("perm", (1, 0))))

    def _op_GlobalAveragePool(self, n: Node) -> None:
        self.node("GlobalAveragePool", [n.inputs[0]], [n.outputs[0]], n.name)

    def _op_Add(self, n: Node) -> None:
        self.node("Add", list(n.inputs[:2]), [n.outputs[0]], n.name)

    def _op_Flatten(self, n: Node) -> None:
        self.node("Flatten", [n.inputs[0]], [n.outputs[0]], n.name,
                  axis=int(n.attrs.get("axis", 1)))

    def _op_Reshape(self, n: Node) -> None:
        shape = self.const(f"{n.outputs[0]}_shape",
                           np.asarray(n.attrs["shape"], dtype=np.int64))
        self.node("Reshape", [n.inputs[0], shape], [n.outputs[0]], n.name)

    def _op_Identity(self, n: Node) -> None:
        self.node("Identity", [n.inputs[0]], [n.outputs[0]], n.name)

    def _op_Dropout(self, n: Node) -> None:
        self.node("Dropout", [n.inputs[0]], [n.outputs[0]], n.name)
