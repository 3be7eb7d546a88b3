"""ONNX converters for elementwise ops: activations, Identity/Dropout, Clip, Softmax, Add."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ModelFormatError
from .proto import FLT_MAX, Unsupported


class ElementwiseOps:
    """Converters `_op_<Op>(node)` of this family; mixed into the importer, whose
    helpers (act, const, weight, emit, attrs, ...) they call."""

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
            raise Unsupported(f"approximate={approx!r}; only the exact (erf) form "
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
                    raise Unsupported(f"training_mode=True with ratio={ratio:g} is random; "
                                       "only inference Dropout is supported")
        # In inference the ratio is irrelevant (even when it is a run-time input).
        self.emit("Dropout", [x], [self.only_output(node)], name=node.name)

    def _op_Clip(self, node: Any) -> None:
        x = self.act(node.input[0], node)
        a = self.attrs(node)
        if self.opset < 11:
            lo = float(a.get("min", -FLT_MAX))
            hi = float(a.get("max", FLT_MAX))
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
                raise Unsupported(f"axis={axis} on an input of unknown rank")
        else:
            axis = int(a.get("axis", 1))
            if r is None:
                raise Unsupported(f"opset-{self.opset} Softmax needs the input rank "
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
                raise Unsupported(
                    f"opset-{self.opset} Softmax with axis={axis} on a rank-{r} input "
                    f"{self._shape_str(x)} normalises over the flattened dims {axis}..{r - 1} "
                    "together; pyruntime's Softmax is single-axis (use opset >= 13 or "
                    "axis = last)")
        self.emit("Softmax", [x], [self.only_output(node)], {"axis": axis}, node.name)

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
                        raise Unsupported("legacy broadcast with axis needs the input rank")
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
                        raise Unsupported("legacy broadcast=1 with axis on a run-time B "
                                           "that is not aligned with A's trailing dims")
                ins.append(nm)
        self.emit("Add", ins, [self.only_output(node)], name=node.name)
