"""The int8 im2col convolution step (QConvStep, steps_quant.cpp) on images of more output
pixels than one im2col tile, so tiles start and end inside output rows: the window rows
inside the image (fixed-size copies per row length, any length past 24 bytes) and at the
borders, against the float64 int8 conv. A test_cpu_* file: the ASan lane runs it."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime as rt
from pyruntime.reference import run_reference


@pytest.mark.parametrize("cin, hw, geom", [
    (1, (37, 29), dict(k=(3, 3), pads=(1, 1, 1, 1))),                    # 1 channel: 12-byte rows
    (3, (45, 67), dict(k=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1))),   # the stem: 12-byte rows
    (5, (40, 61), dict(k=(3, 3), pads=(0, 2, 1, 0))),                    # 24-byte rows
    (13, (33, 47), dict(k=(3, 3), strides=(3, 1), pads=(1, 1, 1, 1))),  # 48: any-length copy
    (2, (30, 3), dict(k=(3, 5), pads=(1, 1, 1, 1))),                     # W below the kernel
    (4, (29, 41), dict(k=(3, 3), dilations=(1, 2), pads=(1, 2, 1, 2))),  # dilated along W
])
def test_int8_conv_im2col_tiles_cross_output_rows(cin, hw, geom):
    """Static int8 conv against the float64 int8 conv on the input as quantized."""
    geom = dict(geom)
    k = geom.pop("k")
    rng = np.random.default_rng(cin)
    w = rng.standard_normal((7, cin) + k).astype(np.float32)
    g = rt.Graph([rt.ValueInfo("x", (None, cin) + hw)], ["y"],
                 [rt.Node("Conv", ["x", "w"], ["y"], geom, name="c")], {"w": rt.Weight.f32(w)})
    v = rng.standard_normal((2, cin) + hw).astype(np.float32)
    q = rt.quantize(g, "int8", calibration=v, progress=False)
    s = rt.compile(q, threads=2)
    assert "qconv" in [r["op"] for r in s.plan_summary()]
    qn = next(n for n in q.nodes if n.op == "QDQ")
    s_, z_ = np.float32(qn.attrs["scale"]), qn.attrs["zero_point"]
    xq = (np.clip(np.rint(v * (np.float32(1) / s_)) + z_, 0, 255) - z_) * np.float64(s_)
    conv = next(n for n in q.nodes if n.op == "Conv").copy()
    conv.inputs[0] = "x"
    want = run_reference(rt.Graph(q.inputs, ["y"], [conv], q.weights), xq)["y"]
    got = s.run(v).astype(np.float64)
    assert want.shape[2] * want.shape[3] > 512 or hw[1] < k[1]
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
