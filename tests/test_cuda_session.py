"""rt.compile(graph, device="cuda"): the CUDA Session against the CPU Session.

CI has no GPU: these run under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), where the
session runs the same lowering, arena and bound steps with host memory and numpy GEMMs
(pyruntime/cuda/device.py: SimDevice). On a GPU, tools/gpu_check.sh runs them with
NUMBA_ENABLE_CUDASIM=0 against CuPy and cuBLAS, with capture. Small models: the simulator
runs every GPU thread in Python."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import zoo

from conftest import cuda_kernels_or_skip

numba_compat = cuda_kernels_or_skip()

from pyruntime.cuda import arena, lowering  # noqa: E402
from pyruntime.cuda.session import CudaSession  # noqa: E402

RNG = np.random.default_rng(13)
SIM = numba_compat.simulator()


def _x(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.fixture(scope="module")
def mbv2() -> rt.Graph:
    return zoo.mobilenetv2_style(input_shape=(3, 12, 12), width=0.25, num_classes=7)


@pytest.fixture(scope="module")
def cnn() -> rt.Graph:
    return zoo.tiny_cnn(input_shape=(3, 9, 9))


# ------------------------------------------------------------------ fp32 / fp16 / bf16

@pytest.mark.parametrize("batch", [1, 3])
def test_fp32_models_match_the_cpu_session(cnn, mbv2, batch):
    cases = [(cnn, (3, 9, 9)), (zoo.mlp((13, 17, 11, 5)), (13,))]
    if batch == 1:
        cases.append((mbv2, (3, 12, 12)))
    for g, shape in cases:
        x = _x(batch, *shape)
        s = rt.compile(g, device="cuda")
        assert isinstance(s, CudaSession)
        y, r = s.run(x), rt.compile(g).run(x)
        assert y.shape == r.shape and y.dtype == np.float32
        assert _rel(y, r) < 1e-4, (g.name if hasattr(g, "name") else g, _rel(y, r))


def test_16bit_weights_within_their_rounding(cnn):
    x = _x(2, 3, 9, 9)
    ref = rt.compile(cnn).run(x)
    for dtype, bound in (("fp16", 5e-3), ("bf16", 3e-2)):
        q = rt.quantize(cnn, dtype)
        y = rt.compile(q, device="cuda").run(x)
        # the fp16 GEMM here rounds activations to fp16 (cuBLAS takes one dtype); bf16
        # weights run widened to fp32. Either way within the weights' rounding, and no
        # worse than the CPU's 16-bit kernels on the same stored weights
        cpu = _rel(rt.compile(q).run(x), ref)
        assert _rel(y, ref) < bound
        assert _rel(y, ref) <= max(2 * cpu, 1e-3), (dtype, _rel(y, ref), cpu)


# ------------------------------------------------------------------ int8

def test_int8_static_equals_the_cpu_int8_plan(mbv2):
    cal = [_x(1, 3, 12, 12) for _ in range(2)]
    q = rt.quantize(mbv2, "int8", calibration=cal, progress=False)
    s = rt.compile(q, device="cuda")
    kinds = [r["op"] for r in s.plan_summary()]
    assert "qgemm" in kinds and "signed" in kinds and "quantize" in kinds
    assert any(r["computed_as"] == "int8 static" for r in s.plan_summary())
    x = _x(2, 3, 12, 12)
    y, r = s.run(x), rt.compile(q).run(x)
    # the same integer arithmetic: only float rounding at the quantization boundaries
    assert _rel(y, r) < 1e-4
    assert _rel(y, rt.compile(mbv2).run(x)) < 0.2  # and it is a quantized fp32 model


def test_int8_dynamic_gemm_within_the_step_bound():
    g = zoo.mlp((40, 64, 32, 10))
    q = rt.quantize(g, "int8")
    x = _x(3, 40)
    s = rt.compile(q, device="cuda")
    assert [r["computed_as"] for r in s.plan_summary() if r["op"] == "qgemm"] == \
        ["int8 dynamic"] * 3
    y, cpu = s.run(x), rt.compile(q).run(x)
    assert _rel(y, cpu) < 1e-4  # per-row uint8 quantization, as the CPU does it
    assert _rel(y, rt.compile(g).run(x)) < 0.05


def test_int8_im2col_pads_with_the_zero_point():
    """A padded 3x3 int8 conv: a padded tap must add nothing (the fill is zp - 128)."""
    g = zoo.tiny_cnn(input_shape=(3, 7, 7), seed=3)
    cal = [_x(1, 3, 7, 7) + 2.0]  # inputs far from 0: zero point well away from 128
    q = rt.quantize(g, "int8", calibration=cal, progress=False)
    x = _x(1, 3, 7, 7) + 2.0
    s = rt.compile(q, device="cuda")
    assert any(r["op"] == "im2col" for r in s.plan_summary())
    assert _rel(s.run(x), rt.compile(q).run(x)) < 1e-4


# ------------------------------------------------------------------ sparse

def test_sparse_gemm_runs_the_sparse_kernel_at_batch_1_only():
    g = rt.prune(zoo.mlp((24, 12, 6)), 0.95, min_params=1)
    s = rt.compile(g, device="cuda")
    assert any(r["computed_as"] == "f32 sparse|dense" for r in s.plan_summary())
    cpu = rt.compile(g)
    for b in (1, 4):
        x = _x(b, 24)
        assert _rel(s.run(x), cpu.run(x)) < 1e-4
    # the batch-1 entry bound the sparse kernel, the batch-4 one cuBLAS
    calls1 = s._cache.get(1).calls
    assert any("spmv" in repr(c.__code__.co_names) for c in calls1)


# ------------------------------------------------------------------ the Session's contract

def test_batches_entries_and_inputs(cnn):
    s = rt.compile(cnn, device="cuda")
    assert s.inputs[0].shape == (None, 3, 9, 9) and s.outputs[0].shape == (None, 10)
    assert s.run(np.zeros((0, 3, 9, 9), np.float32)).shape == (0, 10)
    x = _x(2, 3, 9, 9)
    r = rt.compile(cnn).run(x)
    assert _rel(s.run(x.astype(np.float64)), r) < 1e-4      # converted like the CPU's
    assert _rel(s.run({"input": x[::1]}["input"]), r) < 1e-4
    assert _rel(s.run(np.asfortranarray(x)), r) < 1e-4       # non-contiguous: copied
    assert sorted(s.captured()) == [2]
    assert s.captured()[2] is (not SIM)
    with pytest.raises(rt.ShapeError, match="expected shape"):
        s.run(_x(2, 3, 9, 8))
    with pytest.raises(rt.DTypeError):
        s.run(np.zeros((1, 3, 9, 9), bool))
    with pytest.raises(rt.InputError, match="expected inputs"):
        s.run({"nope": x})
    assert s.arena_bytes(2) > 0 and s.arena_bytes(4) > s.arena_bytes(2)
    s.close()
    assert _rel(s.run(x), r) < 1e-4  # closed entries are rebuilt


def test_threads_share_a_session():
    g = zoo.mlp((13, 17, 11, 5))
    s, cpu = rt.compile(g, device="cuda"), rt.compile(g)
    xs = [_x(b, 13) for b in (1, 2, 1, 3, 2, 1)]
    out: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        out[i] = s.run(xs[i])
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(out) == len(xs)
    for i, x in enumerate(xs):
        assert _rel(out[i], cpu.run(x)) < 1e-4


def test_load_balancer_serves_cuda_sessions():
    g = zoo.mlp((13, 17, 11, 5))
    s = rt.compile(g, device="cuda")
    cpu = rt.compile(g)
    with rt.serve.LoadBalancer([s], max_batch_size=4, max_delay_ms=2) as lb:
        xs = [_x(1, 13) for _ in range(6)]
        futs = [lb.submit(x) for x in xs]
        for f, x in zip(futs, xs):
            assert _rel(f.result(timeout=120), cpu.run(x)) < 1e-4


def test_compile_arguments_are_checked(cnn):
    with pytest.raises(rt.InputError, match="CPU kernels"):
        rt.compile(cnn, device="cuda", threads=2)
    with pytest.raises(rt.InputError, match="device='cuda'"):
        rt.compile(cnn, tf32=True)
    with pytest.raises(rt.InputError, match="device_id"):
        rt.compile(cnn, device="cuda", device_id=-1)
    if SIM:
        with pytest.raises(rt.DeviceError, match="device 0 only"):
            rt.compile(cnn, device="cuda", device_id=1)


def test_unsupported_ops_are_named():
    g = rt.Graph(inputs=[rt.ValueInfo("x", (2, 4), np.float32)],
                 outputs=["y"], nodes=[rt.Node("Transpose", ["x"], ["y"], name="t",
                                               attrs={"perm": (1, 0)})], weights={})
    with pytest.raises(rt.UnsupportedOpError, match="Transpose"):
        rt.compile(g, device="cuda")


def test_without_cupy_the_gpu_path_says_what_is_missing(monkeypatch):
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed: the message for a missing CuPy cannot be shown")
    except ImportError:
        pass
    from pyruntime.cuda.device import open_device
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "0")
    with pytest.raises(rt.MissingDependencyError, match="CuPy"):
        open_device(0)


# ------------------------------------------------------------------ lowering and arena

def test_arena_never_overlaps_live_tensors(mbv2):
    from pyruntime import passes, shapes
    cal = [_x(1, 3, 12, 12)]
    for g in (mbv2, rt.quantize(mbv2, "int8", calibration=cal, progress=False),
              rt.quantize(mbv2, "int8")):
        o = passes.optimize(g)
        prog = lowering.lower(o, shapes.infer_shapes(o))
        first, last = prog.liveness()
        for b in (1, 5):
            sizes = [t.nbytes(b) for t in prog.tensors]
            a = arena.plan_arena(sizes, first, last)
            spans = [(a.offsets[i], a.offsets[i] + sizes[i], first[i], last[i])
                     for i in range(len(sizes)) if sizes[i]]
            for i, (o0, e0, f0, l0) in enumerate(spans):
                assert o0 % arena.ALIGN == 0 and e0 <= a.total
                for o1, e1, f1, l1 in spans[i + 1:]:
                    if not (l0 < f1 or l1 < f0):
                        assert e0 <= o1 or e1 <= o0
            assert a.total < sum(sizes) or len(spans) < 3  # reuse happened


def test_a_qdq_costs_what_its_readers_need():
    """A QDQ read only by int8 layers is never dequantized; one read by a float op is,
    once."""
    from pyruntime import passes, shapes
    g = zoo.mobilenetv2_style(input_shape=(3, 12, 12), width=0.25, num_classes=7)
    q = rt.quantize(g, "int8", calibration=[_x(1, 3, 12, 12)], progress=False)
    o = passes.optimize(q)
    prog = lowering.lower(o, shapes.infer_shapes(o))
    deq = [s for s in prog.steps if s.kind == "dequantize"]
    reads = [s.reads[0] for s in deq]
    assert len(reads) == len(set(reads))
    # every depthwise conv reads a float tensor; the 1x1 convs read int8
    for s in prog.steps:
        if s.kind == "qgemm":
            assert prog.tensors[s.reads[0]].dtype == np.int8
        if s.kind == "dwconv":
            assert prog.tensors[s.reads[0]].dtype == np.float32


def test_device_arrays_are_told_from_host_arrays():
    from pyruntime.cuda.session import _is_gpu_array

    class Cai:
        __cuda_array_interface__ = {"shape": (1,), "typestr": "<f4", "data": (0, False),
                                    "version": 3}

    class DlGpu:
        def __dlpack__(self, stream=None):  # pragma: no cover - not called
            raise AssertionError

        def __dlpack_device__(self):
            return (2, 0)

    class DlCpu(DlGpu):
        def __dlpack_device__(self):
            return (1, 0)

    assert _is_gpu_array(Cai()) and _is_gpu_array(DlGpu())
    assert not _is_gpu_array(DlCpu()) and not _is_gpu_array(np.zeros(3, np.float32))
    assert not _is_gpu_array([1.0, 2.0])
