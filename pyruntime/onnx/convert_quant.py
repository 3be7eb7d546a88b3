"""ONNX converters of quantized models: the QDQ form (QuantizeLinear -> DequantizeLinear
pairs, DequantizeLinear of int8 weights and int32 biases), the QOperator form
(QLinearConv, QLinearMatMul; com.microsoft QGemm, QLinearAdd, QLinearGlobalAveragePool,
QLinearAveragePool)
and quantize_dynamic's form (DynamicQuantizeLinear -> MatMulInteger/ConvInteger -> Cast
-> Mul -> Add).

The IR computes in float: a quantized activation is a `QDQ` node's output (the
dequantized values), an int8 weight is a `qc8` weight. ONNX's integer tensors are
therefore never materialized; the importer tracks them symbolically:

- `qpend[name]`: an integer tensor q = Q(src; scale, zero point, dtype) of the float
  tensor `src`. A DequantizeLinear with the same parameters reads it as QDQ(src); a
  QLinear* op reads it as QDQ(src) and produces a new pending one; Flatten, Reshape and
  MaxPool commute with per-tensor quantization and move it along. Anything else that
  reads it (a graph output, an unknown op) is refused: it would see integers.
- `qconsts[name]`: a constant dequantized from int8/uint8/int32 (its float value is in
  `consts` as well, so every float consumer works); Conv/Gemm/MatMul weights read it as
  qc8 where it is int8 with zero point 0 and no -128 (`qweight`).
- `dyn_*`: the values of a DynamicQuantizeLinear and the int32 product of a
  MatMulInteger/ConvInteger on them, until the Mul by x_scale * w_scale that ends the
  pattern emits the float Gemm/Conv with a qc8 weight (the runtime quantizes its input
  at run time).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..errors import ModelFormatError
from ..graph import Weight
from ..shapes import node_attrs, pool_extent
from .proto import Unsupported

#: TensorProto element types of the zero points we map (UINT8 = 2, INT8 = 3).
_QTYPES = {2: "uint8", 3: "int8"}
#: Ops that commute with per-tensor quantization: they move a pending Q along.
QPASS = ("Flatten", "Reshape", "MaxPool")
#: com.microsoft ops the importer maps (onnxruntime's quantize_static emits them).
MS_OPS = ("QLinearAdd", "QLinearGlobalAveragePool", "QLinearAveragePool", "QGemm")


@dataclasses.dataclass
class QTensor:
    """An ONNX integer tensor Q(src): src is the float tensor it quantizes."""
    src: str
    scale: float
    zero_point: int
    dtype: str
    mat: str | None = None      # a QDQ node's output holding the dequantized values


@dataclasses.dataclass
class QConst:
    """A constant DequantizeLinear(data, scale, zero_point) along `axis` (None: per
    tensor); `scale` and `zp` hold one value or one per index of `axis`."""
    data: np.ndarray
    scale: np.ndarray
    zp: np.ndarray
    axis: int | None


@dataclasses.dataclass
class DynAcc:
    """MatMulInteger/ConvInteger of a DynamicQuantizeLinear'd `src` by an int8 weight."""
    src: str
    node: Any                   # the MatMulInteger/ConvInteger node (for Conv's attrs)
    weight: np.ndarray          # int8 weight as stored in the file


