"""A small Keras-functional-style builder that produces `rt.Graph`.

    from pyruntime import nn
    x = nn.Input((3, 32, 32), name="input")          # batch dimension is symbolic (None)
    h = nn.Conv2D(16, 3, padding="same", activation="relu")(x)
    h = nn.GlobalAvgPool2D()(h)                       # [N, 16]
    y = nn.Dense(10)(h)
    model = nn.Model(x, y, name="tiny")
    g = model.graph                                   # an rt.Graph (NCHW, graph.py IR)

Why it exists: tests and students need real models without an ONNX exporter. The
builder therefore emits the plain IR and nothing clever: an `activation=` argument
becomes a separate activation node after the layer (fusion is the passes' job), and
BatchNorm stays a BatchNormalization node (folding is a pass too).

Layers are callables on symbolic tensors. Shapes are checked when a layer is called,
so misuse fails at the line that caused it with a ShapeError/GraphError. Weights are
created when a `Model` is built, in the model's topological order: a layer with
`seed=` uses that seed; every other layer draws from `(model seed, position)`, where
the model seed is `Model(seed=...)` or else the module default set by `nn.seed(n)`
(0 at import). Building the same architecture twice therefore gives identical
weights, independent of what else the process built. A layer object called several
times shares its weights (as in Keras).

Initialization: kernels are He-uniform (limit sqrt(6/fan_in)) when the layer's own
activation is relu/relu6/gelu, else Glorot-uniform; pass `kernel_initializer=` to
choose ("he_uniform", "glorot_uniform", "lecun_uniform"). Biases default to PyTorch's
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) rather than zeros, so tests notice a dropped bias;
`bias_initializer="zeros"` gives Keras' behaviour.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from .errors import GraphError, ShapeError
from .graph import Graph, Node, ValueInfo, Weight
from .shapes import same_pads, window_out

__all__ = [
    "seed", "get_seed", "Tensor", "Input", "Layer", "Dense", "Conv2D", "DepthwiseConv2D",
    "SeparableConv2D", "BatchNorm", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Flatten",
    "Add", "Activation", "Dropout", "Model", "ACTIVATIONS", "same_pads",
]

_default_seed: int = 0

#: activation string -> (IR op, attrs); softmax's axis is filled in per rank.
ACTIVATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "relu": ("Relu", {}),
    "relu6": ("Clip", {"min": 0.0, "max": 6.0}),
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "gelu": ("Gelu", {}),
    "softmax": ("Softmax", {}),
}
_HE_ACTS = ("relu", "relu6", "gelu")


def seed(n: int) -> None:
    """Set the default model seed used by `Model` when it gets no `seed=`."""
    global _default_seed
    _default_seed = _check_seed(n, "nn.seed")


def get_seed() -> int:
    """The current default model seed."""
    return _default_seed


def _check_seed(s: Any, where: str) -> int:
    if isinstance(s, bool) or not isinstance(s, numbers.Integral) or int(s) < 0:
        raise GraphError(f"{where}: seed must be a non-negative int, got {s!r}")
    return int(s)


# --------------------------------------------------------------------------- helpers

def _int(v: Any, what: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise GraphError(f"{what} must be an int, got {v!r}")
    if int(v) < minimum:
        raise GraphError(f"{what} must be >= {minimum}, got {v!r}")
    return int(v)


def _pair(v: Any, what: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a 2-sequence of ints -> (h, w)."""
    if isinstance(v, Sequence) and not isinstance(v, str):
        if len(v) != 2:
            raise GraphError(f"{what} must be an int or a pair (h, w), got {v!r}")
        return _int(v[0], what, minimum), _int(v[1], what, minimum)
    x = _int(v, what, minimum)
    return x, x


def _padding_spec(padding: Any, what: str) -> Any:
    """Validate a padding argument; "same" is resolved later, when the input size is known."""
    if isinstance(padding, str):
        p = padding.lower()
        if p not in ("same", "valid"):
            raise GraphError(f"{what}: padding must be 'valid', 'same', an int, (h, w) or "
                             f"(top, left, bottom, right); got {padding!r}")
        return p
    if isinstance(padding, Sequence):
        if len(padding) == 2:
            h, w = (_int(p, f"{what} padding", 0) for p in padding)
            return (h, w, h, w)
        if len(padding) == 4:
            return tuple(_int(p, f"{what} padding", 0) for p in padding)
        raise GraphError(f"{what}: padding tuple must have 2 or 4 entries, got {padding!r}")
    p = _int(padding, f"{what} padding", 0)
    return (p, p, p, p)


