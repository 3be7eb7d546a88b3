"""Post-training quantization (`rt.quantize`). Graph -> Graph: the input is untouched.

What changes. The graph is optimized first (BatchNorm folded, activations and residual
adds fused: the quantization grid then sees the tensors the kernels produce), then the
kernel (input 1) of every Conv and Gemm node not in `exclude` (node or kernel weight
names of the caller's graph or of the optimized one; carried through folding by node
names) is re-encoded:
- "int8": `qc8`, symmetric int8 per output channel (`per_channel=False`: one scale for
  the whole kernel, stored per channel). A pruned kernel stored csr/bsr keeps its
  pattern with int8 values (one scale per output channel): the CPU's sparse kernel
  reads them with float activations (weight-only int8: batch 1 is bound by weight
  bytes), so such a layer gets no activation QDQ below.
  * Without `calibration` (dynamic): the CPU backend quantizes each Conv/Gemm input at
    run time (per row for Gemm, per sample for Conv) and runs the int8 kernels.
  * With `calibration` (static): a uint8 `QDQ` node is put in front of every quantized
    layer's input that has none yet (quantizing a static graph again changes nothing), its scale and zero point fixed from the calibration data (`method`:
    minmax, percentile, entropy; see passes/calibrate.py). Between two int8 layers the
    activation then stays uint8: the producer requantizes in its epilogue. A quantized
    layer's fused residual input that has such a node too (an inverted-residual block's
    input, read by the next expand conv and by the projection's residual add) is read
    through it, and a GlobalAveragePool of an int8 layer's output gets one in front, so
    those tensors are uint8 for every reader. (A MaxPool between two int8 layers needs
    nothing: max commutes with quantization, the CPU plan pools the uint8 values.)
- "fp16", "bf16": the kernel is stored as 16-bit floats (round to nearest even) and the
  CPU computes with fp32 activations, converting the weights in registers. Sparse
  kernels stay as they are (their values are already the small part).
Kernels already in an int8 format are left alone for every dtype.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import numpy as np

from .. import formats
from ..errors import InputError
from ..graph import Graph, Node, Weight, fresh_name
from ..shapes import node_attrs, validate
from .calibrate import METHODS, batches, observe, uint8_params
from .fusion import optimize

__all__ = ["quantize", "DTYPES", "METHODS"]

DTYPES = ("int8", "fp16", "bf16")


def _is_int8(w: Weight) -> bool:
    """A kernel in an int8 format: qc8, or csr/bsr with int8 values."""
    return w.format == "qc8" or (w.format in ("csr", "bsr")
                                 and w.arrays["values"].dtype == np.int8)


def _check_args(graph: Any, dtype: Any, method: Any, per_channel: Any, exclude: Any,
                percentile: Any, progress: Any) -> tuple[str, ...]:
    if not isinstance(graph, Graph):
        raise InputError(f"quantize: expected a pyruntime.Graph, got {type(graph).__name__}")
    if dtype not in DTYPES:
        raise InputError(f"quantize: dtype must be one of {DTYPES}, got {dtype!r}")
    if method not in METHODS:
        raise InputError(f"quantize: method must be one of {METHODS}, got {method!r}")
    for name, v in (("per_channel", per_channel), ("progress", progress)):
        if not isinstance(v, bool):
            raise InputError(f"quantize: {name} must be True or False, got {v!r}")
    if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real) \
            or not 50.0 < float(percentile) <= 100.0:
        raise InputError(f"quantize: percentile must be a number in (50, 100], got "
                         f"{percentile!r}")
    if isinstance(exclude, str) or not isinstance(exclude, Iterable):
        raise InputError(f"quantize: exclude must be a list of node or weight names, got "
                         f"{exclude!r}")
    names = tuple(exclude)
    bad = [x for x in names if not isinstance(x, str)]
    if bad:
        raise InputError(f"quantize: exclude must hold names (str), got {bad!r}")
    return names


_LAYER_OPS = ("Conv", "Gemm")
_TAG = "#quantize-layer"  # a nameless layer's name while quantize runs


def _name_layers(graph: Graph) -> tuple[Graph, set[str]]:
    """A copy of `graph` in which every Conv/Gemm node has a name (the nameless get
    temporary ones, returned): optimize() keeps a layer's node name through BatchNorm
    folding and activation fusion, not its kernel's weight name, so exclusions given in
    the caller's names are carried by node names."""
    taken = {n.name for n in graph.nodes if n.name}
    tags: set[str] = set()
    nodes = []
    for n in graph.nodes:
        n = n.copy()
        if n.op in _LAYER_OPS and not n.name:
            n.name = fresh_name(_TAG, taken)
            tags.add(n.name)
        nodes.append(n)
    return Graph(graph.inputs, list(graph.outputs), nodes, graph.weights, name=graph.name), tags


