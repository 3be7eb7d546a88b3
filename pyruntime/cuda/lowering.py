"""Lower an optimized, shape-inferred Graph onto a CUDA program: device tensors and the
steps that read and write them. Pure Python with numpy only (no GPU, no CuPy, no Numba),
so every decision here is tested on the CPU.

Layout and dtypes
- Tensors hold one batch: their `shape` is per sample, the batch dim comes at run time.
  4-D activations live NHWC like the CPU plan's ([N, C, H, W] public is [N, H, W, C]);
  a 4-D graph input arrives NCHW and is transposed once, a 4-D output leaves NCHW.
- Activations are float32 between ops. A QDQ node writes a uint8 tensor (its
  quantized values; scale and zero point known at compile). An int8 Conv/Gemm (qc8
  weight) reads it through a `signed` step (q - 128 as int8, the form cuBLAS's int8
  GEMM takes, K padded to a multiple of 4); any other reader gets it dequantized
  (`dequantize` step), so a QDQ costs what its readers need. Without a QDQ in front, an
  int8 layer quantizes its input per row at run time (dynamic, like the CPU).
- Weights are prepared on the host here (layout, dtype, padding) and uploaded once by
  the session; `weights.choose` decides the engine per stored format.

Steps (kind: what it runs; all device work, no host round trips):
  transpose  src -> dst with `perm` (the layout boundary; Flatten/Reshape of images)
  copy       src -> dst, same bytes (Identity, Flatten/Reshape that keep the order)
  gemm       y[M, N] = epilogue(x[M, K] @ W): cuBLAS fp32 / fp16 (x cast to fp16 first),
             or at batch 1 a sparse weight on the Numba sparse kernel when `sparse` is set
  im2col     cols[M, K(4)] of an NHWC image (float, or int8 with the zero point as fill)
  qgemm      acc[M, N4] = s8 x[M, K4] @ Bt[N4, K4]^T (cuBLAS int32), then the requantize
             epilogue into y[M, N] (K4, N4: K and N padded to multiples of 4)
  quantize / quantize_rows / signed / dequantize   the int8 activation steps
  dwconv     Numba depthwise conv with the fused epilogue
  pool / global_avgpool / act / add / softmax
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import formats
from ..errors import UnsupportedOpError
from ..graph import Graph, Node
from ..shapes import ACTIVATION_OPS, node_attrs, node_label
from . import weights as gpu_weights

__all__ = ["Program", "Tensor", "Step", "lower", "SUPPORTED"]

#: Graph ops (after passes.optimize) this backend runs.
SUPPORTED = frozenset({"Conv", "Gemm", "QDQ", "MaxPool", "AveragePool", "GlobalAveragePool",
                       "Flatten", "Reshape", "Identity", "Dropout", "Add", "Softmax",
                       *ACTIVATION_OPS})
#: cuBLAS's int8 GEMM wants K (and the leading dimensions) a multiple of this.
K_ALIGN = 4


@dataclass
class Tensor:
    """A device tensor: per-sample shape (storage order) and dtype; `batched` False for
    per-batch-independent tensors of a fixed size (a dynamic quantization's scales are
    per row, so they are batched)."""
    name: str
    shape: tuple
    dtype: np.dtype

    def nbytes(self, batch: int) -> int:
        return batch * math.prod(self.shape) * self.dtype.itemsize


@dataclass
class Step:
    kind: str
    reads: tuple[int, ...]
    writes: tuple[int, ...]
    node: str
    p: dict[str, Any] = field(default_factory=dict)
    engine: str = ""  # for plan_summary: what runs it


@dataclass
class Program:
    tensors: list[Tensor]
    steps: list[Step]
    inputs: list[int]          # tensor ids of the graph inputs (public layout)
    outputs: list[int]         # tensor ids of the graph outputs (public layout)
    weights: dict[str, np.ndarray]  # host arrays to upload once, by key

    def liveness(self) -> tuple[list[int], list[int]]:
        """(first, last) step index touching each tensor; graph inputs live from step 0,
        outputs to the end (they are read after the last step)."""
        n = len(self.tensors)
        end = max(len(self.steps) - 1, 0)
        first, last = [end] * n, [0] * n
        for i, s in enumerate(self.steps):
            for t in s.reads + s.writes:
                first[t] = min(first[t], i)
                last[t] = max(last[t], i)
        for t in self.inputs:
            first[t] = 0
        for t in self.outputs:
            last[t] = end
        for t in range(n):
            first[t] = min(first[t], last[t])
        return first, last


def _nhwc(shape: tuple) -> tuple:
    """Per-sample storage shape of a public shape (batch dim dropped)."""
    s = tuple(int(d) for d in shape[1:])
    return (s[1], s[2], s[0]) if len(s) == 3 else s


class _Lowerer:
    def __init__(self, g: Graph, shapes: dict[str, tuple], tf32: bool) -> None:
        self.g, self.shapes, self.tf32 = g, shapes, tf32
        self.tensors: list[Tensor] = []
        self.steps: list[Step] = []
        self.weights: dict[str, np.ndarray] = {}
        self.val: dict[str, int] = {}        # graph value -> float tensor (storage layout)
        self.q8: dict[str, tuple[int, float, int]] = {}  # value -> (uint8 tensor, scale, zp)
        self.signed: dict[tuple, int] = {}   # (uint8 tensor, K4) -> its int8 form
        self.where = ""
        firsts = {shapes[v.name][0] for v in g.inputs}
        if len(firsts) > 1:
            raise UnsupportedOpError(f"inputs with different first dims {sorted(map(str, firsts))}"
                                     "; the CUDA backend needs one batch dim")
        self.batch_dim = firsts.pop() if firsts else None

    # ------------------------------------------------------------ helpers
    def new(self, name: str, shape: tuple, dtype: Any = np.float32) -> int:
        self.tensors.append(Tensor(name, tuple(int(d) for d in shape), np.dtype(dtype)))
        return len(self.tensors) - 1

    def step(self, kind: str, reads: tuple, writes: tuple, engine: str = "", **p: Any) -> None:
        self.steps.append(Step(kind, tuple(reads), tuple(writes), self.where, p, engine))

    def weight(self, key: str, a: np.ndarray) -> str:
        self.weights[key] = np.ascontiguousarray(a)
        return key

    def f32(self, name: str) -> int:
        """The float tensor of value `name` (dequantizing a QDQ's uint8 tensor once)."""
        if name in self.val:
            return self.val[name]
        if name not in self.q8:
            raise UnsupportedOpError(f"{self.where}: value {name!r} is a weight or unknown "
                                     "here; the CUDA backend reads only activations")
        q, scale, zp = self.q8[name]
        t = self.new(name + "/f32", self.tensors[q].shape)
        self.step("dequantize", (q,), (t,), "numba dequantize", scale=scale, zp=zp)
        self.val[name] = t
        return t

    # ------------------------------------------------------------ driver
    def run(self) -> Program:
        ins = []
        for vi in self.g.inputs:
            shape = self.shapes[vi.name]
            if shape[0] is not None and any(d is None for d in shape[1:]):
                raise UnsupportedOpError(f"input {vi.name!r}: only the first dim may vary")
            pub = self.new(vi.name, tuple(shape[1:]))
            ins.append(pub)
            if len(shape) == 4:
                t = self.new(vi.name + "/nhwc", _nhwc(shape))
                self.where = f"input {vi.name!r}"
                self.step("transpose", (pub,), (t,), "layout", perm=(0, 2, 3, 1))
                self.val[vi.name] = t
            else:
                self.val[vi.name] = pub
        for i, n in enumerate(self.g.nodes):
            self.where = node_label(n, i)
            if n.op not in SUPPORTED:
                raise UnsupportedOpError(f"{self.where}: the CUDA backend does not run {n.op} "
                                         f"(it runs {', '.join(sorted(SUPPORTED))}); compile "
                                         "this model for the CPU")
            self.node(n, node_attrs(n, i))
        outs = []
        for name in self.g.outputs:
            self.where = f"output {name!r}"
            shape = self.shapes[name]
            src = self.f32(name)
            pub = self.new(name + "/out", tuple(shape[1:]))
            if len(shape) == 4:
                self.step("transpose", (src,), (pub,), "layout", perm=(0, 3, 1, 2))
            else:
                self.step("copy", (src,), (pub,), "copy")
            outs.append(pub)
        return Program(self.tensors, self.steps, ins, outs, self.weights)

    def node(self, n: Node, a: dict) -> None:
        op, out = n.op, n.outputs[0]
        shape = self.shapes[out]
        if shape[0] != self.batch_dim:
            raise UnsupportedOpError(f"{self.where}: output shape {shape} does not keep the "
                                     f"batch dim ({self.batch_dim}) first; the CUDA backend "
                                     "runs ops that keep it")
        if op in ("Conv", "Gemm"):
            self.conv_gemm(n, a)
        elif op == "QDQ":
            if a["dtype"] != "uint8":
                raise UnsupportedOpError(f"{self.where}: QDQ to {a['dtype']}; the CUDA "
                                         "backend quantizes activations to uint8")
            x = self.f32(n.inputs[0])
            q = self.new(out + "/u8", self.tensors[x].shape, np.uint8)
            self.step("quantize", (x,), (q,), "numba quantize", scale=float(a["scale"]),
                      zp=int(a["zero_point"]))
            self.q8[out] = (q, float(a["scale"]), int(a["zero_point"]))
        elif op in ACTIVATION_OPS:
            x = self.f32(n.inputs[0])
            y = self.new(out, self.tensors[x].shape)
            lo, hi = (a["min"], a["max"]) if op == "Clip" else (-math.inf, math.inf)
            self.step("act", (x,), (y,), "numba bias_act", act=ACTIVATION_OPS[op], lo=lo, hi=hi)
            self.val[out] = y
        elif op in ("MaxPool", "AveragePool"):
            x = self.f32(n.inputs[0])
            y = self.new(out, _nhwc(shape))
            self.step("pool", (x,), (y,), "numba pool", is_max=op == "MaxPool",
                      kernel=a["kernel_shape"], out_hw=(shape[2], shape[3]),
                      strides=a["strides"], pads=a["pads"], dilations=a["dilations"],
                      count_include_pad=bool(a.get("count_include_pad", 0)))
            self.val[out] = y
        elif op == "GlobalAveragePool":
            x = self.f32(n.inputs[0])
            y = self.new(out, _nhwc(shape))
            self.step("global_avgpool", (x,), (y,), "numba global_avgpool")
            self.val[out] = y
        elif op in ("Identity", "Dropout"):
            x = self.f32(n.inputs[0])
            y = self.new(out, self.tensors[x].shape)
            self.step("copy", (x,), (y,), "copy")
            self.val[out] = y
        elif op in ("Flatten", "Reshape"):
            self.reshape(n, shape)
        elif op == "Add":
            sa, sb = self.shapes[n.inputs[0]], self.shapes[n.inputs[1]]
            if sa != sb or n.inputs[0] in self.g.weights or n.inputs[1] in self.g.weights:
                raise UnsupportedOpError(f"{self.where}: Add of {sa} and {sb}; the CUDA "
                                         "backend adds two activations of one shape")
            x0, x1 = self.f32(n.inputs[0]), self.f32(n.inputs[1])
            y = self.new(out, self.tensors[x0].shape)
            self.step("add", (x0, x1), (y,), "elementwise add")
            self.val[out] = y
        elif op == "Softmax":
            if len(shape) != 2 or a["axis"] not in (-1, 1):
                raise UnsupportedOpError(f"{self.where}: Softmax over axis {a['axis']} of "
                                         f"{shape}; the CUDA backend runs it over the last "
                                         "axis of a 2-D value")
            x = self.f32(n.inputs[0])
            y = self.new(out, self.tensors[x].shape)
            self.step("softmax", (x,), (y,), "numba softmax")
            self.val[out] = y

    def reshape(self, n: Node, shape: tuple) -> None:
        """Flatten/Reshape in public (NCHW) element order: a 4-D source leaves NHWC first,
        a 4-D result enters it."""
        xin = n.inputs[0]
        x = self.f32(xin)
        src_pub = self.shapes[xin]
        if len(src_pub) == 4 and src_pub[2] * src_pub[3] > 1:
            t = self.new(xin + "/nchw", tuple(src_pub[1:]))
            self.step("transpose", (x,), (t,), "layout", perm=(0, 3, 1, 2))
            x = t
        out = n.outputs[0]
        if len(shape) == 4 and shape[2] * shape[3] > 1:
            pub = self.new(out + "/nchw", tuple(shape[1:]))
            self.step("copy", (x,), (pub,), "copy")
            y = self.new(out, _nhwc(shape))
            self.step("transpose", (pub,), (y,), "layout", perm=(0, 2, 3, 1))
        else:
            y = self.new(out, _nhwc(shape))
            self.step("copy", (x,), (y,), "copy")
        self.val[out] = y

    # ------------------------------------------------------------ Conv / Gemm
    def conv_gemm(self, n: Node, a: dict) -> None:
        out = n.outputs[0]
        yshape = self.shapes[out]
        w = self.g.weights[n.inputs[1]]
        bias_name = n.inputs[2] if len(n.inputs) > 2 and n.inputs[2] else None
        bias = (formats.dense_f32(self.g.weights[bias_name]).reshape(-1)
                if bias_name else None)
        res = self.f32(n.inputs[3]) if a["residual"] else None
        epi = dict(act=a["activation"] or "none", lo=float(a["act_min"]),
                   hi=float(a["act_max"]), res_after=bool(a["residual_after_act"]),
                   bias=self.weight(out + ":bias", bias.astype(np.float32)) if bias is not None
                   else None)
        reads_res = (res,) if res is not None else ()
        xshape = self.shapes[n.inputs[0]]
        conv = n.op == "Conv"
        group = a["group"] if conv else 1
        if conv and group != 1:
            if group != xshape[1] or w.shape[0] != xshape[1] or w.shape[1] != 1:
                raise UnsupportedOpError(f"{self.where}: grouped Conv (group {group}); the "
                                         "CUDA backend runs group 1 and depthwise")
            choice = gpu_weights.choose(w, "Conv", depthwise=True)
            wd = formats.dense_f32(w)  # [C, 1, KH, KW]
            key = self.weight(out + ":w", np.ascontiguousarray(wd[:, 0].transpose(1, 2, 0)))
            x = self.f32(n.inputs[0])
            y = self.new(out, _nhwc(yshape))
            self.step("dwconv", (x, *reads_res), (y,), f"numba dwconv ({choice.why})", w=key,
                      wfmt=w.format, computed_as="f32",
                      out_hw=(yshape[2], yshape[3]), strides=a["strides"],
                      pads=a["pads"][:2], dilations=a["dilations"], res=res, **epi)
            self.val[out] = y
            return
        if w.format == "qc8":
            self.int8(n, a, w, yshape, res, epi)
            return
        choice = gpu_weights.choose(w, n.op)
        dense = formats.dense_f32(w)
        if conv:
            wm = np.ascontiguousarray(dense.transpose(2, 3, 1, 0).reshape(-1, dense.shape[0]))
        else:
            wm = dense
        K, N = wm.shape
        cols = self.gemm_input(n, a, w, np.float32)
        y = self.new(out, _nhwc(yshape))
        p = dict(K=K, N=N, rows=_rows(self.tensors[cols].shape), tf32=self.tf32, res=res,
                 wfmt=w.format, computed_as="f16" if w.format == "f16" else "f32", **epi)
        if w.format == "f16":
            p["w"] = self.weight(out + ":w16", wm.astype(np.float16))
            p["x16"] = self.new(out + "/x16", self.tensors[cols].shape, np.float16)
            self.step("gemm", (cols, *reads_res), (y, p["x16"]),
                      "cuBLAS fp16, fp32 accumulation", **p)
        else:
            p["w"] = self.weight(out + ":w", wm)
            if w.format in ("csr", "bsr") and not conv:
                dens = gpu_weights.density(w)
                if dens <= gpu_weights.SPMV_MAX_DENSITY:
                    p["sparse"] = out + ":csc"
                    p["computed_as"] = "f32 sparse|dense"
                    self.weights[out + ":csc"] = wm  # made into CSR-by-column at upload
            self.step("gemm", (cols, *reads_res), (y,), f"cuBLAS ({choice.why})", **p)
        self.val[out] = y

    def gemm_input(self, n: Node, a: dict, w: Any, dtype: Any, x: int | None = None,
                   fill: int = 0) -> int:
        """The [M, K] (per sample [rows, K]) operand of a Conv/Gemm: the input itself for a
        Gemm and a 1x1 stride-1 unpadded Conv; im2col's output otherwise."""
        x = self.f32(n.inputs[0]) if x is None else x
        if not _needs_im2col(n, a, w):
            return x
        xs = self.tensors[x].shape
        kh, kw = w.shape[2], w.shape[3]
        out = self.shapes[n.outputs[0]]
        oh, ow = out[2], out[3]
        K = kh * kw * xs[2]
        k_cols = _round(K, K_ALIGN) if np.dtype(dtype) == np.int8 else K
        cols = self.new(n.outputs[0] + "/cols", (oh * ow, k_cols), dtype)
        self.step("im2col", (x,), (cols,), "numba im2col", kernel=(kh, kw), out_hw=(oh, ow),
                  strides=a["strides"], pads=a["pads"][:2], dilations=a["dilations"],
                  fill=fill)
        return cols

    def int8(self, n: Node, a: dict, w: Any, yshape: tuple, res: int | None, epi: dict) -> None:
        """A qc8 Conv (group 1) / Gemm on cuBLAS's int8 GEMM."""
        out = n.outputs[0]
        data = np.asarray(w.arrays["data"], dtype=np.int8)
        scale = np.asarray(w.arrays["scale"], dtype=np.float32).reshape(-1)
        if n.op == "Conv":
            wm = data.transpose(2, 3, 1, 0).reshape(-1, data.shape[0])  # [K, N]
        else:
            wm = data
        K, N = wm.shape
        if scale.size == 1:
            scale = np.full(N, scale[0], np.float32)
        # cuBLAS's int8 GEMM wants K and its column count (our N) multiples of 4 (some
        # GPUs refuse other sizes): zero rows / columns pad both
        K4, N4 = _round(K, K_ALIGN), _round(N, K_ALIGN)
        bt = np.zeros((N4, K4), np.int8)
        bt[:N, :K] = wm.T
        p = dict(K=K, K4=K4, N=N, N4=N4, res=res, bt=self.weight(out + ":bt", bt),
                 w_scale=self.weight(out + ":wscale", scale),
                 colsum=self.weight(out + ":colsum", wm.astype(np.int32).sum(0, dtype=np.int32)),
                 wfmt=w.format, **epi)
        src = n.inputs[0]
        reads_res = (res,) if res is not None else ()
        y = self.new(out, _nhwc(yshape))
        if src in self.q8:  # static: the QDQ's uint8 tensor
            q, s, zp = self.q8[src]
            p.update(a_scale=self.weight(out + ":ascale", np.array([s], np.float32)),
                     a_zp=self.weight(out + ":azp", np.array([zp - 128], np.int32)))
            whole = _needs_im2col(n, a, w)
            key = (q, K4, whole)
            if key not in self.signed:
                qs = self.tensors[q].shape
                # an image goes to im2col whole (K is padded there); a [rows, K] operand
                # pads K here
                s8 = self.new(self.tensors[q].name + "/s8", qs if whole else (*qs[:-1], K4),
                              np.int8)
                self.step("signed", (q,), (s8,), "numba signed")
                self.signed[key] = s8
            cols = self.gemm_input(n, a, w, np.int8, x=self.signed[key], fill=zp - 128)
            rows = _rows(self.tensors[cols].shape)
            acc = self.new(out + "/acc", (rows, N4), np.int32)
            p.update(rows=rows, dynamic=False, computed_as="int8 static")
            self.step("qgemm", (cols, *reads_res), (y, acc),
                      "cuBLAS int8 gemmEx (int32), static", **p)
        else:  # dynamic: per-row quantization of the float operand at run time
            cols = self.gemm_input(n, a, w, np.float32)
            rows = _rows(self.tensors[cols].shape)
            q = self.new(out + "/xq", (rows, K), np.uint8)
            sc = self.new(out + "/xscale", (rows,), np.float32)
            zp = self.new(out + "/xzp", (rows,), np.int32)
            s8 = self.new(out + "/xs8", (rows, K4), np.int8)
            zs = self.new(out + "/xzp8", (rows,), np.int32)
            self.step("quantize_rows", (cols,), (q, sc, zp), "numba quantize_rows")
            self.step("signed", (q, zp), (s8, zs), "numba signed")
            acc = self.new(out + "/acc", (rows, N4), np.int32)
            p.update(rows=rows, dynamic=True, computed_as="int8 dynamic")
            self.step("qgemm", (s8, sc, zs, *reads_res), (y, acc),
                      "cuBLAS int8 gemmEx (int32), dynamic", **p)
        self.val[out] = y


def _needs_im2col(n: Node, a: dict, w: Any) -> bool:
    """A Conv other than 1x1, stride 1, unpadded (a Gemm reads its input as is)."""
    if n.op == "Gemm":
        return False
    return not ((w.shape[2], w.shape[3]) == (1, 1) and a["strides"] == (1, 1)
                and not any(a["pads"]))


def _rows(shape: tuple) -> int:
    """Rows per sample of a GEMM operand stored with `shape` (the last dim is K)."""
    return math.prod(shape[:-1])


def _round(n: int, a: int) -> int:
    return -(-n // a) * a


def lower(graph: Graph, shapes: dict[str, tuple], tf32: bool = False) -> Program:
    """The CUDA program of an optimized graph (`passes.optimize`) with `shapes`
    (`shapes.infer_shapes`). UnsupportedOpError for what this backend cannot run."""
    return _Lowerer(graph, shapes, tf32).run()
