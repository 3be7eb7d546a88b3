"""A slow, obviously-correct float64 evaluator of every IR op (NCHW).

This is the independent reference every other test compares against, so it is written
straight from the math: padding + a loop over kernel taps for conv and pooling, no
tricks shared with the compiled kernels.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError, ShapeError
from .graph import Graph, Node
from .shapes import infer_shapes, node_attrs, pool_extent, qdq, window_out

__all__ = ["run_reference", "gelu", "sigmoid", "apply_activation"]

_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU: x * Phi(x)."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow for large |x|."""
    return np.exp(-np.logaddexp(0.0, -x))


def apply_activation(y: np.ndarray, act: str | None, lo: float = -math.inf,
                     hi: float = math.inf) -> np.ndarray:
    """The fused-epilogue activations by name (None = identity)."""
    if act is None:
        return y
    if act == "relu":
        return np.maximum(y, 0.0)
    if act == "clip":
        return np.minimum(np.maximum(y, lo), hi)
    if act == "sigmoid":
        return sigmoid(y)
    if act == "tanh":
        return np.tanh(y)
    if act == "gelu":
        return gelu(y)
    raise ValueError(f"unknown activation {act!r}")


def run_reference(graph: Graph, feeds: dict[str, np.ndarray] | np.ndarray
                  ) -> dict[str, np.ndarray]:
    """Evaluate the graph in float64. `feeds` maps input names to arrays, or is one array
    when the graph has one input. Returns {output name: float64 array}."""
    shapes = infer_shapes(graph)  # validates the graph
    if not isinstance(feeds, dict):
        if len(graph.inputs) != 1:
            raise InputError(f"graph has inputs {[v.name for v in graph.inputs]}: pass a "
                             f"dict of arrays, got a single {type(feeds).__name__}")
        feeds = {graph.inputs[0].name: feeds}
    names = [v.name for v in graph.inputs]
    if set(feeds) != set(names):
        raise InputError(f"expected inputs {names}, got {sorted(feeds)}")
    env: dict[str, np.ndarray] = {}
    for name in names:
        x = np.asarray(feeds[name], dtype=np.float64)
        want = shapes[name]
        if x.ndim != len(want) or any(d is not None and d != s for d, s in zip(want, x.shape)):
            raise ShapeError(f"input {name!r}: expected shape {want}, got {x.shape}")
        env[name] = x
    for wn, w in graph.weights.items():
        env[wn] = w.numpy().astype(np.float64)
    for i, node in enumerate(graph.nodes):
        args = [env[x] if x else None for x in node.inputs]
        env[node.outputs[0]] = _eval(node, node_attrs(node, i), args)
    return {o: env[o] for o in graph.outputs}


def _eval(node: Node, a: dict, args: list) -> np.ndarray:
    op, x = node.op, args[0]
    if op in ("Conv", "Gemm"):
        y = _conv(x, args[1], a) if op == "Conv" else x @ args[1]
        b = args[2] if len(args) > 2 else None
        if b is not None:
            y = y + (b[:, None, None] if op == "Conv" else b)
        r = args[3] if a["residual"] else None
        if r is not None and not a["residual_after_act"]:
            y = y + r
        y = apply_activation(y, a["activation"], a["act_min"], a["act_max"])
        if r is not None and a["residual_after_act"]:
            y = y + r
        return y
    if op == "BatchNormalization":
        scale, b, mean, var = (v.reshape((-1,) + (1,) * (x.ndim - 2)) for v in args[1:])
        return (x - mean) / np.sqrt(var + a["epsilon"]) * scale + b
    if op in ("Relu", "Sigmoid", "Tanh", "Gelu"):
        return apply_activation(x, op.lower())
    if op == "Clip":
        return apply_activation(x, "clip", a["min"], a["max"])
    if op == "Softmax":
        e = np.exp(x - x.max(axis=a["axis"], keepdims=True))
        return e / e.sum(axis=a["axis"], keepdims=True)
    if op in ("MaxPool", "AveragePool"):
        return _pool(x, a, op == "MaxPool")
    if op == "GlobalAveragePool":
        return x.mean(axis=(2, 3), keepdims=True)
    if op == "Add":
        return x + args[1]
    if op == "Flatten":
        axis = a["axis"] + x.ndim if a["axis"] < 0 else a["axis"]
        return x.reshape(int(np.prod(x.shape[:axis])), -1)
    if op == "Reshape":
        target = [x.shape[k] if t == 0 else t for k, t in enumerate(a["shape"])]
        return x.reshape(target)
    if op == "Transpose":
        return np.transpose(x, a["perm"])
    if op in ("Identity", "Dropout"):
        return x
    if op == "QDQ":
        return qdq(x, a["scale"], a["zero_point"], a["dtype"])
    raise AssertionError(op)




def _taps(xp: np.ndarray, kh: int, kw: int, oh: int, ow: int, a: dict):
    """Yield, for each kernel tap (i, j), the [N, C, oh, ow] slice of padded xp it reads."""
    (sh, sw), (dh, dw) = a["strides"], a.get("dilations", (1, 1))
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                           j * dw: j * dw + sw * (ow - 1) + 1: sw]


def _conv(x: np.ndarray, w: np.ndarray, a: dict) -> np.ndarray:
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    g = a["group"]
    pt, pl, pb, pr = a["pads"]
    (sh, sw), (dh, dw) = a["strides"], a["dilations"]
    oh, ow = window_out(h, kh, sh, dh, pt, pb), window_out(wd, kw, sw, dw, pl, pr)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    y = np.zeros((n, g, o // g, oh, ow))
    wg = w.reshape(g, o // g, cg, kh, kw)
    for i, j, patch in _taps(xp, kh, kw, oh, ow, a):
        y += np.einsum("ngchw,goc->ngohw", patch.reshape(n, g, cg, oh, ow), wg[..., i, j])
    return y.reshape(n, o, oh, ow)


def _pool(x: np.ndarray, a: dict, is_max: bool) -> np.ndarray:
    n, c, h, w = x.shape
    kh, kw = a["kernel_shape"]
    pt, pl, pb, pr = a["pads"]
    # Pad enough for every window (ceil mode may overhang past the explicit pads).
    oh, ow, eb, er = pool_extent(h, w, a)
    pad = ((0, 0), (0, 0), (pt, eb), (pl, er))
    inside = np.pad(np.ones((1, 1, h, w)), pad)  # 1 on real input elements
    in_pads = np.zeros_like(inside)  # 1 on input + explicit pads, 0 on ceil overhang
    in_pads[:, :, :pt + h + pb, :pl + w + pr] = 1.0
    xp = np.pad(x, pad, constant_values=-np.inf if is_max else 0.0)
    if is_max:
        y = np.full((n, c, oh, ow), -np.inf)
        for _, _, patch in _taps(xp, kh, kw, oh, ow, a):
            y = np.maximum(y, patch)
        return y
    count_mask = in_pads if a["count_include_pad"] else inside
    total, count = np.zeros((n, c, oh, ow)), np.zeros((1, 1, oh, ow))
    for (_, _, patch), (_, _, m) in zip(_taps(xp, kh, kw, oh, ow, a),
                                        _taps(count_mask, kh, kw, oh, ow, a)):
        total += patch
        count += m
    return total / count
