"""Lower an `rt.Graph` to one pure JAX function: `fn(params, x) -> y`.

The same function serves the TPU/GPU path (`rt.xla.export`) and the trainer
(`pyruntime.train`), so it is written once, straight from the IR spec in graph.py:

- Layout: the public boundary is the graph's own (NCHW for images, like the CPU
  Session). Convolutions and pools are expressed in NCHW with XLA's dimension numbers;
  XLA's layout assignment picks the device's internal layout (NHWC on TPU), so no
  transposes are written here.
- Precision: convolutions and matrix products default to `precision="highest"`, i.e. true
  fp32 accumulation on every backend (TPUs otherwise multiply in bf16), so outputs
  match the CPU Session to ~1e-5 relative. "default" trades that for speed on TPU/GPU.
- Weights: every graph weight becomes one float32 entry of `params` (a dict keyed by
  the weight's name): its dense float32 view (`Weight.numpy()`, pyruntime.formats), so
  f16, bf16, qc8 and sparse weights compute as dense float32 in XLA.
- Symbolic batch: only the first dim may be symbolic; every spatial size is static, so
  pooling windows and counts are computed in Python at trace time.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import DTypeError, GraphError, InputError, ShapeError, UnsupportedOpError
from .. import formats
from ..graph import Graph, Node
from ..shapes import QDQ_RANGE, infer_shapes, node_attrs, pool_extent
from ._deps import require

__all__ = ["lower", "dense_weights", "PRECISIONS"]

PRECISIONS = ("highest", "high", "default")


def dense_weights(graph: Graph) -> dict[str, np.ndarray]:
    """Every weight of `graph` as a new float32 numpy array (its dense view, never a view
    of the graph's arrays). A malformed weight raises WeightFormatError naming it."""
    return {name: np.array(formats.dense_f32(w, name), dtype=np.float32, copy=True)
            for name, w in graph.weights.items()}


def _precision(p: str) -> Any:
    lax = require("jax").lax
    if p not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {p!r}")
    return {"highest": lax.Precision.HIGHEST, "high": lax.Precision.HIGH,
            "default": lax.Precision.DEFAULT}[p]


def lower(graph: Graph, *, outputs: Sequence[str] | None = None,
          precision: str = "highest") -> tuple[Callable[..., Any], dict[str, Any]]:
    """`(fn, params)` with `fn(params, x)` a pure JAX function computing `graph`.

    `x` is one array when the graph has one input, or a dict {input name: array}. The
    result mirrors `Session.run`: one array for a bare `x` and one output, else a dict
    {output name: array}. `params` maps every weight name to a float32 jax array; pass
    a modified dict (e.g. while training) to run other weights. `outputs` picks other
    values of the graph to return (any node output or input name), in that order.
    `fn` is not jitted: wrap it in `jax.jit` (it is traceable, with a symbolic batch too).
    """
    jax = require("jax")
    jnp = jax.numpy
    if not isinstance(graph, Graph):
        raise GraphError(f"lower() expects an rt.Graph, got {type(graph).__name__}")
    shapes = infer_shapes(graph)                      # validates the graph
    prec = _precision(precision)
    attrs = [node_attrs(n, i) for i, n in enumerate(graph.nodes)]
    in_names = [v.name for v in graph.inputs]
    in_shapes = {n: shapes[n] for n in in_names}
    out_names = list(graph.outputs if outputs is None else outputs)
    if not out_names or len(set(out_names)) != len(out_names):
        raise GraphError(f"outputs must be distinct value names, got {out_names}")
    for o in out_names:
        if o not in shapes:
            raise GraphError(f"{o!r} is not an input or node output of graph {graph.name!r}")
    params = {k: jnp.asarray(v) for k, v in dense_weights(graph).items()}
    nodes = [n.copy() for n in graph.nodes]     # fn holds structure only, no weight arrays
    weight_names = list(graph.weights)

    def fn(params: Mapping[str, Any], x: Any) -> Any:
        single = not isinstance(x, Mapping)
        if single:
            if len(in_names) != 1:
                raise InputError(f"graph has inputs {in_names}: pass a dict of arrays, got a "
                                 f"single {type(x).__name__}")
            x = {in_names[0]: x}
        if set(x) != set(in_names):
            raise InputError(f"expected inputs {in_names}, got {sorted(x)}")
        missing = [k for k in weight_names if k not in params]
        if missing:
            raise InputError(f"params lack weight(s) {missing}")
        env: dict[str, Any] = {}
        for name in in_names:
            env[name] = _check_input(jnp, name, x[name], in_shapes[name])
        for k in weight_names:
            env[k] = params[k]
        for node, a in zip(nodes, attrs):
            args = [env[i] if i else None for i in node.inputs]
            env[node.outputs[0]] = _eval(jax, prec, node, a, args)
        if single and outputs is None and len(out_names) == 1:
            return env[out_names[0]]
        return {o: env[o] for o in out_names}

    return fn, params


def _check_input(jnp: Any, name: str, x: Any, want: tuple) -> Any:
    """The input as float32 with its shape checked (the batch dim may be symbolic)."""
    dt = getattr(x, "dtype", None)
    if dt is None:
        x = np.asarray(x)
        dt = x.dtype
    if np.dtype(dt).kind not in "iuf":
        raise DTypeError(f"input {name!r}: expected float32 (or another integer/float dtype, "
                         f"converted), got {dt}")
    shape = tuple(x.shape)
    if len(shape) != len(want) or any(w is not None and w != s for w, s in zip(want, shape)):
        raise ShapeError(f"input {name!r}: expected shape {want}, got {shape}")
    return jnp.asarray(x, dtype=jnp.float32)


def _activation(jax: Any, y: Any, act: str | None, lo: float, hi: float) -> Any:
    jnp = jax.numpy
    if act is None:
        return y
    if act == "relu":
        return jnp.maximum(y, 0.0)
    if act == "clip":
        return jnp.minimum(jnp.maximum(y, lo), hi)
    if act == "sigmoid":
        return jax.nn.sigmoid(y)
    if act == "tanh":
        return jnp.tanh(y)
    if act == "gelu":
        return jax.nn.gelu(y, approximate=False)
    raise GraphError(f"unknown activation {act!r}")  # node_attrs rejects it first


def _eval(jax: Any, prec: Any, node: Node, a: dict, args: list) -> Any:
    jnp, lax = jax.numpy, jax.lax
    op, x = node.op, args[0]
    if op in ("Conv", "Gemm"):
        if op == "Conv":
            pt, pl, pb, pr = a["pads"]
            y = lax.conv_general_dilated(
                x, args[1], window_strides=a["strides"], padding=[(pt, pb), (pl, pr)],
                rhs_dilation=a["dilations"], dimension_numbers=("NCHW", "OIHW", "NCHW"),
                feature_group_count=a["group"], precision=prec)
        else:
            y = jnp.matmul(x, args[1], precision=prec)
        b = args[2] if len(args) > 2 else None
        if b is not None:
            y = y + (b[:, None, None] if op == "Conv" else b)
        r = args[3] if a["residual"] else None
        if r is not None and not a["residual_after_act"]:
            y = y + r
        y = _activation(jax, y, a["activation"], a["act_min"], a["act_max"])
        if r is not None and a["residual_after_act"]:
            y = y + r
        return y
    if op == "BatchNormalization":
        shape = (-1,) + (1,) * (x.ndim - 2)
        scale, b, mean, var = (v.reshape(shape) for v in args[1:])
        return (x - mean) * (scale / jnp.sqrt(var + a["epsilon"])) + b
    if op in ("Relu", "Sigmoid", "Tanh", "Gelu"):
        return _activation(jax, x, op.lower(), -math.inf, math.inf)
    if op == "Clip":
        return _activation(jax, x, "clip", a["min"], a["max"])
    if op == "Softmax":
        return jax.nn.softmax(x, axis=a["axis"])
    if op in ("MaxPool", "AveragePool"):
        return _pool(jax, x, a, op == "MaxPool")
    if op == "GlobalAveragePool":
        return jnp.mean(x, axis=(2, 3), keepdims=True)
    if op == "Add":
        return x + args[1]
    if op == "Flatten":
        axis = a["axis"] + x.ndim if a["axis"] < 0 else a["axis"]
        return jnp.reshape(x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))
    if op == "Reshape":
        spec = a["shape"]                       # ints: 0 copies a dim, one -1 is inferred
        target = [x.shape[k] if t == 0 else t for k, t in enumerate(spec)]
        if -1 in spec:
            k = spec.index(-1)
            known = math.prod(t for i, t in enumerate(target) if i != k)
            target[k] = math.prod(x.shape) // known  # exact: validate() checked it divides
        return jnp.reshape(x, tuple(target))
    if op == "Transpose":
        return jnp.transpose(x, a["perm"])
    if op in ("Identity", "Dropout"):
        return x
    if op == "QDQ":  # jnp.round rounds half to even, as ONNX QuantizeLinear
        lo, hi = QDQ_RANGE[a["dtype"]]
        s, z = jnp.float32(a["scale"]), a["zero_point"]
        return (jnp.clip(jnp.round(x / s) + z, lo, hi) - z) * s
    raise UnsupportedOpError(f"op {op!r} has no XLA lowering")  # validate() rejects it first




