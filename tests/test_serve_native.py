"""The native lane of rt.serve.LoadBalancer (replicas = compiled CPU Sessions): results
against Session.run, exact batch forming, priorities, deadlines, backpressure,
cancellation, failover with eviction and probing, close, metrics. Workers are held
with the engine's test pause (no timing races) and faults are injected natively."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import serve
from pyruntime.graph import Graph, Node, ValueInfo, Weight
from test_serve_fakes import WAIT, Fake, wait_until

D = 12  # model input width


def model(outputs: int = 1) -> Graph:
    """x (None, 12) -> relu(x @ W1 + b1) [-> and x @ W2]: one or two outputs."""
    rng = np.random.default_rng(7)
    nodes = [Node("Gemm", ["x", "W1", "b1"], ["h"], name="g1"),
             Node("Relu", ["h"], ["y"], name="r1")]
    w = {"W1": Weight.f32(rng.standard_normal((D, 5))), "b1": Weight.f32(rng.standard_normal(5))}
    outs = ["y"]
    if outputs == 2:
        nodes.append(Node("Gemm", ["x", "W2"], ["z"], name="g2"))
        w["W2"] = Weight.f32(rng.standard_normal((D, 3)))
        outs.append("z")
    return Graph([ValueInfo("x", (None, D))], outs, nodes, w, name="tiny")


def rows(i: float, n: int = 1) -> np.ndarray:
    return np.full((n, D), i, np.float32)


def lb_of(replicas: int = 1, **kw) -> serve.LoadBalancer:
    kw.setdefault("max_delay_ms", 0)
    lb = serve.LoadBalancer(model(kw.pop("outputs", 1)), replicas=replicas,
                            threads_per_replica=1, **kw)
    assert lb._native is not None, "these tests need the native lane"
    return lb


def engine(lb: serve.LoadBalancer):
    return lb._native.engine


# ----------------------------------------------------------------- results
@pytest.mark.parametrize("outputs", [1, 2])
def test_results_under_concurrency_match_session(outputs):
    g = model(outputs)
    sess = rt.compile(g, threads=1)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((int(rng.integers(1, 6)), D)).astype(np.float32) for _ in range(120)]
    xs.append(rng.standard_normal((40, D)).astype(np.float32))   # > max_batch: runs alone
    want = [sess.run(x) for x in xs]
    with lb_of(2, max_batch_size=16, max_delay_ms=1, outputs=outputs) as lb:
        def client(k):
            out = []
            for i in range(k, len(xs), 8):
                out.append((i, lb.infer(xs[i]) if i % 2 else lb.submit(xs[i]).result(WAIT)))
            return out
        with ThreadPoolExecutor(8) as ex:
            got = [r for fu in [ex.submit(client, k) for k in range(8)] for r in fu.result(WAIT)]
        st = lb.stats()["overall"]
    assert len(got) == len(xs)
    for i, y in got:
        if outputs == 1:
            np.testing.assert_allclose(y, want[i], rtol=1e-5, atol=1e-5)
        else:
            assert set(y) == {"y", "z"}
            for k in y:
                np.testing.assert_allclose(y[k], want[i][k], rtol=1e-5, atol=1e-5)
    assert st["completed"] == len(xs) == st["requests"]
    assert st["rows"] == sum(len(x) for x in xs)


def test_batches_form_from_what_waits_and_respect_the_cap():
    with lb_of(1, max_batch_size=8) as lb:
        engine(lb).set_paused(True)
        futs = [lb.submit(rows(i, 3)) for i in range(5)]   # 15 rows waiting
        engine(lb).set_paused(False)
        for i, f in enumerate(futs):
            y = f.result(WAIT)
            assert y.shape == (3, 5)
            np.testing.assert_allclose(y, lb.replicas[0].run(rows(i, 3)), rtol=1e-6, atol=1e-6)
        st = lb.stats()["overall"]
    # 3 + 3 fit in 8 rows, a third would not: batches of 6, 6, 3 rows
    assert st["batches"] == 3 and st["batch_rows"]["max"] == 6


def test_inputs_checked_and_converted_like_session_run():
    with lb_of() as lb:
        sess = lb.replicas[0]
        xi = np.arange(2 * D).reshape(2, D)                      # int64: converted
        np.testing.assert_array_equal(lb.infer(xi), sess.run(xi))
        xs = np.ones((3, 2 * D), np.float32)[:, ::2]             # strided: copied
        np.testing.assert_array_equal(lb.infer(xs), sess.run(np.ascontiguousarray(xs)))
        with pytest.raises(rt.ShapeError):
            lb.infer(np.ones((2, D + 1), np.float32))
        with pytest.raises(rt.DTypeError):
            lb.submit(np.ones((2, D), bool))
        with pytest.raises(rt.ShapeError):
            lb.infer(np.ones((0, D), np.float32))


# ----------------------------------------------------------------- order, deadlines, queue
def test_higher_priority_first_then_fifo():
    done: list[int] = []
    lock = threading.Lock()
    with lb_of(1, max_batch_size=1) as lb:
        engine(lb).set_paused(True)
        futs = []
        for i, p in enumerate([0, 0, 5, 0, 5, 9]):
            f = lb.submit(rows(i), priority=p)
            f.add_done_callback(lambda f, i=i: (lock.acquire(), done.append(i), lock.release()))
            futs.append(f)
        engine(lb).set_paused(False)
        for f in futs:
            f.result(WAIT)
    assert done == [5, 2, 4, 0, 1, 3]


def test_deadline_passes_while_queued_and_is_never_computed():
    with lb_of(1) as lb:
        engine(lb).set_paused(True)
        f = lb.submit(rows(1), timeout=0.05)
        with pytest.raises(serve.DeadlineExceeded, match="before compute started"):
            f.result(WAIT)                                       # the reaper fails it
        with pytest.raises(TimeoutError):
            lb.infer(rows(2), timeout=0.05)
        engine(lb).set_paused(False)
        ok = lb.submit(rows(3), timeout=5.0).result(WAIT)
        st = lb.stats()["overall"]
    assert ok.shape == (1, 5)
    assert st["deadline_exceeded"] == 2 and st["requests"] == 1 and st["completed"] == 1


def test_overloaded_when_queue_full_then_recovers():
    with lb_of(1, max_queue=3) as lb:
        engine(lb).set_paused(True)
        futs = [lb.submit(rows(i)) for i in range(3)]
        with pytest.raises(serve.Overloaded, match="max_queue=3"):
            lb.submit(rows(9))
        engine(lb).set_paused(False)
        assert all(f.result(WAIT).shape == (1, 5) for f in futs)
        assert lb.infer(rows(4)).shape == (1, 5)
        assert lb.stats()["overall"]["overloaded"] == 1


def test_cancel_while_queued_is_never_computed():
    with lb_of(1) as lb:
        engine(lb).set_paused(True)
        f = lb.submit(rows(1))
        g = lb.submit(rows(2))
        assert f.cancel()
        engine(lb).set_paused(False)
        assert g.result(WAIT).shape == (1, 5)
        assert wait_until(lambda: lb.stats()["overall"]["cancelled"] == 1)
        st = lb.stats()["overall"]
    assert f.cancelled() and st["requests"] == 1


# ----------------------------------------------------------------- failover
def test_failed_batch_is_retried_on_another_replica():
    with lb_of(2, max_batch_size=4) as lb:
        sess = lb.replicas[0]
        engine(lb).inject_failures(0, 1)
        engine(lb).inject_failures(1, 1)
        xs = [rows(i, 2) for i in range(6)]
        futs = [lb.submit(x) for x in xs]
        for x, f in zip(xs, futs):
            np.testing.assert_allclose(f.result(WAIT), sess.run(x), rtol=1e-6, atol=1e-6)
        st = lb.stats()["overall"]
    assert st["failures"] == 2 and st["retries"] >= 1 and st["completed"] == 6


def test_low_load_run_in_the_callers_thread_fails_over_too():
    """At low load infer runs on an idle replica in the calling thread; a fault there is
    retried by the other replica's worker like any batch."""
    with lb_of(2) as lb:
        sess = lb.replicas[0]
        x = rows(3, 2)
        engine(lb).inject_failures(0, 1)
        np.testing.assert_array_equal(lb.infer(x, timeout=5.0), sess.run(x))
        st = lb.stats()
    assert st["overall"]["failures"] == 1 and st["overall"]["retries"] == 1
    assert st["replicas"][0]["failures"] == 1 and st["replicas"][1]["completed"] == 1


