"""Shared pieces of the atheris fuzz targets: seed inputs and the one property.

Coverage: atheris instruments the pyruntime Python modules (loader, importer, session
checks). The C++ core is not libFuzzer-instrumented (that needs clang's
-fsanitize=fuzzer-no-link; the project builds with GCC), so native bugs are caught by
running the targets against the sanitizer build and by the property tests that
tools/sanitize.sh runs under ASan/UBSan, not steered towards by coverage.

pyruntime is imported from the path: the installed package, or the source tree with
`PYTHONPATH=$PWD` after tools/devbuild.sh.
"""

from __future__ import annotations

import os
import sys

import numpy as np


def seed_models():
    """Small valid graphs: an MLP, a CNN touching every op the builder has, and that CNN
    with its weights in every weight format (f16, bf16, qc8, csr, bsr, int8 sparse)."""
    import pyruntime as rt
    return [rt.zoo.mlp((6, 5, 3), seed=0), rt.zoo.tiny_cnn(seed=0, input_shape=(3, 6, 6)),
            rt.zoo.tiny_cnn_formats(seed=0, input_shape=(3, 6, 6))]


def sparse_models():
    """Pruned graphs (csr and (16, 1) bsr weights) whose Sessions run the sparse kernels:
    an MLP wide enough for whole 16-channel groups, and a small MobileNetV2-style CNN
    (im2col, 1x1 and fused-block convs on f32_spmm)."""
    import pyruntime as rt
    mlp = rt.prune(rt.zoo.mlp((40, 48, 32, 7), seed=0), 0.8, scope="layer", min_params=0)
    cnn = rt.zoo.mobilenetv2_style(input_shape=(3, 12, 12), width=0.35, num_classes=5)
    return [mlp, rt.prune(cnn, 0.85, structure="block", scope="layer", min_params=0)]


def quantized_models():
    """Quantized graphs whose Sessions run the int8 and 16-bit kernels: the tiny CNN
    int8 static (QDQ nodes, uint8 between layers, int8 im2col / 1x1 / depthwise convs),
    the MLP int8 dynamic (per-row quantization at run time) and fp16."""
    import pyruntime as rt
    cnn = rt.zoo.tiny_cnn(seed=0, input_shape=(3, 6, 6))
    cal = np.random.default_rng(0).standard_normal((4, 3, 6, 6)).astype(np.float32)
    mlp = rt.zoo.mlp((40, 48, 32, 7), seed=0)
    return [rt.quantize(cnn, "int8", calibration=cal, progress=False),
            rt.quantize(mlp, "int8"), rt.quantize(mlp, "fp16")]


def onnx_seeds() -> list[bytes]:
    """Serialized ONNX models, exported from the seed graphs."""
    from pyruntime.onnx import export as onnx_export
    return [onnx_export.to_onnx(g).SerializeToString() for g in seed_models()]


def write_seeds(corpus: str, seeds: list[bytes]) -> None:
    os.makedirs(corpus, exist_ok=True)
    if not os.listdir(corpus):
        for i, s in enumerate(seeds):
            with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
                f.write(s)


def use_graph(g) -> None:
    """A graph that loaded must compile (or fail typed) and run on a small input."""
    import pyruntime as rt
    try:
        sess = rt.compile(g, threads=1)
    except rt.Error:
        return
    feeds = {}
    for i in sess.inputs:
        shape = tuple(2 if d is None else d for d in i.shape)
        if int(np.prod(shape)) > 1 << 16:
            return
        feeds[i.name] = np.ones(shape, np.float32)
    sess.run(feeds)


def main(test_one_input, seeds, argv=None) -> None:
    """Run atheris. argv as libFuzzer takes it; the first non-flag argument is the corpus
    directory (created and seeded when empty)."""
    import atheris
    argv = list(sys.argv if argv is None else argv)
    dirs = [a for a in argv[1:] if not a.startswith("-")]
    if dirs and not os.path.isfile(dirs[0]):  # a file argument: replay that input
        write_seeds(dirs[0], seeds())
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
