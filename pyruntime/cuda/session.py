"""The CUDA backend's Session: `rt.compile(graph, device="cuda", device_id=0)`.

Compile lowers the graph once (`lowering.py`) and uploads every weight once. The first
run at a batch size builds that size's entry: one arena (`arena.py`, planned by liveness)
holding every tensor at a fixed address, each step bound to its views, one eager warm-up
run (it compiles the Numba kernels and lets cuBLAS pick its algorithms), then the whole
plan captured as a CUDA graph. Later runs at that size copy the inputs in, replay the
graph (one launch instead of one Python launch per kernel: a Numba launch from Python
costs ~150 us on an H200, more than a small model's whole GPU time) and copy the outputs
out. Entries are kept per batch size (`capture.py`, least recently used dropped).

Threads: each entry has one lock, held for the whole run. The captured graph reads and
writes the entry's one arena, so two runs of one batch size cannot overlap on any stream
without a second arena; the GPU runs one small-batch graph at a time anyway, so the lock
costs little, and the load balancer's dynamic batching (larger batches, fewer runs) is
where throughput comes from. Runs of different batch sizes hold different locks.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import DTypeError
from ..graph import Graph
from ..inputs import F32, InputSpec, IOInfo
from .arena import plan_arena
from .capture import CaptureCache
from .lowering import Program, Step, lower

__all__ = ["CudaSession", "compile_cuda"]


class CudaSession:
    """A model compiled for one CUDA device (or the Numba simulator). `run` as the CPU
    Session's: numpy in, numpy out; or device arrays in (`__cuda_array_interface__` or
    DLPack, e.g. CuPy, torch, JAX), CuPy arrays on the same device out, no host copy."""

    def __init__(self, dev: Any, prog: Program, graph: Graph, shapes: dict[str, tuple],
                 capture: bool = True, capacity: int = 8) -> None:
        from . import kernels as K
        self._K = K
        self._dev = dev
        self._prog = prog
        self._capture = bool(capture) and dev.captures
        self._out_names = list(graph.outputs)
        self.inputs = [IOInfo(v.name, shapes[v.name], F32) for v in graph.inputs]
        self.outputs = [IOInfo(n, shapes[n], F32) for n in self._out_names]
        self.spec = InputSpec(self.inputs)
        self._w: dict[str, Any] = {}
        with _on(dev):
            for key, a in prog.weights.items():
                if key.endswith(":csc"):
                    ip, ix, vals = K.csr_by_column(a)
                    self._w[key] = tuple(dev.upload(v) for v in (ip, ix, vals))
                else:
                    self._w[key] = dev.upload(a)
            self._consts: dict[tuple, Any] = {}
            for s in prog.steps:
                if s.kind == "dequantize":
                    self._const_qparams(s.p["scale"], s.p["zp"])
            dev.synchronize()
        self._cache: CaptureCache[_Entry] = CaptureCache(self._build, capacity)

    # ------------------------------------------------------------ facts
    @property
    def device(self) -> str:
        """"cuda:<id> <name>", or the simulator."""
        return self._dev.info()["device"]

    def plan_summary(self) -> list[dict[str, Any]]:
        """One record per step: op, kernel (what runs it), node, and for Conv/Gemm steps
        the weight's stored format and what it computes in ("computed_as")."""
        return [{"op": s.kind, "kernel": s.engine, "node": s.node,
                 "weight_format": s.p.get("wfmt"), "computed_as": s.p.get("computed_as")}
                for s in self._prog.steps]

    def captured(self) -> dict[int, bool]:
        """Batch sizes built so far -> whether that size runs as a captured CUDA graph."""
        return {b: self._cache.get(b).graph is not None for b in self._cache.sizes()}

    def arena_bytes(self, batch: int = 1) -> int:
        """Device working memory one run at `batch` uses (the entry's one allocation)."""
        first, last = self._prog.liveness()
        return plan_arena([t.nbytes(batch) for t in self._prog.tensors], first, last).total

    def close(self) -> None:
        """Free every batch size's arena and graph (weights go with the Session)."""
        self._cache.clear()

    def __repr__(self) -> str:
        return (f"CudaSession({self.device}, steps={len(self._prog.steps)}, "
                f"inputs={[i.name for i in self.inputs]})")

    # ------------------------------------------------------------ running
    def run(self, feeds: Any) -> Any:
        """Run the model (module doc). Host arrays follow the CPU Session's input rules."""
        if _on_device(feeds):
            arrays, bare = self._device_inputs(feeds)
            on_device = True
        else:
            arrays, bare = self.spec.ordered(feeds)
            on_device = False
        batch = self.spec.batch(arrays) if not self.spec.static else arrays[0].shape[0]
        if batch == 0:
            outs = [np.zeros((0, *o.shape[1:]), np.float32) for o in self.outputs]
            if on_device:
                outs = [self._dev.xp.asarray(o) for o in outs]
        else:
            outs = self._cache.get(int(batch)).run(arrays, on_device)
        if bare and len(outs) == 1:
            return outs[0]
        return dict(zip(self._out_names, outs))

    __call__ = run

    def _device_inputs(self, feeds: Any) -> tuple[list[Any], bool]:
        xp = self._dev.xp
        items, bare = self.spec.items(feeds)
        out = []
        for i, (info, x) in enumerate(zip(self.inputs, items)):
            a = xp.asarray(x) if hasattr(x, "__cuda_array_interface__") or xp is np \
                else xp.from_dlpack(x)
            if a.dtype != F32 and np.dtype(a.dtype).kind not in "iuf":
                raise DTypeError(f"input {info.name!r}: expected float32 (or another integer/"
                                 f"float dtype, converted), got {a.dtype}")
            self.spec.check_shape(i, a.shape)
            out.append(xp.ascontiguousarray(a, dtype=np.float32))
        return out, bare

    # ------------------------------------------------------------ entries
    def _build(self, batch: int) -> "_Entry":
        return _Entry(self, batch)

    def _const_qparams(self, scale: float, zp: int) -> tuple[Any, Any]:
        key = (float(scale), int(zp))
        if key not in self._consts:
            self._consts[key] = (self._dev.upload(np.array([scale], np.float32)),
                                 self._dev.upload(np.array([zp], np.int32)))
        return self._consts[key]

    def _bind(self, s: Step, V: list[Any], batch: int) -> Callable[[], None]:
        """The launch(es) of step `s` on this batch's views, as one closure."""
        K, dev, W, st, lk = self._K, self._dev, self._w, self._dev.stream, self._dev.launch
        p = s.p
        if s.kind == "transpose":
            src, dst = V[s.reads[0]].xp, V[s.writes[0]].xp
            perm = p["perm"]
            src4 = src.reshape(dst.shape[0], *(dst.shape[i] for i in _inverse(perm)[1:]))
            return lambda: dev.copy(dst, src4.transpose(perm))
        if s.kind == "copy":
            src, dst = V[s.reads[0]].xp, V[s.writes[0]].xp
            src = src.reshape(dst.shape)
            return lambda: dev.copy(dst, src)
        if s.kind == "add":
            a, b, y = (V[i].xp for i in (*s.reads, s.writes[0]))
            return lambda: dev.add(a, b, y)
        if s.kind in ("act", "softmax"):
            x, y = _mat(V[s.reads[0]].nb), _mat(V[s.writes[0]].nb)
            if s.kind == "softmax":
                return lambda: K.softmax(x, out=y, stream=st, **lk)
            return lambda: K.bias_act(x, None, p["act"], p["lo"], p["hi"], out=y, stream=st, **lk)
        if s.kind == "pool":
            x, y = V[s.reads[0]].nb, V[s.writes[0]].nb
            f = K.maxpool_nhwc if p["is_max"] else K.avgpool_nhwc
            kw = {} if p["is_max"] else {"count_include_pad": p["count_include_pad"]}
            return lambda: f(x, p["kernel"], p["out_hw"], p["strides"], p["pads"],
                             p["dilations"], out=y, stream=st, **kw, **lk)
        if s.kind == "global_avgpool":
            x, y = V[s.reads[0]].nb, V[s.writes[0]].nb
            y2 = y.reshape(batch, y.size // batch)
            return lambda: K.global_avgpool_nhwc(x, out=y2, stream=st, **lk)
        if s.kind == "quantize":
            x, q = V[s.reads[0]].nb, V[s.writes[0]].nb
            x1, q1 = x.reshape(x.size), q.reshape(q.size)
            return lambda: K.quantize(x1, p["scale"], p["zp"], out=q1, stream=st, **lk)
        if s.kind == "dequantize":
            q, y = _mat(V[s.reads[0]].nb), _mat(V[s.writes[0]].nb)
            sc, zp = self._const_qparams(p["scale"], p["zp"])
            return lambda: K.dequantize(q, sc.nb, zp.nb, out=y, stream=st, **lk)
        if s.kind == "quantize_rows":
            x = _mat(V[s.reads[0]].nb)
            q, sc, zp = (V[i].nb for i in s.writes)
            q, sc, zp = _mat(q), sc.reshape(sc.size), zp.reshape(zp.size)
            return lambda: K.quantize_rows(x, out=q, scale_out=sc, zp_out=zp, stream=st, **lk)
        if s.kind == "signed":
            q, s8 = V[s.reads[0]].nb, V[s.writes[0]].nb
            if len(s.reads) == 2:
                zp, zs = V[s.reads[1]].nb, V[s.writes[1]].nb
                zp, zs = zp.reshape(zp.size), zs.reshape(zs.size)
                q, s8 = _mat(q), _mat(s8)
                return lambda: K.signed(q, out=s8, zero_point=zp, zp_out=zs, stream=st, **lk)
            return lambda: K.signed(q, out=s8, stream=st, **lk)
        if s.kind == "im2col":
            x, cols = V[s.reads[0]].nb, V[s.writes[0]].nb
            c2 = _mat(cols)
            return lambda: K.im2col_nhwc(x, p["kernel"], p["out_hw"], p["strides"], p["pads"],
                                         p["dilations"], out=c2, stream=st, fill=p["fill"])
        if s.kind == "dwconv":
            x, y = V[s.reads[0]].nb, V[s.writes[0]].nb
            res = V[p["res"]].nb if p["res"] is not None else None
            bias = W[p["bias"]].nb if p["bias"] else None
            w = W[p["w"]].nb
            return lambda: K.dwconv2d_nhwc(x, w, p["out_hw"], p["strides"], p["pads"],
                                           p["dilations"], bias=bias, act=p["act"],
                                           lo=p["lo"], hi=p["hi"], residual=res,
                                           residual_after_act=p["res_after"], out=y, stream=st, **lk)
        if s.kind == "gemm":
            return self._bind_gemm(s, V, batch)
        if s.kind == "qgemm":
            return self._bind_qgemm(s, V, batch)
        raise AssertionError(f"unknown CUDA step {s.kind!r}")

    def _epilogue(self, p: dict, V: list[Any], M: int, N: int) -> tuple[Any, Any]:
        bias = self._w[p["bias"]].nb if p["bias"] else None
        res = V[p["res"]].nb.reshape(M, N) if p["res"] is not None else None
        return bias, res

    def _bind_gemm(self, s: Step, V: list[Any], batch: int) -> Callable[[], None]:
        K, dev, st, p, lk = self._K, self._dev, self._dev.stream, s.p, self._dev.launch
        M, Kd, N = batch * p["rows"], p["K"], p["N"]
        x, y = V[s.reads[0]], V[s.writes[0]]
        bias, res = self._epilogue(p, V, M, N)
        y_nb = y.nb.reshape(M, N)
        act = p["act"]
        if "sparse" in p and M == 1:
            ip, ix, vals = self._w[p["sparse"]]
            x_nb = x.nb.reshape(1, Kd)
            return lambda: K.spmv(x_nb, ip.nb, ix.nb, vals.nb, bias, act, p["lo"], p["hi"],
                                  residual=res, residual_after_act=p["res_after"], out=y_nb,
                                  stream=st, **lk)
        x_xp, y_xp, w = x.xp.reshape(M, Kd), y.xp.reshape(M, N), self._w[p["w"]].xp
        needs_epi = bias is not None or res is not None or act != "none"
        x16 = V[s.writes[1]].xp.reshape(M, Kd) if "x16" in p else None

        def run() -> None:
            if x16 is not None:
                dev.copy(x16, x_xp)
                dev.gemm(x16, w, y_xp)
            else:
                dev.gemm(x_xp, w, y_xp, p["tf32"])
            if needs_epi:
                K.bias_act(y_nb, bias, act, p["lo"], p["hi"], residual=res,
                           residual_after_act=p["res_after"], out=y_nb, stream=st, **lk)
        return run

    def _bind_qgemm(self, s: Step, V: list[Any], batch: int) -> Callable[[], None]:
        K, dev, st, p, lk = self._K, self._dev, self._dev.stream, s.p, self._dev.launch
        M, K4, N, N4 = batch * p["rows"], p["K4"], p["N"], p["N4"]
        a = V[s.reads[0]].xp.reshape(M, K4)
        y, acc = V[s.writes[0]], V[s.writes[1]]
        acc_xp, acc_nb = acc.xp.reshape(M, N4), acc.nb.reshape(M, N4)
        y_nb = y.nb.reshape(M, N)
        if p["dynamic"]:
            a_s = V[s.reads[1]].nb.reshape(M)
            a_z = V[s.reads[2]].nb.reshape(M)
        else:
            a_s, a_z = self._w[p["a_scale"]].nb, self._w[p["a_zp"]].nb
        bt, ws, cs = (self._w[p[k]] for k in ("bt", "w_scale", "colsum"))
        bias, res = self._epilogue(p, V, M, N)

        def run() -> None:
            dev.gemm_int8(a, bt.xp, acc_xp)
            K.requantize(acc_nb, a_s, a_z, ws.nb, cs.nb, bias, p["act"], p["lo"], p["hi"],
                         residual=res, residual_after_act=p["res_after"], out=y_nb, stream=st,
                         n=N, **lk)
        return run


class _Entry:
    """One batch size: arena, bound steps, the captured graph (module doc)."""

    def __init__(self, sess: CudaSession, batch: int) -> None:
        dev, prog = sess._dev, sess._prog
        self.dev = dev
        first, last = prog.liveness()
        self.arena = plan_arena([t.nbytes(batch) for t in prog.tensors], first, last)
        self.lock = threading.Lock()
        self.graph = None
        self.capture_error: str | None = None
        with dev.exclusive, _on(dev):
            dev.bind_thread()  # the Numba launches below (warm-up, capture) run here
            self.buf = dev.alloc(self.arena.total)
            V = [dev.view(self.buf, off, (batch, *t.shape), t.dtype)
                 for off, t in zip(self.arena.offsets, prog.tensors)]
            self.ins = [V[i] for i in prog.inputs]
            self.outs = [V[i] for i in prog.outputs]
            self.calls = [sess._bind(s, V, batch) for s in prog.steps]
            self._eager()  # compiles the kernels, warms cuBLAS; nothing allocates after
            dev.synchronize()
            if sess._capture:
                try:
                    self.graph = dev.capture(self._eager)
                except Exception as e:  # run eagerly; captured() and the summary say so
                    self.capture_error = f"{type(e).__name__}: {e}"
                    self.graph = None

    def _eager(self) -> None:
        for c in self.calls:
            c()

    def run(self, arrays: list[Any], on_device: bool) -> list[Any]:
        dev = self.dev
        with self.lock, dev.exclusive, _on(dev):
            for v, a in zip(self.ins, arrays):
                if on_device:
                    dev.copy(v.xp, a)
                else:
                    dev.from_host(v, a)
            if self.graph is not None:
                dev.replay(self.graph)
            else:
                dev.bind_thread()
                self._eager()
            if on_device:
                outs = [v.xp.copy() for v in self.outs]
                dev.synchronize()
                return outs
            return [dev.to_host(v) for v in self.outs]

    def close(self) -> None:
        self.graph = None
        self.calls = []
        self.buf = None


class _on:
    """`with _on(dev):` makes dev's GPU and stream current (nothing for the simulator)."""

    def __init__(self, dev: Any) -> None:
        self.dev = dev
        self.ctx = dev if hasattr(dev, "__enter__") else None

    def __enter__(self) -> None:
        if self.ctx is not None:
            self.ctx.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


def _mat(a: Any) -> Any:
    """A device array as 2-D [rows, last dim] (a view)."""
    shape = tuple(a.shape)  # (the simulator's shape objects take no negative index)
    n = shape[-1] if shape else 1
    return a.reshape(a.size // n if n else 0, n)


def _inverse(perm: tuple) -> tuple:
    inv = [0] * len(perm)
    for i, d in enumerate(perm):
        inv[d] = i
    return tuple(inv)


#: DLPack device types of GPU memory (kDLCUDA, kDLCUDAManaged)
_DLPACK_GPU = (2, 13)


def _is_gpu_array(x: Any) -> bool:
    """A CUDA array (its interface, or DLPack on a CUDA device); a host array is not."""
    if isinstance(x, np.ndarray):
        return False
    if hasattr(x, "__cuda_array_interface__"):
        return True
    dev = getattr(x, "__dlpack_device__", None)
    try:
        return callable(dev) and int(dev()[0]) in _DLPACK_GPU
    except Exception:  # a foreign object whose device cannot be asked: a host array
        return False


def _on_device(feeds: Any) -> bool:
    items = feeds.values() if isinstance(feeds, Mapping) else [feeds]
    return any(_is_gpu_array(x) for x in items)


def compile_cuda(graph: Graph, device_id: int = 0, tf32: bool = False,
                 capture: bool = True) -> CudaSession:
    """Optimize a validated `graph`, lower it for the GPU and upload its weights (module
    doc). `tf32=True` lets fp32 GEMMs use TF32 tensor cores (10-bit mantissa inputs);
    `capture=False` runs every step from Python (to compare, or to debug a step)."""
    from .. import passes, shapes as shp
    from .device import open_device

    dev = open_device(device_id)
    g = passes.optimize(graph, checked=True)
    shapes = shp.infer_shapes(g, checked=True)
    prog = lower(g, shapes, tf32=bool(tf32))
    return CudaSession(dev, prog, g, shapes, capture=capture)
