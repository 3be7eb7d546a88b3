"""The CPU backend's Session: a native plan run in one call with the GIL released."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .. import _core
from ..errors import InputError, ShapeError
from ..graph import Graph
from ..info import check_isa
from ..inputs import F32, InputSpec, IOInfo

__all__ = ["Session", "compile_cpu", "IOInfo"]

_MAX_THREADS = 1024
_MAX_GEOM = _core.MAX_GEOM  # largest stride, pad, dilation or kernel size (pyrt::kMaxGeom)
_MEMORY_CAP = _core.MEMORY_CAP  # bytes: the plan's working-memory cap (Plan::kMemoryCap)


class Session:
    """A compiled model. Call `run`; safe to call from many threads at once.

    Defined outcomes of `run` (every failure is a typed `pyruntime.Error`):

    - Inputs: `run(x)` with one array when the model has one input (returns one array
      when it has one output, else a dict), or `run({"name": x, ...})` -> dict of outputs
      by name. A bare array for a multi-input model, or unknown/missing names ->
      `InputError` listing the expected names. Array-likes (lists) are converted.
    - dtype: float32 is used as is; other integer and floating dtypes (int8..uint64,
      float16, float64) are converted to float32 (rounding as numpy's astype does);
      bool, complex, object, string or structured arrays -> `DTypeError`.
    - Shape: the rank and every non-batch dim must match `inputs[i].shape`, and a fixed
      first dim must match exactly -> otherwise `ShapeError` naming the input, the expected
      and the given shape. All inputs must share one batch size. A model whose inputs all
      have a fixed first dim is static: it runs exactly those shapes (its ops may then
      mix the first dim with others, e.g. Flatten(axis=0)).
    - Batch 0: allowed; returns outputs with a first dim of 0 without running anything.
    - A batch whose working memory would pass 64 GiB (or whose sizes overflow) ->
      `ShapeError` before anything is allocated.
    - Non-contiguous arrays are copied to a contiguous buffer; read-only arrays are read
      in place (inputs are never written).
    - NaN and Inf follow IEEE float32 math, as numpy would: a NaN input gives NaN in
      every output element that depends on it (sums, products, exp, tanh, softmax rows).
      relu(NaN) and clip(NaN) are NaN (like np.maximum/np.minimum), and a max-pool
      window holding a NaN gives NaN. Inf - Inf and 0 * Inf give NaN; a softmax row with
      +Inf or NaN is all NaN. Except in int8 steps (rt.quantize, quantized ONNX), which
      compute in integers: a NaN or Inf reaching a quantize point (a static model's
      input, a dynamically quantized layer's input) takes some value on the uint8 grid
      (+-Inf its ends), so that sample's outputs may be finite, as with onnxruntime's
      QuantizeLinear (NaN -> 0). Check inputs with np.isfinite where it matters.
    - Outputs are new float32 arrays owned by the caller, public layout (NCHW for 4-D).
    """

    def __init__(self, plan: Any, graph: Graph, shapes: dict[str, tuple],
                 step_nodes: list[str], threads: int,
                 step_weights: list[tuple[str, str] | None] | None = None) -> None:
        self._plan = plan
        self._run = plan.run
        self._threads = threads
        self._out_names = list(graph.outputs)
        self.inputs = [IOInfo(v.name, shapes[v.name], F32) for v in graph.inputs]
        self.outputs = [IOInfo(n, shapes[n], F32) for n in self._out_names]
        #: The input check every Session kind and the load balancer share.
        # (over the plan, not the Session: a bound method would make every Session a
        # reference cycle, freed only by the cyclic collector)
        self.spec = InputSpec(self.inputs, before_copy=_arena_check(plan, self.inputs))
        self._step_nodes = step_nodes
        self._step_weights = step_weights or [None] * len(step_nodes)
        s0 = self.inputs[0].shape
        self._fast = (len(s0), tuple(s0[1:])) \
            if len(self.inputs) == 1 and s0[0] is None else None

    # ------------------------------------------------------------ facts
    @property
    def threads(self) -> int:
        """Threads each run may use: the calling thread and up to threads - 1 workers of
        the process's worker pool (steps too small to split run on the caller alone)."""
        return self._threads

    @property
    def isa(self) -> str:
        """The instruction set of the kernels in this plan."""
        return self._plan.isa

    def plan_summary(self) -> list[dict[str, Any]]:
        """One record per plan step: op, kernel name, the graph node it came from
        ("output ..." for copies to the caller's arrays), and for Conv/Gemm steps the
        stored format of the weight ("weight_format", e.g. "csr"; a fused step joins its
        weights' formats with "+", e.g. "f32+f16+csr" for an inverted-residual block) and
        the format the kernel computed with ("computed_as": "f32" dense, "f16" / "bf16"
        on the 16-bit weight kernels, "int8 static" / "int8 dynamic" on the int8 kernels,
        "f32 sparse" on the sparse kernel, "int8w sparse" on the int8-valued sparse row
        kernel, "... sparse|dense" when a layer keeps both and picks by the rows of the
        run; any other weight runs on its dense float32 view: "f32"); both None on other
        steps."""
        out = []
        for i, (op, kernel, reads, writes) in enumerate(self._plan.summary()):
            node = self._step_nodes[i] if i < len(self._step_nodes) else "output copy"
            wf = self._step_weights[i] if i < len(self._step_weights) else None
            computed = wf[1] if wf else None
            if computed == "int8":  # int8 csr/bsr off the int8 kernel: the float view
                computed = "f32"
            if computed and "qc8w_spmm" in kernel:
                computed = "int8w sparse|dense" if "; dense " in kernel else "int8w sparse"
            elif computed and "f32_spmm" in kernel:
                computed = "f32 sparse|dense" if "; dense " in kernel else "f32 sparse"
            out.append({"op": op, "kernel": kernel, "node": node,
                        "weight_format": wf[0] if wf else None, "computed_as": computed})
        return out

    def profile(self, feeds: Any, repeat: int = 10) -> list[dict[str, Any]]:
        """plan_summary() with the median seconds of every step over `repeat` runs."""
        arrays, _ = self.spec.ordered(feeds)
        times = [self._execute(arrays, profiled=True) for _ in range(max(1, int(repeat)))]
        rows = self.plan_summary()
        for i, r in enumerate(rows):
            r["seconds"] = sorted(t[i] for t in times)[len(times) // 2] if times[0] else 0.0
        return rows

    def arena_bytes(self, batch: int = 1) -> int:
        """Working memory (bytes) one run with this batch size uses, besides inputs/outputs."""
        try:
            return int(self._plan.arena_bytes(batch))
        except _core.SizeError as e:
            raise ShapeError(f"batch {batch} is too large: {e}") from None

    def __repr__(self) -> str:
        ins = ", ".join(f"{i.name}{i.shape}" for i in self.inputs)
        outs = ", ".join(f"{o.name}{o.shape}" for o in self.outputs)
        return (f"Session(cpu/{self.isa}, threads={self._threads}, steps="
                f"{len(self._step_nodes)}, inputs=[{ins}], outputs=[{outs}])")

    # ------------------------------------------------------------ running
    def _execute(self, arrays: list[np.ndarray], profiled: bool = False) -> Any:
        """The outputs of one native run (a static graph runs as one sample); with
        `profiled`, the seconds of every step instead."""
        static = self.spec.static
        feeds = [a[None] for a in arrays] if static else arrays
        try:
            if profiled:
                return self._plan.run_profiled(feeds)[1]
            outs = self._run(feeds)
        except _core.SizeError as e:
            raise ShapeError(f"batch {arrays[0].shape[0]} is too large: {e}") from None
        return [o[0] for o in outs] if static else outs

    def run(self, feeds: Any) -> Any:
        """Run the whole model in one native call (GIL released). See the class doc."""
        if type(feeds) is np.ndarray and self._fast is not None:
            # Fast path: one dynamic-batch input, already float32 C-contiguous, right dims.
            rank, tail = self._fast
            if feeds.dtype is F32 and feeds.ndim == rank and feeds.shape[1:] == tail \
                    and feeds.flags.c_contiguous:
                outs = self._execute([feeds])
                return outs[0] if len(outs) == 1 else dict(zip(self._out_names, outs))
        arrays, bare = self.spec.ordered(feeds)
        outs = self._execute(arrays)
        if bare and len(outs) == 1:
            return outs[0]
        return dict(zip(self._out_names, outs))

    __call__ = run


def _arena_check(plan: Any, inputs: list[IOInfo]) -> Any:
    """Before an input is copied: the batch's working memory must fit the cap (a static
    graph, whose inputs all have a fixed first dim, was sized when it compiled)."""
    static = all(i.shape[0] is not None for i in inputs)

    def check(x: np.ndarray) -> None:
        if not static:
            try:
                plan.arena_bytes(x.shape[0])
            except _core.SizeError as e:
                raise ShapeError(f"batch {x.shape[0]} is too large: {e}") from None
    return check


def _threads(threads: Any) -> int:
    if threads is None:
        try:
            n = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            n = os.cpu_count() or 1
        return max(1, min(n, _MAX_THREADS))
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise InputError(f"threads: expected a positive integer or None, got {threads!r}")
    if not 1 <= threads <= _MAX_THREADS:
        raise InputError(f"threads: expected 1..{_MAX_THREADS} or None, got {threads}")
    return int(threads)


def _check_sizes(g: Graph, shapes: dict[str, tuple]) -> None:
    """Sizes the native plan cannot hold -> ShapeError before anything is allocated (the
    plan works in 64-bit sizes; huge dims would overflow them or the memory cap)."""
    for name, s in shapes.items():
        n = math.prod(d for d in s if d is not None)
        if n > _MEMORY_CAP // 4:
            raise ShapeError(f"value {name!r} with shape {s} is too large: {n} elements per "
                             f"sample, more than the {_MEMORY_CAP // 4} (the {_MEMORY_CAP >> 30} "
                             f"GiB memory cap) the CPU runtime can hold")
    for node in g.nodes:
        for k in ("strides", "pads", "dilations", "kernel_shape"):
            v = node.attrs.get(k)
            if v is not None and any(int(d) > _MAX_GEOM for d in v):
                raise ShapeError(f"node {node.name!r} ({node.op}): {k} {tuple(v)} is too large "
                                 f"(each value at most {_MAX_GEOM})")


def _check_weight_sizes(g: Graph) -> None:
    """The kernels compute every weight from its dense float32 view: a sparse weight of a
    tiny file may describe a huge matrix. Its dense bytes must fit the memory cap and this
    machine's memory, checked from the logical shapes before anything is densified."""
    sizes = {name: 4 * math.prod(w.shape) for name, w in g.weights.items()}
    total = sum(sizes.values())
    try:
        phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        phys = _MEMORY_CAP
    limit = min(_MEMORY_CAP, phys)
    if total > limit:
        big = max(sizes, key=sizes.get)
        raise ShapeError(f"the weights' dense float32 views need {total >> 20} MiB (weight "
                         f"{big!r} of shape {tuple(g.weights[big].shape)} alone "
                         f"{sizes[big] >> 20} MiB), more than the {limit >> 20} MiB this "
                         f"runtime may use here (the memory cap and this machine's memory)")


def compile_cpu(graph: Graph, threads: int | None = None, isa: str | None = None,
                fuse_blocks: bool = True, sparse: str = "auto") -> Session:
    """Optimize a validated `graph`, then build its native plan (weights packed for the
    chosen kernels, buffers planned). `threads=None` uses every core this process may run
    on; `isa=None` the best kernels this CPU has (or PYRUNTIME_ISA). Weights of every
    format compile through their dense float32 view (the kernels are f32 for now; see
    plan_summary()'s weight_format / computed_as); Gemm/Conv weights with zeros run on
    the sparse kernel f32_spmm where its cost model (cpp/runtime/sparse.cpp) says it is
    faster (`sparse`: "auto", "dense" or "sparse", see rt.compile). `fuse_blocks=False`
    keeps inverted-residual blocks and dense int8 chains (qgemm_chain) as separate steps
    (to compare the two plans)."""
    from .. import passes, shapes as shp
    from .plan_builder import lower

    n = _threads(threads)
    isa_name = check_isa(isa) if isa is not None else None
    _check_weight_sizes(graph)  # before any pass densifies a weight
    g = passes.optimize(graph, checked=True)  # rt.compile validated it
    shapes = shp.infer_shapes(g)
    _check_sizes(g, shapes)
    low = lower(g, shapes, isa_name, n, fuse_blocks, sparse)  # an unusable ISA: IsaError natively
    return Session(low.plan, g, shapes, low.step_nodes, n, low.step_weights)
