"""Sessions are thread-safe: many Python threads run one Session (and several Sessions)
at once with mixed batch sizes; every result is bit-equal to the serial one."""

from __future__ import annotations

import gc
import threading
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

    # A session dropped by its last reference while another thread still runs it.
    def drop_while_running():
        s = rt.compile(g, threads=1)
        t = threading.Thread(target=lambda: s.run(x))
        t.start()
        t.join(TIMEOUT)
        return [] if not t.is_alive() else ["run did not finish"]

    _hammer([churn, work, work, drop_while_running], 4)


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
