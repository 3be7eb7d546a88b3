"""Concurrency stress beyond tests/test_concurrency.py: the executor's shared state (the
per-batch layout cache, which is cleared past 256 batch sizes, and the arena pool) under
many threads with many distinct batch sizes; size errors interleaved with good runs;
sessions loaded, compiled, run and dropped on many threads at once; a session dropped
while profile() runs. Every result is bit-equal to the serial one. Sized to run in a few
seconds, and under the sanitizer build (tools/sanitize.sh) as a memory/UB check.
"""

from __future__ import annotations

import gc
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import fileformat

TIMEOUT = 120


def _pool(jobs, n):
    with ThreadPoolExecutor(n) as ex:
        futs = [ex.submit(j) for j in jobs]
        fails = [f for fu in futs for f in fu.result(timeout=TIMEOUT)]
    assert not fails, fails[:5]


@pytest.fixture(scope="module")
def mlp():
    g = rt.zoo.mlp((12, 24, 5), seed=2)
    return g, rt.compile(g, threads=2)


def test_layout_cache_eviction_under_threads(mlp):
    """300 distinct batch sizes from 6 threads: the layout cache overflows (and is
    cleared) while other threads hold layouts from it; arenas of many sizes circulate."""
    _, sess = mlp
    rng = np.random.default_rng(0)
    xs = {b: rng.standard_normal((b, 12)).astype(np.float32) for b in range(1, 301)}
    want = {b: sess.run(x) for b, x in xs.items()}

    def job(k):
        def run():
            bad = []
            order = list(xs)[k::6] + list(xs)[:k:-7]
            for b in order:
                if not np.array_equal(sess.run(xs[b]), want[b]):
                    bad.append(b)
            return bad
        return run

    _pool([job(k) for k in range(6)], 6)


def test_size_errors_interleaved(mlp):
    """Huge-batch calls (rejected before allocating) race with good ones."""
    _, sess = mlp
    x = np.random.default_rng(1).standard_normal((7, 12)).astype(np.float32)
    want = sess.run(x)
    huge = np.broadcast_to(x[:1], (1 << 40, 12))

    def bad():
        out = []
        for _ in range(40):
            try:
                sess.run(huge)
                out.append("huge batch ran")
            except rt.ShapeError:
                pass
        return out

    def good():
        return [i for i in range(40) if not np.array_equal(sess.run(x), want)]

    _pool([bad, good, bad, good], 4)


def test_load_compile_run_drop_many_threads():
    """Each thread loads the same model bytes, compiles (own thread budget and ISA),
    runs, compares with the serial answer and drops the session, repeatedly."""
    g = rt.zoo.tiny_cnn(seed=5, input_shape=(3, 8, 8))
    data = fileformat.dumps(g)
    x = np.random.default_rng(2).standard_normal((3, 3, 8, 8)).astype(np.float32)
    want = {t: rt.compile(g, threads=t, isa="scalar").run(x) for t in (1, 2)}
    want_best = {t: rt.compile(g, threads=t).run(x) for t in (1, 2)}

    def job(k):
        def run():
            bad = []
            for r in range(4):
                t = 1 + (k + r) % 2
                scalar = (k + r) % 3 == 0
                s = rt.compile(rt.load(data), threads=t, isa="scalar" if scalar else None)
                ref = want[t] if scalar else want_best[t]
                if not np.array_equal(s.run(x), ref):
                    bad.append((k, r))
                del s
                gc.collect()
            return bad
        return run

    _pool([job(k) for k in range(6)], 6)


def test_drop_session_while_profiling():
    """The last Python reference outside goes away while another thread is inside
    profile(): that call then holds the only one, and the Session dies on that thread
    when it returns (freed by reference count, not left to the cyclic GC). The session is handed over through a box the thread empties (a
    closure or a default argument would keep it alive in this frame)."""
    g = rt.zoo.tiny_cnn(seed=6, input_shape=(3, 8, 8))
    x = np.ones((256, 3, 8, 8), np.float32)
    drops = []
    for _ in range(3):
        s = rt.compile(g, threads=2)
        n_steps = len(s.plan_summary())
        box, ref = [s], weakref.ref(s)
        entered, done = threading.Event(), threading.Event()
        errors: list = []

        def prof():
            sess = box.pop()
            entered.set()
            try:
                rows = sess.profile(x, repeat=20)
                if len(rows) != n_steps:
                    errors.append(f"{len(rows)} rows for {n_steps} steps")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
            finally:
                done.set()

        t = threading.Thread(target=prof)
        t.start()
        entered.wait(TIMEOUT)
        del s
        drops.append(not done.is_set())
        t.join(TIMEOUT)
        assert not t.is_alive() and not errors, errors
        # Freed by its last reference, on the profiling thread (no cycle waits for the GC).
        assert ref() is None, "the dropped session outlived its last reference (a cycle?)"
    assert any(drops), "the session was never dropped while profile() was running"
