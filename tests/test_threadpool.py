"""The executor's worker pool (cpp/runtime/threadpool.h): every task of a loop runs
exactly once, the calling thread works too, a worker that never starts does not hold a
loop up, concurrent loops share the workers, a task's exception comes out on the calling
thread, an idle pool shuts down, and a forked child gets a working pool."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

import pyruntime as rt
from conftest import run_python
from pyruntime import _core

T = _core.testing
TIMEOUT = 60


def check_loop(res: dict, n: int, threads: int) -> None:
    assert res["runs"] == [1] * n
    team = min(threads, n)
    assert all(0 <= t < team for t in res["thread"]), res["thread"]
    # The thread that called run() is thread 0, and thread 0 is always that thread.
    for t, c in zip(res["thread"], res["on_caller"]):
        assert (t == 0) == bool(c)


@pytest.mark.parametrize("threads", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 17, 100, 1000])
def test_every_task_once(threads, n):
    pool = T.ThreadPool(3)
    for _ in range(5):
        check_loop(pool.run(threads, n), n, threads)
    pool.close()


def test_zero_tasks_and_more_threads_than_workers():
    pool = T.ThreadPool(1)
    assert pool.run(4, 0)["runs"] == []
    check_loop(pool.run(16, 50), 50, 16)  # grows to 15 workers on demand
    assert pool.workers == 15
    pool.close()


def test_caller_and_workers_share_the_tasks():
    pool = T.ThreadPool(1)
    for _ in range(50):  # the worker may be slow to start on a loaded machine: retry
        res = pool.run(2, 16, task_us=300)
        check_loop(res, 16, 2)
        if 0 < sum(res["on_caller"]) < 16:
            break
    else:
        pytest.fail("the worker never ran a task (or the caller never did)")
    pool.close()


def test_worker_that_never_starts_does_not_block():
    pool = T.ThreadPool(2)
    pool.hold_worker(0, True)
    pool.hold_worker(1, True)
    before = pool.stats()
    t0 = time.perf_counter()
    res = pool.run(3, 40, task_us=50)
    assert time.perf_counter() - t0 < 10
    check_loop(res, 40, 3)
    assert res["on_caller"] == [1] * 40  # held workers never took a task
    after = pool.stats()
    assert after["claimed"] - before["claimed"] == 2
    assert after["revoked"] - before["revoked"] == 2
    pool.hold_worker(0, False)
    pool.hold_worker(1, False)
    check_loop(pool.run(3, 40, task_us=20), 40, 3)
    pool.close()


def test_held_worker_leaves_work_to_the_free_one():
    pool = T.ThreadPool(2)
    pool.hold_worker(0, True)
    for _ in range(50):
        res = pool.run(3, 24, task_us=300)
        check_loop(res, 24, 3)
        if sum(res["on_caller"]) < 24:
            break
    else:
        pytest.fail("the free worker never ran a task")
    pool.hold_worker(0, False)
    pool.close()


@pytest.mark.parametrize("workers,callers,threads", [(1, 4, 2), (3, 4, 4), (7, 3, 8)])
def test_concurrent_loops(workers, callers, threads):
    pool = T.ThreadPool(workers)
    assert pool.run_many(callers, 300, threads, 37) == 0
    assert pool.run_many(callers, 300, threads, 1) == 0
    pool.close()


def test_concurrent_loops_from_python_threads():
    pool = T.ThreadPool(2)
    errors: list[str] = []

    def job() -> None:
        for _ in range(100):
            res = pool.run(3, 29, task_us=2)
            if res["runs"] != [1] * 29:
                errors.append(str(res["runs"]))

    ts = [threading.Thread(target=job) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in ts)
    assert not errors, errors[:3]
    pool.close()


def test_exception_on_the_caller_thread():
    pool = T.ThreadPool(2)
    with pytest.raises(RuntimeError, match="task 5 failed"):
        pool.run(3, 50, throw_at=5)
    check_loop(pool.run(3, 50), 50, 3)  # still works
    pool.close()


def test_exception_from_a_worker_comes_out_on_the_caller():
    pool = T.ThreadPool(1)
    for _ in range(50):
        try:
            pool.run(2, 16, task_us=300, throw_off_caller=True)
        except RuntimeError as e:
            assert "on thread 1" in str(e)
            break
    else:
        pytest.fail("the worker never ran a task")
    check_loop(pool.run(2, 16), 16, 2)
    pool.close()


def test_destroy_idle_pool():
    old = T.pool_spin_us()
    T.set_pool_spin_us(50)
    try:
        for spin_first in (False, True):
            pool = T.ThreadPool(4)
            check_loop(pool.run(5, 64), 64, 5)
            if not spin_first:
                time.sleep(0.05)  # workers have parked
            pool.close()  # joins: must not hang
            assert pool.workers == 0
    finally:
        T.set_pool_spin_us(old)


def test_parked_workers_wake():
    old = T.pool_spin_us()
    T.set_pool_spin_us(0)  # park at once
    try:
        pool = T.ThreadPool(2)
        for _ in range(20):
            check_loop(pool.run(3, 30, task_us=20), 30, 3)
            time.sleep(0.002)
        assert pool.stats()["parked"] > 0
        pool.close()
    finally:
        T.set_pool_spin_us(old)


def conv_net(rng, c, hw, oc, k, stride, residual):
    from test_session import GB

    b = GB(rng, {"x": (None, c, hw, hw)})
    p = k // 2
    y = b.conv("x", c, oc, k, stride, (p, p, p, p))
    if residual:  # fused into the conv's epilogue
        y = b.op("Add", [y, b.conv("x", c, oc, 1, stride)])
    return b.graph(b.op("Relu", [y]))


@pytest.mark.parametrize("c,hw,oc,k,stride,residual", [
    (64, 4, 64, 3, 1, False),    # 16 pixels: blocks of output channels per thread
    (17, 4, 96, 3, 1, True),     # 16 pixels, 3 channel blocks, fused residual
    (5, 3, 70, 3, 1, True),      # 9 pixels, a partial channel block
    (32, 8, 64, 3, 1, True),     # 64 pixels: row tiles per thread
    (3, 11, 40, 5, 2, False),    # 36 pixels, 40 channels (one block)
    (8, 2, 256, 1, 1, False),    # 1x1: a GEMM
])
@pytest.mark.parametrize("batch", [1, 3])
def test_split_conv_equals_one_thread(rng, isa, c, hw, oc, k, stride, residual, batch):
    from pyruntime.reference import run_reference

    g = conv_net(rng, c, hw, oc, k, stride, residual)
    x = rng.standard_normal((batch, c, hw, hw)).astype(np.float32)
    want = rt.compile(g, threads=1, isa=isa).run(x)
    ref = run_reference(g, x)
    ref = ref if isinstance(ref, np.ndarray) else next(iter(ref.values()))
    np.testing.assert_allclose(want, ref, rtol=1e-4, atol=1e-4)
    for threads in (2, 3, 5):
        s = rt.compile(g, threads=threads, isa=isa)
        for _ in range(5):
            assert np.array_equal(s.run(x), want)


def test_cost_model_keeps_small_steps_on_one_thread(rng):
    old = T.min_parallel_us()
    T.set_min_parallel_us(5.0)
    try:
        assert T.step_us("avx2", 1e6, 0) > T.step_us("avx512", 1e6, 0) > 0
        assert T.step_us("scalar", 1e6, 0) > T.step_us("avx2", 1e6, 0)
        tiny = rt.compile(rt.zoo.mlp((16, 8, 4)), threads=2)
        big = rt.compile(rt.zoo.mlp((784, 512, 10)), threads=2)
        xt = rng.standard_normal((1, 16)).astype(np.float32)
        xb = rng.standard_normal((1, 784)).astype(np.float32)
        a = T.pool_stats()["claimed"]
        for _ in range(20):
            tiny.run(xt)
        assert T.pool_stats()["claimed"] == a  # no loop handed to the pool
        for _ in range(20):
            big.run(xb)
        assert T.pool_stats()["claimed"] >= a + 20  # 784x512 is split
    finally:
        T.set_min_parallel_us(old)


def test_session_results_do_not_depend_on_threads(rng):
    g = rt.zoo.mlp((300, 200, 100, 10))
    x = rng.standard_normal((5, 300)).astype(np.float32)
    want = rt.compile(g, threads=1).run(x)
    s3 = rt.compile(g, threads=3)
    assert T.pool_workers() >= 2
    for _ in range(50):
        assert np.array_equal(s3.run(x), want)


FORK_SCRIPT = """
import os, signal, numpy as np, pyruntime as rt
from pyruntime import _core
_core.testing.set_min_parallel_us(0)
g = rt.zoo.mlp((300, 200, 10))
x = np.random.default_rng(0).standard_normal((3, 300)).astype(np.float32)
sess = rt.compile(g, threads=2)
want = sess.run(x)  # the parent's workers exist now
assert _core.testing.pool_stats()["claimed"] > 0
pid = os.fork()
if pid == 0:  # child: none of the parent's threads exist here
    code = 1
    try:
        signal.alarm(30)
        fresh = _core.testing.pool_stats()["claimed"] == 0  # a new pool, not the parent's
        ok = all(np.array_equal(sess.run(x), want) for _ in range(20))
        code = 0 if ok and fresh and _core.testing.pool_workers() >= 1 else 2
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
assert np.array_equal(sess.run(x), want)
print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork") or os.environ.get("PYRUNTIME_SANITIZED") == "tsan",
                    reason="needs fork (TSan does not support fork after threads)")
def test_fork_child_gets_a_working_pool():
    # In a fresh interpreter: this process may hold other libraries' threads (JAX's).
    # (run_python: the child's cwd is tests/, so it imports the installed package, not a
    # source checkout without the compiled module)
    r = run_python(FORK_SCRIPT, timeout=TIMEOUT)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
