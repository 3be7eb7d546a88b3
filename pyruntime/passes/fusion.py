"""Graph -> Graph optimization passes. Each returns a new Graph (the input is never
mutated), keeps graph input/output names, and keeps outputs equal up to float rounding.

Fusions target the Conv/Gemm epilogue (bias, activation, residual add; see graph.py), so
the compiled kernel writes its output once instead of re-reading it per elementwise op.
"""

from __future__ import annotations

import numpy as np

from .. import formats
from ..errors import WeightFormatError
from ..graph import Graph, Node, ValueInfo, Weight, fresh_name
from ..shapes import ACTIVATION_OPS, consumers, infer_shapes, node_attrs, producers, validate

__all__ = ["drop_identity", "fold_batchnorm", "fuse_activations", "fuse_residual_add",
           "optimize"]



def _copy(g: Graph, nodes: list[Node] | None = None,
          weights: dict[str, Weight] | None = None) -> Graph:
    """A new Graph sharing nothing mutable with g (Weight objects are never mutated)."""
    return Graph([ValueInfo(v.name, tuple(v.shape), v.dtype) for v in g.inputs],
                 list(g.outputs),
                 [n.copy() for n in g.nodes] if nodes is None else nodes,
                 dict(g.weights) if weights is None else weights, g.name)


def _sole_consumer(g: Graph, cons: dict[str, list[int]], value: str) -> int | None:
    """Index of the one node reading `value` (once), if it is not also a graph output."""
    users = cons.get(value, [])
    if len(users) == 1 and value not in g.outputs:
        return users[0]
    return None


def _epilogue_host(g: Graph, cons: dict[str, list[int]], prod: dict[str, int],
                   nodes: list[Node | None], value: str, i: int) -> tuple[int, Node | None]:
    """(index, node) of the Conv/Gemm producing `value` when node i is its only reader
    (so node i can fold into its epilogue), else (-1, None)."""
    j = prod[value]
    p = nodes[j]
    if p is None or p.op not in ("Conv", "Gemm") or _sole_consumer(g, cons, value) != i:
        return -1, None
    return j, p



def _used_names(g: Graph) -> set[str]:
    return ({v.name for v in g.inputs} | set(g.weights)
            | {x for n in g.nodes for x in (*n.inputs, *n.outputs)})


def _prune(before: Graph, after: Graph) -> Graph:
    """Drop weights that `before` used and `after` no longer does."""
    used_before = {x for n in before.nodes for x in n.inputs}
    used = {x for n in after.nodes for x in n.inputs}
    after.weights = {k: w for k, w in after.weights.items()
                     if k in used or k not in used_before}
    return after


# ---------------------------------------------------------------- drop Identity/Dropout

def drop_identity(g: Graph, checked: bool = False) -> Graph:
    """Remove Identity and Dropout. A graph output produced by one keeps its name: the
    producer of the source is renamed to it; only when the source is a graph input, a
    weight or another graph output does the node stay."""
    if not checked:
        validate(g)
    outs, prod = set(g.outputs), producers(g)
    alias: dict[str, str] = {}

    def resolve(v: str) -> str:
        while v in alias:
            v = alias[v]
        return v

    keep: list[Node] = []
    for n in g.nodes:
        if n.op not in ("Identity", "Dropout"):
            keep.append(n)
            continue
        src, dst = resolve(n.inputs[0]), n.outputs[0]
        if dst not in outs:
            alias[dst] = src
        elif src in prod and src not in outs:
            alias[src] = dst
        else:
            keep.append(n)
    nodes = [Node(n.op, [resolve(x) if x else x for x in n.inputs],
                  [resolve(o) for o in n.outputs], dict(n.attrs), n.name) for n in keep]
    return _copy(g, nodes)


# ---------------------------------------------------------------- BatchNorm folding

def fold_batchnorm(g: Graph, checked: bool = False) -> Graph:
    """Fold BatchNormalization into the Conv/Gemm producing its input when that output
    feeds only the BatchNorm and the producer has no fused activation or residual:
    W' = W * s, B' = (B - mean) * s + beta with s = scale / sqrt(var + eps).

    Weight formats are kept, and results change by no more than float32 rounding: W' (and
    B' when B exists) is re-encoded like the original (`formats.encode_like`: a sparse W
    keeps its pattern and block, int8 values are requantized per output channel; a new
    B' is f32), and the BatchNorm is folded only when the re-encoded weights equal the
    folded ones to float32 precision. That holds for f32, float csr/bsr, and qc8 or int8
    csr/bsr along the output channels (requantizing moves each channel's factor into its
    scale and, when negative, flips that channel's int8 signs). It does not hold for
    f16/bf16 (folding would round every weight again) or int8 quantized along another
    axis: those BatchNorms stay their own step, as does one whose folded weights do not
    fit the format at all (f16 overflow, non-finite values for int8)."""
    if not checked:
        validate(g)
    cons, prod = consumers(g), producers(g)
    taken = _used_names(g)
    weights = dict(g.weights)
    nodes: list[Node | None] = [n.copy() for n in g.nodes]
    for i, bn in enumerate(g.nodes):
        if bn.op != "BatchNormalization" or bn.inputs[0] not in prod:
            continue
        j, p = _epilogue_host(g, cons, prod, nodes, bn.inputs[0], i)
        if p is None:
            continue
        pa = node_attrs(p)
        has_b = len(p.inputs) > 2 and bool(p.inputs[2])
        params = [*bn.inputs[1:], p.inputs[1]] + ([p.inputs[2]] if has_b else [])
        if pa["activation"] is not None or pa["residual"] or not all(x in weights
                                                                     for x in params):
            continue
        scale, beta, mean, var = (weights[x].numpy().astype(np.float64) for x in bn.inputs[1:])
        s = scale / np.sqrt(var + node_attrs(bn)["epsilon"])
        w_old = weights[p.inputs[1]]
        w = w_old.numpy().astype(np.float64)
        w = w * (s[:, None, None, None] if p.op == "Conv" else s[None, :])
        b = weights[p.inputs[2]].numpy().astype(np.float64) if has_b else 0.0
        b = (b - mean) * s + beta
        try:
            with np.errstate(invalid="ignore", over="ignore"):
                w_new = formats.encode_like(w, w_old)
                b_new = formats.encode_like(b, weights[p.inputs[2]]) if has_b else Weight.f32(b)
        except WeightFormatError:
            continue       # not representable in the weight's format: keep the BatchNorm
        if not (_as_exact_as_f32(w_new, w) and _as_exact_as_f32(b_new, b)):
            continue       # the format would round the folded weights again: keep it
        wn, bname = fresh_name(p.inputs[1] + "_bn", taken), fresh_name(bn.outputs[0] + "_bias", taken)
        weights[wn], weights[bname] = w_new, b_new
        p.inputs = [p.inputs[0], wn, bname, *p.inputs[3:]]
        p.outputs = list(bn.outputs)
        nodes[j], nodes[i] = None, p  # the fused node takes the BatchNorm's place
    return _prune(g, _copy(g, [n for n in nodes if n is not None], weights))


