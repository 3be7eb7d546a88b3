"""What the CUDA backend decides, tested on the CPU (no GPU, CuPy or driver needed): the
liveness arena, the per-batch-size capture cache and the engine per weight format."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import pyruntime as rt
from pyruntime.cuda.arena import ALIGN, plan_arena
from pyruntime.cuda.capture import CaptureCache
from pyruntime.cuda.weights import SPMV_MAX_DENSITY, choose

RNG = np.random.default_rng(0)


# ------------------------------------------------------------------ arena

def overlaps(a0, a1, b0, b1):
    return a0 < b1 and b0 < a1


def check_arena(sizes, first, last, arena):
    """Live-together tensors never share a byte; everything fits in `total`; aligned."""
    n = len(sizes)
    for i in range(n):
        assert arena.offsets[i] % ALIGN == 0
        assert arena.offsets[i] + sizes[i] <= arena.total or sizes[i] == 0
        for j in range(i + 1, n):
            if sizes[i] == 0 or sizes[j] == 0:
                continue
            if not (last[i] < first[j] or last[j] < first[i]):
                assert not overlaps(arena.offsets[i], arena.offsets[i] + sizes[i],
                                    arena.offsets[j], arena.offsets[j] + sizes[j]), (i, j)


def test_arena_chain_reuses_memory():
    # a chain of steps: tensor i written by step i, read by step i + 1
    sizes = [1000, 5000, 3000, 5000, 100]
    first, last = [0, 1, 2, 3, 4], [1, 2, 3, 4, 5]
    a = plan_arena(sizes, first, last)
    check_arena(sizes, first, last, a)
    # two live at a time: at most the two largest neighbours, aligned
    assert a.total <= 2 * (5120 + ALIGN)
    assert a.total < sum(sizes)


@pytest.mark.parametrize("seed", range(20))
def test_arena_random_lifetimes(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    sizes = [int(s) for s in rng.integers(0, 100_000, n)]
    first = [int(f) for f in rng.integers(0, 30, n)]
    last = [f + int(d) for f, d in zip(first, rng.integers(0, 10, n))]
    a = plan_arena(sizes, first, last)
    check_arena(sizes, first, last, a)
    # never more than everything side by side, never less than the busiest step
    aligned = [(s + ALIGN - 1) // ALIGN * ALIGN for s in sizes]
    assert a.total <= sum(aligned)
    busiest = max(sum(s for s, f, l in zip(aligned, first, last) if f <= t <= l)
                  for t in range(max(last) + 1))
    assert a.total >= busiest


@pytest.mark.parametrize("args,match", [
    (([1, 2], [0], [0, 1]), "one entry per tensor"),
    (([1], [2], [1]), "first <= last"),
    (([-1], [0], [0]), "size >= 0"),
])
def test_arena_bad_arguments(args, match):
    with pytest.raises(rt.InputError, match=match):
        plan_arena(*args)
    with pytest.raises(rt.InputError, match="power of two"):
        plan_arena([1], [0], [0], align=3)


# ------------------------------------------------------------------ capture cache

class Built:
    def __init__(self, batch):
        self.batch, self.closed = batch, False

    def close(self):
        self.closed = True


def test_capture_cache_builds_once_and_evicts_lru():
    calls = []
    cache = CaptureCache(lambda b: calls.append(b) or Built(b), capacity=2)
    one = cache.get(1)
    assert cache.get(1) is one and calls == [1]
    eight = cache.get(8)
    cache.get(1)                    # 1 is now the most recently used
    cache.get(64)                   # evicts 8
    assert cache.sizes() == [1, 64] and eight.closed and not one.closed
    assert calls == [1, 8, 64]
    cache.clear()
    assert len(cache) == 0 and one.closed


def test_capture_cache_concurrent_same_batch_builds_once():
    calls, gate = [], threading.Event()

    def build(b):
        calls.append(b)
        gate.wait(5)
        return Built(b)

    cache = CaptureCache(build)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(4))) for _ in range(6)]
    for t in threads:
        t.start()
    # another batch size is not held up by the build in flight
    t0 = time.monotonic()
    other = CaptureCache(lambda b: Built(b))
    assert other.get(2).batch == 2 and time.monotonic() - t0 < 1.0
    time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join(5)
    assert calls == [4] and len(got) == 6 and all(g is got[0] for g in got)


def test_capture_cache_failed_build_is_retried():
    n = {"calls": 0}

    def build(b):
        n["calls"] += 1
        if n["calls"] == 1:
            raise RuntimeError("capture failed")
        return Built(b)

    cache = CaptureCache(build)
    with pytest.raises(RuntimeError, match="capture failed"):
        cache.get(3)
    assert len(cache) == 0
    assert cache.get(3).batch == 3 and n["calls"] == 2


@pytest.mark.parametrize("batch", [0, -1, 1.5, True, "2"])
def test_capture_cache_bad_batch(batch):
    with pytest.raises(rt.InputError, match="batch must be an int >= 1"):
        CaptureCache(lambda b: b).get(batch)


# ------------------------------------------------------------------ weight engines

def test_dense_formats_pick_their_cublas_engine():
    w = RNG.standard_normal((64, 32)).astype(np.float32)
    assert choose(rt.Weight.f32(w), "Gemm").engine == "cublas_gemm_f32"
    assert "TF32" in choose(rt.Weight.f32(w), "Gemm", tf32=True).why
    assert choose(rt.Weight.f16(w), "Gemm").dtype == "f16"
    assert choose(rt.Weight.bf16(w), "Gemm").engine == "cublas_gemm_f32"  # widened at compile
    q = rt.quantize(rt.zoo.mlp((64, 32, 10)), "int8").weights["fc1.weight"]
    g = choose(q, "Gemm")
    assert (g.engine, g.dtype) == ("cublas_gemmex_int8", "int8")
    dw = choose(rt.Weight.f16(RNG.standard_normal((8, 1, 3, 3)).astype(np.float32)), "Conv",
                depthwise=True)
    assert dw.engine == "numba_dwconv" and dw.dtype == "f32" and "widened" in dw.why


@pytest.mark.parametrize("sparsity,batch,engine", [
    (0.95, 1, "numba_spmv"), (1 - SPMV_MAX_DENSITY, 1, "numba_spmv"),
    (0.8, 1, "cublas_gemm_f32"), (0.95, 64, "cublas_gemm_f32"), (0.95, None, "cublas_gemm_f32"),
])
def test_sparse_runs_sparse_only_at_batch_1_and_high_sparsity(sparsity, batch, engine):
    w = RNG.standard_normal((512, 256)).astype(np.float32)
    k = int(round(sparsity * w.size))
    w.reshape(-1)[RNG.permutation(w.size)[:k]] = 0.0
    got = choose(rt.Weight.csr(w), "Gemm", batch=batch)
    assert got.engine == engine, got


def test_choose_bad_arguments():
    w = rt.Weight.f32(np.ones((4, 4), np.float32))
    with pytest.raises(rt.InputError, match="Conv or Gemm"):
        choose(w, "Add")
    with pytest.raises(rt.InputError, match="only a Conv is depthwise"):
        choose(w, "Gemm", depthwise=True)
