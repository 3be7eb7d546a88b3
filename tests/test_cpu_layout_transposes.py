"""The plan's NCHW <-> NHWC boundary transposes, split between threads by rows or by
columns of each image's matrix, around an elementwise op: exact against numpy."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime as rt
from pyruntime.graph import Graph, Node, ValueInfo

from conftest import isa_params


@pytest.fixture(params=isa_params())
def isa(request) -> str:
    return request.param


@pytest.mark.parametrize("shape", [(3, 224, 224), (32, 112, 112), (96, 7, 9), (17, 1, 33),
                                   (5, 3, 3), (1000, 2, 2)])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 2])
def test_transposes_around_relu(isa, rng, shape, threads, batch):
    g = Graph([ValueInfo("x", (None,) + shape)], ["y"],
              [Node("Relu", ["x"], ["y"], name="relu")], {}, name="relu")
    sess = rt.compile(g, threads=threads, isa=isa)
    assert [r["op"] for r in sess.plan_summary()].count("transpose") == 2
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    np.testing.assert_array_equal(sess.run(x), np.maximum(x, 0))