def _as_exact_as_f32(new: Weight, want: np.ndarray) -> bool:
    """Whether `new`'s dense view equals `want` (float64) up to float32 rounding."""
    got = new.numpy().astype(np.float64)
    want = np.broadcast_to(np.asarray(want, np.float64), got.shape)
    with np.errstate(invalid="ignore"):
        ok = (np.abs(got - want) <= 1e-6 * np.abs(want) + float(np.finfo(np.float32).tiny)) \
            | (got == want) | (np.isnan(got) & np.isnan(want))
    return bool(ok.all())


# ---------------------------------------------------------------- activation fusion

def fuse_activations(g: Graph, checked: bool = False) -> Graph:
    """Fuse Relu/Clip/Sigmoid/Tanh/Gelu into the preceding Conv/Gemm epilogue when the
    producer's output feeds only the activation and the producer has no activation yet.
    A producer with a residual gets act(conv + R) (residual before the activation)."""
    if not checked:
        validate(g)
    cons, prod = consumers(g), producers(g)
    nodes: list[Node | None] = [n.copy() for n in g.nodes]
    for i, act in enumerate(g.nodes):
        if act.op not in ACTIVATION_OPS or act.inputs[0] not in prod:
            continue
        j, p = _epilogue_host(g, cons, prod, nodes, act.inputs[0], i)
        if p is None:
            continue
        pa = node_attrs(p)
        if pa["activation"] is not None:
            continue
        p.attrs["activation"] = ACTIVATION_OPS[act.op]
        if act.op == "Clip":
            aa = node_attrs(act)
            p.attrs.update(act_min=aa["min"], act_max=aa["max"])
        if pa["residual"]:
            p.attrs["residual_after_act"] = False
        p.outputs = list(act.outputs)
        nodes[j], nodes[i] = None, p
    return _copy(g, [n for n in nodes if n is not None])


# ---------------------------------------------------------------- residual-add fusion

def fuse_residual_add(g: Graph, checked: bool = False) -> Graph:
    """Add(conv_or_gemm_out, other) with equal shapes becomes the producer's 4th input R
    (residual=True; residual_after_act=True if it already has an activation), when the
    producer's output feeds only the Add and the producer has no residual yet. The fused
    node takes the Add's place, so R's producer still comes before it."""
    shapes = infer_shapes(g, checked=checked)
    cons, prod = consumers(g), producers(g)
    nodes: list[Node | None] = [n.copy() for n in g.nodes]
    for i, add in enumerate(g.nodes):
        if add.op != "Add" or not _same(shapes.get(add.inputs[0]), shapes.get(add.inputs[1])):
            continue
        cands = []
        for side in (0, 1):
            v, other = add.inputs[side], add.inputs[1 - side]
            if v not in prod or other in g.weights or _sole_consumer(g, cons, v) != i:
                continue
            j = prod[v]
            p = nodes[j]
            if p is not None and p.op in ("Conv", "Gemm") and not node_attrs(p)["residual"]:
                cands.append((j, other))
        if not cands:
            continue
        j, other = max(cands)  # the later producer: R is then already computed
        p = nodes[j]
        has_act = node_attrs(p)["activation"] is not None
        p.inputs = [p.inputs[0], p.inputs[1], p.inputs[2] if len(p.inputs) > 2 else "", other]
        p.attrs.update(residual=True, residual_after_act=has_act)
        p.outputs = list(add.outputs)
        nodes[j], nodes[i] = None, p
    return _copy(g, [n for n in nodes if n is not None])


def _same(a: tuple | None, b: tuple | None) -> bool:
    return a is not None and b is not None and len(a) == len(b) and all(
        x == y for x, y in zip(a, b))


# ---------------------------------------------------------------- pipeline

def optimize(g: Graph, checked: bool = False) -> Graph:
    """Drop no-ops, fold BatchNorm, fuse residual adds and activations, until nothing
    changes. Residual fusion runs before activation fusion so Conv -> Add -> Relu
    becomes relu(conv + R); Conv -> Relu -> Add becomes conv -> relu -> + R."""
    passes = (drop_identity, fold_batchnorm, fuse_residual_add, fuse_activations)
    if not checked:
        validate(g)  # once: every pass keeps a valid graph valid
    g = _copy(g)
    while True:
        n = len(g.nodes)
        for p in passes:
            g = p(g, checked=True)
        if len(g.nodes) == n:  # every rewrite removes a node, so this is a fixed point
            return g
