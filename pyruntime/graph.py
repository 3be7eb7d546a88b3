"""The graph IR: the one model representation every transform and backend shares.

A Graph has named inputs (with shapes; `None` in the first dimension is the symbolic
batch), named outputs, nodes in topological order, and weights. Activations use the
source model's layout at the public boundary (NCHW for images, like ONNX); backends
choose their own internal layout.

Ops (ONNX-like names; the ONNX importer canonicalises to exactly these forms):

  Conv(X, W, [B], [R])   W: [O, I/group, KH, KW]; attrs strides=(sh, sw),
                         pads=(top, left, bottom, right), dilations=(dh, dw), group.
                         group == 1, or group == I == O (depthwise, multiplier 1).
  Gemm(X, W, [B], [R])   Y = X @ W + B with W stored [K, N] (already transposed), X 2-D.
  BatchNormalization(X, scale, B, mean, var)   attrs epsilon; inference form.
  Relu(X) | Sigmoid(X) | Tanh(X) | Gelu(X) | Clip(X) attrs min, max (floats, may be
        -inf/inf) | Softmax(X) attrs axis (default -1)
  MaxPool(X) / AveragePool(X)   attrs kernel_shape=(kh, kw), strides, pads (4),
                         dilations=(dh, dw), count_include_pad (AveragePool), 0/1;
                         ceil_mode 0/1 (default 0; ONNX rule: a window must start
                         inside the input or the top/left padding). AveragePool's
                         count_include_pad counts the dilated taps inside the padded
                         input.
  GlobalAveragePool(X)   [N, C, H, W] -> [N, C, 1, 1]
  Add(A, B)              numpy broadcasting; either side may be a weight.
  Flatten(X)             attrs axis (default 1): [N, ...] -> [N, prod(...)] in NCHW order.
  Reshape(X)             attrs shape: a 2-D target like (0, -1) or (-1, 256); ONNX 0/-1 rules.
  Transpose(X)           attrs perm (default (1, 0)): X 2-D, Y[i, j] = X[j, i]. The symbolic
                         batch must stay the first dim, so X has a fixed first dim (the
                         ONNX importer spells Gemm transA=1 as Transpose + Gemm).
  Identity(X) | Dropout(X)   inference no-ops.

Fused epilogue attrs (set by passes on Conv and Gemm):
  activation: "relu" | "clip" | "sigmoid" | "tanh" | "gelu" (absent = none);
  act_min, act_max: floats for "clip";
  residual: True when the 4th input R is added; residual_after_act: True when R is
  added after the activation (default: before, as in ResNet's relu(conv + x)).
An input name "" means "absent" (e.g. Conv without bias but with a residual).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Shape = tuple  # tuple[int | None, ...]; None only as a symbolic batch dimension


class Weight:
    """A stored tensor: a format name, named numpy arrays, its logical shape and the
    format's attributes. `pyruntime.formats` is the registry that checks each format and
    gives its logical shape, storage bytes and dense float32 view (`numpy()`); see its
    docstring for the formats (f32 f16 bf16 qc8 csr bsr), the output-channel axis and
    the rules. New formats add a registry entry, never new paths through the IR, its
    passes or the file format.

    `shape` is the logical shape: None lets the format derive it from its arrays (dense
    formats, qc8); csr and bsr need it. Construction does not check anything (a weight
    may be built up piece by piece); graph validation and `rt.load` do.
    """

    def __init__(self, format: str, arrays: dict[str, np.ndarray], shape: Any = None,
                 attrs: dict[str, Any] | None = None) -> None:
        self.format = format
        self.arrays = arrays
        try:
            self._shape = None if shape is None else tuple(shape)
        except TypeError:
            self._shape = shape   # formats.check reports it
        self.attrs = {} if attrs is None else attrs

    # ------------------------------------------------------------ constructors
    @staticmethod
    def f32(data: Any) -> "Weight":
        """Dense float32."""
        return Weight("f32", {"data": np.ascontiguousarray(data, dtype=np.float32)})

    @staticmethod
    def f16(data: Any) -> "Weight":
        """Dense float16, rounded to nearest even (a finite value past +-65504 raises)."""
        from .formats import encode_f16
        return encode_f16(data)

    @staticmethod
    def bf16(data: Any) -> "Weight":
        """Dense bfloat16 (stored as uint16 bits), rounded to nearest even from float32."""
        from .formats import encode_bf16
        return encode_bf16(data)

    @staticmethod
    def qc8(data: Any, axis: int | None = None) -> "Weight":
        """int8, symmetric, one float32 scale per output channel `axis` (default: 1 for a
        2-D Gemm weight [K, N], 0 for a 4-D Conv weight [O, I, KH, KW])."""
        from .formats import encode_qc8
        return encode_qc8(data, axis)

    @staticmethod
    def csr(data: Any, *, axis: int | None = None, shape: Any = None, dtype: Any = np.float32,
            index_dtype: Any = None) -> "Weight":
        """Compressed sparse rows of a dense array's nonzeros, or of given parts
        (values, indices, indptr[, scale]) with `shape`. Rows are output channels (`axis`,
        default as for qc8); `dtype` float32 or int8 (quantized per output channel);
        `index_dtype` int32 or uint16 (default: uint16 when the columns fit)."""
        from .formats import encode_csr
        return encode_csr(data, axis, shape, dtype, index_dtype)

    @staticmethod
    def bsr(data: Any, block: Any, *, axis: int | None = None, shape: Any = None,
            dtype: Any = np.float32, index_dtype: Any = None) -> "Weight":
        """Block sparse rows: blocks of `block` = (output channels, inputs), stored whole
        when any entry is nonzero; the block must divide the matrix. Other arguments as
        for csr."""
        from .formats import encode_bsr
        return encode_bsr(data, block, axis, shape, dtype, index_dtype)

    # ------------------------------------------------------------ facts
    @property
    def shape(self) -> tuple[int, ...]:
        """The logical shape (the dense view's)."""
        from .formats import logical_shape
        return logical_shape(self)

    @property
    def nbytes(self) -> int:
        """Storage bytes of the arrays."""
        from .formats import storage_bytes
        return storage_bytes(self)

    def numpy(self) -> np.ndarray:
        """The weight as a dense float32 array of its logical shape (checked first; the
        stored array itself for f32, a new array for other formats)."""
        from .formats import dense_f32
        return dense_f32(self)

    def copy(self) -> "Weight":
        """A Weight with copies of the arrays (and the same shape and attributes)."""
        return Weight(self.format, {k: np.array(v, copy=True) for k, v in self.arrays.items()},
                      self._shape, dict(self.attrs))

    def __repr__(self) -> str:
        from .formats import describe
        return f"Weight({describe(self)})"


@dataclass
class ValueInfo:
    name: str
    shape: Shape
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))


