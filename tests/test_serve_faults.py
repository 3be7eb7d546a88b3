"""LoadBalancer under faults and shutdown: random replica failures with retries,
eviction and probing back in, all replicas down, close(drain=True/False) under load.
Every future must end (result or typed error); every wait is bounded."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import serve
from test_serve_fakes import WAIT, Fake, req, wait_until


def _all_end(futs, timeout=WAIT):
    done, not_done = wait(futs, timeout=timeout)
    assert not not_done, f"{len(not_done)} futures never ended"


@pytest.mark.parametrize("policy", ["shared", "least_outstanding", "round_robin", "p2c"])
def test_random_faults_are_retried_and_nothing_is_lost(policy):
    fs = [Fake(fail_p=0.25, seed=s) for s in range(3)]
    with serve.LoadBalancer(fs, policy=policy, max_batch_size=4, max_delay_ms=0.5,
                            max_retries=3, evict_after=4, probe_interval_s=0.02) as lb:
        def client(k):
            futs = [(k * 1000 + j, lb.submit(req(k * 1000 + j, rows=1 + j % 3)))
                    for j in range(40)]
            out = []
            for i, fu in futs:
                try:
                    out.append((i, fu.result(timeout=WAIT)))
                except serve.ReplicaFailed as e:
                    assert isinstance(e.__cause__, RuntimeError)
                    out.append((i, e))
            return out

        with ThreadPoolExecutor(6) as ex:
            res = [r for fu in [ex.submit(client, k) for k in range(6)]
                   for r in fu.result(timeout=WAIT)]
        st = lb.stats()["overall"]
    ok = [(i, y) for i, y in res if not isinstance(y, Exception)]
    assert len(res) == 240
    assert len(ok) >= 200, f"too many lost to faults: {240 - len(ok)}"
    for i, y in ok:
        np.testing.assert_array_equal(y, req(i, rows=1 + (i % 1000) % 3) * 2)
    assert st["failures"] > 0 and st["retries"] > 0
    assert st["completed"] == len(ok) and st["replica_failed"] == 240 - len(ok)
    assert st["pending"] == 0


def test_failing_replica_is_evicted_then_probed_back_in():
    bad, good = Fake(), Fake()
    bad.broken = True
    with serve.LoadBalancer([bad, good], max_batch_size=1, max_delay_ms=0, max_retries=2,
                            evict_after=2, probe_interval_s=0.03) as lb:
        for i in range(12):                      # every request succeeds via `good`
            np.testing.assert_array_equal(lb.infer(req(i)), req(i) * 2)
        assert wait_until(lambda: lb.stats()["replicas"][0]["state"] == "out")
        st = lb.stats()["replicas"][0]
        assert st["evictions"] >= 1 and st["failures"] >= 2
        assert wait_until(lambda: lb.stats()["replicas"][0]["probes"] >= 1)
        assert lb.stats()["replicas"][0]["state"] == "out"     # probes fail while broken
        bad.broken = False
        assert wait_until(lambda: lb.stats()["replicas"][0]["state"] == "in")
        n = len(bad.batches)
        good.gate.clear()                                       # hold `good`: bad must serve
        futs = [lb.submit(req(100 + i)) for i in range(4)]
        assert wait_until(lambda: len(bad.batches) > n + 1)
        good.gate.set()
        for i, fu in enumerate(futs):
            np.testing.assert_array_equal(fu.result(timeout=WAIT), req(100 + i) * 2)
        st = lb.stats()
    assert st["replicas"][0]["recoveries"] >= 1
    assert st["overall"]["replica_failed"] == 0


def test_all_replicas_failing_fails_requests_then_submit_fast():
    fs = [Fake(), Fake()]
    for f in fs:
        f.broken = True
    with serve.LoadBalancer(fs, max_batch_size=2, max_delay_ms=0, max_retries=5,
                            evict_after=1, probe_interval_s=60) as lb:
        futs = [lb.submit(req(i)) for i in range(6)]
        _all_end(futs)
        for fu in futs:
            e = fu.exception(timeout=0)
            assert isinstance(e, serve.ReplicaFailed) and isinstance(e, rt.Error)
        t0 = time.monotonic()
        with pytest.raises(serve.ReplicaFailed, match="no replica is in service"):
            lb.submit(req(9))
        assert time.monotonic() - t0 < 0.5
        assert [r["state"] for r in lb.stats()["replicas"]] == ["out", "out"]
    # close returned although both workers wait for a probe 60 s away


@pytest.mark.parametrize("policy", ["shared", "least_outstanding"])
def test_close_drain_under_load_finishes_everything(policy):
    fs = [Fake(delay=0.002), Fake(delay=0.002)]
    lb = serve.LoadBalancer(fs, policy=policy, max_batch_size=4, max_delay_ms=1)
    futs: list = []
    refused = []
    stop = threading.Event()

    def client(k):
        j = 0
        while not stop.is_set():
            try:
                futs.append((k * 10000 + j, lb.submit(req(k * 10000 + j))))
            except serve.Closed:
                refused.append(k)
                return
            except serve.Overloaded:
                pass
            j += 1
            if j % 8 == 0:
                time.sleep(0.001)

    ts = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    assert wait_until(lambda: len(futs) > 40)
    lb.close(drain=True)
    stop.set()
    for t in ts:
        t.join(WAIT)
    assert all(fu.done() for _, fu in futs)            # close() returned => all ended
    for i, fu in futs:
        np.testing.assert_array_equal(fu.result(timeout=0), req(i) * 2)
    assert lb.stats()["overall"]["pending"] == 0


def test_close_without_drain_fails_waiting_and_finishes_running():
    f = Fake(hold_first=True)
    lb = serve.LoadBalancer([f], max_batch_size=2, max_delay_ms=0)
    running = lb.submit(req(0))
    assert f.entered.wait(WAIT)
    waiting = [lb.submit(req(i)) for i in range(1, 9)]
    closer = threading.Thread(target=lb.close, kwargs={"drain": False})
    closer.start()
    _all_end(waiting)                       # failed at once, while the batch still runs
    assert not running.done()
    for fu in waiting:
        assert isinstance(fu.exception(timeout=0), serve.Closed)
    f.gate.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    np.testing.assert_array_equal(running.result(timeout=0), req(0) * 2)
    assert f.ids() == [0]
    with pytest.raises(serve.Closed):
        lb.submit(req(1))


def test_cancelled_future_is_not_computed():
    f = Fake(hold_first=True)
    with serve.LoadBalancer([f], max_batch_size=4, max_delay_ms=0) as lb:
        first = lb.submit(req(0))
        assert f.entered.wait(WAIT)
        a, b = lb.submit(req(1)), lb.submit(req(2))
        assert a.cancel()
        f.gate.set()
        first.result(timeout=WAIT)
        np.testing.assert_array_equal(b.result(timeout=WAIT), req(2) * 2)
        assert lb.stats()["overall"]["cancelled"] == 1
    assert 1 not in f.ids()


def test_failed_request_is_not_retried_past_its_deadline():
    f = Fake(delay=0.05)
    f.broken = True
    with serve.LoadBalancer([f, Fake(hold_first=True)], policy="round_robin",
                            max_delay_ms=0, max_retries=5, evict_after=10) as lb:
        fu = lb.submit(req(1), timeout=0.02)       # round robin: replica 0 first
        with pytest.raises(serve.DeadlineExceeded, match="before its retry after 1 failed"):
            fu.result(timeout=WAIT)
        lb.replicas[1].gate.set()
    assert f.ids() == [1] and lb.replicas[1].ids() == []