def test_evicted_after_repeated_failures_then_probed_back():
    with lb_of(2, evict_after=2, probe_interval_s=0.05) as lb:
        engine(lb).inject_failures(0, 2)
        for i in range(12):
            assert lb.infer(rows(i)).shape == (1, 5)
            if lb.stats()["replicas"][0]["evictions"]:
                break
        reps = lb.stats()["replicas"]
        assert reps[0]["evictions"] == 1
        # probes run every 50 ms; the injected faults are used up, so it comes back
        assert wait_until(lambda: lb.stats()["replicas"][0]["state"] == "in")
        assert lb.stats()["replicas"][0]["recoveries"] == 1


def test_all_replicas_failing_fail_requests_then_submit_refuses():
    with lb_of(1, max_retries=1, evict_after=2, probe_interval_s=60) as lb:
        engine(lb).inject_failures(0, 100)
        with pytest.raises(serve.ReplicaFailed, match="injected replica fault"):
            lb.infer(rows(1))
        with pytest.raises(serve.ReplicaFailed, match="no replica is in service"):
            lb.submit(rows(2))
        assert lb.stats()["replicas"][0]["state"] == "out"


# ----------------------------------------------------------------- close, metrics, choice
def test_close_drains_or_fails_what_waits():
    lb = lb_of(2, max_batch_size=4)
    futs = [lb.submit(rows(i)) for i in range(200)]
    lb.close(drain=True)
    assert all(f.result(WAIT).shape == (1, 5) for f in futs)
    with pytest.raises(serve.Closed):
        lb.submit(rows(0))
    lb = lb_of(1)
    engine(lb).set_paused(True)
    futs = [lb.submit(rows(i)) for i in range(5)]
    lb.close(drain=False)
    for f in futs:
        with pytest.raises(serve.Closed, match="drain=False"):
            f.result(WAIT)
    lb.close()   # idempotent


