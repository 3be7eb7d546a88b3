"""Reference models built with `pyruntime.nn`: the shapes the benchmarks and tests use.

Every constructor takes `seed` and is deterministic: the same arguments give
bit-identical weights. BatchNorm layers use random (valid) statistics so that
BN folding and epilogue fusion are exercised as in a trained network.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import nn
from .errors import GraphError
from .graph import Graph, Weight

__all__ = ["mlp", "mobilenetv2_style", "tiny_cnn", "tiny_cnn_formats", "MOBILENETV2_BLOCKS"]

#: MobileNetV2's inverted-residual stages: (expansion t, channels c, repeats n, stride s).
MOBILENETV2_BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _make_divisible(v: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: nearest multiple of `divisor`, never 10% below v."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


def mlp(sizes: Sequence[int] = (784, 512, 256, 10), seed: int = 0) -> Graph:
    """An MLP: input sizes[0], then Dense+Relu for each hidden size, last Dense linear.
    Input "input" [N, sizes[0]], output [N, sizes[-1]]."""
    sizes = tuple(sizes)
    if len(sizes) < 2:
        raise GraphError(f"mlp: sizes needs an input and at least one layer, got {sizes!r}")
    x = nn.Input((sizes[0],), name="input")
    h = x
    for i, n in enumerate(sizes[1:], 1):
        last = i == len(sizes) - 1
        h = nn.Dense(n, activation=None if last else "relu", name=f"fc{i}")(h)
    return nn.Model(x, h, name="mlp", seed=seed).graph


def _conv_bn(x: nn.Tensor, filters: int, k: int, stride: int, name: str,
             act: bool = True) -> nn.Tensor:
    h = nn.Conv2D(filters, k, strides=stride, padding=k // 2, use_bias=False,
                  kernel_initializer="he_uniform" if act else "lecun_uniform",
                  name=f"{name}_conv")(x)
    h = nn.BatchNorm(random_stats=True, name=f"{name}_bn")(h)
    return nn.Activation("relu6", name=f"{name}_relu6")(h) if act else h


def _inverted_residual(x: nn.Tensor, cin: int, cout: int, stride: int, t: int,
                       name: str) -> nn.Tensor:
    h = x
    hidden = cin * t
    if t != 1:  # as in MobileNetV2, a block with expansion 1 has no expand conv
        h = _conv_bn(h, hidden, 1, 1, f"{name}_expand")
    h = nn.DepthwiseConv2D(3, strides=stride, padding=1, use_bias=False,
                           kernel_initializer="he_uniform", name=f"{name}_dw_conv")(h)
    h = nn.BatchNorm(random_stats=True, name=f"{name}_dw_bn")(h)
    h = nn.Activation("relu6", name=f"{name}_dw_relu6")(h)
    h = _conv_bn(h, cout, 1, 1, f"{name}_project", act=False)   # linear bottleneck
    if stride == 1 and cin == cout:
        h = nn.Add(name=f"{name}_add")([x, h])
    return h


def mobilenetv2_style(input_shape: Sequence[int] = (3, 224, 224), width: float = 1.0,
                      num_classes: int = 1000, seed: int = 0) -> Graph:
    """A MobileNetV2-style CNN (NCHW): stem conv 3x3 s2 + BN + ReLU6; inverted residual
    blocks (1x1 expand + BN + ReLU6, 3x3 depthwise + BN + ReLU6, 1x1 linear project + BN,
    residual Add when stride 1 and channels match) in MobileNetV2's stages
    (`MOBILENETV2_BLOCKS`), channels scaled by `width`; 1x1 conv to 1280 + BN + ReLU6,
    global average pool, Dense classifier (logits). Padding is symmetric (k // 2) as in
    torchvision. Input "input" [N, *input_shape], output "logits" [N, num_classes]."""
    if not width > 0:
        raise GraphError(f"mobilenetv2_style: width must be > 0, got {width!r}")
    x = nn.Input(tuple(input_shape), name="input")
    cin = _make_divisible(32 * width)
    h = _conv_bn(x, cin, 3, 2, "stem")
    b = 0
    for t, c, n, s in MOBILENETV2_BLOCKS:
        cout = _make_divisible(c * width)
        for i in range(n):
            h = _inverted_residual(h, cin, cout, s if i == 0 else 1, t, f"block{b}")
            cin = cout
            b += 1
    last = _make_divisible(1280 * max(1.0, width))
    h = _conv_bn(h, last, 1, 1, "head")
    h = nn.GlobalAvgPool2D(name="pool")(h)
    y = nn.Dense(num_classes, name="logits")(h)
    return nn.Model(x, y, name="mobilenetv2_style", seed=seed).graph


def tiny_cnn(seed: int = 0, input_shape: Sequence[int] = (3, 16, 16),
             num_classes: int = 10) -> Graph:
    """A small CNN touching every builder layer, for fast tests: conv+BN+relu, a depthwise
    inverted-residual block with an Add, max pool, separable conv with stride 2 and "same"
    padding, avg pool, global pool, dense. Input "input", output "logits"."""
    x = nn.Input(tuple(input_shape), name="input")
    h = nn.Conv2D(8, 3, padding="same", name="conv1")(x)
    h = nn.BatchNorm(random_stats=True, name="bn1")(h)
    r = nn.Activation("relu", name="relu1")(h)
    h = nn.Conv2D(16, 1, activation="relu6", name="expand")(r)
    h = nn.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = nn.BatchNorm(random_stats=True, name="dw_bn")(h)
    h = nn.Activation("relu6", name="dw_relu6")(h)
    h = nn.Conv2D(8, 1, use_bias=False, name="project")(h)
    h = nn.BatchNorm(random_stats=True, name="project_bn")(h)
    h = nn.Add(name="add")([r, h])
    h = nn.MaxPool2D(2, name="maxpool")(h)
    h = nn.SeparableConv2D(16, 3, strides=2, padding="same", activation="relu", name="sep")(h)
    h = nn.AvgPool2D(3, strides=1, padding="same", name="avgpool")(h)
    h = nn.GlobalAvgPool2D(name="gap")(h)
    y = nn.Dense(num_classes, name="logits")(h)
    return nn.Model(x, y, name="tiny_cnn", seed=seed).graph


def tiny_cnn_formats(seed: int = 0, input_shape: Sequence[int] = (3, 16, 16)) -> Graph:
    """tiny_cnn with its weights stored in every weight format (pyruntime.formats), for
    tests, fuzz seeds and examples: conv1 qc8, expand bsr (4, 2) f32, dw f16, project
    csr int8, sep.depthwise bf16, sep.pointwise csr f32, logits bsr (2, 4) int8, a few
    biases and BatchNorm parameters f16/bf16/qc8. Sparse kernels are pruned first (about
    half their blocks zeroed, seeded), so their patterns are not trivial."""
    from .formats import OUTPUT_AXIS, matrix_dims
    g = tiny_cnn(seed, input_shape)
    rng = np.random.default_rng([seed, 0xF0F0])
    w = g.weights

    def pruned(name: str, block: tuple[int, int], axis: int) -> np.ndarray:
        a = w[name].numpy()
        (r, c), (br, bc) = matrix_dims(a.shape, axis), block
        keep = np.repeat(np.repeat(rng.random((r // br, c // bc)) < 0.5, br, 0), bc, 1)
        other = [d for i, d in enumerate(a.shape) if i != axis]
        return a * np.moveaxis(keep.reshape(r, *other), 0, axis)

    conv, gemm = OUTPUT_AXIS["Conv"], OUTPUT_AXIS["Gemm"]
    w["conv1.weight"] = Weight.qc8(w["conv1.weight"].numpy(), axis=conv)
    w["expand.weight"] = Weight.bsr(pruned("expand.weight", (4, 2), conv), (4, 2), axis=conv)
    w["dw.weight"] = Weight.f16(w["dw.weight"].numpy())
    w["project.weight"] = Weight.csr(pruned("project.weight", (1, 1), conv), axis=conv,
                                     dtype=np.int8)
    w["sep.depthwise"] = Weight.bf16(w["sep.depthwise"].numpy())
    w["sep.pointwise"] = Weight.csr(pruned("sep.pointwise", (1, 1), conv), axis=conv)
    w["logits.weight"] = Weight.bsr(pruned("logits.weight", (2, 4), gemm), (2, 4), axis=gemm,
                                    dtype=np.int8)
    w["expand.bias"] = Weight.f16(w["expand.bias"].numpy())
    w["logits.bias"] = Weight.qc8(w["logits.bias"].numpy())
    w["dw_bn.scale"] = Weight.bf16(w["dw_bn.scale"].numpy())
    w["bn1.bias"] = Weight.f16(w["bn1.bias"].numpy())
    g.name = "tiny_cnn_formats"
    return g