def _excluded(graph: Graph, g: Graph, exclude: tuple[str, ...]) -> set[str]:
    """Node names of the layers `exclude` names, each name a Conv/Gemm node or kernel
    weight of the caller's `graph` (all layers named) or of its optimized form `g`
    (a folded kernel's new name, as rt.quantize_report's graphs show it)."""
    out: set[str] = set()
    for x in exclude:
        layers = {n.name for gr in (graph, g) for n in gr.nodes if n.op in _LAYER_OPS
                  and (n.name == x or (len(n.inputs) > 1 and n.inputs[1] == x))}
        if layers:
            out |= layers
            continue
        other = next((n for n in graph.nodes if n.name == x), None)
        layer_names = [n.name for n in g.nodes if n.op in _LAYER_OPS
                       and not n.name.startswith(_TAG)]
        got = (f"a {other.op} node, not a Conv/Gemm layer"
               if other is not None else
               "a weight that is no Conv/Gemm kernel" if x in graph.weights or x in g.weights
               else "neither a node nor a weight")
        raise InputError(f"quantize: exclude: expected Conv/Gemm layer names or their kernel "
                         f"weights of graph {graph.name!r}; {x!r} is {got}; layers: "
                         f"{layer_names[:20] or 'none'}")
    return out


def _targets(g: Graph, excluded: set[str]) -> list[int]:
    """Indices of the Conv/Gemm nodes whose kernels are quantized."""
    return [i for i, n in enumerate(g.nodes)
            if n.op in _LAYER_OPS and n.inputs[1] in g.weights and n.name not in excluded]


def _int8_weight(w: Weight, op: str, per_channel: bool) -> Weight:
    axis = formats.OUTPUT_AXIS[op]
    if w.format in ("csr", "bsr"):
        return _sparse_int8(w)
    dense = formats.dense_f32(w)
    if per_channel:
        return formats.encode_qc8(dense, axis=axis)
    m = float(np.max(np.abs(dense))) if dense.size else 0.0
    scale = np.float32(m / 127.0) if m > 0 else np.float32(1.0)
    q = np.clip(np.round(dense.astype(np.float64) / float(scale)), -127, 127).astype(np.int8)
    return Weight("qc8", {"data": q, "scale": np.full(dense.shape[axis], scale, np.float32)},
                  attrs={"axis": axis})


def _sparse_int8(w: Weight) -> Weight:
    """A csr/bsr kernel with int8 values: its nonzeros (a stored zero of the float form
    is dropped), one scale per output channel."""
    dense = formats.dense_f32(w)
    axis = int(w.attrs["axis"])
    if w.format == "csr":
        return formats.encode_csr(dense, axis=axis, dtype=np.int8)
    return formats.encode_bsr(dense, tuple(w.attrs["block"]), axis=axis, dtype=np.int8)


def _encode(w: Weight, op: str, dtype: str, per_channel: bool) -> Weight | None:
    """The re-encoded kernel, or None when it stays as it is."""
    if _is_int8(w):
        return None
    if dtype == "int8":
        return _int8_weight(w, op, per_channel)
    if w.format in ("csr", "bsr"):
        return None
    dense = formats.dense_f32(w)
    return formats.encode_f16(dense) if dtype == "fp16" else formats.encode_bf16(dense)


def _encode_kernels(g: Graph, targets: list[int], dtype: str, per_channel: bool) -> None:
    """Re-encode the kernels of the layers `targets` in `g` (in place), once per weight.
    A weight shared with a node left as it is (an excluded layer) keeps its float form
    there: the quantized layers read a copy under a new name."""
    tset = set(targets)
    readers: dict[str, set[int]] = {}
    for i, n in enumerate(g.nodes):
        for x in n.inputs:
            if x in g.weights:
                readers.setdefault(x, set()).add(i)
    taken = set(g.weights) | {v.name for v in g.inputs} | {o for n in g.nodes for o in n.outputs}
    done: dict[str, str] = {}  # kernel -> the name its layers read now
    for i in targets:
        n = g.nodes[i]
        wn = n.inputs[1]
        if wn not in done:
            enc = _encode(g.weights[wn], n.op, dtype, per_channel)
            done[wn] = wn if enc is None or readers[wn] <= tset else \
                fresh_name(f"{wn}_{dtype}", taken)
            if enc is not None:
                g.weights[done[wn]] = enc
        n.inputs[1] = done[wn]