def test_stats_and_prometheus():
    with lb_of(2, max_batch_size=8) as lb:
        for i in range(20):
            lb.infer(rows(i, 2))
        st = lb.stats()
        text = lb.prometheus()
    o = st["overall"]
    assert o["completed"] == 20 and o["rows"] == 40 and o["submitted"] == 20
    assert o["latency_ms"]["count"] == 20 and o["latency_ms"]["p50"] > 0
    assert sum(r["completed"] for r in st["replicas"]) == 20
    assert all(r["state"] == "in" and r["max_batch_rows"] == 8 for r in st["replicas"])
    assert "pyruntime_serve_completed_total 20" in text
    assert 'pyruntime_serve_batch_rows_count{replica="0"}' in text


def test_engine_choice():
    g = model()
    with serve.LoadBalancer(g, replicas=1, engine="python") as lb:
        assert lb._native is None
        py_y = lb.infer(rows(3))
    with serve.LoadBalancer(g, replicas=1) as lb:
        assert lb._native is not None
        np.testing.assert_array_equal(lb.infer(rows(3)), py_y)
    with serve.LoadBalancer(g, replicas=2, policy="round_robin") as lb:
        assert lb._native is None            # push policies route in Python
    with pytest.raises(rt.InputError, match="not a pyruntime CPU Session"):
        serve.LoadBalancer([Fake()], engine="native")
    with pytest.raises(rt.InputError, match="engine"):
        serve.LoadBalancer(g, engine="gpu")


def test_many_callers_never_hang():
    """16 threads x 1-row requests with timeouts, cancels and closes racing: every call
    ends with a result or a typed error, bounded in time."""
    lb = lb_of(2, max_batch_size=8, max_delay_ms=1, max_queue=64)
    stop = time.monotonic() + 1.0
    errors: list[BaseException] = []

    def client(k):
        i = 0
        while time.monotonic() < stop:
            i += 1
            try:
                if i % 3:
                    lb.infer(rows(k), timeout=0.5)
                else:
                    f = lb.submit(rows(k), timeout=0.5)
                    if i % 5 == 0:
                        f.cancel()
                    if not f.cancelled():
                        f.result(WAIT)
            except (serve.Overloaded, serve.DeadlineExceeded, serve.Closed):
                pass
            except BaseException as e:   # anything else is a bug
                errors.append(e)

    with ThreadPoolExecutor(16) as ex:
        futs = [ex.submit(client, k) for k in range(16)]
        for f in futs:
            f.result(WAIT)
    lb.close(drain=True)
    assert not errors, errors[:3]
    st = lb.stats()["overall"]
    assert st["pending"] == 0 and st["queued"] == 0


def test_reaper_still_watches_deadlines_after_a_low_load_timed_infer():
    """A low-load infer(timeout=) runs inline; later queued deadlines still expire on
    time while every worker is held."""
    with lb_of(1) as lb:
        assert lb.infer(rows(1), timeout=0.01).shape == (1, 5)   # inline: never queued
        time.sleep(0.02)
        engine(lb).set_paused(True)
        t0 = time.monotonic()
        with pytest.raises(serve.DeadlineExceeded):
            lb.submit(rows(2), timeout=0.05).result(WAIT)
        assert time.monotonic() - t0 < 2.0
        engine(lb).set_paused(False)


def test_close_from_two_threads_and_during_low_load_runs():
    g = rt.zoo.mlp((784, 512, 256, 10))
    x = np.zeros((1, 784), np.float32)
    for _ in range(3):
        lb = serve.LoadBalancer(g, replicas=2, threads_per_replica=1, max_delay_ms=0)
        stop = threading.Event()
        outcomes: list[str] = []

        def caller():
            while not stop.is_set():
                try:
                    lb.infer(x)          # mostly inline (low load)
                    outcomes.append("ok")
                except serve.Closed:
                    outcomes.append("closed")
                    return

        th = threading.Thread(target=caller)
        th.start()
        time.sleep(0.05)
        closers = [threading.Thread(target=lb.close, args=(d,)) for d in (True, False)]
        for c in closers:
            c.start()
        for c in closers:
            c.join(WAIT)
            assert not c.is_alive(), "close() hung"
        stop.set()
        th.join(WAIT)
        assert not th.is_alive() and outcomes and set(outcomes) <= {"ok", "closed"}
