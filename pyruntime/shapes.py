"""Graph validation, topological order, attribute defaults and shape inference.

Everything that consumes a Graph (reference evaluator, passes, compiler, file format)
relies on `validate` having accepted it, so this module is strict: every malformed name,
attribute or weight is a typed error that says which node, what was expected and what
came. Weights are checked by their format's registry entry (pyruntime.formats).
Shapes are tuples; `None` is the symbolic batch and may only be the first dim.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import numpy as np

from . import _core
from .errors import GraphError, ShapeError, UnsupportedOpError, WeightShapeError
from . import formats
from .graph import Graph, Node

__all__ = ["WeightShapeError", "SUPPORTED_OPS", "ACTIVATIONS", "ACTIVATION_OPS", "toposort", "validate",
           "infer_shapes", "node_attrs", "node_label", "consumers", "producers", "window_out",
           "ceil_adds_window", "same_pads", "pool_extent", "QDQ_RANGE", "qdq"]



#: Activations a Conv/Gemm epilogue fuses: the native enum pyrt::Act (bound as
#: _core.Act), so the IR, the passes and the kernels share one list.
ACTIVATIONS = tuple(name for name in _core.Act.__members__ if name != "none")
#: The standalone op of each activation.
ACTIVATION_OPS = {"Relu": "relu", "Clip": "clip", "Sigmoid": "sigmoid", "Tanh": "tanh",
                  "Gelu": "gelu"}
assert sorted(ACTIVATION_OPS.values()) == sorted(ACTIVATIONS), "pyrt::Act and the IR disagree"
_FUSED = {"activation": None, "act_min": -math.inf, "act_max": math.inf,
          "residual": False, "residual_after_act": False}
_POOL = {"strides": (1, 1), "pads": (0, 0, 0, 0), "ceil_mode": 0}
#: op -> (min inputs, max inputs, attribute defaults; REQUIRED marks a required attr)
REQUIRED = object()
_OPS: dict[str, tuple[int, int, dict[str, Any]]] = {
    "Conv": (2, 4, {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1),
                    "group": 1, **_FUSED}),
    "Gemm": (2, 4, dict(_FUSED)),
    "BatchNormalization": (5, 5, {"epsilon": 1e-5}),
    "Relu": (1, 1, {}), "Sigmoid": (1, 1, {}), "Tanh": (1, 1, {}), "Gelu": (1, 1, {}),
    "Clip": (1, 1, {"min": -math.inf, "max": math.inf}),
    "Softmax": (1, 1, {"axis": -1}),
    "MaxPool": (1, 1, {"kernel_shape": REQUIRED, "dilations": (1, 1), **_POOL}),
    "AveragePool": (1, 1, {"kernel_shape": REQUIRED, "dilations": (1, 1),
                           "count_include_pad": 0, **_POOL}),
    "GlobalAveragePool": (1, 1, {}),
    "Add": (2, 2, {}),
    "Flatten": (1, 1, {"axis": 1}),
    "Reshape": (1, 1, {"shape": REQUIRED}),
    "Transpose": (1, 1, {"perm": (1, 0)}),
    "Identity": (1, 1, {}), "Dropout": (1, 1, {}),
    # Quantize then dequantize an activation (ONNX QuantizeLinear + DequantizeLinear,
    # per tensor): y = (clamp(round_half_even(x / scale) + zero_point, qmin, qmax)
    # - zero_point) * scale, float in and out. Backends with int8 kernels keep the
    # quantized tensor and run the ops around it on it (static quantization).
    "QDQ": (1, 1, {"scale": REQUIRED, "zero_point": 0, "dtype": "uint8"}),
}
#: The integer range of each QDQ dtype.
QDQ_RANGE = {"uint8": (0, 255), "int8": (-128, 127)}
SUPPORTED_OPS = frozenset(_OPS)


def node_label(node: Node, index: int | None = None) -> str:
    """How errors name a node: its name (or position) and op."""
    name = node.name or (f"#{index}" if index is not None else "<unnamed>")
    return f"node {name!r} ({node.op})"


def producers(graph: Graph) -> dict[str, int]:
    """Value name -> index of the node that outputs it."""
    return {o: i for i, n in enumerate(graph.nodes) for o in n.outputs}


def consumers(graph: Graph) -> dict[str, list[int]]:
    """Value name -> indices of the nodes that read it (graph outputs not included)."""
    out: dict[str, list[int]] = {}
    for i, n in enumerate(graph.nodes):
        for x in n.inputs:
            if x:
                out.setdefault(x, []).append(i)
    return out


# ---------------------------------------------------------------- topological order

def toposort(graph: Graph) -> list[Node]:
    """Nodes in a topological order, keeping the given order wherever it is already
    valid (stable Kahn). Names produced by no node count as external. Cycles raise
    GraphError naming the nodes on one cycle."""
    prod = producers(graph)
    deps = [{prod[x] for x in n.inputs if x in prod} for n in graph.nodes]
    users: list[list[int]] = [[] for _ in graph.nodes]
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    missing = [len(d) for d in deps]
    ready = [i for i, m in enumerate(missing) if m == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            missing[u] -= 1
            if missing[u] == 0:
                heapq.heappush(ready, u)
    if len(order) < len(graph.nodes):
        left = {i for i in range(len(graph.nodes)) if missing[i] > 0}
        cycle = _find_cycle(left, deps)
        names = ", ".join(node_label(graph.nodes[i], i) for i in cycle)
        raise GraphError(f"graph {graph.name!r} has a cycle through: {names}")
    return [graph.nodes[i] for i in order]


def _find_cycle(left: set[int], deps: list[set[int]]) -> list[int]:
    """Walk predecessors inside `left` (every member has one) until a node repeats."""
    i, seen, path = min(left), {}, []
    while i not in seen:
        seen[i] = len(path)
        path.append(i)
        i = min(j for j in deps[i] if j in left)
    return path[seen[i]:][::-1]


# ---------------------------------------------------------------- attributes

def _ints(v: Any, n: int, what: str, lo: int) -> tuple[int, ...]:
    try:
        t = tuple(v)
    except TypeError:
        raise GraphError(f"{what}: expected {n} integers, got {v!r}") from None
    if len(t) != n or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool)
                              for x in t):
        raise GraphError(f"{what}: expected {n} integers, got {v!r}")
    if any(x < lo for x in t):
        raise GraphError(f"{what}: expected integers >= {lo}, got {v!r}")
    return tuple(int(x) for x in t)


def _int(v: Any, what: str, allowed: tuple[int, ...] | None = None) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
        raise GraphError(f"{what}: expected an integer, got {v!r}")
    if allowed is not None and int(v) not in allowed:
        raise GraphError(f"{what}: expected one of {allowed}, got {v!r}")
    return int(v)


def _float(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or math.isnan(v):
        raise GraphError(f"{what}: expected a float, got {v!r}")
    return float(v)


def node_attrs(node: Node, index: int | None = None) -> dict[str, Any]:
    """The node's attributes checked and completed with defaults (tuples of ints,
    floats, bools). Raises GraphError on unknown or malformed attributes."""
    if node.op not in _OPS:
        raise UnsupportedOpError(f"unsupported op {node.op!r} in {node_label(node, index)}")
    where = node_label(node, index)
    spec = _OPS[node.op][2]
    unknown = sorted(set(node.attrs) - set(spec))
    if unknown:
        raise GraphError(f"{where}: unknown attribute(s) {unknown}; "
                         f"{node.op} takes {sorted(spec) or 'none'}")
    a = {k: node.attrs.get(k, d) for k, d in spec.items()}
    for k, v in a.items():
        if v is REQUIRED:
            raise GraphError(f"{where}: missing required attribute {k!r}")
        w = f"{where} attribute {k!r}"
        if k in ("strides", "dilations"):
            a[k] = _ints(v, 2, w, 1)
        elif k == "kernel_shape":
            a[k] = _ints(v, 2, w, 1)
        elif k == "pads":
            a[k] = _ints(v, 4, w, 0)
        elif k == "group":
            a[k] = _int(v, w)
            if a[k] < 1:
                raise GraphError(f"{w}: expected a positive integer, got {v!r}")
        elif k in ("ceil_mode", "count_include_pad"):
            a[k] = _int(v, w, (0, 1))
        elif k in ("axis",):
            a[k] = _int(v, w)
        elif k == "perm":
            a[k] = _ints(v, 2, w, 0)
            if sorted(a[k]) != [0, 1]:
                raise GraphError(f"{w}: expected a permutation of (0, 1) (Transpose is 2-D), "
                                 f"got {v!r}")
        elif k == "shape":
            a[k] = _ints(v, 2, w, -1)
            if a[k].count(-1) > 1:
                raise GraphError(f"{w}: at most one -1 allowed, got {v!r}")
        elif k in ("epsilon", "min", "max", "act_min", "act_max"):
            a[k] = _float(v, w)
        elif k in ("residual", "residual_after_act"):
            if not isinstance(v, (bool, np.bool_)):
                raise GraphError(f"{w}: expected True or False, got {v!r}")
            a[k] = bool(v)
        elif k == "scale":
            a[k] = _float(v, w)
            f32 = float(np.float32(a[k]))
            if not (math.isfinite(f32) and f32 > 0 and f32 == a[k]):
                raise GraphError(f"{w}: expected a finite float32 value > 0, got {v!r}")
        elif k == "dtype":
            if v not in QDQ_RANGE:
                raise GraphError(f"{w}: expected one of {tuple(QDQ_RANGE)}, got {v!r}")
        elif k == "zero_point":
            a[k] = _int(v, w)
        elif k == "activation" and v is not None and v not in ACTIVATIONS:
            raise GraphError(f"{w}: expected one of {ACTIVATIONS} or absent, got {v!r}")
    if node.op == "BatchNormalization" and a["epsilon"] < 0:
        raise GraphError(f"{where}: epsilon must be >= 0, got {a['epsilon']}")
    if node.op == "Clip" and a["min"] > a["max"]:
        raise GraphError(f"{where}: min {a['min']} > max {a['max']}")
    if node.op in ("MaxPool", "AveragePool"):
        (kh, kw), p = a["kernel_shape"], a["pads"]
        if max(p[0], p[2]) >= kh or max(p[1], p[3]) >= kw:
            raise GraphError(f"{where}: pads {p} must be smaller than kernel_shape "
                             f"{(kh, kw)} (as in ONNX Runtime; else windows see only padding)")
    if node.op in ("Conv", "Gemm"):
        _check_fused(node, a, where)
    if node.op == "QDQ":
        lo, hi = QDQ_RANGE[a["dtype"]]
        if not lo <= a["zero_point"] <= hi:
            raise GraphError(f"{where}: zero_point must lie in [{lo}, {hi}] for "
                             f"{a['dtype']}, got {a['zero_point']}")
    return a


def _check_fused(node: Node, a: dict[str, Any], where: str) -> None:
    if a["activation"] != "clip" and ("act_min" in node.attrs or "act_max" in node.attrs):
        raise GraphError(f"{where}: act_min/act_max need activation 'clip', "
                         f"got activation {a['activation']!r}")
    if a["act_min"] > a["act_max"]:
        raise GraphError(f"{where}: act_min {a['act_min']} > act_max {a['act_max']}")
    has_r = len(node.inputs) == 4 and node.inputs[3] != ""
    if a["residual"] != has_r:
        raise GraphError(f"{where}: residual={a['residual']} but the residual input R is "
                         f"{'present' if has_r else 'absent'} (inputs {node.inputs})")
    if a["residual_after_act"] and not a["residual"]:
        raise GraphError(f"{where}: residual_after_act=True without residual=True")


# ---------------------------------------------------------------- structure

def _check_structure(graph: Graph) -> None:
    """Names, ops, attributes and order; everything that needs no shapes."""
    bad_ops: dict[str, list[str]] = {}
    for i, n in enumerate(graph.nodes):
        if n.op not in _OPS:
            bad_ops.setdefault(n.op, []).append(n.name or f"#{i}")
    if bad_ops:
        lst = "; ".join(f"{op} (nodes {', '.join(map(repr, ns))})"
                        for op, ns in sorted(bad_ops.items()))
        raise UnsupportedOpError(f"graph {graph.name!r} uses {len(bad_ops)} unsupported "
                                 f"op(s): {lst}")
    seen: dict[str, str] = {}

    def define(name: str, what: str) -> None:
        if not isinstance(name, str) or not name:
            raise GraphError(f"{what} has an empty or non-string name {name!r}")
        if name in seen:
            raise GraphError(f"duplicate value name {name!r}: {what} and {seen[name]}")
        seen[name] = what

    for vi in graph.inputs:
        define(vi.name, "graph input")
        _check_input_shape(vi.name, vi.shape)
    for wn, w in graph.weights.items():
        define(wn, "weight")
        formats.check(w, wn)      # WeightFormatError naming the weight
    node_names: dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        if n.name:
            if n.name in node_names:
                raise GraphError(f"duplicate node name {n.name!r} (nodes #{node_names[n.name]}"
                                 f" and #{i})")
            node_names[n.name] = i
        if len(n.outputs) != 1:
            raise GraphError(f"{node_label(n, i)}: expected 1 output, got {n.outputs}")
        for o in n.outputs:
            define(o, node_label(n, i) + " output")
    prod = producers(graph)
    for i, n in enumerate(graph.nodes):
        lo, hi, _ = _OPS[n.op]
        if not lo <= len(n.inputs) <= hi:
            raise GraphError(f"{node_label(n, i)}: expected {lo}..{hi} inputs, "
                             f"got {len(n.inputs)}: {n.inputs}")
        for k, x in enumerate(n.inputs):
            if x == "":
                if n.op in ("Conv", "Gemm") and k >= 2:
                    continue
                raise GraphError(f"{node_label(n, i)}: required input {k} is absent ('')")
            if x not in seen:
                raise GraphError(f"{node_label(n, i)}: input {x!r} is dangling (not a graph "
                                 f"input, weight, or any node's output)")
        node_attrs(n, i)
    toposort(graph)  # raises on cycles
    for i, n in enumerate(graph.nodes):
        for x in n.inputs:
            if x in prod and prod[x] >= i:
                raise GraphError(
                    f"{node_label(n, i)} reads {x!r} before "
                    f"{node_label(graph.nodes[prod[x]], prod[x])} produces it: nodes must be "
                    f"in topological order (pyruntime.shapes.toposort gives one)")
    if len(set(graph.outputs)) != len(graph.outputs):
        raise GraphError(f"duplicate graph output names: {graph.outputs}")
    inputs = {vi.name for vi in graph.inputs}
    for o in graph.outputs:
        if o not in prod and o not in inputs:
            raise GraphError(f"graph output {o!r} is produced by no node"
                             + (" (it is a weight)" if o in graph.weights else ""))


def _check_input_shape(name: str, shape: Any) -> None:
    ok = isinstance(shape, (tuple, list)) and len(shape) >= 1 and all(
        (d is None and k == 0) or (isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                                   and d > 0) for k, d in enumerate(shape))
    if not ok:
        raise GraphError(f"graph input {name!r}: shape must be positive integers with "
                         f"None allowed only as the first (batch) dim, got {shape!r}")


# ---------------------------------------------------------------- shapes

def validate(graph: Graph) -> None:
    """Raise GraphError / UnsupportedOpError / ShapeError if the graph is malformed:
    duplicate or dangling names, cycles or bad order, unproduced outputs, unknown ops,
    bad attributes, malformed weights (WeightFormatError), weights that do not fit their
    op, tensor shape mismatches."""
    infer_shapes(graph)


def infer_shapes(graph: Graph, checked: bool = False) -> dict[str, tuple]:
    """Validate the structure, then return the shape of every graph input and node
    output (first dim None when the batch is symbolic). `checked=True`: the caller has
    validated this graph (or made it from a validated one) and the structure and weight
    checks are skipped; shape mismatches are still found."""
    if not checked:
        _check_structure(graph)
    shapes: dict[str, tuple] = {vi.name: tuple(None if d is None else int(d) for d in vi.shape)
                                for vi in graph.inputs}
    for wn, w in graph.weights.items():
        shapes[wn] = tuple(int(d) for d in w.shape)
    for i, n in enumerate(graph.nodes):
        ins = [shapes[x] if x else None for x in n.inputs]
        shapes[n.outputs[0]] = _infer_node(graph, n, i, ins)
    keep = {vi.name for vi in graph.inputs} | {o for n in graph.nodes for o in n.outputs}
    return {k: v for k, v in shapes.items() if k in keep}


def _fail(where: str, what: str, expected: str, got: Any, cls: type = ShapeError) -> None:
    raise cls(f"{where}: {what}: expected {expected}, got {got}")


def _rank(where: str, what: str, s: tuple, r: int) -> None:
    if len(s) != r:
        _fail(where, what, f"rank {r}", f"shape {s}")


def _infer_node(graph: Graph, n: Node, i: int, ins: list) -> tuple:
    where = node_label(n, i)
    a = node_attrs(n, i)
    x = ins[0]
    if n.op in ("Conv", "Gemm"):
        for k in (1, 2):
            if k < len(n.inputs) and n.inputs[k] and n.inputs[k] not in graph.weights:
                _fail(where, f"input {k} {n.inputs[k]!r}", "a weight", "a computed tensor",
                      GraphError)
        y = _conv(where, a, x, ins[1]) if n.op == "Conv" else _gemm(where, x, ins[1])
        out_c = ins[1][0] if n.op == "Conv" else ins[1][1]
        if len(ins) > 2 and ins[2] is not None and ins[2] != (out_c,):
            _fail(where, f"bias {n.inputs[2]!r}", f"shape ({out_c},)", ins[2], WeightShapeError)
        if a["residual"] and not _same(ins[3], y):
            _fail(where, f"residual {n.inputs[3]!r}", f"the output shape {y}", ins[3])
        return y
    if n.op == "BatchNormalization":
        if len(x) < 2:
            _fail(where, "X", "rank >= 2 (N, C, ...)", f"shape {x}")
        for k in range(1, 5):
            if ins[k] != (x[1],):
                _fail(where, f"input {k} {n.inputs[k]!r}", f"shape ({x[1]},) (channels of X)",
                      ins[k], WeightShapeError if n.inputs[k] in graph.weights else ShapeError)
        return x
    if n.op in ("Relu", "Sigmoid", "Tanh", "Gelu", "Clip", "Identity", "Dropout", "QDQ"):
        return x
    if n.op == "Softmax":
        if not -len(x) <= a["axis"] < len(x):
            _fail(where, "axis", f"in [{-len(x)}, {len(x)})", a["axis"], GraphError)
        return x
    if n.op in ("MaxPool", "AveragePool"):
        _rank(where, "X", x, 4)
        d = a.get("dilations", (1, 1))
        hw = [_out_size(where, x[2 + k], a["kernel_shape"][k], a["strides"][k], d[k],
                        a["pads"][k], a["pads"][k + 2], bool(a["ceil_mode"])) for k in (0, 1)]
        return (x[0], x[1], *hw)
    if n.op == "GlobalAveragePool":
        _rank(where, "X", x, 4)
        return (x[0], x[1], 1, 1)
    if n.op == "Add":
        return _broadcast(where, x, ins[1])
    if n.op == "Flatten":
        return _flatten(where, x, a["axis"])
    if n.op == "Reshape":
        return _reshape(where, x, a["shape"])
    if n.op == "Transpose":
        _rank(where, "X", x, 2)
        y = tuple(x[p] for p in a["perm"])
        if None in y[1:]:
            _fail(where, f"Transpose perm {a['perm']}", "the symbolic batch to stay the first "
                  "dim (only a tensor with a fixed first dim can be transposed)", f"input {x}")
        return y
    raise AssertionError(n.op)  # every op in _OPS is handled above


def qdq(x: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """The QDQ op on an array, in x's float dtype (the one definition the reference and
    the passes share): quantize with round half to even, clamp, dequantize."""
    lo, hi = QDQ_RANGE[dtype]
    q = np.clip(np.round(x / x.dtype.type(scale)) + zero_point, lo, hi)
    return ((q - zero_point) * x.dtype.type(scale)).astype(x.dtype)


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(p == q for p, q in zip(a, b))


# ------------------------------------------------------- window and padding math
# The one copy: the builder (nn), the ONNX importer, shape inference, the reference and
# the XLA lowering all size conv/pool windows with these.

def window_out(size: int, k: int, s: int, d: int, p0: int, p1: int, ceil: bool = False) -> int:
    """Output length of one conv/pool axis (ONNX rule; ceil_mode drops a last window that
    would start past the input and its leading pad)."""
    span = size + p0 + p1 - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p0:
        out -= 1
    return out


def ceil_adds_window(size: int, k: int, s: int, d: int, p0: int, p1: int) -> bool:
    """True when ceil_mode gives this axis a window that floor mode does not."""
    if size + p0 + p1 - d * (k - 1) - 1 < 0:
        return False
    return window_out(size, k, s, d, p0, p1, True) > window_out(size, k, s, d, p0, p1)


def same_pads(size: tuple[int, int], kernel: tuple[int, int], strides: tuple[int, int],
              dilations: tuple[int, int] = (1, 1), lower: bool = False
              ) -> tuple[int, int, int, int]:
    """"Same" padding (top, left, bottom, right) for an output of ceil(size / stride):
    the odd pixel goes to the bottom/right (TensorFlow, ONNX SAME_UPPER), or to the
    top/left with `lower` (ONNX SAME_LOWER)."""
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, strides, dilations):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        begin.append(big if lower else small)
        end.append(small if lower else big)
    return begin[0], begin[1], end[0], end[1]


def pool_extent(h: int, w: int, a: dict) -> tuple[int, int, int, int]:
    """(oh, ow, bottom, right) of a pool node's attrs on an h x w input: the output size and
    the bottom/right padding every window needs (ceil mode may overhang the explicit pads)."""
    kh, kw = a["kernel_shape"]
    pt, pl, pb, pr = a["pads"]
    (sh, sw), (dh, dw) = a["strides"], a.get("dilations", (1, 1))
    ceil = bool(a.get("ceil_mode", 0))
    oh, ow = window_out(h, kh, sh, dh, pt, pb, ceil), window_out(w, kw, sw, dw, pl, pr, ceil)
    eb = max(pb, (oh - 1) * sh + dh * (kh - 1) + 1 - h - pt)
    er = max(pr, (ow - 1) * sw + dw * (kw - 1) + 1 - w - pl)
    return oh, ow, eb, er


def _out_size(where: str, size: int, k: int, s: int, d: int, p0: int, p1: int,
              ceil: bool = False) -> int:
    if size + p0 + p1 - d * (k - 1) - 1 < 0:
        _fail(where, "spatial size", f"input + pads >= dilated kernel {d * (k - 1) + 1}",
              f"{size} + {p0} + {p1}")
    return window_out(size, k, s, d, p0, p1, ceil)


def _conv(where: str, a: dict, x: tuple, w: tuple) -> tuple:
    _rank(where, "X", x, 4)
    if len(w) != 4:
        _fail(where, "W", "rank 4 [O, I/group, KH, KW]", f"shape {w}", WeightShapeError)
    g, c = a["group"], x[1]
    if g == 1:
        if w[1] != c:
            _fail(where, "W", f"W.shape[1] == input channels {c}", f"W shape {w}",
                  WeightShapeError)
    elif not (g == c == w[0] and w[1] == 1):
        _fail(where, "group", "1, or depthwise with group == input channels == out channels "
              "and W [C, 1, KH, KW]", f"group {g}, input channels {c}, W shape {w}",
              WeightShapeError)
    hw = [_out_size(where, x[2 + k], w[2 + k], a["strides"][k], a["dilations"][k],
                    a["pads"][k], a["pads"][k + 2]) for k in (0, 1)]
    return (x[0], w[0], *hw)


def _gemm(where: str, x: tuple, w: tuple) -> tuple:
    _rank(where, "X", x, 2)
    if len(w) != 2 or w[0] != x[1]:
        _fail(where, "W", f"shape ({x[1]}, N) (stored [K, N], K = features of X)",
              f"shape {w}", WeightShapeError)
    return (x[0], w[1])


def _broadcast(where: str, a: tuple, b: tuple) -> tuple:
    r = max(len(a), len(b))
    pa, pb = (1,) * (r - len(a)) + a, (1,) * (r - len(b)) + b
    out = []
    for k, (p, q) in enumerate(zip(pa, pb)):
        if p == q or q == 1:
            out.append(p)
        elif p == 1:
            out.append(q)
        else:
            _fail(where, "broadcast", "equal dims or 1 (numpy broadcasting; the symbolic "
                  "batch only against 1 or itself)", f"shapes {a} and {b} (dim {k})")
    if any(d is None for d in out[1:]):
        _fail(where, "broadcast", "the symbolic batch to stay the first dim",
              f"shapes {a} and {b}")
    return tuple(out)


def _prod(dims) -> tuple[int, int]:
    """A product of dims as (known integer factor, power of the symbolic batch)."""
    c, p = 1, 0
    for d in dims:
        if d is None:
            p += 1
        else:
            c *= d
    return c, p


def _flatten(where: str, x: tuple, axis: int) -> tuple:
    if not -len(x) <= axis <= len(x):
        _fail(where, "axis", f"in [{-len(x)}, {len(x)}]", axis, GraphError)
    axis = axis + len(x) if axis < 0 else axis
    (c0, p0), (c1, p1) = _prod(x[:axis]), _prod(x[axis:])
    if p1:
        _fail(where, "Flatten axis", ">= 1 with a symbolic batch", axis)
    return (None if p0 else c0, c1)


def _reshape(where: str, x: tuple, target: tuple) -> tuple:
    total = _prod(x)
    dims: list[tuple[int, int] | None] = []
    for k, t in enumerate(target):
        if t == 0:
            if k >= len(x):
                _fail(where, "Reshape 0 (copy dim)", f"input rank > {k}", f"shape {x}")
            dims.append((1, 1) if x[k] is None else (x[k], 0))
        elif t == -1:
            dims.append(None)
        else:
            dims.append((t, 0))
    known = _prod([])
    for d in dims:
        if d is not None:
            known = (known[0] * d[0], known[1] + d[1])
    if None in dims:
        if known[0] == 0 or total[0] % known[0] or total[1] < known[1]:
            _fail(where, f"Reshape to {target}", "a size that divides the input evenly for "
                  "every batch", f"input {x}")
        dims[dims.index(None)] = (total[0] // known[0], total[1] - known[1])
    elif known != total:
        _fail(where, f"Reshape to {target}", "the same element count for every batch",
              f"input {x}")
    out = tuple(None if p else c for c, p in dims)
    if any(p > 1 for _, p in dims) or out[1] is None:
        _fail(where, f"Reshape to {target}", "the symbolic batch to stay in the first dim",
              f"input {x} -> {out}")
    return out
