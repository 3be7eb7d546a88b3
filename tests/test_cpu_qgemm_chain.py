"""Dense int8 chains (qgemm_chain, steps_quant.cpp): dynamically quantized Gemm layers run
as one step, rows in blocks through every layer. Same kernels and per-row quantization
as the separate quantize + qgemm steps, so the outputs must be bit-identical to those
(fuse_blocks=False), at every ISA, thread count and batch size; a one-layer chain is
also checked against a float64 reference within the activation quantization step."""

from __future__ import annotations

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import _core, nn
from pyruntime.cpu.plan_builder import CHAIN_MAX_WEIGHT_BYTES
from pyruntime.cpu.session import compile_cpu
from pyruntime.reference import run_reference

from conftest import isa_params

RNG = np.random.default_rng(7)
# 1..3 rows take the GEMV path; below 2 blocks per thread the layer-by-layer path; the
# rest blocks of whole 8-row tiles with ragged ends, and more rows than one block holds.
BATCHES = (1, 2, 3, 4, 5, 8, 9, 16, 17, 31, 33, 64, 65, 129, 200)


def _mlp(sizes: tuple[int, ...], acts: tuple, seed: int = 0) -> rt.Graph:
    x = nn.Input((sizes[0],), name="x")
    h = x
    for i, (n, a) in enumerate(zip(sizes[1:], acts), 1):
        h = nn.Dense(n, activation=a, name=f"fc{i}")(h)
    return nn.Model(x, h, name="chain", seed=seed).to_graph()


def _ops(s) -> list[str]:
    return [r["op"] for r in s.plan_summary()]


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_chain_is_bit_identical_to_the_separate_steps(isa, threads):
    g = _mlp((131, 67, 29, 11), ("relu", "relu6", None))
    q = rt.quantize(g, "int8")
    chain = compile_cpu(q, threads=threads, isa=isa)
    plain = compile_cpu(q, threads=threads, isa=isa, fuse_blocks=False)
    assert _ops(chain) == ["qgemm_chain"]
    assert _ops(plain) == ["quantize", "qgemm"] * 3
    row = chain.plan_summary()[0]
    assert row["computed_as"] == "int8 dynamic" and row["node"].count("Gemm") == 3
    x = (3 * RNG.standard_normal((max(BATCHES), 131))).astype(np.float32)
    x[5] = 0.0  # a row of zeros: scale 1, zero point 0
    x[6, :] = x[6, 0]  # a constant row
    for m in BATCHES:
        a, b = chain.run(x[:m]), plain.run(x[:m])
        assert a.shape == (m, 11)
        assert np.array_equal(a, b), (isa, threads, m, np.abs(a - b).max())


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("batch", [1, 3, 13, 64, 97])
def test_one_layer_chain_within_the_activation_step(isa, batch):
    g = _mlp((97, 43), ("sigmoid",))
    q = rt.quantize(g, "int8")
    s = compile_cpu(q, threads=2, isa=isa)
    assert _ops(s) == ["qgemm_chain"]
    x = RNG.standard_normal((batch, 97)).astype(np.float32)
    w = q.weights["fc1.weight"].numpy().astype(np.float64)
    want = run_reference(q, x)[q.outputs[0]]  # the int8 weights exactly, float activations
    got = s.run(x).astype(np.float64)
    # sigmoid is 1/4-Lipschitz: half an activation step per row times sum |w| over k
    lo = np.minimum(x.min(axis=1), 0).astype(np.float64)
    hi = np.maximum(x.max(axis=1), 0).astype(np.float64)
    bound = 0.25 * 0.5 * ((hi - lo) / 255)[:, None] * np.abs(w).sum(axis=0)[None, :]
    assert np.all(np.abs(got - want) <= bound * 1.001 + 1e-6)


def test_chain_stops_where_a_value_is_needed_elsewhere():
    x = nn.Input((40,), name="x")
    h1 = nn.Dense(30, activation="relu", name="fc1")(x)
    h2 = nn.Dense(20, activation="relu", name="fc2")(h1)
    h3 = nn.Dense(10, name="fc3")(h2)
    side = nn.Dense(5, name="side")(h1)  # h1 read twice: fc1 ends its own chain
    g = nn.Model(x, [h3, side], name="branch", seed=1).to_graph()
    q = rt.quantize(g, "int8")
    s = compile_cpu(q, threads=2)
    nodes = [r["node"] for r in s.plan_summary() if r["op"] == "qgemm_chain"]
    assert len(nodes) == 3 and any("fc2" in n and "fc3" in n for n in nodes)
    v = RNG.standard_normal((37, 40)).astype(np.float32)
    a, b = s.run(v), compile_cpu(q, threads=2, fuse_blocks=False).run(v)
    for k in a:
        assert np.array_equal(a[k], b[k])


def test_graph_output_in_the_middle_ends_the_chain():
    x = nn.Input((24,), name="x")
    h1 = nn.Dense(16, activation="relu", name="fc1")(x)
    h2 = nn.Dense(8, name="fc2")(h1)
    g = nn.Model(x, [h1, h2], name="two_outs", seed=2).to_graph()
    q = rt.quantize(g, "int8")
    s = compile_cpu(q, threads=2)
    assert _ops(s) == ["qgemm_chain", "qgemm_chain"]
    v = RNG.standard_normal((19, 24)).astype(np.float32)
    a, b = s.run(v), compile_cpu(q, threads=2, fuse_blocks=False).run(v)
    for k in a:
        assert np.array_equal(a[k], b[k])


def test_large_layers_and_static_inputs_are_not_chained():
    k = CHAIN_MAX_WEIGHT_BYTES // 512 + 8  # one layer just past the cap: separate steps
    g = _mlp((k, 512, 10), ("relu", None))
    s = compile_cpu(rt.quantize(g, "int8"), threads=2)
    assert _ops(s) == ["quantize", "qgemm", "qgemm_chain"]
    small = _mlp((33, 17, 5), ("relu", None))
    cal = RNG.standard_normal((32, 33)).astype(np.float32)
    st = compile_cpu(rt.quantize(small, "int8", calibration=cal, progress=False), threads=2)
    assert "qgemm_chain" not in _ops(st)  # static: uint8 between the layers instead


@pytest.mark.parametrize("layers, match", [
    ([(4, 3, np.zeros(12, np.int8), np.ones(3, np.float32), None, _core.Act.none, 0.0, 0.0),
      (5, 2, np.zeros(10, np.int8), np.ones(2, np.float32), None, _core.Act.none, 0.0, 0.0)],
     "equal to the previous N"),
    ([(4, 3, np.zeros(12, np.int8), np.ones(3, np.float32))], "a layer is"),
    ([(4, 3, np.zeros(11, np.int8), np.ones(3, np.float32), None, _core.Act.none, 0.0, 0.0)],
     "12 int8 values"),
    ([], "at least one layer"),
])
def test_bad_chain_layers_are_refused(layers, match):
    p = _core.Plan(None, 1)
    x, y = p.add_input(4), p.add_value(layers[-1][1] if layers else 3)
    with pytest.raises(ValueError, match=match):
        p.qgemm_chain(x, y, 1, layers)
