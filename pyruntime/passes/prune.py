"""Magnitude pruning of Conv/Gemm kernels (`rt.prune`) and a sparsity report
(`rt.sparsity`). Graph -> Graph: the input graph is never modified.

What is pruned. The kernel (input 1) of every Conv and Gemm node, seen as the sparse
matrix of `formats` (rows = output channels along `formats.OUTPUT_AXIS`, columns = the
other dims flattened in order). Kept dense unless named in `include`: depthwise kernels
(Conv group > 1: 9 weights per channel, each one matters) and kernels with fewer than
`min_params` elements (small layers save nothing and hurt accuracy most). `exclude`
names kernels never pruned. A kernel read by several nodes is one tensor and is pruned
once (depthwise if any reader is).

How. Every float format (f32 f16 bf16, float csr/bsr) is pruned through its dense
float32 view; int8 formats (qc8, int8 csr/bsr) raise InputError: prune before quantizing.
- "unstructured": the entries of smallest |w| are zeroed.
- "block" (r, c): r output channels x c inputs of the sparse matrix (default (16, 1):
  16 output channels are one AVX-512 vector (two AVX2 ones), so the CPU's sparse kernel
  multiplies a block's values by each row's broadcast input straight on the row-major
  activations, with no tile transposes; MobileNetV2's 1x1 convs at 90%: 1.9x the dense
  model with (16, 1), 1.5x with (4, 1), 1.3x unstructured, bench/sparse.py);
  each block is scored by its L2 norm divided by sqrt(its element count) (the RMS), so
  the partial blocks at a ragged edge compare fairly with full ones, and whole blocks
  are zeroed. Counts are then in blocks: round(sparsity * number of blocks) blocks.
- scope "global" ranks the scores of all pruned kernels together (a layer of small
  weights loses more: on untrained weights, whose scale follows the fan-in, a high
  global sparsity can empty a wide layer; "layer" avoids that), "layer" prunes each
  kernel to `sparsity` on its own. A dict
  sparsity {kernel or node name: sparsity} prunes exactly the named kernels, each to its
  own sparsity (scope does not apply; min_params and depthwise do not either: naming a
  kernel selects it).
- Exactly round(sparsity * n) entries (blocks) are zeroed per kernel (layer scope) or
  over all kernels (global), Python's round; ties go by a stable sort, the earlier entry
  in the sparse-matrix order (row-major) first. Entries that are already zero score 0 and
  are counted among the pruned. NaN scores rank last (kept).

Storage. A pruned kernel with at least `SPARSE_STORE_MIN` of its entries zero is stored
sparse along its op's output axis: csr (unstructured), bsr with the block (block
structure, when the block divides the matrix), csr when it does not (bsr rejects ragged
edges; padding the weight would change its shape). Below that it keeps its own format
(f32/f16/bf16 dense with exact zeros; a csr/bsr input re-encoded with its own axis and
block, dropping zeroed entries).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from .. import formats
from ..errors import InputError
from ..graph import Graph, ValueInfo, Weight
from ..shapes import node_attrs, node_label, validate

__all__ = ["prune", "sparsity", "SPARSE_STORE_MIN", "STRUCTURES", "SCOPES", "DEFAULT_BLOCK"]

#: Smallest fraction of zeros at which a pruned kernel is stored csr/bsr. csr pays a
#: uint16 index per value (6 bytes against 4), so its file is 0.6x the dense one here and
#: barely smaller below; the CPU backend decides sparse or dense from the zeros whatever
#: the storage (bench/sparse.py: at 50% zeros the sparse kernel wins at one row only,
#: 1.17x; at 70% at one row and from 64 rows).
SPARSE_STORE_MIN = 0.6
STRUCTURES = ("unstructured", "block")
SCOPES = ("global", "layer")
#: Block used by structure="block" when none is given: 16 output channels x 1 input (one
#: AVX-512 vector of outputs: the sparse kernel runs it row-major, without transposes).
DEFAULT_BLOCK = (16, 1)
KERNEL_OPS = ("Conv", "Gemm")


@dataclass
class Kernel:
    """One Conv/Gemm kernel weight and what pruning needs to know about it."""
    weight: str
    nodes: list[str]            # labels of the nodes reading it as their kernel
    op: str
    axis: int                   # output-channel axis (formats.OUTPUT_AXIS[op])
    depthwise: bool
    size: int


# ------------------------------------------------------------------ kernels and names

def kernels(graph: Graph) -> dict[str, Kernel]:
    """weight name -> Kernel for every Conv/Gemm kernel that is a stored weight, in node
    order (a weight read by several nodes appears once)."""
    out: dict[str, Kernel] = {}
    for i, n in enumerate(graph.nodes):
        if n.op not in KERNEL_OPS or len(n.inputs) < 2 or n.inputs[1] not in graph.weights:
            continue
        wn = n.inputs[1]
        dw = n.op == "Conv" and node_attrs(n, i)["group"] > 1
        label = n.name or node_label(n, i)
        if wn in out:
            out[wn].nodes.append(label)
            out[wn].depthwise |= dw
        else:
            w = graph.weights[wn]
            out[wn] = Kernel(wn, [label], n.op, formats.OUTPUT_AXIS[n.op], dw,
                             math.prod(w.shape))
    return out


def _names(v: Any, what: str) -> list[str]:
    if isinstance(v, str):
        return [v]
    try:
        items = list(v)
    except TypeError:
        raise InputError(f"{what}: expected weight or node names (a list of str), got "
                         f"{type(v).__name__}") from None
    bad = [x for x in items if not isinstance(x, str)]
    if bad:
        raise InputError(f"{what}: expected weight or node names (str), got {bad[0]!r}")
    return items


def _resolve(graph: Graph, ks: dict[str, Kernel], names: Iterable[str], what: str
             ) -> dict[str, str]:
    """kernel weight name -> the name given for it (a weight name or a node name)."""
    by_node = {nn: k.weight for k in ks.values() for nn in k.nodes}
    out: dict[str, str] = {}
    for name in names:
        if name in ks:
            out[name] = name
        elif name in by_node:
            out[by_node[name]] = name
        else:
            raise InputError(
                f"{what}: {name!r} is not a Conv/Gemm kernel weight or node of graph "
                f"{graph.name!r}; kernels: {list(ks) or 'none'}; nodes: "
                f"{list(by_node) or 'none'}")
    return out


# ------------------------------------------------------------------ argument checks

def fraction(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(float(v)) \
            or not 0.0 <= float(v) < 1.0:
        raise InputError(f"{what}: expected a float in [0, 1), got {v!r}")
    return float(v)


def check_options(structure: Any, block: Any, scope: Any, min_params: Any
                  ) -> tuple[int, int] | None:
    """Check the shared keyword arguments; returns the block (None if unstructured)."""
    if structure not in STRUCTURES:
        raise InputError(f"structure: expected one of {STRUCTURES}, got {structure!r}")
    if scope not in SCOPES:
        raise InputError(f"scope: expected one of {SCOPES}, got {scope!r}")
    if isinstance(min_params, bool) or not isinstance(min_params, numbers.Integral) \
            or min_params < 0:
        raise InputError(f"min_params: expected a non-negative int, got {min_params!r}")
    if structure == "unstructured":
        if block is not None:
            raise InputError(f"block={block!r} is only for structure='block' (got structure="
                             f"'unstructured')")
        return None
    if block is None:
        return DEFAULT_BLOCK
    if not (isinstance(block, (tuple, list)) and len(block) == 2 and all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1
            for d in block)):
        raise InputError(f"block: expected two positive ints (output channels, inputs), got "
                         f"{block!r}")
    return int(block[0]), int(block[1])


@dataclass
class Plan:
    """The checked request: which kernels, at what sparsity, how."""
    kernels: dict[str, Kernel]              # the kernels to prune
    targets: dict[str, float] | float       # per kernel (layer scope/dict) or one (global)
    block: tuple[int, int] | None
    scope: str


def plan(graph: Graph, sparsity: Any, *, structure: str = "unstructured",
         block: Any = None, scope: str = "global", exclude: Any = (), include: Any = (),
         min_params: int = 1024) -> Plan:
    """Check every argument against the (validated) graph and pick the kernels."""
    validate(graph)
    blk = check_options(structure, block, scope, min_params)
    ks = kernels(graph)
    exc = _resolve(graph, ks, _names(exclude, "exclude"), "exclude")
    inc = _resolve(graph, ks, _names(include, "include"), "include")
    both = sorted(set(exc) & set(inc))
    if both:
        raise InputError(f"kernel(s) {both} named in both include and exclude")
    if isinstance(sparsity, Mapping):
        given: dict[str, tuple[str, float]] = {}
        for name, s in sparsity.items():
            if not isinstance(name, str):
                raise InputError(f"sparsity dict: keys must be weight or node names, got "
                                 f"{name!r}")
            (wn, _), = _resolve(graph, ks, [name], "sparsity dict").items()
            s = fraction(s, f"sparsity[{name!r}]")
            if wn in given and given[wn][1] != s:
                raise InputError(f"sparsity dict: {given[wn][0]!r} and {name!r} name the same "
                                 f"kernel {wn!r} with different sparsities {given[wn][1]} "
                                 f"and {s}")
            if wn in exc:
                raise InputError(f"sparsity dict: {name!r} is also excluded ({exc[wn]!r})")
            given[wn] = (name, s)
        chosen = {k: ks[k] for k in ks if k in given}
        targets: dict[str, float] | float = {k: given[k][1] for k in chosen}
        scope = "layer"
    else:
        s = fraction(sparsity, "sparsity")
        chosen = {k: v for k, v in ks.items() if k not in exc and (
            k in inc or (not v.depthwise and v.size >= min_params))}
        targets = {k: s for k in chosen} if scope == "layer" else s
    if not chosen:
        raise InputError(
            f"graph {graph.name!r}: no Conv/Gemm kernel to prune (kernels: "
            f"{ {k: v.size for k, v in ks.items()} }); depthwise kernels, kernels under "
            f"min_params={min_params} elements and excluded ones are skipped: name them in "
            f"include= or lower min_params")
    for k in chosen:
        w = graph.weights[k]
        if not formats.trainable(w):
            raise InputError(f"weight {k!r} ({w.format}) has int8 values and cannot be "
                             f"pruned: prune before quantizing, or exclude it")
    return Plan(chosen, targets, blk, scope)


# ------------------------------------------------------------------ selection

def _to_matrix(a: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(a, axis, 0).reshape(formats.matrix_dims(a.shape, axis))


def _from_matrix(m: np.ndarray, shape: tuple, axis: int) -> np.ndarray:
    other = tuple(d for i, d in enumerate(shape) if i != axis)
    return np.ascontiguousarray(np.moveaxis(m.reshape(shape[axis], *other), 0, axis))


def unit_scores(m: np.ndarray, block: tuple[int, int] | None) -> np.ndarray:
    """Scores of the pruning units of a [R, C] matrix, flattened row-major: |w| per entry
    (unstructured), or per block (r, c) its RMS = L2 norm / sqrt(elements in the block),
    edge blocks partial when the block does not divide the matrix."""
    m = np.asarray(m, np.float64)
    if block is None:
        return np.abs(m).reshape(-1)
    br, bc = block
    rows, cols = m.shape
    nr, nc = -(-rows // br), -(-cols // bc)
    pad = np.zeros((nr * br, nc * bc))
    pad[:rows, :cols] = m * m
    sq = pad.reshape(nr, br, nc, bc).sum(axis=(1, 3))
    cnt = (np.minimum(br, rows - np.arange(nr) * br)[:, None]
           * np.minimum(bc, cols - np.arange(nc) * bc)[None, :])
    return np.sqrt(sq / cnt).reshape(-1)


def _unit_mask(keep_units: np.ndarray, shape: tuple[int, int],
               block: tuple[int, int] | None) -> np.ndarray:
    """[R, C] bool from the kept units (flat, row-major)."""
    if block is None:
        return keep_units.reshape(shape)
    br, bc = block
    rows, cols = shape
    nr, nc = -(-rows // br), -(-cols // bc)
    full = np.repeat(np.repeat(keep_units.reshape(nr, nc), br, 0), bc, 1)
    return full[:rows, :cols]


def _lowest(scores: np.ndarray, k: int) -> np.ndarray:
    """Bool mask of the k lowest scores (stable: ties by position; NaN last)."""
    drop = np.zeros(scores.shape, bool)
    if k > 0:
        drop[np.argsort(scores, kind="stable")[:k]] = True
    return drop


def select(dense: Mapping[str, np.ndarray], p: Plan) -> dict[str, np.ndarray]:
    """weight name -> bool keep mask (logical shape) of the plan's kernels, given their
    dense float32 arrays."""
    mats = {k: _to_matrix(dense[k], p.kernels[k].axis) for k in p.kernels}
    scores = {k: unit_scores(m, p.block) for k, m in mats.items()}
    if isinstance(p.targets, dict):
        drops = {k: _lowest(s, round(p.targets[k] * s.size)) for k, s in scores.items()}
    else:
        allv = np.concatenate([scores[k] for k in p.kernels]) if scores else np.zeros(0)
        drop = _lowest(allv, round(p.targets * allv.size))
        cuts = np.cumsum([0] + [scores[k].size for k in p.kernels])
        drops = {k: drop[cuts[i]:cuts[i + 1]] for i, k in enumerate(p.kernels)}
    return {k: _from_matrix(_unit_mask(~drops[k], mats[k].shape, p.block),
                            dense[k].shape, p.kernels[k].axis) for k in p.kernels}


# ------------------------------------------------------------------ storage

def store(dense: np.ndarray, like: Weight, axis: int, block: tuple[int, int] | None
          ) -> Weight:
    """A pruned kernel (dense float32 with exact zeros) in its storage format: csr/bsr at
    SPARSE_STORE_MIN zeros or more (see the module doc), else `like`'s own format."""
    n = dense.size
    zeros = n - int(np.count_nonzero(dense))
    if n and zeros / n >= SPARSE_STORE_MIN:
        if block is not None:
            rows, cols = formats.matrix_dims(dense.shape, axis)
            if rows % block[0] == 0 and cols % block[1] == 0:
                return formats.encode_bsr(dense, block, axis)
        return formats.encode_csr(dense, axis)
    if like.format == "csr":
        return formats.encode_csr(dense, int(like.attrs["axis"]))
    if like.format == "bsr":
        return formats.encode_bsr(dense, tuple(like.attrs["block"]), int(like.attrs["axis"]))
    return formats.encode_like(dense, like)