def quantize(graph: Graph, dtype: str, *, calibration: Any = None, method: str = "minmax",
             per_channel: bool = True, exclude: Iterable[str] = (), percentile: float = 99.99,
             progress: bool = True) -> Graph:
    """The graph with its Conv/Gemm kernels quantized to `dtype` ("int8", "fp16",
    "bf16"); int8 with `calibration` data also fixes the activation ranges (static).
    See the module doc. `progress`: a progress bar while calibrating."""
    ex = _check_args(graph, dtype, method, per_channel, exclude, percentile, progress)
    validate(graph)
    feeds = batches(graph, calibration) if calibration is not None else None
    if feeds is not None and dtype != "int8":
        raise InputError(f"quantize: calibration data is used by dtype 'int8' only; "
                         f"{dtype} has no activation ranges to fix")
    named, tags = _name_layers(graph)
    g = optimize(named, checked=True)
    targets = _targets(g, _excluded(named, g, ex))
    out = Graph(g.inputs, list(g.outputs), [n.copy() for n in g.nodes], dict(g.weights),
                name=g.name)
    _encode_kernels(out, targets, dtype, per_channel)
    if feeds is not None:
        out = _insert_qdq(out, g, targets, feeds, method, float(percentile), progress)
    for n in out.nodes:
        if n.name in tags:
            n.name = ""
    validate(out)
    return out


def _insert_qdq(q: Graph, fp: Graph, targets: list[int], feeds: list, method: str,
                percentile: float, progress: bool) -> Graph:
    """A uint8 QDQ node in front of every dense int8 (qc8) layer's input (one per
    tensor), its range calibrated on the float graph `fp`. A layer whose input is a QDQ
    output already (a static graph quantized again, an imported QDQ model) keeps that
    grid: a second QDQ would round twice."""
    prod = {o: i for i, n in enumerate(q.nodes) for o in n.outputs}
    on_grid = {o for n in q.nodes if n.op == "QDQ" for o in n.outputs}
    quantized = [i for i in targets if q.weights[q.nodes[i].inputs[1]].format == "qc8"
                 and q.nodes[i].inputs[0] not in on_grid]
    # a global average pool of an int8 layer's output reads it quantized too (as ONNX's
    # QLinearGlobalAveragePool): that output then stays uint8
    qset = set(quantized)
    pools = {i for i, n in enumerate(q.nodes)
             if n.op == "GlobalAveragePool" and prod.get(n.inputs[0], -1) in qset}
    tensors = list(dict.fromkeys([q.nodes[i].inputs[0] for i in quantized] +
                                 [q.nodes[i].inputs[0] for i in sorted(pools)]))
    if not tensors:
        return q
    ranges = observe(fp, tensors, feeds, method, percentile, progress)
    taken = {v.name for v in q.inputs} | set(q.weights) | {o for n in q.nodes for o in n.outputs}
    taken |= {n.name for n in q.nodes if n.name}
    qname: dict[str, str] = {}
    new_nodes: list[Node] = []
    for t in tensors:
        scale, zp = uint8_params(*ranges[t])
        out = fresh_name(f"{t}_qdq", taken)
        taken.add(out)
        qname[t] = out
        node = Node("QDQ", [t], [out], {"scale": scale, "zero_point": zp, "dtype": "uint8"},
                    name=fresh_name(f"{t}_qdq_node", taken))
        taken.add(node.name)
        new_nodes.append(node)
    # place each QDQ right after its tensor's producer (graph inputs: at the front)
    after: dict[int, list[Node]] = {}
    for node in new_nodes:
        after.setdefault(prod.get(node.inputs[0], -1), []).append(node)
    nodes: list[Node] = list(after.get(-1, []))
    for i, n in enumerate(q.nodes):
        if i in pools:
            n = n.copy()
            n.inputs[0] = qname[n.inputs[0]]
        if i in qset:
            n = n.copy()
            n.inputs[0] = qname[n.inputs[0]]
            # a residual that is also some int8 layer's input is read quantized too (as
            # an ONNX QDQ model's Add reads it): the tensor then stays uint8 end to end
            if node_attrs(n, i)["residual"] and n.inputs[3] in qname:
                n.inputs[3] = qname[n.inputs[3]]
        nodes.append(n)
        nodes.extend(after.get(i, []))
    return Graph(q.inputs, list(q.outputs), nodes, q.weights, name=q.name)

