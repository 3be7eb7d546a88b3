"""Regression tests for what the fuzzers (tests/test_fuzz_properties.py, fuzz/*.py)
found. Each test names the finding, the fuzzer that found it and the fix."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime as rt
from pyruntime.graph import Graph, Node, ValueInfo
from pyruntime.reference import run_reference


def _avgpool(h, w, kernel, strides, pads, ceil, cip):
    return Graph([ValueInfo("x", (None, 1, h, w))], ["y"],
                 [Node("AveragePool", ["x"], ["y"], dict(kernel_shape=kernel, strides=strides,
                                                         pads=pads, ceil_mode=ceil,
                                                         count_include_pad=cip), name="pool")])


@pytest.mark.parametrize("threads", [1, 2])
def test_avgpool_ceil_count_include_pad_overhang(threads):
    """test_compile_random_geometry: AveragePool(count_include_pad=1, ceil_mode=1) whose
    last window runs past the padded input divided by KH*KW (0.375) where ONNX Runtime
    divides by the taps inside the padded input (0.75): a silently wrong answer. First
    refused with UnsupportedOpError; now the pool kernels take the bottom/right pads and
    divide by the taps inside the padded input."""
    g = _avgpool(3, 1, (2, 4), (2, 1), (0, 0, 0, 3), 1, 1)
    x = np.arange(1, 4, dtype=np.float32).reshape(1, 1, 3, 1)
    got = rt.compile(g, threads=threads).run(x)
    want = run_reference(g, x)["y"]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert abs(float(got.ravel()[-1]) - 0.75) < 1e-6   # 3 / 4 taps inside, not 3 / 8


@pytest.mark.parametrize("ceil,cip,h", [(1, 1, 4), (1, 0, 3), (0, 1, 3)])
def test_avgpool_neighbours_still_run(ceil, cip, h):
    """The same pool without the overhang (or without one of the two flags) runs and
    matches the reference (which follows ONNX Runtime)."""
    g = _avgpool(h, 1, (2, 4), (2, 1), (0, 0, 0, 3), ceil, cip)
    x = np.arange(1, h + 1, dtype=np.float32).reshape(1, 1, h, 1)
    got = rt.compile(g, threads=1).run(x)
    np.testing.assert_allclose(got, run_reference(g, x)["y"], rtol=1e-6)


def test_strided_huge_view_is_rejected_before_copy():
    """fuzz/fuzz_run.py + the bad-input matrix: a zero-stride view claiming batch 2**40
    made Session.run try to copy 32 TiB (numpy MemoryError). Fix: the size checks run
    before any copy or dtype conversion."""
    sess = rt.compile(rt.zoo.mlp((8, 4)), threads=1)
    huge = np.broadcast_to(np.ones((1, 8), np.int64), (1 << 40, 8))
    with pytest.raises(rt.ShapeError, match="too large"):
        sess.run(huge)