def apply(dense: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """`dense` with the entries outside `keep` set to +0.0 (float32)."""
    return np.where(keep, dense, np.float32(0.0)).astype(np.float32)


def rebuild(graph: Graph, new: Mapping[str, Weight]) -> Graph:
    """A copy of `graph` (nodes, inputs, every weight's arrays) with `new` weights."""
    weights = {k: (new[k] if k in new else w.copy()) for k, w in graph.weights.items()}
    return Graph(inputs=[ValueInfo(v.name, tuple(v.shape), v.dtype) for v in graph.inputs],
                 outputs=list(graph.outputs), nodes=[n.copy() for n in graph.nodes],
                 weights=weights, name=graph.name)


# ------------------------------------------------------------------ public

def prune(graph: Graph, sparsity: float | Mapping[str, float], *,
          structure: str = "unstructured", block: tuple[int, int] | None = None,
          scope: str = "global", exclude: Iterable[str] = (), include: Iterable[str] = (),
          min_params: int = 1024) -> Graph:
    """Magnitude-prune the Conv/Gemm kernels of `graph`; returns a new Graph.

    sparsity: fraction in [0, 1) of entries (blocks) to zero, or {kernel weight or node
    name: fraction} for per-layer control. structure: "unstructured" or "block" with
    block=(output channels, inputs), default (16, 1). scope: "global" (one magnitude
    ranking over all pruned kernels) or "layer" (each to `sparsity`). exclude/include:
    kernel weight or node names never pruned / pruned even when depthwise or smaller than
    `min_params` elements. Kernels at SPARSE_STORE_MIN zeros or more are stored csr/bsr.
    See the module doc for ties, ragged blocks and formats. Typed errors: InputError for
    bad arguments, unknown names and int8 kernels; graph errors for a malformed graph.
    """
    p = plan(graph, sparsity, structure=structure, block=block, scope=scope,
             exclude=exclude, include=include, min_params=min_params)
    dense = {k: graph.weights[k].numpy() for k in p.kernels}
    keep = select(dense, p)
    new = {k: store(apply(dense[k], keep[k]), graph.weights[k], p.kernels[k].axis, p.block)
           for k in p.kernels}
    return rebuild(graph, new)


def sparsity(graph: Graph) -> dict[str, Any]:
    """How sparse the Conv/Gemm kernels are, counted on their dense views.

    Returns {"overall": {...}, "layers": {kernel weight name: {...}}}. A layer entry:
    node (its first reader), op, format, shape, sparsity (fraction of zero entries),
    parameters, nonzeros, bytes (storage, formats.storage_bytes). "overall" covers the
    Conv/Gemm kernels only (biases, BatchNorm and other weights are not pruned):
    sparsity, parameters, nonzeros and bytes summed over the kernels, plus weight_bytes,
    the storage bytes of every weight of the graph. NaN counts as nonzero.
    """
    validate(graph)
    layers: dict[str, dict[str, Any]] = {}
    for k, info in kernels(graph).items():
        w = graph.weights[k]
        a = w.numpy()
        nnz = int(np.count_nonzero(a))
        layers[k] = {"node": info.nodes[0], "op": info.op, "format": w.format,
                     "shape": tuple(a.shape), "sparsity": 1.0 - nnz / a.size if a.size else 0.0,
                     "parameters": int(a.size), "nonzeros": nnz,
                     "bytes": formats.storage_bytes(w)}
    params = sum(v["parameters"] for v in layers.values())
    nnz = sum(v["nonzeros"] for v in layers.values())
    overall = {"sparsity": 1.0 - nnz / params if params else 0.0, "parameters": params,
               "nonzeros": nnz, "bytes": sum(v["bytes"] for v in layers.values()),
               "weight_bytes": sum(formats.storage_bytes(w) for w in graph.weights.values())}
    return {"overall": overall, "layers": layers}