def _pool(jax: Any, x: Any, a: dict, is_max: bool) -> Any:
    lax = jax.lax
    h, w = int(x.shape[2]), int(x.shape[3])
    kh, kw = a["kernel_shape"]
    pt, pl, pb, pr = a["pads"]
    (sh, sw), (dh, dw) = a["strides"], a.get("dilations", (1, 1))
    # Ceil mode may need windows that overhang past the explicit bottom/right pads.
    oh, ow, eb, er = pool_extent(h, w, a)
    pad = ((0, 0), (0, 0), (pt, eb), (pl, er))
    dims, strides, dil = (1, 1, kh, kw), (1, 1, sh, sw), (1, 1, dh, dw)
    if is_max:
        y = lax.reduce_window(x, -np.inf, lax.max, dims, strides, pad, window_dilation=dil)
        return y[:, :, :oh, :ow]
    total = lax.reduce_window(x, 0.0, lax.add, dims, strides, pad, window_dilation=dil)
    # Divisor per output pixel: real input pixels, or also the explicit pads
    # (count_include_pad), never the ceil-mode overhang. Static, so computed in numpy.
    valid = np.zeros((h + pt + eb, w + pl + er), np.float64)
    if a["count_include_pad"]:
        valid[:pt + h + pb, :pl + w + pr] = 1.0
    else:
        valid[pt:pt + h, pl:pl + w] = 1.0
    count = np.zeros((oh, ow))
    for i in range(kh):
        for j in range(kw):
            count += valid[i * dh: i * dh + sh * (oh - 1) + 1: sh,
                           j * dw: j * dw + sw * (ow - 1) + 1: sw]
    return total[:, :, :oh, :ow] / count.astype(np.float32)