def _resolve_pads(spec: Any, size: tuple[int, int], kernel: tuple[int, int],
                  strides: tuple[int, int], dilations: tuple[int, int]) -> tuple[int, ...]:
    if spec == "valid":
        return (0, 0, 0, 0)
    if spec == "same":
        return same_pads(size, kernel, strides, dilations)
    return tuple(spec)


def _spatial_out(what: str, size: tuple[int, int], kernel: tuple[int, int],
                 strides: tuple[int, int], dilations: tuple[int, int],
                 pads: tuple[int, ...]) -> tuple[int, int]:
    out = []
    for i, axis in enumerate(("height", "width")):
        eff = (kernel[i] - 1) * dilations[i] + 1
        padded = size[i] + pads[i] + pads[i + 2]
        if padded < eff:
            raise ShapeError(f"{what}: window {kernel[i]} (dilated extent {eff}) is larger than "
                             f"the padded input {axis} {padded} (input {size[i]}, pads "
                             f"{pads[i]}+{pads[i + 2]})")
        out.append(window_out(size[i], kernel[i], strides[i], dilations[i], pads[i],
                              pads[i + 2]))
    return out[0], out[1]


def _fmt_shape(shape: tuple) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


# --------------------------------------------------------------------------- tensors

class Tensor:
    """A symbolic tensor: a shape (None = batch) and the layer call that produced it."""

    __slots__ = ("shape", "dtype", "_call", "_input")

    def __init__(self, shape: tuple, call: "_Call | None" = None,
                 input_layer: "Input | None" = None) -> None:
        self.shape = tuple(shape)
        self.dtype = np.dtype(np.float32)
        self._call = call
        self._input = input_layer

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        src = self._input.name if self._input is not None else type(self._call.layer).__name__
        return f"<nn.Tensor shape={_fmt_shape(self.shape)} from {src}>"


class _Call:
    """One application of a layer to input tensors."""

    __slots__ = ("layer", "inputs", "index", "output")

    def __init__(self, layer: "Layer", inputs: list[Tensor], index: int) -> None:
        self.layer = layer
        self.inputs = inputs
        self.index = index
        self.output: Tensor | None = None


class Input:
    """`nn.Input(shape, name=None)` -> a symbolic tensor of shape (None, *shape).

    `shape` excludes the batch dimension, which is always symbolic. Unnamed inputs get
    "input", "input_1", ... when the model is built."""

    def __new__(cls, shape: Sequence[int], name: str | None = None) -> Tensor:  # type: ignore[misc]
        self = object.__new__(cls)
        if isinstance(shape, numbers.Integral):
            shape = (shape,)
        if not isinstance(shape, Sequence) or len(shape) == 0:
            raise ShapeError(f"nn.Input: shape must be a non-empty tuple of dims (without the "
                             f"batch), got {shape!r}")
        self.shape = tuple(_int(d, "nn.Input shape dim") for d in shape)
        if name is not None and (not isinstance(name, str) or not name):
            raise GraphError(f"nn.Input: name must be a non-empty str, got {name!r}")
        self.name = name
        return Tensor((None,) + self.shape, input_layer=self)


# --------------------------------------------------------------------------- emitter