@dataclass
class Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def copy(self) -> "Node":
        return dataclasses.replace(self, inputs=list(self.inputs), outputs=list(self.outputs),
                                   attrs=dict(self.attrs))


@dataclass
class Graph:
    """Named inputs/outputs, topologically ordered nodes and weights."""

    inputs: list[ValueInfo]
    outputs: list[str]
    nodes: list[Node]
    weights: dict[str, Weight] = field(default_factory=dict)
    name: str = "graph"

    def __repr__(self) -> str:
        ins = ", ".join(f"{v.name}{tuple(v.shape)}" for v in self.inputs)
        return (f"Graph({self.name!r}, inputs=[{ins}], outputs={self.outputs}, "
                f"nodes={len(self.nodes)}, weights={len(self.weights)})")

    def validate(self) -> None:
        """Raise a typed error (GraphError, UnsupportedOpError, ShapeError) if malformed."""
        from .shapes import validate
        validate(self)

    def infer_shapes(self) -> dict[str, tuple]:
        """Shapes of every input and node output; None = symbolic batch."""
        from .shapes import infer_shapes
        return infer_shapes(self)

    def summary(self) -> str:
        """One line per input, node, output and weight (format, logical shape, storage
        bytes), with value shapes when they can be inferred."""
        try:
            shapes = self.infer_shapes()
        except Exception:  # noqa: BLE001 - a summary of a broken graph is still useful
            shapes = {}
        lines = [f"Graph {self.name!r}: {len(self.nodes)} nodes, {len(self.weights)} weights"]
        lines += [f"  input  {v.name}: {tuple(v.shape)}" for v in self.inputs]
        for n in self.nodes:
            attrs = ", ".join(f"{k}={v}" for k, v in n.attrs.items())
            outs = ", ".join(f"{o}{shapes.get(o, '')}" for o in n.outputs)
            lines.append(f"  {n.op:<18} {n.name or '':<12} ({', '.join(n.inputs)}) -> {outs}"
                         + (f"  [{attrs}]" if attrs else ""))
        lines += [f"  output {o}" for o in self.outputs]
        if self.weights:
            from .formats import describe
            total = 0
            for k, w in self.weights.items():
                lines.append(f"  weight {k}: {describe(w)}")
                total += w.nbytes if isinstance(w, Weight) else 0
            lines.append(f"  weights: {total:,} bytes stored")
        return "\n".join(lines)


def fresh_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_1`, `base_2`, ... : the first not in `taken`, which it joins."""
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name
