"""Sessions are thread-safe: many Python threads run one Session (and several Sessions)
at once with mixed batch sizes; every result is bit-equal to the serial one."""

from __future__ import annotations

import gc
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import pyruntime as rt
from test_session import GB

TIMEOUT = 120  # seconds for a whole test; a hang fails instead of blocking CI


def cnn(rng, c=4):
    b = GB(rng, {"x": (None, 3, 12, 12)})
    x = b.conv("x", 3, 8, 3, 2, (1, 1, 1, 1), activation="relu")        # 6x6
    d = b.dwconv(x, 8, 3, 1, pad=1)
    x = b.op("Add", [x, d])
    x = b.op("Flatten", [b.op("MaxPool", [x], kernel_shape=(2, 2), strides=(2, 2))])
    y = b.op("Softmax", [b.gemm(x, 72, c)])
    return b.graph(y)


def mlp(rng):
    b = GB(rng, {"x": (None, 3, 12, 12)})
    f = b.op("Flatten", ["x"])
    return b.graph(b.gemm(b.gemm(f, 432, 64, activation="relu"), 64, 5))


def _hammer(jobs, n_threads=8):
    """Run every job (a no-arg callable returning a list of failures) on a thread pool."""
    with ThreadPoolExecutor(n_threads) as ex:
        futs = [ex.submit(j) for j in jobs]
        fails = [f for fu in futs for f in fu.result(timeout=TIMEOUT)]
    assert not fails, fails[:5]


def _runner(sess, cases, reps):
    def job():
        bad = []
        for r in range(reps):
            for k, (x, want) in enumerate(cases):
                got = sess.run(x)
                if not np.array_equal(got, want):
                    bad.append((r, k, float(np.abs(got - want).max())))
        return bad
    return job


@pytest.mark.parametrize("threads", [1, 2])
def test_one_session_many_threads(rng, threads):
    sess = rt.compile(cnn(rng), threads=threads)
    cases = [(x, sess.run(x)) for x in
             (rng.standard_normal((b, 3, 12, 12)).astype(np.float32) for b in (1, 3, 7, 16, 2))]
    _hammer([_runner(sess, cases[k % 5:] + cases[:k % 5], 20) for k in range(8)])


def test_several_sessions_at_once(rng):
    sessions = [rt.compile(cnn(rng), threads=2), rt.compile(mlp(rng), threads=1),
                rt.compile(cnn(rng, c=9), threads=1, isa="scalar")]
    jobs = []
    for k in range(9):
        s = sessions[k % 3]
        cases = [(x, s.run(x)) for x in
                 (rng.standard_normal((b, 3, 12, 12)).astype(np.float32) for b in (1, 4, 9))]
        jobs.append(_runner(s, cases, 15))
    _hammer(jobs, 9)


def test_create_and_drop_while_running(rng):
    g = cnn(rng)
    sess = rt.compile(g, threads=2)
    x = rng.standard_normal((5, 3, 12, 12)).astype(np.float32)
    want = sess.run(x)
    stop = threading.Event()

    def churn():
        bad = []
        while not stop.is_set():
            s = rt.compile(g, threads=2)
            if not np.array_equal(s.run(x), want):
                bad.append("fresh session differs")
            del s
            gc.collect()
        return bad

    def work():
        try:
            return _runner(sess, [(x, want)], 40)()
        finally:
            stop.set()

    # A session whose creator drops its reference while another thread runs it: the
    # running call then holds the last one, and the Session dies on that thread when the
    # call returns. Handed over through a box the runner empties, so no closure or
    # default argument keeps it alive.
    # Whether the drop lands inside the run is timing: on a fast machine a short run ends
    # before the dropping thread gets the GIL back. Each try that missed doubles the batch
    # (bounded), until two drops have landed inside a run.
    def drop_while_running():
        bad, reps = [], 100
        for _ in range(8):
            big = np.repeat(x, reps, axis=0)
            want_big = sess.run(big)
            s = rt.compile(g, threads=1)
            box, ref = [s], weakref.ref(s)
            entered, done, got = threading.Event(), threading.Event(), []

            def runner():
                mine = box.pop()
                entered.set()
                got.append(mine.run(big))
                done.set()

            t = threading.Thread(target=runner)
            t.start()
            entered.wait(TIMEOUT)
            del s
            dropped_while_running = not done.is_set()
            t.join(TIMEOUT)
            if t.is_alive():
                bad.append("run did not finish")
            elif not got or not np.array_equal(got[0], want_big):
                bad.append("run after the drop differs")
            # Freed by its last reference, on the running thread: no cycle keeps a dropped
            # Session (plan, packed weights, arenas) waiting for the cyclic GC.
            if ref() is not None:
                bad.append("the dropped session outlived its last reference (a cycle?)")
            drops.append(dropped_while_running)
            if sum(drops) >= 2:
                break
            if not dropped_while_running:
                reps = min(2 * reps, 3200)
        return bad

    drops: list[bool] = []

    _hammer([churn, work, work, drop_while_running], 4)
    assert any(drops), "the session was never dropped while its run was in progress"


def test_errors_under_concurrency(rng):
    """Bad calls interleaved with good ones raise typed errors and disturb nothing."""
    sess = rt.compile(cnn(rng), threads=2)
    x = rng.standard_normal((3, 3, 12, 12)).astype(np.float32)
    want = sess.run(x)

    def bad_calls():
        out = []
        for _ in range(30):
            for arg in (x[:, :2], x.astype(bool), {"nope": x}):
                try:
                    sess.run(arg)
                    out.append("no error")
                except rt.Error:
                    pass
        return out

    _hammer([bad_calls, _runner(sess, [(x, want)], 30)] * 3, 6)