class _Emitter:
    """Accumulates nodes and weights for one model, checking name uniqueness."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.weights: dict[str, Weight] = {}
        self.values: set[str] = set()

    def claim(self, name: str) -> str:
        if name in self.values or name in self.weights:
            raise GraphError(f"duplicate name {name!r} in the model: give layers unique names")
        self.values.add(name)
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        self.nodes.append(Node(op, list(inputs), [self.claim(name)], attrs, name))
        return name

    def weight(self, name: str, array: np.ndarray) -> str:
        if name not in self.weights:
            if name in self.values:
                raise GraphError(f"duplicate name {name!r} in the model (weight vs value)")
            self.weights[name] = Weight.f32(array)
        return name

    def activation(self, act: str | None, x: str, base: str, rank: int) -> str:
        if act is None:
            return x
        op, attrs = ACTIVATIONS[act]
        attrs = dict(attrs)
        if op == "Softmax":
            attrs["axis"] = -1 if rank == 2 else 1
        return self.node(op, [x], f"{base}/{act}", **attrs)


def _check_activation(act: Any, what: str) -> str | None:
    if act is None:
        return None
    if not isinstance(act, str) or (act.lower() not in ACTIVATIONS and act.lower() != "linear"):
        raise GraphError(f"{what}: unknown activation {act!r}; expected one of "
                         f"{sorted(ACTIVATIONS)} or None/'linear'")
    a = act.lower()
    return None if a == "linear" else a


def _init_kernel(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int,
                 kind: str) -> np.ndarray:
    if kind == "he_uniform":
        limit = math.sqrt(6.0 / fan_in)
    elif kind == "glorot_uniform":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
    elif kind == "lecun_uniform":
        limit = math.sqrt(3.0 / fan_in)
    else:  # validated in the constructor
        raise GraphError(f"unknown kernel_initializer {kind!r}")
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def _init_bias(rng: np.random.Generator, n: int, fan_in: int, kind: str) -> np.ndarray:
    if kind == "zeros":
        return np.zeros(n, np.float32)
    limit = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-limit, limit, size=n).astype(np.float32)


_KERNEL_INITS = ("he_uniform", "glorot_uniform", "lecun_uniform")
_BIAS_INITS = ("uniform", "zeros")


# --------------------------------------------------------------------------- layers

class Layer:
    """Base class: call on a Tensor (or a list of Tensors for Add) to get a Tensor.

    Every layer takes `name=` and `seed=` (the seed only matters for layers with weights;
    weightless ones accept it so that all layers share one signature)."""

    kind = "layer"          # base of automatic names
    multi_input = False

    def __init__(self, name: str | None = None, seed: int | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise GraphError(f"{type(self).__name__}: name must be a non-empty str, got {name!r}")
        self.name = name
        self.seed = None if seed is None else _check_seed(seed, type(self).__name__)
        self._calls: list[_Call] = []
        self._in_shape: tuple | None = None      # the per-sample input shape of call 0
        self.params: dict[str, np.ndarray] | None = None   # materialised by Model

    # -- what subclasses implement
    def _out_shape(self, shapes: list[tuple]) -> tuple:
        raise NotImplementedError

    def _param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def _make_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {}

    def _emit(self, em: _Emitter, xs: list[str], base: str, pname: Callable[[str], str],
              in_shapes: list[tuple]) -> str:
        raise NotImplementedError

    # -- machinery
    def _desc(self) -> str:
        return f"{type(self).__name__}" + (f" {self.name!r}" if self.name else "")

    def __call__(self, x: Any) -> Tensor:
        if self.multi_input:
            if not isinstance(x, Sequence) or isinstance(x, Tensor) or len(x) < 2:
                raise GraphError(f"{self._desc()} must be called on a list of at least two "
                                 f"tensors, got {x!r}")
            xs = list(x)
        else:
            if isinstance(x, Sequence) and not isinstance(x, Tensor):
                raise GraphError(f"{self._desc()} takes one tensor, got a sequence of "
                                 f"{len(x)}; only Add takes a list")
            xs = [x]
        for t in xs:
            if not isinstance(t, Tensor):
                raise GraphError(f"{self._desc()} must be called on symbolic tensors from "
                                 f"nn.Input or another layer, got {type(t).__name__}")
        shapes = [t.shape for t in xs]
        out = self._out_shape(shapes)
        has_params = type(self)._param_shapes is not Layer._param_shapes
        if has_params and self._calls and shapes[0][1:] != self._in_shape:
            raise ShapeError(f"{self._desc()} is shared: it was first called on "
                             f"{_fmt_shape((None,) + self._in_shape)} and now on "
                             f"{_fmt_shape(shapes[0])}; a shared layer's weights need the "
                             f"same input shape")
        if not self._calls:
            self._in_shape = shapes[0][1:]
        call = _Call(self, xs, len(self._calls))
        self._calls.append(call)
        call.output = Tensor(out, call=call)
        return call.output

    def count_params(self) -> int:
        return sum(int(np.prod(s)) for s in self._param_shapes().values())

    def _need_rank(self, shape: tuple, rank: int, hint: str = "") -> None:
        if len(shape) != rank:
            raise ShapeError(f"{self._desc()} expects a {rank}-D input "
                             f"{'[N, C, H, W]' if rank == 4 else '[N, features]'}, got shape "
                             f"{_fmt_shape(shape)}{hint}")


class Dense(Layer):
    """Fully connected: Gemm(X, W[K, N], B) on a 2-D input [N, K]."""

    kind = "dense"

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True, *,
                 kernel_initializer: str | None = None, bias_initializer: str = "uniform",
                 seed: int | None = None, name: str | None = None) -> None:
        super().__init__(name, seed)
        self.units = _int(units, "Dense units")
        self.activation = _check_activation(activation, "Dense")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _kinit(kernel_initializer, self.activation)
        self.bias_initializer = _binit(bias_initializer)

    def _out_shape(self, shapes: list[tuple]) -> tuple:
        s = shapes[0]
        self._need_rank(s, 2, "; add Flatten() or GlobalAvgPool2D() before Dense"
                        if len(s) > 2 else "")
        return (s[0], self.units)

    def _param_shapes(self) -> dict[str, tuple[int, ...]]:
        k = self._in_shape[0]
        d = {"weight": (k, self.units)}
        if self.use_bias:
            d["bias"] = (self.units,)
        return d

    def _make_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        k = self._in_shape[0]
        p = {"weight": _init_kernel(rng, (k, self.units), k, self.units, self.kernel_initializer)}
        if self.use_bias:
            p["bias"] = _init_bias(rng, self.units, k, self.bias_initializer)
        return p

    def _emit(self, em, xs, base, pname, in_shapes):
        ins = [xs[0], pname("weight")] + ([pname("bias")] if self.use_bias else [])
        y = em.node("Gemm", ins, base)
        return em.activation(self.activation, y, base, 2)


def _kinit(k: str | None, act: str | None) -> str:
    if k is None:
        return "he_uniform" if act in _HE_ACTS else "glorot_uniform"
    if k not in _KERNEL_INITS:
        raise GraphError(f"unknown kernel_initializer {k!r}; expected one of {_KERNEL_INITS}")
    return k


def _binit(b: str) -> str:
    if b not in _BIAS_INITS:
        raise GraphError(f"unknown bias_initializer {b!r}; expected one of {_BIAS_INITS}")
    return b


class _ConvBase(Layer):
    """Shared geometry of Conv2D / DepthwiseConv2D / pooling: NCHW, 2-D windows."""

    def _geometry(self, shape: tuple) -> tuple[int, int, tuple, tuple[int, int]]:
        self._need_rank(shape, 4)
        c, h, w = shape[1], shape[2], shape[3]
        pads = _resolve_pads(self.padding, (h, w), self.kernel_size, self.strides,
                             self.dilation)
        oh, ow = _spatial_out(self._desc(), (h, w), self.kernel_size, self.strides,
                              self.dilation, pads)
        return c, oh, ow, pads

    def _pads(self, in_shape: tuple) -> tuple[int, int, int, int]:
        return _resolve_pads(self.padding, (in_shape[2], in_shape[3]), self.kernel_size,
                             self.strides, self.dilation)


class Conv2D(_ConvBase):
    """2-D convolution, NCHW, W [filters, C, KH, KW], group 1.

    padding: "valid", "same" (TF-style: output ceil(H/s), extra pad bottom/right), an int,
    (h, w), or (top, left, bottom, right)."""

    kind = "conv2d"

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: Any = "valid",
                 dilation: Any = 1, activation: str | None = None, use_bias: bool = True, *,
                 kernel_initializer: str | None = None, bias_initializer: str = "uniform",
                 seed: int | None = None, name: str | None = None) -> None:
        super().__init__(name, seed)
        self.filters = _int(filters, "Conv2D filters")
        self.kernel_size = _pair(kernel_size, "Conv2D kernel_size")
        self.strides = _pair(strides, "Conv2D strides")
        self.dilation = _pair(dilation, "Conv2D dilation")
        self.padding = _padding_spec(padding, "Conv2D")
        self.activation = _check_activation(activation, "Conv2D")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _kinit(kernel_initializer, self.activation)
        self.bias_initializer = _binit(bias_initializer)

    def _out_shape(self, shapes: list[tuple]) -> tuple:
        _, oh, ow, _ = self._geometry(shapes[0])
        return (shapes[0][0], self.filters, oh, ow)

    def _wshape(self) -> tuple[int, ...]:
        return (self.filters, self._in_shape[0]) + self.kernel_size

    def _param_shapes(self) -> dict[str, tuple[int, ...]]:
        d = {"weight": self._wshape()}
        if self.use_bias:
            d["bias"] = (self.filters,)
        return d

    def _make_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        ws = self._wshape()
        kk = ws[2] * ws[3]
        p = {"weight": _init_kernel(rng, ws, ws[1] * kk, ws[0] * kk, self.kernel_initializer)}
        if self.use_bias:
            p["bias"] = _init_bias(rng, self.filters, ws[1] * kk, self.bias_initializer)
        return p

    def _conv_attrs(self, in_shape: tuple, group: int) -> dict[str, Any]:
        return {"strides": self.strides, "pads": self._pads(in_shape),
                "dilations": self.dilation, "group": group}

    def _emit(self, em, xs, base, pname, in_shapes):
        ins = [xs[0], pname("weight")] + ([pname("bias")] if self.use_bias else [])
        y = em.node("Conv", ins, base, **self._conv_attrs(in_shapes[0], 1))
        return em.activation(self.activation, y, base, 4)


class DepthwiseConv2D(Conv2D):
    """Depthwise convolution (channel multiplier 1): Conv with group = C, W [C, 1, KH, KW]."""

    kind = "depthwise_conv2d"

    def __init__(self, kernel_size: Any, strides: Any = 1, padding: Any = "valid",
                 dilation: Any = 1, activation: str | None = None, use_bias: bool = True, *,
                 kernel_initializer: str | None = None, bias_initializer: str = "uniform",
                 seed: int | None = None, name: str | None = None) -> None:
        super().__init__(1, kernel_size, strides, padding, dilation, activation, use_bias,
                         kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, seed=seed, name=name)

    def _out_shape(self, shapes: list[tuple]) -> tuple:
        c, oh, ow, _ = self._geometry(shapes[0])
        return (shapes[0][0], c, oh, ow)

    def _wshape(self) -> tuple[int, ...]:
        return (self._in_shape[0], 1) + self.kernel_size

    def _param_shapes(self) -> dict[str, tuple[int, ...]]:
        d = {"weight": self._wshape()}
        if self.use_bias:
            d["bias"] = (self._in_shape[0],)
        return d

    def _make_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        ws = self._wshape()
        kk = ws[2] * ws[3]
        p = {"weight": _init_kernel(rng, ws, kk, kk, self.kernel_initializer)}
        if self.use_bias:
            p["bias"] = _init_bias(rng, ws[0], kk, self.bias_initializer)
        return p

    def _emit(self, em, xs, base, pname, in_shapes):
        ins = [xs[0], pname("weight")] + ([pname("bias")] if self.use_bias else [])
        y = em.node("Conv", ins, base, **self._conv_attrs(in_shapes[0], in_shapes[0][1]))
        return em.activation(self.activation, y, base, 4)


class SeparableConv2D(Conv2D):
    """Depthwise conv (no bias) followed by a pointwise 1x1 conv (with the bias), then the
    activation: two Conv nodes, weights `depthwise` [C, 1, KH, KW] and `pointwise`
    [filters, C, 1, 1]."""

    kind = "separable_conv2d"

    def _param_shapes(self) -> dict[str, tuple[int, ...]]:
        c = self._in_shape[0]
        d = {"depthwise": (c, 1) + self.kernel_size, "pointwise": (self.filters, c, 1, 1)}
        if self.use_bias:
            d["bias"] = (self.filters,)
        return d

    def _make_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        c = self._in_shape[0]
        kk = self.kernel_size[0] * self.kernel_size[1]
        p = {"depthwise": _init_kernel(rng, (c, 1) + self.kernel_size, kk, kk,
                                       self.kernel_initializer),
             "pointwise": _init_kernel(rng, (self.filters, c, 1, 1), c, self.filters,
                                       self.kernel_initializer)}
        if self.use_bias:
            p["bias"] = _init_bias(rng, self.filters, c, self.bias_initializer)
        return p

    def _emit(self, em, xs, base, pname, in_shapes):
        c = in_shapes[0][1]
        d = em.node("Conv", [xs[0], pname("depthwise")], f"{base}/depthwise",
                    **self._conv_attrs(in_shapes[0], c))
        ins = [d, pname("pointwise")] + ([pname("bias")] if self.use_bias else [])
        y = em.node("Conv", ins, base, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1),
                    group=1)
        return em.activation(self.activation, y, base, 4)


class BatchNorm(Layer):
    """Inference BatchNormalization over axis 1 (channels), any rank >= 2.

    random_stats=False: gamma 1, beta 0, mean 0, var 1 (an identity up to epsilon).
    random_stats=True: gamma U(0.5, 1.5), beta U(-0.5, 0.5), mean U(-0.5, 0.5),
    var U(0.5, 2.0): valid (var > 0) and non-trivial, so BN-folding is really tested."""

    kind = "batch_norm"

    def __init__(self, epsilon: float = 1e-5, random_stats: bool = False, *,
                 seed: int | None = None, name: str | None = None) -> None:
        super().__init__(name, seed)
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) \
                or not (float(epsilon) >= 0.0 and math.isfinite(float(epsilon))):
            raise GraphError(f"BatchNorm epsilon must be a finite float >= 0, got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.random_stats = bool(random_stats)

    def _out_shape(self, shapes: list[tuple]) -> tuple:
        if len(shapes[0]) < 2:
            raise ShapeError(f"{self._desc()} expects an input with a channel axis [N, C, ...],"
                             f" got shape {_fmt_shape(shapes[0])}")
        return shapes[0]

    def _param_shapes(self) -> dict[str, tuple[int, ...]]:
        c = (self._in_shape[0],)
        return {"scale": c, "bias": c, "mean": c, "var": c}

    def _make_params(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        c = self._in_shape[0]
        if not self.random_stats:
            return {"scale": np.ones(c, np.float32), "bias": np.zeros(c, np.float32),
                    "mean": np.zeros(c, np.float32), "var": np.ones(c, np.float32)}
        f = lambda lo, hi: rng.uniform(lo, hi, size=c).astype(np.float32)  # noqa: E731
        return {"scale": f(0.5, 1.5), "bias": f(-0.5, 0.5), "mean": f(-0.5, 0.5),
                "var": f(0.5, 2.0)}

    def _emit(self, em, xs, base, pname, in_shapes):
        return em.node("BatchNormalization",
                       [xs[0]] + [pname(k) for k in ("scale", "bias", "mean", "var")],
                       base, epsilon=self.epsilon)


class _Pool(_ConvBase):
    op = ""

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: Any = "valid", *,
                 seed: int | None = None, name: str | None = None) -> None:
        super().__init__(name, seed)
        what = type(self).__name__
        self.kernel_size = _pair(pool_size, f"{what} pool_size")
        self.strides = self.kernel_size if strides is None else _pair(strides, f"{what} strides")
        self.dilation = (1, 1)
        self.padding = _padding_spec(padding, what)

    def _out_shape(self, shapes: list[tuple]) -> tuple:
        c, oh, ow, pads = self._geometry(shapes[0])
        for i in range(2):
            if pads[i] >= self.kernel_size[i] or pads[i + 2] >= self.kernel_size[i]:
                raise ShapeError(f"{self._desc()}: padding {pads} must be smaller than the "
                                 f"pool window {self.kernel_size}, or some windows would see "
                                 f"only padding")
        return (shapes[0][0], c, oh, ow)

    def _attrs(self, in_shape: tuple) -> dict[str, Any]:
        return {"kernel_shape": self.kernel_size, "strides": self.strides,
                "pads": self._pads(in_shape)}


class MaxPool2D(_Pool):
    """MaxPool, NCHW; strides default to pool_size; padding as Conv2D (pads are -inf)."""

    kind = "max_pool2d"
    op = "MaxPool"

    def _emit(self, em, xs, base, pname, in_shapes):
        return em.node("MaxPool", [xs[0]], base, dilations=(1, 1), **self._attrs(in_shapes[0]))


class AvgPool2D(_Pool):
    """AveragePool, NCHW. Padded pixels are excluded from the mean by default
    (count_include_pad=False, like Keras "same")."""

    kind = "avg_pool2d"
    op = "AveragePool"

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: Any = "valid", *,
                 count_include_pad: bool = False, seed: int | None = None,
                 name: str | None = None) -> None:
        super().__init__(pool_size, strides, padding, seed=seed, name=name)
        self.count_include_pad = bool(count_include_pad)

    def _emit(self, em, xs, base, pname, in_shapes):
        return em.node("AveragePool", [xs[0]], base, count_include_pad=int(self.count_include_pad),
                       **self._attrs(in_shapes[0]))


class GlobalAvgPool2D(Layer):
    """[N, C, H, W] -> [N, C] as GlobalAveragePool ([N, C, 1, 1]) then Flatten(axis=1), so a
    Dense can follow directly. keepdims=True stops after GlobalAveragePool."""

    kind = "global_avg_pool2d"

    def __init__(self, keepdims: bool = False, *, seed: int | None = None,
                 name: str | None = None) -> None:
        super().__init__(name, seed)
        self.keepdims = bool(keepdims)

    def _out_shape(self, shapes: list[tuple]) -> tuple:
        self._need_rank(shapes[0], 4)
        n, c = shapes[0][:2]
        return (n, c, 1, 1) if self.keepdims else (n, c)

    def _emit(self, em, xs, base, pname, in_shapes):
        if self.keepdims:
            return em.node("GlobalAveragePool", [xs[0]], base)
        g = em.node("GlobalAveragePool", [xs[0]], f"{base}/pool")
        return em.node("Flatten", [g], base, axis=1)


class Flatten(Layer):
    """[N, d1, d2, ...] -> [N, d1*d2*...] in NCHW (C-order) order."""

    kind = "flatten"

    def __init__(self, *, seed: int | None = None, name: str | None = None) -> None:
        super().__init__(name, seed)

    def _out_shape(self, shapes: list[tuple]) -> tuple:
        s = shapes[0]
        if len(s) < 2:
            raise ShapeError(f"{self._desc()} expects at least a 2-D input, got {_fmt_shape(s)}")
        return (s[0], int(np.prod(s[1:])))

    def _emit(self, em, xs, base, pname, in_shapes):
        return em.node("Flatten", [xs[0]], base, axis=1)


class Add(Layer):
    """Elementwise sum of two or more tensors of identical shape (residual connections).
    More than two inputs become a chain of binary Add nodes."""

    kind = "add"
    multi_input = True

    def __init__(self, *, seed: int | None = None, name: str | None = None) -> None:
        super().__init__(name, seed)

    def _out_shape(self, shapes: list[tuple]) -> tuple:
        for i, s in enumerate(shapes[1:], 1):
            if s != shapes[0]:
                raise ShapeError(f"{self._desc()}: all inputs must have the same shape; input 0 "
                                 f"is {_fmt_shape(shapes[0])} but input {i} is {_fmt_shape(s)}")
        return shapes[0]

    def _emit(self, em, xs, base, pname, in_shapes):
        y = xs[0]
        for i, x in enumerate(xs[1:], 1):
            y = em.node("Add", [y, x], base if i == len(xs) - 1 else f"{base}/{i}")
        return y


class Activation(Layer):
    """A separate activation node: relu, relu6 (Clip 0..6), sigmoid, tanh, gelu, softmax.

    softmax normalizes over the channel axis: axis=-1 on 2-D inputs, axis=1 on NCHW."""

    kind = "activation"

    def __init__(self, activation: str, *, seed: int | None = None,
                 name: str | None = None) -> None:
        super().__init__(name, seed)
        act = _check_activation(activation, "Activation")
        if act is None:
            raise GraphError("Activation: 'linear'/None is not an activation layer; leave it out")
        self.activation = act
        self.kind = act

    def _out_shape(self, shapes: list[tuple]) -> tuple:
        return shapes[0]

    def _emit(self, em, xs, base, pname, in_shapes):
        op, attrs = ACTIVATIONS[self.activation]
        attrs = dict(attrs)
        if op == "Softmax":
            attrs["axis"] = -1 if len(in_shapes[0]) == 2 else 1
        return em.node(op, [xs[0]], base, **attrs)


class Dropout(Layer):
    """Dropout(rate): an inference no-op node (kept so graphs look like trained ones; the
    passes remove it)."""

    kind = "dropout"

    def __init__(self, rate: float = 0.5, *, seed: int | None = None,
                 name: str | None = None) -> None:
        super().__init__(name, seed)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) \
                or not 0.0 <= float(rate) < 1.0:
            raise GraphError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def _out_shape(self, shapes: list[tuple]) -> tuple:
        return shapes[0]

    def _emit(self, em, xs, base, pname, in_shapes):
        return em.node("Dropout", [xs[0]], base)   # the IR's Dropout has no attributes


# --------------------------------------------------------------------------- model

def _as_list(v: Any, what: str) -> list[Tensor]:
    items = [v] if isinstance(v, Tensor) else list(v) if isinstance(v, Sequence) else [v]
    if not items:
        raise GraphError(f"Model: {what} must not be empty")
    for t in items:
        if not isinstance(t, Tensor):
            raise GraphError(f"Model: {what} must be nn tensors, got {type(t).__name__}")
    return items


class Model:
    """`nn.Model(inputs, outputs, name="model", seed=None)`: the DAG between the given
    input tensors and output tensors, lowered to an `rt.Graph` (`.graph`, `to_graph()`).

    Several inputs and outputs are allowed. Graph inputs/outputs keep the order given."""

    def __init__(self, inputs: Tensor | Sequence[Tensor], outputs: Tensor | Sequence[Tensor],
                 name: str = "model", seed: int | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise GraphError(f"Model name must be a non-empty str, got {name!r}")
        self.name = name
        self.seed = _default_seed if seed is None else _check_seed(seed, "Model")
        self.inputs = _as_list(inputs, "inputs")
        self.outputs = _as_list(outputs, "outputs")
        for t in self.inputs:
            if t._input is None:
                raise GraphError(f"Model inputs must be tensors made by nn.Input, got {t!r}")
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise GraphError("Model: the same input tensor is listed twice")
        if len({id(t) for t in self.outputs}) != len(self.outputs):
            raise GraphError("Model: the same output tensor is listed twice")
        self._calls = self._topo_calls()
        self.layers: list[Layer] = []
        for c in self._calls:
            if c.layer not in self.layers:
                self.layers.append(c.layer)
        self._names = self._assign_names()
        self._materialize()
        self.graph = self._lower()

    def _topo_calls(self) -> list[_Call]:
        """Calls in a deterministic topological order (iterative DFS post-order)."""
        input_ids = {id(t) for t in self.inputs}
        order: list[_Call] = []
        done: set[int] = set()
        for out in self.outputs:
            stack: list[tuple[Tensor, bool]] = [(out, False)]
            while stack:
                t, expanded = stack.pop()
                if t._call is None:
                    if id(t) not in input_ids:
                        raise GraphError(f"Model {self.name!r}: an output depends on input "
                                         f"{t._input.name or '<unnamed>'!r} {_fmt_shape(t.shape)}"
                                         f" that is not listed in the model's inputs")
                    continue
                c = t._call
                if id(c) in done:
                    continue
                if expanded:
                    done.add(id(c))
                    order.append(c)
                    continue
                stack.append((t, True))
                for x in reversed(c.inputs):
                    if x._call is None or id(x._call) not in done:
                        stack.append((x, False))
        return order

    def _assign_names(self) -> dict[int, str]:
        """Layer and input names: explicit ones kept, the rest numbered per kind."""
        names: dict[int, str] = {}
        taken: set[str] = set()
        owners = [t._input for t in self.inputs] + self.layers
        for o in owners:
            if o.name is not None:
                if o.name in taken:
                    raise GraphError(f"Model {self.name!r}: two layers/inputs are named "
                                     f"{o.name!r}; names must be unique")
                taken.add(o.name)
                names[id(o)] = o.name
        counters: dict[str, int] = {}
        for o in owners:
            if o.name is not None:
                continue
            kind = "input" if isinstance(o, Input) else o.kind
            while True:
                i = counters.get(kind, 0)
                counters[kind] = i + 1
                cand = kind if i == 0 else f"{kind}_{i}"
                if cand not in taken:
                    break
            taken.add(cand)
            names[id(o)] = cand
        return names

    def _materialize(self) -> None:
        pos = 0
        for layer in self.layers:
            if not layer._param_shapes():
                continue
            if layer.params is None:
                rng = np.random.default_rng(layer.seed if layer.seed is not None
                                            else [self.seed, pos])
                layer.params = layer._make_params(rng)
            pos += 1

    def _lower(self) -> Graph:
        em = _Emitter()
        value: dict[int, str] = {}
        vinfo = []
        for t in self.inputs:
            nm = em.claim(self._names[id(t._input)])
            value[id(t)] = nm
            vinfo.append(ValueInfo(nm, t.shape, np.dtype(np.float32)))
        for c in self._calls:
            lname = self._names[id(c.layer)]
            base = lname if c.index == 0 else f"{lname}/call{c.index}"
            pname = lambda k, lname=lname, layer=c.layer: em.weight(  # noqa: E731
                f"{lname}.{k}", layer.params[k])
            xs = [value[id(x)] for x in c.inputs]
            value[id(c.output)] = c.layer._emit(em, xs, base, pname, [x.shape for x in c.inputs])
        outs = [value[id(t)] for t in self.outputs]
        if len(set(outs)) != len(outs):
            raise GraphError(f"Model {self.name!r}: duplicate outputs {outs}")
        return Graph(inputs=vinfo, outputs=outs, nodes=em.nodes, weights=em.weights,
                     name=self.name)

    def to_graph(self) -> Graph:
        """A deep copy of `.graph` (callers may mutate it freely)."""
        return copy.deepcopy(self.graph)

    def count_params(self) -> int:
        """Total number of weight scalars (shared layers counted once)."""
        return sum(math.prod(w.shape) for w in self.graph.weights.values())

    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        """A table of layers (name, type, output shape, params); printed and returned."""
        rows = [("Layer (type)", "Output shape", "Param #")]
        for t in self.inputs:
            rows.append((f"{self._names[id(t._input)]} (Input)", _fmt_shape(t.shape), "0"))
        counted: set[int] = set()
        for c in self._calls:
            n = 0 if id(c.layer) in counted else c.layer.count_params()
            counted.add(id(c.layer))
            nm = self._names[id(c.layer)] + ("" if c.index == 0 else f"/call{c.index}")
            rows.append((f"{nm} ({type(c.layer).__name__})", _fmt_shape(c.output.shape),
                         f"{n:,}"))
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        line = "-" * (sum(w) + 4)
        out = [f'Model "{self.name}"', line]
        for i, r in enumerate(rows):
            out.append(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:>{w[2]}}")
            if i == 0:
                out.append(line)
        g = self.graph
        out += [line, f"Total params: {self.count_params():,}",
                f"Graph: {len(g.nodes)} nodes, inputs {[v.name for v in g.inputs]}, "
                f"outputs {g.outputs}"]
        s = "\n".join(out)
        if print_fn is not None:
            print_fn(s)
        return s

    def __repr__(self) -> str:
        return (f"<nn.Model {self.name!r}: {len(self.layers)} layers, "
                f"{self.count_params():,} params>")
