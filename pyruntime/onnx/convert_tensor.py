"""ONNX converters that move data: Flatten and Reshape (with the run-time batch size)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelFormatError
from .proto import BATCH, Unsupported


class TensorOps:
    """Converters `_op_<Op>(node)` of this family; mixed into the importer, whose
    helpers (act, const, weight, emit, attrs, ...) they call."""

    def _op_Flatten(self, node: Any) -> None:
        x = self.act(node.input[0], node)
        axis = int(self.attrs(node).get("axis", 1))
        r = self.rank(x)
        if axis < 0:
            if r is None:
                raise Unsupported(f"axis={axis} on an input of unknown rank")
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
            if BATCH in shape:
                xs = self.shapes.get(x)
                if shape.index(BATCH) != 0 or shape.count(BATCH) != 1 or xs is None \
                        or not xs or xs[0] is not None:
                    raise Unsupported(f"target shape {sname!r} uses the run-time batch size "
                                       "other than as dim 0 of a batched input")
                shape[0] = 0  # ONNX's "copy this dim from the input": the batch
        if int(a.get("allowzero", 0)) and 0 in shape:
            raise Unsupported(f"allowzero=1 with a 0 in the target {shape} (literal "
                               "zero-size dims) is not supported")
        if len(shape) != 2:
            raise Unsupported(f"target shape {shape} has rank {len(shape)}; pyruntime's "
                               "Reshape produces 2-D tensors only")
        if shape.count(-1) > 1 or any(v < -1 for v in shape):
            raise ModelFormatError(f"Reshape node {node.name!r}: invalid target shape {shape}")
        self.emit("Reshape", [x], [self.only_output(node)], {"shape": tuple(shape)}, node.name)
