"""Lower an optimized, shape-inferred Graph onto a native `_core.Plan` (CPU, fp32).

Runs once per compile. The kernels are float32 only for now: every weight, whatever its
format (pyruntime.formats), is compiled through its dense float32 view, so an f16, bf16,
qc8 or sparse weight runs exactly as its dense view would (and takes float32 memory in
the plan); `Session.plan_summary()` names each step's stored weight format beside the
format its kernel computed in. Kernels for the compressed formats come in a later step.

Activations inside the plan are NHWC per sample for 4-D values (public NCHW
[N, C, H, W] is stored as [N, H, W, C]) and row-major otherwise; this module
inserts the layout transposes at the boundary and where a 4-D value is flattened or
reshaped, and decides every other layout question, so the C++ side only sees sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _core
from ..errors import GraphError, UnsupportedOpError
from ..graph import Graph, Node
from ..shapes import ACTIVATION_OPS, consumers, node_attrs, node_label
from .fused_blocks import InvertedResidual, find_inverted_residuals

# The most channels a planar (NCHW) graph input may have for a QDQ to quantize it
# straight into uint8 NHWC pixels (kPlanarMaxCols in cpp/runtime/steps_quant.h).
PLANAR_QUANT_MAX_C = 4
# Largest int8 weight (K * N bytes) a layer of a dense chain may have: the chain streams
# every layer's weight once per block of rows, which pays while the weights stay in L2
# (1 MiB per core on Zen 4); a larger layer runs as its own quantize and qgemm steps.
CHAIN_MAX_WEIGHT_BYTES = 1 << 20


def _act(name: str | None) -> "_core.Act":
    """The native enum value of an activation name (None: no activation)."""
    return _core.Act.none if name is None else _core.Act.__members__[name]


def _geom(x: "_Val", yshape: tuple, oc: int, a: dict, kernel: tuple) -> "_core.ConvGeom":
    """The native window geometry of a conv/pool node on NHWC images."""
    _, c, h, w = x.shape
    pt, pl, pb, pr = a["pads"]
    (sh, sw), (dh, dw) = a["strides"], a.get("dilations", (1, 1))
    return _core.ConvGeom(H=h, W=w, C=c, OH=yshape[2], OW=yshape[3], OC=oc, KH=kernel[0],
                          KW=kernel[1], sh=sh, sw=sw, pt=pt, pl=pl, pb=pb, pr=pr, dh=dh,
                          dw=dw, images=x.images)


@dataclass
class _Val:
    """A value in the plan: its id and public shape. Dim 0 is the run's batch, except in
    a static graph (every input has a fixed first dim), which runs as ONE sample holding
    everything: then dim 0 is just a dim (`images` NHWC images per sample)."""
    id: int
    shape: tuple
    static: bool = False
    planar: bool = False  # a 4-D value stored in public NCHW order (no transpose needed)

    @property
    def per_sample(self) -> int:
        return math.prod(self.shape if self.static else self.shape[1:])

    @property
    def images(self) -> int:
        return int(self.shape[0]) if self.static else 1

    @property
    def nhwc(self) -> bool:
        return len(self.shape) == 4 and not self.planar

    def storage_dims(self) -> list[int]:
        """Public dims in storage order, without the batch dim of a dynamic graph."""
        order = list(_storage_perm(len(self.shape)))
        return order if self.static else order[1:]


@dataclass
class _Q8:
    """A value held as uint8: real = scale * (q - zp); or, quantized at run time,
    scales and zero points in values scale_v / zp_v, one per `group` rows."""
    val: _Val
    scale: float
    zp: int
    scale_v: int = -1
    zp_v: int = -1
    group: int = 0


def _rows_cols(v: _Val) -> tuple[int, int]:
    """A value as rows x cols per sample: NHWC images are pixels x channels, others
    their last dim."""
    if v.nhwc:
        return v.per_sample // v.shape[1], int(v.shape[1])
    cols = int(v.shape[-1])
    return v.per_sample // cols, cols


def _u8_params(a: dict) -> tuple[float, int]:
    """A QDQ node's (scale, zero point) on the uint8 grid: an int8 QDQ is the same grid
    shifted by 128."""
    zp = int(a["zero_point"]) + (128 if a["dtype"] == "int8" else 0)
    return float(np.float32(a["scale"])), zp


def _int8_kernel(g: Graph, n: Node) -> bool:
    """A Conv/Gemm whose kernel is stored qc8 (the int8 kernels run it)."""
    if n.op not in ("Conv", "Gemm") or len(n.inputs) < 2 or n.inputs[1] not in g.weights:
        return False
    return g.weights[n.inputs[1]].format == "qc8"


def _int8_sparse_scale(g: Graph, n: Node, w: np.ndarray) -> np.ndarray | None:
    """The per-output-channel scales of a Gemm/Conv weight stored as csr/bsr with int8
    values, when the lowered weight `w` is its dense view with the output channels on the
    same axis (Gemm [K, N]: axis 1; Conv [OC, C, KH, KW]: axis 0); None otherwise (the
    layer then runs on the float view like any other format)."""
    wt = g.weights.get(n.inputs[1])
    if wt is None or wt.format not in ("csr", "bsr") or "scale" not in wt.arrays:
        return None
    axis = 1 if n.op == "Gemm" else 0
    if int(wt.attrs["axis"]) != axis or tuple(w.shape) != tuple(wt.shape):
        return None
    return np.ascontiguousarray(wt.arrays["scale"], dtype=np.float32)


def _nhwc_trivial(shape: tuple) -> bool:
    """NCHW and NHWC orders coincide (C == 1 or H * W == 1)."""
    return shape[1] == 1 or shape[2] * shape[3] == 1


def _storage_perm(rank: int) -> tuple[int, ...]:
    return (0, 2, 3, 1) if rank == 4 else tuple(range(rank))


class Lowerer:
    """Builds the plan node by node; `step_nodes[i]` names the node behind plan step i."""

    def __init__(self, graph: Graph, shapes: dict[str, tuple], isa: str | None, threads: int,
                 fuse_blocks: bool = True, sparse: str = "auto"):
        self.g = graph
        self.shapes = shapes
        self.plan = _core.Plan(isa, threads, sparse)
        self.vals: dict[str, _Val] = {}
        self.consts: dict[str, np.ndarray] = {n: w.numpy() for n, w in graph.weights.items()}
        self.step_nodes: list[str] = []
        # per step: (stored format of its Conv/Gemm weight, format its kernel used) or None
        self.step_weights: list[tuple[str, str] | None] = []
        self._wfmt: tuple[str, str] | None = None
        self._where = ""
        self.static = all(shapes[v.name][0] is not None for v in graph.inputs)
        self._planar_in: dict[str, _Val] = {}  # 4-D graph inputs, as given (NCHW)
        self._chw_nodes = self._planar_dwconv_nodes()
        self.q8: dict[str, _Q8] = {}      # values held as uint8 (a QDQ output, int8 steps)
        self._done: set[int] = set()         # QDQ nodes fused into their producer
        self._cons = consumers(graph)
        blocks = [b for b in (find_inverted_residuals(graph, shapes) if fuse_blocks else [])
                  if not any(_int8_kernel(graph, graph.nodes[i]) for i in b.nodes)]
        self._blocks = {b.project: b for b in blocks}  # emitted at the project conv
        self._fuse = fuse_blocks
        self._in_block = {i for b in blocks for i in b.nodes if i != b.project}

    # ------------------------------------------------------------ helpers
    def _step(self, fn: str, *args, **kw) -> None:
        getattr(self.plan, fn)(*args, **kw)
        self.step_nodes.append(self._where)
        self.step_weights.append(self._wfmt if fn in ("gemm", "conv", "dwconv", "dwconv_chw",
                                                      "inverted_residual", "qgemm", "qconv",
                                                      "qgemm_chain")
                                 else None)

    def _new(self, shape: tuple) -> _Val:
        v = _Val(-1, tuple(shape), self.static)
        v.id = self.plan.add_value(v.per_sample)
        return v

    def _act(self, name: str) -> _Val:
        if name in self.consts:
            raise UnsupportedOpError(f"{self._where}: input {name!r} is a weight where the "
                                     f"CPU backend needs a computed tensor")
        if name not in self.vals and name in self.q8:  # the float form, made when needed
            q = self.q8[name]
            y = self._new(q.val.shape)
            rows, cols = _rows_cols(q.val)
            self._step("dequantize", q.val.id, y.id, rows, cols, q.scale, q.zp)
            self.vals[name] = y
        return self.vals[name]

    def _flat_nchw(self, v: _Val) -> _Val:
        """The value with its per-sample data in public (NCHW flatten) order."""
        if not v.nhwc or _nhwc_trivial(v.shape):
            return v
        n, c, h, w = v.shape
        t = self._new(v.shape)
        self._step("transpose", v.id, t.id, h * w, c, v.images)
        return t

    def _to_nhwc(self, src_id: int, shape: tuple) -> _Val:
        """A value of public 4-D `shape` from per-sample NCHW-ordered data at src_id."""
        if _nhwc_trivial(shape):
            return _Val(self.plan.add_alias(src_id), shape, self.static)
        t = self._new(shape)
        self._step("transpose", src_id, t.id, shape[1], shape[2] * shape[3], t.images)
        return t

    def _planar_dwconv_nodes(self) -> set[int]:
        """Depthwise convs that read a 4-D graph input and write only a graph output
        (nothing else reads it), without a residual: the graph's whole work for that
        value is this one layer, so it runs on the public NCHW planes directly
        (f32_dwconv2d_chw) instead of between two layout transposes."""
        inputs = {v.name for v in self.g.inputs if len(self.shapes[v.name]) == 4}
        cons = consumers(self.g)
        out = set()
        for i, n in enumerate(self.g.nodes):
            if n.op != "Conv" or not n.inputs or n.inputs[0] not in inputs:
                continue
            a = node_attrs(n, i)
            w = self.g.weights.get(n.inputs[1]) if len(n.inputs) > 1 else None
            c = self.shapes[n.inputs[0]][1]
            if (w is None or a["group"] == 1 or a["group"] != c or a["residual"]
                    or _int8_kernel(self.g, n)
                    or n.outputs[0] not in self.g.outputs or cons.get(n.outputs[0])):
                continue
            out.add(i)
        return out

    # ------------------------------------------------------------ driver
    def lower(self) -> "Lowerer":
        cons = consumers(self.g)
        for vi in self.g.inputs:
            shape = self.shapes[vi.name]
            self._where = f"input {vi.name!r}"
            v = _Val(-1, shape, self.static)
            v.id = self.plan.add_input(v.per_sample)
            if len(shape) != 4:
                self.vals[vi.name] = v
                continue
            self._planar_in[vi.name] = _Val(v.id, shape, self.static, planar=True)
            # The NHWC copy only when something other than a planar depthwise conv reads it.
            if vi.name in self.g.outputs or any(i not in self._chw_nodes
                                                and not self._planar_qdq(i, shape)
                                                for i in cons.get(vi.name, [])):
                self.vals[vi.name] = self._to_nhwc(v.id, shape)
        for i, node in enumerate(self.g.nodes):
            if i in self._in_block or i in self._done:
                continue
            self._where = node_label(node, i)
            w = self.g.weights.get(node.inputs[1]) if node.op in ("Conv", "Gemm") else None
            self._wfmt = (w.format, "f32") if w is not None else None
            chain = self._dense_chain(i) if self._fuse else []
            if chain:
                self._qgemm_chain(chain)
                continue
            if _int8_kernel(self.g, node) and self._int8_layer(node, i, node_attrs(node, i)):
                continue
            if i in self._blocks:
                self._inverted_residual(self._blocks[i])
            elif i in self._chw_nodes:
                self._planar_dwconv(node, node_attrs(node, i))
            else:
                self._node(node, node_attrs(node, i))
        self._wfmt = None
        for name in self.g.outputs:
            self._where = f"output {name!r}"
            if name not in self.vals and name in self.q8:
                self._act(name)
            if name not in self.vals:
                raise UnsupportedOpError(f"graph output {name!r} is computed from weights "
                                         f"only (a constant without a batch dimension); the "
                                         f"CPU backend needs outputs that depend on an input")
            v = self.vals[name]
            if v.nhwc and not _nhwc_trivial(v.shape):
                v = self._flat_nchw(v)
            self.plan.mark_output(v.id, [int(d) for d in (v.shape if v.static else v.shape[1:])])
        self.plan.finalize()
        return self

    def _node(self, n: Node, a: dict) -> None:
        op = n.op
        out = n.outputs[0]
        if all(x in self.consts for x in n.inputs if x) and op in ("Add", "Identity", "Dropout"):
            self._fold(n)
            return
        if op in ("Identity", "Dropout"):
            self.vals[out] = self._act(n.inputs[0])
        elif op in ("Conv", "Gemm"):
            self._conv_gemm(n, a)
        elif op == "BatchNormalization":
            self._batchnorm(n, a)
        elif op in ACTIVATION_OPS:
            x = self._act(n.inputs[0])
            y = self._new(x.shape)
            lo, hi = (a["min"], a["max"]) if op == "Clip" else (0.0, 0.0)
            self._step("activation", x.id, y.id, _act(ACTIVATION_OPS[op]), lo, hi)
            self.vals[out] = y
        elif op == "Softmax":
            self._softmax(n, a)
        elif op == "QDQ":
            self._qdq(n, a)
        elif op in ("MaxPool", "AveragePool"):
            self._pool(n, a)
        elif op == "GlobalAveragePool" and (q := self._static_q8(n.inputs[0])) is not None:
            y = self._new(self.shapes[out])
            h, w = q.val.shape[2:]
            self._step("qglobal_avgpool", q.val.id, y.id, h * w, q.val.shape[1], q.val.images,
                       q.scale, q.zp)
            self.vals[out] = y
        elif op == "GlobalAveragePool":
            x = self._act(n.inputs[0])
            y = self._new(self.shapes[out])
            self._step("global_avgpool", x.id, y.id, x.shape[2] * x.shape[3], x.shape[1],
                       x.images)
            self.vals[out] = y
        elif op == "Add":
            self.vals[out] = self._add(n.inputs[0], n.inputs[1], self.shapes[out])
        elif op in ("Flatten", "Reshape"):
            self._reshape(n)
        elif op == "Transpose":
            self._transpose(n, a)
        else:  # validate() rejects unknown ops first; this guards new IR ops
            raise UnsupportedOpError(f"{self._where}: op {op!r} has no CPU lowering")

    def _fold(self, n: Node) -> None:
        """Ops whose inputs are all weights are evaluated once here, in float32."""
        args = [self.consts[x] for x in n.inputs]
        r = args[0] + args[1] if n.op == "Add" else args[0]
        self.consts[n.outputs[0]] = np.asarray(r, dtype=np.float32)

    # ------------------------------------------------------------ ops
    def _conv_gemm(self, n: Node, a: dict) -> None:
        out = n.outputs[0]
        yshape = self.shapes[out]
        x = self._act(n.inputs[0])
        w = self.consts[n.inputs[1]]
        bias = self.consts[n.inputs[2]] if len(n.inputs) > 2 and n.inputs[2] else None
        act = a["activation"]
        lo, hi = a["act_min"], a["act_max"]
        res_name = n.inputs[3] if a["residual"] else None
        res_id = -1
        fuse_act = True
        if res_name is not None:
            r = self._act(res_name) if res_name in self.vals or res_name in self.q8 else None
            if r is not None and tuple(r.shape) == tuple(yshape):
                res_id = r.id
            elif not a["residual_after_act"]:
                fuse_act = False  # act must follow the separate residual add
        y = self._new(yshape)
        code = _act(act if fuse_act else None)
        after = bool(a["residual_after_act"])
        stored = self.g.weights[n.inputs[1]].format if n.inputs[1] in self.g.weights else "f32"
        # 16-bit kernels convert the weight in registers (Gemm and group-1 convs)
        wtype = stored if stored in ("f16", "bf16") and a.get("group", 1) == 1 else "f32"
        # int8 csr/bsr values: the sparse kernel reads them (qc8w_spmm), the dense GEMM
        # their float view
        scale = _int8_sparse_scale(self.g, n, w) if a.get("group", 1) == 1 else None
        if scale is not None:
            wtype = "int8"
        if self._wfmt is not None:
            self._wfmt = (self._wfmt[0], wtype)
        if n.op == "Gemm":
            k, nn = w.shape
            self._step("gemm", x.id, y.id, x.images, k, nn, w, bias, res_id, code, lo, hi,
                       after, self.static, wtype, scale)
        else:
            geom = _geom(x, yshape, w.shape[0], a, w.shape[2:])
            kind = "conv" if a["group"] == 1 else "dwconv"
            if kind == "conv":
                self._step(kind, x.id, y.id, geom, w, bias, res_id, code, lo, hi, after,
                           self.static, wtype, scale)
            else:
                self._step(kind, x.id, y.id, geom, w, bias, res_id, code, lo, hi, after)
        if res_name is not None and res_id < 0:
            y = self._add_vals(y, res_name, yshape)
            if not fuse_act and act is not None:
                z = self._new(yshape)
                self._step("activation", y.id, z.id, _act(act), lo, hi)
                y = z
        self.vals[out] = y

    # ------------------------------------------------------------ int8
    def _new_u8(self, shape: tuple) -> _Val:
        """A uint8 value: rows of C bytes at a stride rounded up to 4 (see _rows_cols)."""
        v = _Val(-1, tuple(shape), self.static)
        rows, cols = _rows_cols(v)
        v.id = self.plan.add_value(rows * ((cols + 3) // 4))  # u8_floats in C++
        return v

    def _planar_qdq(self, i: int, shape: tuple) -> bool:
        """Node i is a QDQ reading a 4-D graph input of `shape` with few channels: it
        quantizes the NCHW image straight into uint8 NHWC pixels (no float transpose)."""
        return (self.g.nodes[i].op == "QDQ" and shape[1] <= PLANAR_QUANT_MAX_C
                and not _nhwc_trivial(shape))

    def _qdq(self, n: Node, a: dict) -> None:
        """A QDQ node on a float value: quantize once to uint8 (its float form, the
        dequantized values, only if a float consumer asks for it)."""
        scale, zp = _u8_params(a)
        src = n.inputs[0]
        if src in self._planar_in and src not in self.vals:  # see _planar_qdq
            x = self._planar_in[src]
            y = self._new_u8(x.shape)
            rows, cols = _rows_cols(y)
            self._step("quantize", x.id, y.id, rows, cols, scale, zp, planar=True)
            self.q8[n.outputs[0]] = _Q8(y, scale, zp)
            return
        x = self._act(src)
        y = self._new_u8(x.shape)
        rows, cols = _rows_cols(x)
        self._step("quantize", x.id, y.id, rows, cols, scale, zp)
        self.q8[n.outputs[0]] = _Q8(y, scale, zp)

    def _fused_qdq(self, out: str) -> tuple[list[int], tuple[float, int] | None]:
        """The QDQ nodes that read `out` when they are its only readers and agree on
        their parameters: the producer then writes uint8 with them."""
        readers = self._cons.get(out, [])
        if not readers or out in self.g.outputs:
            return [], None
        params = set()
        for i in readers:
            n = self.g.nodes[i]
            if n.op != "QDQ":
                return [], None
            params.add(_u8_params(node_attrs(n, i)))
        return (readers, params.pop()) if len(params) == 1 else ([], None)

    def _static_q8(self, name: str) -> _Q8 | None:
        """The uint8 form of an NHWC value with a fixed grid, if the plan holds one."""
        q = self.q8.get(name)
        return q if q is not None and q.scale_v < 0 and q.val.nhwc else None

    def _maxpool_then_qdq(self, out: str) -> tuple[int, list[int], tuple[float, int] | None]:
        """`out` read only by a MaxPool whose output only agreeing QDQ nodes read: the
        producer may write `out` on that grid and the pool run on uint8 (max commutes
        with the monotonic quantization). (pool node, QDQ readers, params); -1 if not."""
        readers = self._cons.get(out, [])
        if len(readers) != 1 or out in self.g.outputs:
            return -1, [], None
        m = self.g.nodes[readers[0]]
        if m.op != "MaxPool" or len(m.outputs) != 1 or len(self.shapes[m.outputs[0]]) != 4:
            return -1, [], None
        qdqs, params = self._fused_qdq(m.outputs[0])
        return (readers[0], qdqs, params) if params is not None else (-1, [], None)

    def _qc8_parts(self, n: Node) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """A qc8 Conv/Gemm's int8 weight (C-contiguous), float32 per-channel scales and
        bias (None without one), as the int8 steps take them."""
        w = self.g.weights[n.inputs[1]]
        bias = self.consts[n.inputs[2]] if len(n.inputs) > 2 and n.inputs[2] else None
        return (np.ascontiguousarray(w.arrays["data"]), w.arrays["scale"].astype(np.float32),
                bias)

    def _int8_layer(self, n: Node, i: int, a: dict) -> bool:
        """A Conv/Gemm with a qc8 kernel on the int8 kernels: its input as uint8 (a QDQ
        output: static; else quantized here per row / per image: dynamic), its output
        uint8 when only QDQ nodes read it, else float. False: not handled here (the
        float path runs it on the dense view)."""
        w = self.g.weights[n.inputs[1]]
        group = a.get("group", 1)
        xin = self.shapes[n.inputs[0]]
        if w.attrs["axis"] != (1 if n.op == "Gemm" else 0):
            return False
        if n.op == "Conv" and group != 1 and group != xin[1]:
            return False  # grouped convs other than depthwise: the float path
        out = n.outputs[0]
        yshape = self.shapes[out]
        data, wscale, bias = self._qc8_parts(n)
        res_id, rscale, rzp = -1, 1.0, -1
        if a["residual"]:
            rq = self.q8.get(n.inputs[3])
            if rq is not None and rq.scale_v < 0 and group == 1 and rq.val.shape == yshape:
                res_id, rscale, rzp = rq.val.id, rq.scale, rq.zp  # read as uint8
            else:
                res_id = self._act(n.inputs[3]).id
        qin = self.q8.get(n.inputs[0])
        x = qin.val if qin is not None else self._act(n.inputs[0])
        pointwise = n.op == "Gemm" or (group == 1 and tuple(data.shape[2:]) == (1, 1)
                                       and a["strides"] == (1, 1) and not any(a["pads"]))
        if qin is None:  # dynamic: per row (Gemm, 1x1 conv) or per image
            rows, cols = _rows_cols(x)
            grp = 1 if pointwise else rows // x.images
            u8 = self._new_u8(x.shape)
            sv, zv = (self.plan.add_value(rows // grp) for _ in range(2))
            self._step("quantize", x.id, u8.id, rows, cols, 1.0, 0, sv, zv, grp)
            qin = _Q8(u8, 1.0, 0, sv, zv, grp)
            x = u8
        readers, oq = self._fused_qdq(out)
        pool = -1
        if oq is None and len(yshape) == 4:
            pool, readers, oq = self._maxpool_then_qdq(out)
        if oq is not None:
            y = self._new_u8(yshape)
            oscale, ozp = oq
        else:
            y = self._new(yshape)
            oscale, ozp = 1.0, -1
        kind = "static" if qin.scale_v < 0 else "dynamic"
        self._wfmt = (w.format, f"int8 {kind}")
        common = (wscale, bias, res_id, _act(a["activation"]), a["act_min"], a["act_max"],
                  bool(a["residual_after_act"]), qin.scale, qin.zp, qin.scale_v, qin.zp_v,
                  qin.group, oscale, ozp, rscale, rzp)
        if n.op == "Gemm":
            k, nn = data.shape
            self._step("qgemm", x.id, y.id, x.images, k, nn, data, *common)
        else:
            geom = _geom(x, yshape, data.shape[0], a, data.shape[2:])
            self._step("qconv", x.id, y.id, geom, group != 1, data, *common)
        if pool >= 0:  # the MaxPool after it, on uint8
            m = self.g.nodes[pool]
            am, pshape = node_attrs(m, pool), self.shapes[m.outputs[0]]
            z = self._new_u8(pshape)
            self._where = node_label(m, pool)
            self._wfmt = None
            self._step("qmaxpool", y.id, z.id, _geom(y, pshape, yshape[1], am, am["kernel_shape"]))
            self._done.add(pool)
            y = z
        if oq is not None:
            for r in readers:
                self.q8[self.g.nodes[r].outputs[0]] = _Q8(y, oscale, ozp)
                self._done.add(r)
        else:
            self.vals[out] = y
        return True

    def _chain_layer(self, i: int, x: str) -> bool:
        """Node i can be a layer of a dense chain reading float value `x`: an int8 Gemm
        (qc8, per output channel) without residual, its input quantized at run time (not
        a QDQ output), its output float (no QDQ reads it), its weight within
        CHAIN_MAX_WEIGHT_BYTES."""
        n = self.g.nodes[i]
        if (i in self._done or n.op != "Gemm" or not _int8_kernel(self.g, n)
                or n.inputs[0] != x or x in self.q8 or x in self.consts):
            return False
        w = self.g.weights[n.inputs[1]]
        k, nn = w.arrays["data"].shape
        return (w.attrs["axis"] == 1 and not node_attrs(n, i)["residual"]
                and k * nn <= CHAIN_MAX_WEIGHT_BYTES and self._fused_qdq(n.outputs[0])[1] is None)

    def _dense_chain(self, i: int) -> list[int]:
        """The longest run of dense chain layers from node i, each output read by the
        next layer alone and not a graph output; [] when node i cannot start one."""
        n = self.g.nodes[i]
        if n.op != "Gemm" or not n.inputs or not self._chain_layer(i, n.inputs[0]):
            return []
        chain = [i]
        while True:
            out = self.g.nodes[chain[-1]].outputs[0]
            readers = self._cons.get(out, [])
            if out in self.g.outputs or len(readers) != 1 or not self._chain_layer(readers[0], out):
                return chain
            chain.append(readers[0])

    def _qgemm_chain(self, chain: list[int]) -> None:
        """Dense int8 layers with dynamic inputs as one step (steps_quant.cpp)."""
        nodes = [self.g.nodes[i] for i in chain]
        self._where = " + ".join(node_label(n, i) for n, i in zip(nodes, chain))
        self._wfmt = ("qc8", "int8 dynamic")
        x = self._act(nodes[0].inputs[0])
        layers = []
        for n, i in zip(nodes, chain):
            a = node_attrs(n, i)
            data, wscale, bias = self._qc8_parts(n)
            layers.append((int(data.shape[0]), int(data.shape[1]), data, wscale, bias,
                           _act(a["activation"]), a["act_min"], a["act_max"]))
        y = self._new(self.shapes[nodes[-1].outputs[0]])
        self._step("qgemm_chain", x.id, y.id, x.images, layers)
        self._done.update(chain)
        self.vals[nodes[-1].outputs[0]] = y

    def _planar_dwconv(self, n: Node, a: dict) -> None:
        """A depthwise conv from a graph input to a graph output, NCHW in and out."""
        x = self._planar_in[n.inputs[0]]
        yshape = self.shapes[n.outputs[0]]
        w = self.consts[n.inputs[1]]
        bias = self.consts[n.inputs[2]] if len(n.inputs) > 2 and n.inputs[2] else None
        y = _Val(-1, tuple(yshape), self.static, planar=True)
        y.id = self.plan.add_value(y.per_sample)
        self._step("dwconv_chw", x.id, y.id, _geom(x, yshape, w.shape[0], a, w.shape[2:]), w,
                   bias, -1, _act(a["activation"]), a["act_min"], a["act_max"], False)
        self.vals[n.outputs[0]] = y

    def _inverted_residual(self, b: InvertedResidual) -> None:
        """[1x1 expand] -> depthwise -> 1x1 project (+ residual) as one fused step."""
        nodes = [self.g.nodes[i] for i in b.nodes]
        self._where = " + ".join(node_label(n, i) for n, i in zip(nodes, b.nodes))
        self._wfmt = ("+".join(self.g.weights[n.inputs[1]].format for n in nodes), "f32")
        e = self.g.nodes[b.expand] if b.expand is not None else None
        d, p = self.g.nodes[b.dw], self.g.nodes[b.project]
        x = self._act((e or d).inputs[0])
        dshape, yshape = self.shapes[d.outputs[0]], self.shapes[p.outputs[0]]

        def parts(n: Node, i: int) -> tuple:
            a = node_attrs(n, i)
            w = self.consts[n.inputs[1]]
            bias = self.consts[n.inputs[2]] if len(n.inputs) > 2 and n.inputs[2] else None
            return a, w, bias, _act(a["activation"]), a["act_min"], a["act_max"]

        ad, wd, bd, act_d, lo_d, hi_d = parts(d, b.dw)
        # The depthwise conv's window on the block input's rows (hidden channels).
        dw_in = _Val(-1, (x.shape[0], wd.shape[0]) + tuple(x.shape[2:]), self.static)
        geom = _geom(dw_in, dshape, wd.shape[0], ad, wd.shape[2:])
        if e is not None:
            _, we, be, act_e, lo_e, hi_e = parts(e, b.expand)
            we = we.reshape(we.shape[0], we.shape[1])
        else:
            we, be, act_e, lo_e, hi_e = None, None, _act(None), 0.0, 0.0
        ap, wp, bp, act_p, lo_p, hi_p = parts(p, b.project)
        res = self._act(p.inputs[3]).id if ap["residual"] else -1
        y = self._new(yshape)
        self._step("inverted_residual", x.id, y.id, geom, x.shape[1], yshape[1],
                   we, be, act_e, lo_e, hi_e, wd, bd, act_d, lo_d, hi_d,
                   wp.reshape(wp.shape[0], wp.shape[1]), bp, res, act_p, lo_p, hi_p,
                   bool(ap["residual_after_act"]))
        self.vals[p.outputs[0]] = y

    def _add_vals(self, y: _Val, other: str, shape: tuple) -> _Val:
        tmp = f"\0{y.id}"
        self.vals[tmp] = y
        try:
            return self._add(tmp, other, shape)
        finally:
            del self.vals[tmp]

    def _batchnorm(self, n: Node, a: dict) -> None:
        x = self._act(n.inputs[0])
        scale, b, mean, var = (self.consts.get(k) for k in n.inputs[1:5])
        if any(t is None for t in (scale, b, mean, var)):
            raise UnsupportedOpError(f"{self._where}: BatchNormalization parameters must be "
                                     f"weights")
        if not (x.nhwc or len(x.shape) == 2):
            raise UnsupportedOpError(f"{self._where}: BatchNormalization on rank "
                                     f"{len(x.shape)}; the CPU backend supports rank 2 and 4")
        s64 = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + a["epsilon"])
        bias = b.astype(np.float64) - mean.astype(np.float64) * s64
        c = x.shape[1]
        y = self._new(x.shape)
        self._step("affine", x.id, y.id, x.per_sample // c, c, s64.astype(np.float32),
                   bias.astype(np.float32))
        self.vals[n.outputs[0]] = y

    def _softmax(self, n: Node, a: dict) -> None:
        """Softmax over any non-batch axis: a contiguous innermost axis directly, others
        between two transposes that move the axis last and back."""
        x = self._act(n.inputs[0])
        r = len(x.shape)
        axis = a["axis"] + r if a["axis"] < 0 else a["axis"]
        dims = x.storage_dims()
        if axis not in dims:
            raise UnsupportedOpError(f"{self._where}: Softmax over the batch axis 0")
        p = dims.index(axis)
        before = math.prod(int(x.shape[d]) for d in dims[:p])
        cols = int(x.shape[axis])
        after = math.prod(int(x.shape[d]) for d in dims[p + 1:])
        y = self._new(x.shape)
        if after == 1:
            self._step("softmax", x.id, y.id, x.per_sample // cols, cols)
        else:
            t = self._new(x.shape)
            u = self._new(x.shape)
            self._step("transpose", x.id, t.id, cols, after, before)
            self._step("softmax", t.id, u.id, x.per_sample // cols, cols)
            self._step("transpose", u.id, y.id, after, cols, before)
        self.vals[n.outputs[0]] = y

    def _pool(self, n: Node, a: dict) -> None:
        x = self._act(n.inputs[0])
        yshape = self.shapes[n.outputs[0]]
        # bottom/right pads (in the geometry): count_include_pad divides a window that
        # ceil_mode lets run past the padding by its taps inside the padded input (ONNX)
        geom = _geom(x, yshape, x.shape[1], a, a["kernel_shape"])
        y = self._new(yshape)
        self._step("pool", x.id, y.id, geom, n.op == "MaxPool",
                   bool(a.get("count_include_pad", 0)))
        self.vals[n.outputs[0]] = y

    def _reshape(self, n: Node) -> None:
        x = self._act(n.inputs[0])
        yshape = self.shapes[n.outputs[0]]
        ps = math.prod(yshape if self.static else yshape[1:])
        if ps != x.per_sample or (not self.static and yshape[0] != x.shape[0]):
            raise UnsupportedOpError(
                f"{self._where}: {n.op} from {x.shape} to {yshape} moves data across the "
                f"batch dimension; the CPU backend needs the first dim kept")
        flat = self._flat_nchw(x)
        if len(yshape) == 4:
            self.vals[n.outputs[0]] = self._to_nhwc(flat.id, yshape)
        else:
            self.vals[n.outputs[0]] = _Val(self.plan.add_alias(flat.id), yshape, self.static)

    def _transpose(self, n: Node, a: dict) -> None:
        """2-D transpose on the transpose step. Only in a static graph: elsewhere dim 0 is
        the run's batch, which a transpose would move."""
        x = self._act(n.inputs[0])
        yshape = self.shapes[n.outputs[0]]
        if a["perm"] == (0, 1):
            self.vals[n.outputs[0]] = x
            return
        if not self.static:
            raise UnsupportedOpError(
                f"{self._where}: Transpose of {x.shape} moves data across the batch "
                f"dimension; the CPU backend transposes only in graphs whose inputs all "
                f"have a fixed first dim")
        y = self._new(yshape)
        self._step("transpose", x.id, y.id, int(x.shape[0]), int(x.shape[1]), 1)
        self.vals[n.outputs[0]] = y

    def _add(self, an: str, bn: str, oshape: tuple) -> _Val:
        """y = a + b with numpy broadcasting, in y's storage order, on contiguous runs.

        The C++ step gets y's dims in storage order behind a leading batch dim (-1) and
        each operand's element strides per dim (0 where it broadcasts)."""
        y = self._new(oshape)
        r = len(oshape)
        order = y.storage_dims()  # public dims of y, in storage order
        dims = [-1] + [int(oshape[d]) for d in order]
        ids, strides, full = [], [], []
        for name in (an, bn):
            if name in self.consts:
                c = self.consts[name]
                cs = (1,) * (r - c.ndim) + tuple(c.shape)
                if not self.static and cs[0] != 1:
                    raise UnsupportedOpError(
                        f"{self._where}: Add of a weight of shape {c.shape} whose first dim "
                        f"would broadcast over the batch of {oshape}")
                # Stored in y's storage order so the runs stay contiguous.
                cst = np.ascontiguousarray(c.reshape(cs).transpose(_storage_perm(r)),
                                           dtype=np.float32)
                pst = dict(zip(_storage_perm(r), _row_strides(cst.shape)))
                st = [0] + [0 if cs[d] == 1 else pst[d] for d in order]
                ids.append(self.plan.add_const(cst.ravel()))
                strides.append(st)
                full.append(False)
                continue
            v = self._act(name)
            k = len(v.shape)
            if not self.static and k != r:
                raise UnsupportedOpError(
                    f"{self._where}: Add broadcasting a computed tensor of shape {v.shape} "
                    f"against {oshape} would mix its batch with another dim")
            # v's element strides per public dim, from its own storage order.
            vdims = list(_storage_perm(k))
            vst = dict(zip(vdims, _row_strides([v.shape[d] or 1 for d in vdims])))
            st = [v.per_sample]
            for d in order:
                j = d - (r - k)  # v's dim aligned with y's dim d (numpy rule)
                st.append(0 if j < 0 or v.shape[j] == 1 else vst[j])
            ids.append(v.id)
            strides.append(st)
            full.append(v.per_sample == y.per_sample and k == r)
        self._step("add", ids[0], ids[1], y.id, dims, strides[0], strides[1], full[0], full[1])
        return y


def _row_strides(shape) -> list[int]:
    st, acc = [], 1
    for d in reversed(list(shape)):
        st.append(acc)
        acc *= int(d)
    return st[::-1]


def lower(graph: Graph, shapes: dict[str, tuple], isa: str | None, threads: int,
          fuse_blocks: bool = True, sparse: str = "auto") -> Lowerer:
    """Build and finalize the plan for an optimized graph. `fuse_blocks=False` runs
    inverted-residual blocks and dense int8 chains as separate steps (for comparisons)."""
    if not graph.outputs:
        raise GraphError("graph has no outputs")
    return Lowerer(graph, shapes, isa, threads, fuse_blocks, sparse).lower()