class QuantOps:
    """Converters `_op_<Op>(node)` of quantized ONNX; mixed into the importer."""

    def _quant_init(self) -> None:
        self.qpend: dict[str, QTensor] = {}
        self.qconsts: dict[str, QConst] = {}
        self.dyn_q: dict[str, str] = {}        # DynamicQuantizeLinear y -> float src
        self.dyn_scale: dict[str, str] = {}    # its y_scale -> src
        self.dyn_zp: dict[str, str] = {}       # its y_zero_point -> src
        self.dyn_acc: dict[str, DynAcc] = {}   # integer product (and its Cast)
        self.dyn_prod: dict[str, tuple[str, np.ndarray]] = {}  # x_scale * w_scale
        self.dyn_bad: set[str] = set()         # products of a refused node (reported once)

    def integer_reason(self, name: str) -> str | None:
        """Why a float consumer cannot read `name` (an integer tensor), or None."""
        if name in self.qpend:
            return (f"{name!r} is a quantized (integer) tensor; pyruntime computes in float "
                    "and reads it only through a DequantizeLinear with the same scale and "
                    "zero point, or a QLinear* op")
        if name in self.dyn_q or name in self.dyn_zp or name in self.dyn_acc:
            return (f"{name!r} is an integer tensor of a DynamicQuantizeLinear pattern; only "
                    "quantize_dynamic's form (MatMulInteger/ConvInteger -> Cast -> Mul by "
                    "x_scale * w_scale) is supported")
        if name in self.dyn_scale or name in self.dyn_prod:
            return (f"{name!r} is a run-time scale of a DynamicQuantizeLinear; it is only "
                    "read by quantize_dynamic's Mul pattern")
        return None

    # ------------------------------------------------------- parameters
    def _scale(self, node: Any, name: str, what: str) -> np.ndarray:
        """A constant scale: float, finite and > 0 everywhere, as float32."""
        s = self.const(name, what)
        if not np.issubdtype(s.dtype, np.floating):
            raise ModelFormatError(f"{node.op_type} node {node.name!r}: {what} {name!r} has "
                                   f"dtype {s.dtype}; expected float")
        s32 = s.astype(np.float32)
        if s32.size == 0 or not np.all(np.isfinite(s32)) or not np.all(s32 > 0):
            raise ModelFormatError(f"{node.op_type} node {node.name!r}: {what} {name!r} must "
                                   f"be finite and > 0, got {s.reshape(-1)[:8].tolist()}")
        return s32

    def _zero_point(self, node: Any, name: str, what: str, default: str = "uint8"
                    ) -> tuple[np.ndarray, str]:
        """A constant zero point and its dtype (uint8 or int8; absent: `default`'s 0)."""
        if not name:
            return np.zeros((), dtype=default), default
        z = self.const(name, what)
        if z.dtype == np.uint8 or z.dtype == np.int8:
            return z, str(z.dtype)
        if z.dtype in (np.float16, np.float32, np.float64):
            raise ModelFormatError(f"{node.op_type} node {node.name!r}: {what} {name!r} has "
                                   f"dtype {z.dtype}; expected an integer type")
        raise Unsupported(f"{what} {name!r} has dtype {z.dtype}; only uint8 and int8 "
                          "quantization is supported")

    def _tensor_params(self, node: Any, s_name: str, z_name: str, what: str,
                       default: str = "uint8") -> tuple[float, int, str]:
        """Per-tensor (scale, zero point, dtype) of an activation."""
        s = self._scale(node, s_name, f"{what} scale")
        z, dt = self._zero_point(node, z_name, f"{what} zero point", default)
        if s.size != 1:
            raise Unsupported(f"{what} scale {s_name!r} has shape {list(s.shape)}; only "
                              "per-tensor quantization of activations is supported")
        if z.size != 1:
            raise ModelFormatError(f"{node.op_type} node {node.name!r}: {what} zero point "
                                   f"{z_name!r} has shape {list(z.shape)} but the scale is "
                                   "one value")
        return float(s.reshape(-1)[0]), int(z.reshape(-1)[0]), dt

    def _qattrs(self, node: Any) -> tuple[int, str | None]:
        """(axis, output dtype or None) of a QuantizeLinear/DequantizeLinear; refuses what
        the IR cannot represent (blocked quantization, non-saturating float8)."""
        a = self.attrs(node)
        if int(a.get("block_size", 0)):
            raise Unsupported(f"block_size={a['block_size']} (blocked quantization) is not "
                              "supported; only per-tensor / per-axis")
        if int(a.get("saturate", 1)) != 1:
            raise Unsupported("saturate=0 (float8 without saturation) is not supported; "
                              "only uint8/int8")
        out = None
        if "output_dtype" in a and int(a["output_dtype"]) != 0:
            t = int(a["output_dtype"])
            if node.op_type == "DequantizeLinear":
                if t != self.onnx.TensorProto.FLOAT:
                    raise Unsupported(f"output_dtype {t}: only float32 outputs")
            elif t not in _QTYPES:
                raise Unsupported(f"output_dtype {t}: only uint8 (2) and int8 (3) "
                                  "quantization is supported")
            else:
                out = _QTYPES[t]
        return int(a.get("axis", 1)), out

    def _dequantize(self, node: Any, data: np.ndarray, s_name: str, z_name: str,
                    axis: int, what: str) -> tuple[np.ndarray, QConst]:
        """(float32 values, QConst) of a constant (data - zp) * scale, per tensor or along
        `axis`; every shape, dtype and value is checked."""
        if data.dtype not in (np.int8, np.uint8, np.int32):
            raise Unsupported(f"{what} has dtype {data.dtype}; only int8, uint8 and int32 "
                              "constants are dequantized")
        s = self._scale(node, s_name, f"{what} scale")
        if z_name:
            z = self.const(z_name, f"{what} zero point")
            if z.dtype != data.dtype:
                raise ModelFormatError(f"{node.op_type} node {node.name!r}: {what} zero point "
                                       f"{z_name!r} has dtype {z.dtype}, the data {data.dtype} "
                                       "(ONNX: they must match)")
            if z.shape != s.shape and not (z.size == 1 and s.size == 1):
                raise ModelFormatError(f"{node.op_type} node {node.name!r}: {what} zero point "
                                       f"shape {list(z.shape)} differs from the scale's "
                                       f"{list(s.shape)}")
        else:
            z = np.zeros(s.shape, dtype=data.dtype)
        r = data.ndim
        if s.size == 1 and s.ndim <= 1:
            ax = None
            shape = ()
        else:
            if not -r <= axis < r:
                raise ModelFormatError(f"{node.op_type} node {node.name!r}: axis {axis} is out "
                                       f"of range for {what} of rank {r}")
            ax = axis % r
            if s.ndim != 1 or s.shape[0] != data.shape[ax]:
                raise ModelFormatError(f"{node.op_type} node {node.name!r}: {what} scale "
                                       f"{s_name!r} has shape {list(s.shape)}; expected a "
                                       f"scalar or [{data.shape[ax]}] (dim {ax} of "
                                       f"{list(data.shape)})")
            shape = tuple(-1 if i == ax else 1 for i in range(r))
        sv = s.reshape(-1) if ax is not None else s.reshape(())
        zv = z.reshape(-1) if ax is not None else z.reshape(())
        # (q - zp) is exact in float64 and its product with a float32 scale too (< 53
        # bits); one rounding to float32 is ONNX's float32 result.
        f = ((data.astype(np.float64) - zv.astype(np.float64).reshape(shape or ()))
             * sv.astype(np.float64).reshape(shape or ())).astype(np.float32)
        return f, QConst(data, sv, zv, ax)

    # -------------------------------------------------------- weights
    def qweight(self, src: str, op: str, trans: bool = False) -> str | None:
        """A qc8 weight for Conv (W [O, I, KH, KW]) or Gemm (W [K, N]; `trans`: the file
        holds [N, K]) from a dequantized constant, or None when it is not int8 with zero
        point 0 in [-127, 127]: such weights (uint8, a nonzero zero point, -128 values)
        stay the float32 dequantized values the caller registers (exact, but dense)."""
        qc = self.qconsts.get(src)
        if qc is None or qc.data.dtype != np.int8 or np.any(qc.zp != 0) or (
                qc.data.size and int(qc.data.min()) < -127):
            return None
        key = (src, "qc8T" if trans else "qc8")
        if key in self._weight_cache:
            return self._weight_cache[key]
        data = qc.data.T if trans else qc.data
        out_axis = 0 if op == "Conv" else 1
        if qc.axis is None:
            axis = out_axis
            scale = np.full(data.shape[axis], qc.scale.reshape(()), np.float32)
        else:
            # a per-axis scale along another axis stays there: qc8 is valid along any
            # axis (same dense view), backends without such a kernel use that view
            axis = (data.ndim - 1 - qc.axis) if trans else qc.axis
            scale = qc.scale.astype(np.float32)
        name = src if not trans else self.fresh(f"{src}_kn")
        self.weights[name] = Weight("qc8", {"data": np.ascontiguousarray(data),
                                            "scale": np.ascontiguousarray(scale)},
                                    attrs={"axis": int(axis)})
        self._weight_cache[key] = name
        self.names.add(name)
        return name

    def _const_weight(self, base: str, data: np.ndarray, qc: QConst | None) -> str:
        """A fresh constant name holding `data` (and its QConst) for a synthetic node."""
        name = self.fresh(base)
        self.consts[name] = data
        if qc is not None:
            self.qconsts[name] = qc
        return name

    def _synthetic(self, node: Any, op: str, inputs: list[str], outputs: list[str],
                   drop_attrs: tuple[str, ...] = ()) -> Any:
        """A copy of `node` as another op (same name and attributes) on other tensors."""
        n = self.onnx.NodeProto()
        n.CopyFrom(node)
        n.op_type, n.domain = op, ""
        del n.input[:]
        n.input.extend(inputs)
        del n.output[:]
        n.output.extend(outputs)
        keep = [a for a in n.attribute if a.name not in drop_attrs]
        del n.attribute[:]
        n.attribute.extend(keep)
        return n

    # ------------------------------------------------------ QDQ form
    def dq_const(self, node: Any) -> None:
        """DequantizeLinear of constants: the float values, remembered as a QConst."""
        axis, _ = self._qattrs(node)
        x = self.const(node.input[0], "x")
        if len(node.input) < 2 or not node.input[1]:
            raise ModelFormatError(f"DequantizeLinear node {node.name!r} has no x_scale")
        f, qc = self._dequantize(node, x, node.input[1], self.inp(node, 2), axis,
                                 f"x {node.input[0]!r}")
        out = self.only_output(node)
        self.consts[out] = f
        self.qconsts[out] = qc

    def _op_QuantizeLinear(self, node: Any) -> None:
        _, out_dt = self._qattrs(node)
        x = self.act(node.input[0], node, "x")
        if len(node.input) < 2 or not node.input[1]:
            raise ModelFormatError(f"QuantizeLinear node {node.name!r} has no y_scale")
        s, z, dt = self._tensor_params(node, node.input[1], self.inp(node, 2), "y",
                                       out_dt or "uint8")
        if out_dt is not None and out_dt != dt:
            raise ModelFormatError(f"QuantizeLinear node {node.name!r}: output_dtype "
                                   f"{out_dt} but the zero point is {dt}")
        self._pend(self.only_output(node), x, s, z, dt)

    def _pend(self, name: str, src: str, s: float, z: int, dt: str) -> None:
        from ..shapes import QDQ_RANGE  # noqa: PLC0415
        lo, hi = QDQ_RANGE[dt]
        if not lo <= z <= hi:  # unreachable from a typed array; kept as the IR's rule
            raise ModelFormatError(f"zero point {z} outside [{lo}, {hi}] for {dt}")
        self.qpend[name] = QTensor(src, s, z, dt)
        if src in self.shapes and name not in self.shapes:
            self.shapes[name] = self.shapes[src]
        elif name in self.shapes and src not in self.shapes:
            self.shapes[src] = self.shapes[name]

    def _read_q(self, node: Any, name: str, s_name: str, z_name: str, what: str) -> str:
        """The float (QDQ) value of a pending integer tensor read with (s, z): a fresh
        QDQ node's output, shared by the QLinear* readers."""
        q = self.qpend.get(name)
        if q is None:
            raise Unsupported(f"{what} {name!r} is not the output of a QuantizeLinear or "
                              "QLinear* op (integer graph inputs and integer arithmetic "
                              "outside them are not supported)")
        s, z, dt = self._tensor_params(node, s_name, z_name, what, q.dtype)
        self._same_params(node, name, q, s, z, dt)
        if q.mat is None:
            q.mat = self.fresh(f"{name}_dq")
            self._emit_qdq(q, q.mat)
        return q.mat

    def _same_params(self, node: Any, name: str, q: QTensor, s: float, z: int,
                     dt: str) -> None:
        if (np.float32(s), z, dt) != (np.float32(q.scale), q.zero_point, q.dtype):
            raise Unsupported(f"{name!r} was quantized with scale {q.scale:g}, zero point "
                              f"{q.zero_point} ({q.dtype}) but is read with scale {s:g}, "
                              f"zero point {z} ({dt}); requantization between them is not "
                              "supported")

    def _emit_qdq(self, q: QTensor, out: str) -> None:
        self.emit("QDQ", [q.src], [out], {"scale": q.scale, "zero_point": q.zero_point,
                                          "dtype": q.dtype})
        if q.src in self.shapes:
            self.shapes.setdefault(out, self.shapes[q.src])

    def _op_DequantizeLinear(self, node: Any) -> None:
        axis, _ = self._qattrs(node)
        x = node.input[0]
        q = self.qpend.get(x)
        if q is None:
            raise Unsupported(f"DequantizeLinear of {x!r}, which is neither a constant nor "
                              "the output of a QuantizeLinear (an integer input or a "
                              "standalone DequantizeLinear has no float form)")
        if len(node.input) < 2 or not node.input[1]:
            raise ModelFormatError(f"DequantizeLinear node {node.name!r} has no x_scale")
        s, z, dt = self._tensor_params(node, node.input[1], self.inp(node, 2), "x", q.dtype)
        self._same_params(node, x, q, s, z, dt)
        self._emit_qdq(q, self.only_output(node))

    def qpass(self, node: Any, fn: Any) -> None:
        """Flatten/Reshape/MaxPool of a pending integer tensor: the op on its float
        source, quantized as before (the op commutes with a per-tensor Q)."""
        q = self.qpend[node.input[0]]
        out = self.only_output(node)
        f = self.fresh(f"{out}_f")
        fn(self._synthetic(node, node.op_type, [q.src, *node.input[1:]], [f]))
        s = self.shapes.get(out)
        xs = self.shapes.get(q.src)
        if s is None and node.op_type == "Flatten" and xs is not None and \
                all(d is not None for d in xs[1:]):
            ax = int(self.attrs(node).get("axis", 1)) % max(len(xs), 1)
            if ax == 1:
                s = (xs[0], int(np.prod(xs[1:])))
        if s is not None:
            self.shapes[f] = s
        self._pend(out, f, q.scale, q.zero_point, q.dtype)

    # ------------------------------------------------ QOperator form
    def _qlinear_weight(self, node: Any, w_name: str, s_name: str, z_name: str,
                        axis: int) -> str:
        w = self.const(w_name, "weight")
        f, qc = self._dequantize(node, w, s_name, z_name, axis, f"weight {w_name!r}")
        return self._const_weight(f"{w_name}_w", f, qc)

    def _qlinear_bias(self, node: Any, b_name: str, x_scale: float, w_scale: np.ndarray,
                      n: int) -> str:
        """int32 bias quantized with scale x_scale * w_scale, zero point 0, as float."""
        b = self.const(b_name, "bias")
        if b.dtype != np.int32:
            raise ModelFormatError(f"{node.op_type} node {node.name!r}: bias {b_name!r} has "
                                   f"dtype {b.dtype}; expected int32")
        if b.shape != (n,):
            raise ModelFormatError(f"{node.op_type} node {node.name!r}: bias {b_name!r} has "
                                   f"shape {list(b.shape)}; expected [{n}]")
        f = (b.astype(np.float64) * (np.float64(x_scale) *
                                     w_scale.astype(np.float64).reshape(-1))).astype(np.float32)
        return self._const_weight(f"{b_name}_f", f, None)

    def _out_q(self, node: Any, f: str, s_i: int, z_i: int, default: str) -> None:
        s, z, dt = self._tensor_params(node, self.inp(node, s_i), self.inp(node, z_i), "y",
                                       default)
        self._pend(self.only_output(node), f, s, z, dt)

    def _op_QLinearConv(self, node: Any) -> None:
        if len(node.input) < 8:
            raise ModelFormatError(f"QLinearConv node {node.name!r} needs 8 or 9 inputs, has "
                                   f"{len(node.input)}")
        x = self._read_q(node, node.input[0], node.input[1], node.input[2], "x")
        xs = float(self._scale(node, node.input[1], "x scale").reshape(-1)[0])
        w = self._qlinear_weight(node, node.input[3], node.input[4], node.input[5], 0)
        ins = [x, w]
        if self.inp(node, 8):
            o = self.consts[w].shape[0]
            ws = self._scale(node, node.input[4], "w scale")
            ins.append(self._qlinear_bias(node, node.input[8], xs, ws, o))
        f = self.fresh(f"{self.only_output(node)}_f")
        self._op_Conv(self._synthetic(node, "Conv", ins, [f]))
        self._out_q(node, f, 6, 7, self.qpend[node.input[0]].dtype)

    def _op_QLinearMatMul(self, node: Any) -> None:
        if len(node.input) != 8:
            raise ModelFormatError(f"QLinearMatMul node {node.name!r} needs 8 inputs, has "
                                   f"{len(node.input)}")
        a = self._read_q(node, node.input[0], node.input[1], node.input[2], "a")
        b = self._qlinear_weight(node, node.input[3], node.input[4], node.input[5], -1)
        f = self.fresh(f"{self.only_output(node)}_f")
        self._op_MatMul(self._synthetic(node, "MatMul", [a, b], [f]))
        self._out_q(node, f, 6, 7, self.qpend[node.input[0]].dtype)

    def _op_QGemm(self, node: Any) -> None:
        """com.microsoft QGemm: A, a_scale, a_zp, B, b_scale, b_zp, C (int32), y_scale,
        y_zp (absent: float output)."""
        if len(node.input) < 6:
            raise ModelFormatError(f"QGemm node {node.name!r} needs at least 6 inputs")
        at = self.attrs(node)
        if float(at.get("alpha", 1.0)) != 1.0:
            raise Unsupported(f"alpha={at['alpha']}; only alpha=1")
        a = self._read_q(node, node.input[0], node.input[1], node.input[2], "a")
        trans_b = int(at.get("transB", 0))
        b = self._qlinear_weight(node, node.input[3], node.input[4], node.input[5],
                                 0 if trans_b else 1)
        ins = [a, b]
        if self.inp(node, 6):
            n = self.consts[b].shape[0 if trans_b else 1]
            xs = float(self._scale(node, node.input[1], "a scale").reshape(-1)[0])
            bs = self._scale(node, node.input[4], "b scale")
            ins.append(self._qlinear_bias(node, node.input[6], xs, bs, n))
        if self.inp(node, 7):
            f = self.fresh(f"{self.only_output(node)}_f")
            self._op_Gemm(self._synthetic(node, "Gemm", ins, [f]))
            self._out_q(node, f, 7, 8, self.qpend[node.input[0]].dtype)
        else:
            self._op_Gemm(self._synthetic(node, "Gemm", ins, [self.only_output(node)]))

    def _op_QLinearAdd(self, node: Any) -> None:
        """com.microsoft QLinearAdd: A, As, Azp, B, Bs, Bzp, Cs, Czp."""
        if len(node.input) < 7:
            raise ModelFormatError(f"QLinearAdd node {node.name!r} needs 7 or 8 inputs")
        a, b = (self._q_operand(node, node.input[i], node.input[i + 1], node.input[i + 2],
                                what) for i, what in ((0, "A"), (3, "B")))
        if a in self.weights and b in self.weights:
            raise Unsupported("both operands are constants")
        f = self.fresh(f"{self.only_output(node)}_f")
        # onnx's shape inference stops at com.microsoft ops: carry the run-time operand's
        run = [x for x in (a, b) if x not in self.weights and x in self.shapes]
        if run and self.only_output(node) not in self.shapes:
            self.shapes[f] = max((self.shapes[x] for x in run), key=len)
        self.emit("Add", [a, b], [f], name=node.name)
        q = self.qpend.get(node.input[0]) or self.qpend[node.input[3]]
        self._out_q(node, f, 6, 7, q.dtype)

    def _q_operand(self, node: Any, name: str, s_name: str, z_name: str, what: str) -> str:
        """A pending integer tensor's QDQ value, or a constant's dequantized weight
        (quantize_static's QLinearAdd of a MatMul and its uint8-quantized bias)."""
        if name not in self.consts:
            return self._read_q(node, name, s_name, z_name, what)
        if self.qpend.get(name) is None and s_name in self.consts and \
                self.const(s_name, f"{what} scale").size != 1:
            raise Unsupported(f"{what} {name!r}: only a per-tensor scale")
        f, _ = self._dequantize(node, self.const(name, what), s_name, z_name, 1,
                                f"{what} {name!r}")
        return self.weight(self._const_weight(f"{name}_f", f, None), f)

    def _qlinear_pool(self, node: Any, op: str, hw: Any) -> None:
        """com.microsoft QLinear<op>: X, x_scale, x_zp, y_scale, y_zp; `op` on QDQ(X),
        quantized to y. onnx's shape inference stops at these ops: the output's shape is
        carried from X's (`hw`: its spatial size and the IR node -> the output's, or
        None where unknown)."""
        if int(self.attrs(node).get("channels_last", 0)):
            raise Unsupported("channels_last=1 (NHWC input) is not supported")
        if len(node.input) < 4:
            raise ModelFormatError(f"{node.op_type} node {node.name!r} needs 4 or 5 inputs")
        x = self._read_q(node, node.input[0], node.input[1], node.input[2], "X")
        f = self.fresh(f"{self.only_output(node)}_f")
        getattr(self, f"_op_{op}")(self._synthetic(node, op, [x], [f], ("channels_last",)))
        xs = self.shapes.get(x)
        if xs is not None and len(xs) == 4 and self.only_output(node) not in self.shapes:
            out = hw(xs[2], xs[3], self.nodes[-1])
            if out is not None:
                self.shapes[f] = (xs[0], xs[1], *out)
        self._out_q(node, f, 3, 4, self.qpend[node.input[0]].dtype)

    def _op_QLinearGlobalAveragePool(self, node: Any) -> None:
        self._qlinear_pool(node, "GlobalAveragePool", lambda h, w, n: (1, 1))

    def _op_QLinearAveragePool(self, node: Any) -> None:
        self._qlinear_pool(node, "AveragePool", lambda h, w, n: None if None in (h, w)
                           else pool_extent(h, w, node_attrs(n))[:2])

    # ---------------------------------------------------- dynamic form
    def _op_DynamicQuantizeLinear(self, node: Any) -> None:
        x = self.act(node.input[0], node, "x")
        outs = list(node.output) + ["", "", ""]
        for name, table in zip(outs[:3], (self.dyn_q, self.dyn_scale, self.dyn_zp)):
            if name:
                table[name] = x

    def _dyn_integer(self, node: Any, what: str) -> None:
        try:
            self._dyn_integer_checked(node, what)
        except Unsupported:
            self.dyn_bad.add(self.only_output(node))
            raise

    def _dyn_integer_checked(self, node: Any, what: str) -> None:
        a, w = node.input[0], node.input[1]
        src = self.dyn_q.get(a)
        if src is None:
            raise Unsupported(f"{what} input {a!r} is not a DynamicQuantizeLinear output "
                              "(only quantize_dynamic's form is supported)")
        za = self.inp(node, 2)
        if self.dyn_zp.get(za) != src:
            raise Unsupported(f"{what} zero point {za!r} is not the DynamicQuantizeLinear "
                              f"zero point of {a!r}")
        wq = self.const(w, "weight")
        if wq.dtype != np.int8:
            raise Unsupported(f"weight {w!r} has dtype {wq.dtype}; only int8 weights with "
                              "zero point 0 map onto qc8 (quantize_dynamic weight_type=QInt8)")
        zw = self.inp(node, 3)
        if zw:
            z = self.const(zw, "weight zero point")
            if z.dtype != np.int8:
                raise ModelFormatError(f"{node.op_type} node {node.name!r}: weight zero point "
                                       f"{zw!r} has dtype {z.dtype}, the weight int8")
            if np.any(z != 0):
                raise Unsupported(f"weight zero point {zw!r} is nonzero; only symmetric int8 "
                                  "weights (zero point 0) map onto qc8")
        if wq.size and int(wq.min()) < -127:
            raise Unsupported(f"weight {w!r} holds -128; qc8 is symmetric [-127, 127]")
        self.dyn_acc[self.only_output(node)] = DynAcc(src, node, wq)

    def _op_MatMulInteger(self, node: Any) -> None:
        self._dyn_integer(node, "MatMulInteger")

    def _op_ConvInteger(self, node: Any) -> None:
        self._dyn_integer(node, "ConvInteger")

    def _op_Cast(self, node: Any) -> None:
        x = node.input[0]
        to = int(self.attrs(node).get("to", 0))
        if x in self.dyn_bad:
            self.dyn_bad.add(self.only_output(node))
            return   # its producer is reported
        if x in self.dyn_acc and to == self.onnx.TensorProto.FLOAT:
            self.dyn_acc[self.only_output(node)] = self.dyn_acc[x]
            return
        raise Unsupported("Cast is supported only on constants and as the int32 -> float "
                          "Cast of quantize_dynamic's MatMulInteger/ConvInteger")

    def _op_Mul(self, node: Any) -> None:
        """x_scale * w_scale, then (int product as float) * that: the float op."""
        a, b = node.input[0], node.input[1]
        out = self.only_output(node)
        for p, c in ((a, b), (b, a)):
            if p in self.dyn_scale and c in self.consts:
                self.dyn_prod[out] = (self.dyn_scale[p], self._scale(node, c, "w scale"))
                return
        if a in self.dyn_bad or b in self.dyn_bad:
            self.dyn_bad.add(out)
            return   # its producer is reported
        for p, c in ((a, b), (b, a)):
            if p in self.dyn_acc and c in self.dyn_prod:
                acc = self.dyn_acc[p]
                src, ws = self.dyn_prod[c]
                if src != acc.src:
                    raise Unsupported(f"{c!r} scales {src!r}, but {p!r} is the product of "
                                      f"{acc.src!r}")
                self._dyn_emit(node, acc, ws, out)
                return
        raise Unsupported("Mul is supported only in quantize_dynamic's pattern (x_scale * "
                          "w_scale, and the int32 product times it)")

    def _dyn_emit(self, node: Any, acc: DynAcc, ws: np.ndarray, out: str) -> None:
        w = acc.weight
        conv = acc.node.op_type == "ConvInteger"
        n_out = w.shape[0] if conv else (w.shape[-1] if w.ndim else 0)
        if ws.size == 1:
            axis, sv = None, ws.reshape(())
        elif (not conv and w.ndim == 2 and ws.shape in ((n_out,), (1, n_out))) or \
                (conv and ws.shape in ((n_out, 1, 1), (1, n_out, 1, 1))):
            axis, sv = (0 if conv else 1), ws.reshape(-1)
        else:
            raise Unsupported(f"the weight scale of shape {list(ws.shape)} does not scale "
                              f"the output channels of a weight {list(w.shape)}")
        shape = tuple(-1 if i == axis else 1 for i in range(w.ndim)) if axis is not None \
            else ()
        f = (w.astype(np.float64) * sv.astype(np.float64).reshape(shape)).astype(np.float32)
        qc = QConst(w, sv.astype(np.float32), np.zeros(sv.shape, np.int8), axis)
        wname = self._const_weight(f"{acc.node.input[1]}_w", f, qc)
        op = "Conv" if conv else "MatMul"
        syn = self._synthetic(acc.node, op, [acc.src, wname], [out])
        if conv:
            self._op_Conv(syn)
        else:
            self._op_MatMul(syn)
