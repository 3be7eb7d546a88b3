"""LoadBalancer: results, batching, routing policies, weights, priorities, deadlines,
backpressure, async, arguments and metrics. Every wait is bounded (test_serve_fakes.WAIT)."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import pyruntime as rt
from pyruntime import serve
from pyruntime.serve.batching import BatchCost
from test_serve_fakes import WAIT, Fake, req, wait_until


def _lb(fakes, **kw):
    kw.setdefault("max_delay_ms", 0)
    return serve.LoadBalancer(fakes, **kw)


# ----------------------------------------------------------------- real model
def test_mlp_results_under_concurrency_match_session():
    g = rt.zoo.mlp()
    sess = rt.compile(g, threads=1)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((int(rng.integers(1, 6)), 784)).astype(np.float32)
          for _ in range(96)]
    want = [sess.run(x) for x in xs]
    with serve.LoadBalancer(g, replicas=2, threads_per_replica=1, max_batch_size=16,
                            max_delay_ms=1) as lb:
        assert all(isinstance(s, rt.Session) and s.threads == 1 for s in lb.replicas)

        def client(k):
            futs = [(i, lb.submit(xs[i])) for i in range(k, len(xs), 8)]
            return [(i, f.result(timeout=WAIT)) for i, f in futs]

        with ThreadPoolExecutor(8) as ex:
            got = [r for fu in [ex.submit(client, k) for k in range(8)]
                   for r in fu.result(timeout=WAIT)]
        st = lb.stats()
    assert len(got) == len(xs)
    for i, y in got:
        assert y.shape == want[i].shape
        np.testing.assert_allclose(y, want[i], rtol=1e-5, atol=1e-5)
    o = st["overall"]
    assert o["completed"] == len(xs) and o["requests"] == len(xs)
    assert o["rows"] == sum(x.shape[0] for x in xs)


@pytest.mark.parametrize("static", [False, True])
def test_int8_results_under_dynamic_batching_are_exact(static):
    """int8 results do not depend on the batch (per-row quantization, fixed static
    grids), so a request batched with others gets the very bits it gets alone."""
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((int(rng.integers(1, 5)), 784)).astype(np.float32)
          for _ in range(48)]
    g = rt.quantize(rt.zoo.mlp(), "int8", calibration=np.concatenate(xs) if static else None,
                    progress=False)
    sess = rt.compile(g, threads=1)
    want = [sess.run(x) for x in xs]
    with serve.LoadBalancer(g, replicas=2, threads_per_replica=1, max_batch_size=16,
                            max_delay_ms=20) as lb:
        # a long request per replica first: the small ones queue behind them and batch
        big = rng.standard_normal((4096, 784)).astype(np.float32)
        first = [lb.submit(big) for _ in range(2)]
        futs = [lb.submit(x) for x in xs]
        got = [f.result(timeout=WAIT) for f in futs]
        assert all(f.result(timeout=WAIT).shape == (4096, 10) for f in first)
        st = lb.stats()["overall"]
    for y, w in zip(got, want):
        np.testing.assert_array_equal(y, w)
    assert st["completed"] == len(xs) + 2 and st["batches"] < len(xs) / 2, st


def test_graph_default_layout_never_oversubscribes():
    n = os.cpu_count() or 1
    assert serve.default_layout(None, None, cpus=8) == (8, 1)
    assert serve.default_layout(2, None, cpus=8) == (2, 4)
    assert serve.default_layout(3, None, cpus=8) == (3, 2)
    assert serve.default_layout(None, 4, cpus=8) == (2, 4)
    assert serve.default_layout(None, 16, cpus=8) == (1, 16)
    with serve.LoadBalancer(rt.zoo.mlp((8, 4, 2))) as lb:
        assert len(lb.replicas) * lb.threads_per_replica <= n
        x = np.ones((3, 8), np.float32)
        np.testing.assert_allclose(lb.infer(x), lb.replicas[0].run(x), rtol=1e-6)


def test_session_input_checked_at_submit():
    with serve.LoadBalancer(rt.zoo.mlp((8, 4, 2)), replicas=1) as lb:
        with pytest.raises(rt.ShapeError, match=r"expected shape \(None, 8\), got \(2, 7\)"):
            lb.submit(np.ones((2, 7), np.float32))


# ----------------------------------------------------------------- batching
def test_batches_form_while_replica_busy():
    f = Fake(hold_first=True)
    with _lb([f], max_batch_size=4) as lb:
        futs = [lb.submit(req(0))]
        assert f.entered.wait(WAIT)
        futs += [lb.submit(req(i)) for i in range(1, 10)]
        f.gate.set()
        for i, fu in enumerate(futs):
            np.testing.assert_array_equal(fu.result(timeout=WAIT), req(i) * 2)
        st = lb.stats()
    assert f.rows() == [1, 4, 4, 1]
    assert [b[1] for b in f.batches] == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert st["overall"]["batches"] == 4 and st["overall"]["batch_rows"]["max"] == 4


def test_multi_row_requests_split_back_in_order_and_big_one_runs_alone():
    f = Fake(hold_first=True)
    with _lb([f], max_batch_size=6) as lb:
        first = lb.submit(req(0))
        assert f.entered.wait(WAIT)
        sizes = {1: 2, 2: 3, 3: 9, 4: 1, 5: 4}
        futs = {i: lb.submit(req(i, rows=n)) for i, n in sizes.items()}
        f.gate.set()
        first.result(timeout=WAIT)
        for i, fu in futs.items():
            np.testing.assert_array_equal(fu.result(timeout=WAIT), req(i, sizes[i]) * 2)
    # [1,2] fill 5 rows (+4 -> 6); 9 rows run alone; then 5.
    assert [b[1] for b in f.batches[1:]] == [[1, 2, 4], [3], [5]]
    assert f.rows()[1:] == [6, 9, 4]


def test_incompatible_trailing_shapes_and_dtypes_never_share_a_batch():
    f = Fake(hold_first=True)
    with _lb([f], max_batch_size=64) as lb:
        first = lb.submit(req(0))
        assert f.entered.wait(WAIT)
        kinds = [dict(width=3), dict(width=4), dict(width=3, dtype=np.float64)]
        futs = [(i, kinds[i % 3], lb.submit(req(i, **kinds[i % 3]))) for i in range(1, 13)]
        f.gate.set()
        first.result(timeout=WAIT)
        for i, k, fu in futs:
            y = fu.result(timeout=WAIT)
            np.testing.assert_array_equal(y, req(i, **k) * 2)
            assert y.dtype == np.dtype(k.get("dtype", np.float32))
    assert len(f.batches) == 4        # the held one, then one batch per kind
    for _, ids, rows, tail, dt in f.batches[1:]:
        assert len({i % 3 for i in ids}) == 1 and rows == 4


def test_waits_to_fill_only_while_requests_arrive():
    # A lone caller never waits for max_delay_ms ...
    f = Fake()
    with _lb([f], max_batch_size=8, max_delay_ms=300) as lb:
        t0 = time.monotonic()
        for i in range(5):
            lb.infer(req(i))
        assert time.monotonic() - t0 < 1.0          # 5 x 300 ms if it waited
    # ... but under concurrent load a replica fills its batch from requests in flight.
    f = Fake(delay=0.01)
    with _lb([f], max_batch_size=8, max_delay_ms=50) as lb:
        def client(k):
            return [lb.infer(req(k * 100 + j)) for j in range(6)]
        with ThreadPoolExecutor(8) as ex:
            for fu in [ex.submit(client, k) for k in range(8)]:
                fu.result(timeout=WAIT)
        st = lb.stats()["overall"]
    assert st["requests"] == 48 and st["batches"] < 48 / 2


def test_no_fill_wait_that_cannot_pay_off():
    """Two closed-loop callers, two cheap replicas and a long max_delay_ms: the requests
    in flight run on the other replica, and their callers come back only after it;
    waiting for them would idle one replica (and used to add up to max_delay_ms per
    request). A batch waits at most its replica's per-batch cost, and never while
    another replica idles."""
    fs = [Fake(delay=0.002), Fake(delay=0.002)]
    with _lb(fs, max_batch_size=8, max_delay_ms=200) as lb:
        def client(k):
            return [lb.infer(req(k * 100 + j)) for j in range(25)]
        t0 = time.monotonic()
        with ThreadPoolExecutor(2) as ex:
            for fu in [ex.submit(client, k) for k in range(2)]:
                fu.result(timeout=WAIT)
        wall = time.monotonic() - t0
    assert wall < 0.75, wall  # ~0.1 s; the wait used to make it ~1.5 s


def test_batch_cost_fit():
    c = BatchCost()
    assert c.fixed() == 0.0
    for rows in [1, 4, 2, 8, 3, 16, 1, 5] * 5:
        c.add(rows, 0.002 + 0.0001 * rows)
    assert c.fixed() == pytest.approx(0.002, rel=1e-6)
    same = BatchCost()
    for _ in range(10):
        same.add(4, 0.01)           # no spread in sizes: half the batch time
    assert same.fixed() == pytest.approx(0.005)
    flat = BatchCost()
    for rows in [1, 9] * 4:
        flat.add(rows, 0.003)       # size does not matter: all of it is per batch
    assert flat.fixed() == pytest.approx(0.003)


# ----------------------------------------------------------------- priorities
def test_higher_priority_served_first_then_fifo():
    f = Fake(hold_first=True)
    with _lb([f], max_batch_size=1) as lb:
        first = lb.submit(req(0))
        assert f.entered.wait(WAIT)
        prios = {1: 0, 2: 5, 3: -1, 4: 5, 5: 1, 6: 0}
        futs = [lb.submit(req(i), priority=p) for i, p in prios.items()]
        f.gate.set()
        for fu in [first] + futs:
            fu.result(timeout=WAIT)
    assert f.ids() == [0, 2, 4, 5, 1, 6, 3]


# ----------------------------------------------------------------- deadlines
def test_deadline_expires_while_queued_and_is_never_computed():
    f = Fake(hold_first=True)
    with _lb([f], max_batch_size=8) as lb:
        first = lb.submit(req(0))
        assert f.entered.wait(WAIT)
        t0 = time.monotonic()
        late = lb.submit(req(1), timeout=0.05)
        ok = lb.submit(req(2), timeout=WAIT)
        with pytest.raises(serve.DeadlineExceeded) as ei:
            late.result(timeout=WAIT)
        waited = time.monotonic() - t0
        assert waited < 2.0            # failed by the reaper, not when the replica frees
        assert isinstance(ei.value, TimeoutError) and isinstance(ei.value, rt.Error)
        assert "not computed" in str(ei.value)
        f.gate.set()
        first.result(timeout=WAIT)
        np.testing.assert_array_equal(ok.result(timeout=WAIT), req(2) * 2)
        assert lb.stats()["overall"]["deadline_exceeded"] == 1
    assert 1 not in f.ids()


def test_slow_replica_never_runs_an_expired_request():
    f = Fake(delay=0.02)
    deadlines = {}
    with _lb([f], max_batch_size=4, max_delay_ms=5) as lb:
        def client(k):
            out = []
            for j in range(8):
                i = k * 100 + j
                timeout = 0.01 if j % 2 else 0.5
                fu = lb.submit(req(i), timeout=timeout)
                deadlines[i] = time.monotonic() + timeout
                out.append((i, fu))
            res = []
            for i, fu in out:
                try:
                    fu.result(timeout=WAIT)
                    res.append((i, True))
                except serve.DeadlineExceeded:
                    res.append((i, False))
            return res
        with ThreadPoolExecutor(6) as ex:
            res = [r for fu in [ex.submit(client, k) for k in range(6)]
                   for r in fu.result(timeout=WAIT)]
        st = lb.stats()["overall"]
    ran = {}
    for t, ids, *_ in f.batches:
        for i in ids:
            ran[i] = t
    expired = [i for i, ok in res if not ok]
    assert expired, "the load should have made some 10 ms deadlines pass"
    assert st["deadline_exceeded"] == len(expired)
    for i, ok in res:
        assert (i in ran) == ok
    # deadlines[i] was taken after submit, so it is later than the real one; the
    # balancer checks right before run(), the fake records right after: allow 5 ms.
    for i, t in ran.items():
        assert t < deadlines[i] + 0.005, (i, t - deadlines[i])


# ----------------------------------------------------------------- backpressure
def test_overloaded_when_queue_full_then_recovers():
    f = Fake(hold_first=True)
    with _lb([f], max_batch_size=1, max_queue=3) as lb:
        futs = [lb.submit(req(0))]
        assert f.entered.wait(WAIT)
        futs += [lb.submit(req(i)) for i in (1, 2, 3)]
        t0 = time.monotonic()
        with pytest.raises(serve.Overloaded, match="max_queue=3"):
            lb.submit(req(4))
        assert time.monotonic() - t0 < 0.5
        f.gate.set()
        for i, fu in enumerate(futs):
            np.testing.assert_array_equal(fu.result(timeout=WAIT), req(i) * 2)
        np.testing.assert_array_equal(lb.infer(req(5)), req(5) * 2)
        assert lb.stats()["overall"]["overloaded"] == 1


# ----------------------------------------------------------------- policies and weights
def test_shared_queue_keeps_every_replica_busy():
    fs = [Fake(delay=0.01) for _ in range(3)]
    with _lb(fs, max_batch_size=1) as lb:
        futs = [lb.submit(req(i)) for i in range(30)]
        for i, fu in enumerate(futs):
            np.testing.assert_array_equal(fu.result(timeout=WAIT), req(i) * 2)
        st = lb.stats()
    assert st["policy"] == "shared"
    assert all(r["requests"] >= 3 for r in st["replicas"]), [r["requests"] for r in st["replicas"]]


def test_shared_queue_weight_scales_batch_size():
    fs = [Fake(hold_first=True), Fake(hold_first=True)]
    with _lb(fs, max_batch_size=8, weights=[1, 0.25]) as lb:
        futs = [lb.submit(req(0))]
        assert wait_until(lambda: any(f.entered.is_set() for f in fs))
        futs.append(lb.submit(req(1)))
        assert fs[0].entered.wait(WAIT) and fs[1].entered.wait(WAIT)
        futs += [lb.submit(req(i)) for i in range(2, 40)]
        fs[0].gate.set()
        assert wait_until(lambda: len(fs[0].batches) >= 2)
        fs[1].gate.set()
        for i, fu in enumerate(futs):
            np.testing.assert_array_equal(fu.result(timeout=WAIT), req(i) * 2)
        st = lb.stats()
    assert [r["max_batch_rows"] for r in st["replicas"]] == [8, 2]
    assert max(fs[1].rows()) <= 2 and max(fs[0].rows()) > 2


def test_round_robin_follows_weights():
    fs = [Fake(), Fake()]
    with _lb(fs, policy="round_robin", weights=[3, 1], max_batch_size=1) as lb:
        for i in range(40):
            np.testing.assert_array_equal(lb.infer(req(i)), req(i) * 2)
        st = lb.stats()
    assert [r["requests"] for r in st["replicas"]] == [30, 10]
    # smooth: the light replica's turns are spread out, not bunched
    assert fs[1].ids() == [i for i in range(40) if i % 4 == 1] or \
        all(b - a >= 3 for a, b in zip(fs[1].ids(), fs[1].ids()[1:]))


def test_least_outstanding_avoids_the_busy_replica():
    fs = [Fake(hold_first=True), Fake()]
    with _lb(fs, policy="least_outstanding", max_batch_size=1) as lb:
        held = lb.submit(req(0))          # tie -> replica 0, which holds it
        assert fs[0].entered.wait(WAIT)
        for i in range(1, 11):
            np.testing.assert_array_equal(lb.infer(req(i)), req(i) * 2)
        fs[0].gate.set()
        held.result(timeout=WAIT)
    assert fs[0].ids() == [0] and fs[1].ids() == list(range(1, 11))


def test_least_outstanding_weights_share_a_backlog():
    fs = [Fake(hold_first=True), Fake(hold_first=True)]
    with _lb(fs, policy="least_outstanding", weights=[2, 1], max_batch_size=64) as lb:
        futs = [lb.submit(req(i)) for i in range(30)]
        st = lb.stats()
        for f in fs:
            f.gate.set()
        for fu in futs:
            fu.result(timeout=WAIT)
    assert [r["outstanding"] for r in st["replicas"]] == [20, 10]


def test_power_of_two_choices_balances_outstanding():
    fs = [Fake(hold_first=True) for _ in range(3)]
    with _lb(fs, policy="p2c", max_batch_size=1) as lb:
        futs = [lb.submit(req(i)) for i in range(60)]
        out = [r["outstanding"] for r in lb.stats()["replicas"]]
        for f in fs:
            f.gate.set()
        for i, fu in enumerate(futs):
            np.testing.assert_array_equal(fu.result(timeout=WAIT), req(i) * 2)
    assert sum(out) == 60 and max(out) - min(out) <= 6, out


# ----------------------------------------------------------------- async
def test_infer_async():
    f = Fake(delay=0.001)

    async def main(lb):
        ys = await asyncio.gather(*[lb.infer_async(req(i, rows=2)) for i in range(20)])
        return ys

    with _lb([f, Fake()], max_batch_size=8) as lb:
        ys = asyncio.run(asyncio.wait_for(main(lb), WAIT))
    for i, y in enumerate(ys):
        np.testing.assert_array_equal(y, req(i, rows=2) * 2)


# ----------------------------------------------------------------- metrics
def test_stats_and_prometheus():
    with _lb([Fake(), Fake()]) as lb:
        for i in range(10):
            lb.infer(req(i))
        st = lb.stats()
        text = lb.prometheus()
    o = st["overall"]
    assert o["submitted"] == o["completed"] == 10 and o["pending"] == 0
    assert o["latency_ms"]["count"] == 10 and o["latency_ms"]["p50"] > 0
    assert sum(r["requests"] for r in st["replicas"]) == 10
    assert "pyruntime_serve_completed_total 10" in text
    assert 'pyruntime_serve_latency_seconds{quantile="0.99"}' in text
    assert 'pyruntime_serve_requests_total{replica="1"}' in text
    assert "# TYPE pyruntime_serve_batch_rows summary" in text
    for line in text.splitlines():
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2


# ----------------------------------------------------------------- arguments
@pytest.mark.parametrize("kw, msg", [
    (dict(max_batch_size=0), "max_batch_size: expected an integer >= 1, got 0"),
    (dict(max_delay_ms=-1), "max_delay_ms: expected a finite number >= 0, got -1"),
    (dict(max_queue=1.5), "max_queue: expected an integer >= 1, got 1.5"),
    (dict(policy="random"), "policy: expected one of"),
    (dict(weights=[1]), "weights: expected 2 numbers"),
    (dict(weights=[1, 0]), r"weights\[1\]: expected a finite number > 0, got 0"),
    (dict(replicas=3), "replicas: expected 2"),
    (dict(threads_per_replica=2), "threads_per_replica: expected None"),
    (dict(max_retries=-1), "max_retries: expected an integer >= 0"),
])
def test_bad_arguments(kw, msg):
    with pytest.raises(rt.InputError, match=msg):
        serve.LoadBalancer([Fake(), Fake()], **kw)


def test_bad_replicas_and_requests():
    with pytest.raises(rt.InputError, match="expected an object with a run"):
        serve.LoadBalancer([Fake(), object()])
    with pytest.raises(rt.InputError, match="expected a pyruntime.Graph or a list"):
        serve.LoadBalancer("model.onnx")
    with pytest.raises(rt.InputError, match="threads_per_replica"):
        serve.LoadBalancer(rt.zoo.mlp((4, 2)), threads_per_replica=0)
    lb = _lb([Fake()])
    try:
        with pytest.raises(rt.ShapeError, match=r"at least 1 row.*got shape \(\)"):
            lb.submit(np.float32(1))
        with pytest.raises(rt.ShapeError, match=r"got shape \(0, 3\)"):
            lb.submit(np.zeros((0, 3), np.float32))
        with pytest.raises(rt.DTypeError, match="float32 .*integer/float dtype.*got <U1"):
            lb.submit(np.array(["a"]))
        with pytest.raises(rt.InputError, match="timeout: expected a finite number > 0, got 0"):
            lb.submit(req(1), timeout=0)
        with pytest.raises(rt.InputError, match="priority: expected an integer, got 1.5"):
            lb.submit(req(1), priority=1.5)
        np.testing.assert_array_equal(lb.infer([[1.0, 2.0]]), [[2.0, 4.0]])
    finally:
        lb.close()
    with pytest.raises(serve.Closed) as ei:
        lb.submit(req(1))
    assert isinstance(ei.value, rt.Error)
    lb.close()   # idempotent


def test_replica_input_error_fails_batch_without_retry_or_eviction():
    class Picky(Fake):
        def run(self, x):
            if x.shape[1] != 3:
                raise rt.ShapeError(f"expected width 3, got {x.shape[1]}")
            return super().run(x)

    f = Picky()
    with _lb([f], evict_after=1) as lb:
        with pytest.raises(rt.ShapeError, match="expected width 3, got 5"):
            lb.infer(req(1, width=5))
        np.testing.assert_array_equal(lb.infer(req(2)), req(2) * 2)
        st = lb.stats()
    assert st["overall"]["failures"] == 0 and st["replicas"][0]["state"] == "in"


# ----------------------------------------------------------------- README
def test_readme_serving_block_runs(tmp_path, monkeypatch):
    readme = Path(__file__).resolve().parents[1] / "README.md"
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)
              if "rt.serve.LoadBalancer" in b] if readme.exists() else []
    if not blocks:
        pytest.skip("README has no serving section yet")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)  # noqa: S102 - our own README
    assert ns["y"].shape == (1, 10) and ns["y5"].shape == (5, 10) and ns["ya"].shape == (2, 10)
    assert ns["stats"]["overall"]["completed"] == 3
    assert "pyruntime_serve_latency_seconds" in ns["text"]


@pytest.mark.parametrize("policy", ["shared", "round_robin"])
def test_replicas_run_at_the_same_time(policy):
    # Each run waits at a barrier for the other replica's run: serialized replicas
    # would break the barrier (timeout) and fail every request.
    barrier = threading.Barrier(2, timeout=WAIT)

    class Meet(Fake):
        def run(self, x):
            barrier.wait()
            return super().run(x)

    fs = [Meet(), Meet()]
    with _lb(fs, policy=policy, max_batch_size=1) as lb:
        futs = [lb.submit(req(i)) for i in range(8)]
        for i, fu in enumerate(futs):
            np.testing.assert_array_equal(fu.result(timeout=WAIT), req(i) * 2)
    assert len(fs[0].batches) == len(fs[1].batches) == 4


# ----------------------------------------------------------------- several inputs
def _two_input_model():
    from pyruntime.graph import Graph, Node, ValueInfo, Weight
    rng = np.random.default_rng(3)
    nodes = [Node("Add", ["a", "b"], ["s"], name="add"),
             Node("Gemm", ["s", "W"], ["y"], name="fc")]
    return Graph([ValueInfo("a", (None, 6)), ValueInfo("b", (None, 6))], ["y"], nodes,
                 {"W": Weight.f32(rng.standard_normal((6, 3)))}, name="two_inputs")


def test_dict_requests_for_a_model_with_several_inputs():
    g = _two_input_model()
    sess = rt.compile(g, threads=1)
    rng = np.random.default_rng(0)
    feeds = [{"a": rng.standard_normal((k, 6)).astype(np.float32),
              "b": rng.standard_normal((k, 6)).astype(np.float32)}
             for k in rng.integers(1, 5, size=40)]
    with serve.LoadBalancer(g, replicas=2, threads_per_replica=1, max_batch_size=8,
                            max_delay_ms=1) as lb:
        assert lb._native is None          # several inputs: the Python lane
        with ThreadPoolExecutor(6) as ex:
            got = list(ex.map(lambda f: lb.infer(f, timeout=WAIT), feeds))
        st = lb.stats()["overall"]
        with pytest.raises(rt.InputError, match="pass a dict"):
            lb.submit(feeds[0]["a"])
        with pytest.raises(rt.InputError, match=r"expected inputs \['a', 'b'\]"):
            lb.submit({"a": feeds[0]["a"]})
        with pytest.raises(rt.ShapeError, match="same batch size"):
            lb.submit({"a": np.ones((2, 6), np.float32), "b": np.ones((3, 6), np.float32)})
        with pytest.raises(rt.ShapeError, match="input 'b'"):
            lb.submit({"a": np.ones((2, 6), np.float32), "b": np.ones((2, 5), np.float32)})
    for f, y in zip(feeds, got):     # dict feeds give dict outputs, as Session.run does
        assert set(y) == {"y"}
        # A request may run inside a batch of other rows: the GEMM then sums in another
        # order than for its rows alone (float32 rounding, a few ulp of |y| ~ 5).
        np.testing.assert_allclose(y["y"], sess.run(f)["y"], rtol=1e-5, atol=1e-5)
    assert st["completed"] == len(feeds)


def test_dict_requests_batch_together_and_split_back():
    f = _DictFake(hold_first=True)
    with _lb([f], max_batch_size=16) as lb:
        first = lb.submit({"p": req(0), "q": req(0)})
        assert f.entered.wait(WAIT)
        futs = [lb.submit({"p": req(i, rows=2), "q": req(i + 100, rows=2)}) for i in range(1, 5)]
        f.gate.set()
        first.result(WAIT)
        for i, fu in enumerate(futs, 1):
            y = fu.result(WAIT)
            assert set(y) == {"p", "q"}
            np.testing.assert_array_equal(y["p"], req(i, rows=2) * 2)
            np.testing.assert_array_equal(y["q"], req(i + 100, rows=2) * 2)
    assert f.rows() == [1, 8]               # the four waiting dict requests: one batch


class _DictFake(Fake):
    """A replica taking and returning dicts (a model with several inputs and outputs)."""

    def run(self, x):
        rows = {v.shape[0] for v in x.values()}
        assert len(rows) == 1
        with self._lock:
            self.batches.append((time.monotonic(), [], rows.pop(), (), ""))
        self.entered.set()
        if not self.gate.wait(WAIT):
            raise RuntimeError("test gate never opened")
        return {k: v * 2 for k, v in x.items()}
