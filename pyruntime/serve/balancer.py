"""LoadBalancer: replicas of a model behind one queue (or a router), with dynamic
batching, backpressure, deadlines, priorities, failover and metrics, in one process.

Threads: one worker per replica (it takes a batch, runs it, splits the result back)
and one reaper that fails requests whose deadline passes while they wait. All shared
state sits behind one lock; futures are resolved outside it, so callbacks may submit."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import os
import threading
import time
from concurrent.futures import Future, InvalidStateError
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import DTypeError, InputError, ShapeError
from ..inputs import InputSpec, as_array
from .batching import BatchCost, BatchQueue
from .errors import Closed, DeadlineExceeded, Overloaded, ReplicaFailed
from .metrics import Metrics, prometheus
from .native import NativeLane, native_capable
from .policies import Policy, make_policy
from .request import DONE, QUEUED, TAKEN, Request, Waiter, first_rows, pack, split

__all__ = ["LoadBalancer", "default_layout"]

_IN, _OUT = "in", "out"
#: replica errors that mean "this input is wrong", not "this replica is broken":
#: they fail the batch's requests at once, without retries or eviction.
_INPUT_ERRORS = (ShapeError, DTypeError, InputError)


def _cpus() -> int:
    n = os.cpu_count() or 1
    try:
        n = min(n, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        pass
    return max(1, n)


def default_layout(replicas: int | None, threads: int | None,
                   cpus: int | None = None) -> tuple[int, int]:
    """(replicas, threads per replica) that never oversubscribe the CPUs by default:
    neither given -> one single-threaded replica per CPU; one given -> the other is
    cpus // given (at least 1); both given -> used as given."""
    cpus = cpus or _cpus()
    if replicas is None and threads is None:
        return cpus, 1
    if replicas is None:
        return max(1, cpus // threads), threads
    if threads is None:
        return replicas, max(1, cpus // replicas)
    return replicas, threads


def _pos_int(name: str, v: Any, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise InputError(f"{name}: expected an integer >= {lo}, got {v!r}")
    return int(v)


def _pos_float(name: str, v: Any, allow_zero: bool) -> float:
    ok = (not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating))
          and math.isfinite(v) and (v >= 0 if allow_zero else v > 0))
    if not ok:
        raise InputError(f"{name}: expected a finite number {'>= 0' if allow_zero else '> 0'}"
                         f", got {v!r}")
    return float(v)


class _Replica:
    __slots__ = ("index", "target", "weight", "queue", "cond", "wake", "state", "consecutive",
                 "probe_at", "outstanding", "busy", "metrics", "thread", "cap", "cost")

    def __init__(self, index: int, target: Any, weight: float, queue: BatchQueue,
                 cond: threading.Condition, cap: int) -> None:
        self.index = index
        self.target = target
        self.weight = weight
        self.queue = queue
        self.cond = cond          # idle in-service workers wait here for work (shared)
        self.wake = threading.Condition(cond._lock)  # this worker alone: fill, probe, held
        self.state = _IN
        self.consecutive = 0      # failures in a row
        self.probe_at = 0.0
        self.outstanding = 0      # requests routed here and not finished (push policies)
        self.busy = False         # holds a batch (filling or running)
        self.metrics = Metrics()
        self.thread: threading.Thread | None = None
        self.cap = cap            # largest batch (rows) it takes
        self.cost = BatchCost()   # compute time fit, for how long filling may wait


class LoadBalancer:
    """Replicas of a model behind a load balancer with dynamic batching.

    `graph_or_replicas`: a `pyruntime.Graph` (compiled `replicas` times with
    `threads_per_replica` threads each), or a list of objects with a `run(x)` method
    (Sessions of any device, wrapped callables, your own), one replica each.

    Default layout for a Graph (never more threads than CPUs, `os.cpu_count()` limited
    to this process's affinity): neither given -> one replica per CPU with 1 thread
    each (small requests are served best by parallel replicas, and batching gives
    each replica its own work); only `replicas` -> threads = cpus // replicas; only
    `threads_per_replica` -> replicas = cpus // threads. Both given -> as given.

    `engine`: "auto" (default) runs the queue, batching and workers natively (C++, no
    GIL; see serve/native.py) when every replica is a compiled CPU Session with one
    dynamic-batch input and the policy is "shared"; "native" requires that (else
    InputError); "python" always uses Python worker threads.

    Requests are numpy arrays whose first dim is rows (array-likes are converted; the
    native engine copies a request at submit, the Python workers do not, so leave it
    unchanged until its future ends); for a model with several inputs, dicts
    {name: array} with the same rows in each (results come back as dicts).
    Requests with the same trailing shape and dtype are packed into batches of up to
    `max_batch_size` rows (a larger request runs alone); results are split back per
    request. An idle replica takes what waits at once; it waits up to `max_delay_ms`
    to fill its batch only while other requests are in flight and requests keep
    arriving, in slices no longer than its measured per-batch cost (what a fuller batch
    saves), and never while another replica of the shared queue idles. So a lone caller
    never waits, cheap CPU batches wait little, and replicas with a large per-batch cost
    (GPU launches) fill up; `max_delay_ms=0` never waits. Higher `priority` first, then
    oldest first.

    `timeout` (seconds) bounds the time until a request's compute starts: past it the
    request is dropped with `DeadlineExceeded` (a TimeoutError), never computed late.
    `max_queue` bounds the requests waiting: beyond it `submit` raises `Overloaded`.

    A replica exception fails only its batch; those requests are retried on other
    replicas up to `max_retries` times, then fail with `ReplicaFailed`. Input errors
    (`rt.ShapeError`, `rt.DTypeError`, `rt.InputError`) are the caller's, and fail the
    batch's requests at once. `evict_after` failures in a row take a replica out of
    service; every `probe_interval_s` it is probed with one row of an input that
    succeeded before (or, if none has yet, it is let back in for one batch) and
    rejoins on success. When no replica is in service, waiting requests fail with
    `ReplicaFailed` and `submit` raises it at once.

    Every future ends with a result or a typed error, including during `close()`.
    """

    def __init__(self, graph_or_replicas: Any, replicas: int | None = None,
                 threads_per_replica: int | None = None, max_batch_size: int = 32,
                 max_delay_ms: float = 2.0, max_queue: int = 1024,
                 policy: str | Policy = "shared", weights: Sequence[float] | None = None,
                 max_retries: int = 2, evict_after: int = 3,
                 probe_interval_s: float = 1.0, engine: str = "auto") -> None:
        from ..graph import Graph
        from ..backends import compile as rt_compile

        self.max_batch_size = _pos_int("max_batch_size", max_batch_size)
        self._max_delay = _pos_float("max_delay_ms", max_delay_ms, True) / 1e3
        self.max_queue = _pos_int("max_queue", max_queue)
        self.max_retries = _pos_int("max_retries", max_retries, 0)
        self.evict_after = _pos_int("evict_after", evict_after)
        self.probe_interval_s = _pos_float("probe_interval_s", probe_interval_s, False)

        if isinstance(graph_or_replicas, Graph):
            n, t = default_layout(
                None if replicas is None else _pos_int("replicas", replicas),
                None if threads_per_replica is None
                else _pos_int("threads_per_replica", threads_per_replica))
            targets = [rt_compile(graph_or_replicas, threads=t) for _ in range(n)]
            self.threads_per_replica: int | None = t
        elif isinstance(graph_or_replicas, (list, tuple)):
            targets = list(graph_or_replicas)
            if not targets:
                raise InputError("replicas: expected at least one object with run(x), got "
                                 "an empty list")
            for i, t in enumerate(targets):
                if not callable(getattr(t, "run", None)):
                    raise InputError(f"replica {i}: expected an object with a run(x) "
                                     f"method, got {type(t).__name__}")
            if replicas is not None and _pos_int("replicas", replicas) != len(targets):
                raise InputError(f"replicas: expected {len(targets)} (the list's length) or "
                                 f"None, got {replicas}")
            if threads_per_replica is not None:
                raise InputError("threads_per_replica: expected None with a list of replicas "
                                 f"(they are already built), got {threads_per_replica!r}")
            self.threads_per_replica = None
        else:
            raise InputError("graph_or_replicas: expected a pyruntime.Graph or a list of "
                             f"objects with run(x), got {type(graph_or_replicas).__name__}")
        n = len(targets)
        if weights is None:
            w = [1.0] * n
        else:
            w = list(weights)
            if len(w) != n:
                raise InputError(f"weights: expected {n} numbers (one per replica), got {len(w)}")
            w = [_pos_float(f"weights[{i}]", v, False) for i, v in enumerate(w)]
        self._policy = make_policy(policy, n)
        if engine not in ("auto", "native", "python"):
            raise InputError(f"engine: expected 'auto', 'native' or 'python', got {engine!r}")
        why = native_capable(targets) if self._policy.pull else \
            f"policy {self._policy.name!r} routes in Python (only 'shared' runs natively)"
        if engine == "native" and why is not None:
            raise InputError(f"engine='native' cannot serve these replicas: {why}")
        self._lock = threading.Lock()
        shared_q = BatchQueue() if self._policy.pull else None
        shared_c = threading.Condition(self._lock) if self._policy.pull else None
        wmax = max(w)
        self._replicas = [
            _Replica(i, tgt, w[i], shared_q if shared_q is not None else BatchQueue(),
                     shared_c if shared_c is not None else threading.Condition(self._lock),
                     max(1, round(self.max_batch_size * w[i] / wmax)) if self._policy.pull
                     else self.max_batch_size)
            for i, tgt in enumerate(targets)]
        self._conds = list({id(r.cond): r.cond for r in self._replicas}.values()) + \
            [r.wake for r in self._replicas]
        # The model's input check (the Sessions' own InputSpec), used at submit when
        # every replica is one of our Sessions (a model with several inputs takes dict
        # requests); None for replicas of other kinds, whose requests only need rows.
        specs = [getattr(t, "spec", None) for t in targets]
        self._spec: InputSpec | None = specs[0] if all(
            isinstance(sp, InputSpec) and sp.names == specs[0].names for sp in specs) else None
        self.metrics = Metrics()
        self._queued = 0
        self._running = 0               # batches held by replicas
        self._pending: set[Request] = set()
        self._seq = itertools.count()
        self._deadlines: list[tuple[float, int, Request]] = []
        self._reaper_cond = threading.Condition(self._lock)
        self._last_arrival = 0.0
        self._gap = 1e-3                # EWMA of the gap between arrivals (seconds)
        self._sample: Any = None   # one row (array or dict) that ran fine, for probes
        self._overloaded = 0
        self._submitted = 0
        self._n_in = n                  # replicas in service
        self._closing = False
        self._stopping = False
        self._closed = threading.Event()
        self._native: NativeLane | None = None
        if engine != "python" and why is None:
            self._native = NativeLane(targets, [r.cap for r in self._replicas], self._max_delay,
                                      self.max_queue, self.max_retries, self.evict_after,
                                      self.probe_interval_s)
            return
        for r in self._replicas:
            r.thread = threading.Thread(target=self._worker, args=(r,), daemon=True,
                                        name=f"pyruntime-serve-replica-{r.index}")
            r.thread.start()
        self._reaper = threading.Thread(target=self._reap, daemon=True,
                                        name="pyruntime-serve-reaper")
        self._reaper.start()

    # ------------------------------------------------------------------ public API
    @property
    def replicas(self) -> list[Any]:
        """The replica objects (Sessions when built from a Graph)."""
        return [r.target for r in self._replicas]

    @property
    def policy(self) -> str:
        return self._policy.name

    @staticmethod
    def _rows(a: np.ndarray, what: str) -> None:
        if a.ndim == 0 or a.shape[0] == 0:
            raise ShapeError(f"{what}: expected an array with at least 1 row (first dim), "
                             f"got shape {a.shape}")

    def _validate(self, x: Any, timeout: Any, priority: Any) -> tuple[Any, float | None, int]:
        spec = self._spec
        if spec is not None:
            # The Sessions' own check: names, dtype, shape, one batch for all inputs.
            arrays, _ = spec.ordered(x)
            for n, a in zip(spec.names, arrays):
                self._rows(a, f"request input {n!r}")
            x = arrays[0] if len(arrays) == 1 else dict(zip(spec.names, arrays))
        elif type(x) is not np.ndarray and isinstance(x, Mapping):
            if not x:
                raise InputError("request: expected a non-empty dict {input name: array}")
            x = {k: as_array(v, f"request input {k!r}") for k, v in x.items()}
            for k, v in x.items():
                self._rows(v, f"request input {k!r}")
            if len({v.shape[0] for v in x.values()}) > 1:
                raise ShapeError("request: all inputs must have the same batch size, got "
                                 + ", ".join(f"{k}: {v.shape[0]}" for k, v in x.items()))
        else:
            x = as_array(x, "request")
            self._rows(x, "request")
        if timeout is not None:
            timeout = _pos_float("timeout", timeout, False)
        if isinstance(priority, bool) or not isinstance(priority, (int, np.integer)):
            raise InputError(f"priority: expected an integer, got {priority!r}")
        return x, timeout, int(priority)

    def submit(self, x: Any, timeout: float | None = None, priority: int = 0) -> Future:
        """Queue one request; its Future ends with the output rows for `x` or a typed
        error. Raises at once: `Closed` after close, `Overloaded` when `max_queue`
        requests wait, `ReplicaFailed` when no replica is in service, input errors."""
        x, timeout, priority = self._validate(x, timeout, priority)
        if self._native is not None:
            return self._native.submit(x, timeout, priority)
        return self._submit(x, timeout, priority, time.monotonic())

    def _note_arrival(self, now: float) -> None:
        gap = now - self._last_arrival
        self._gap += (min(gap, 0.1) - self._gap) / 64   # ~1 / rate, even for bursts
        self._last_arrival = now

    def _submit(self, x: Any, timeout: float | None, priority: int,
                now: float, fut: Any = None) -> Any:
        if fut is None:
            fut = Future()
        req = Request(x, fut, None if timeout is None else now + timeout, priority,
                      next(self._seq), now)
        with self._lock:
            if self._closing:
                err: Exception | None = Closed("submit after close(): the balancer takes no "
                                               "new requests")
            elif self._queued >= self.max_queue:
                self._overloaded += 1
                err = Overloaded(f"queue full: {self._queued} requests waiting (max_queue="
                                 f"{self.max_queue}); retry later or add replicas")
            elif not self._n_in:
                err = ReplicaFailed("no replica is in service (all failed repeatedly); "
                                    "they are probed and rejoin when they work again")
            else:
                err = None
                self._submitted += 1
                self._note_arrival(now)
                self._pending.add(req)
                self._enqueue(req)
                if req.deadline is not None:
                    heapq.heappush(self._deadlines, (req.deadline, req.seq, req))
                    if self._deadlines[0][2] is req:
                        self._reaper_cond.notify()
        if err is not None:
            raise err
        return fut

    def infer(self, x: Any, timeout: float | None = None, priority: int = 0) -> Any:
        """submit(x) and wait for its result (raises its error).

        With the shared policy, when no other request is in flight (low load), the batch
        runs in the calling thread on an idle replica (held exactly as its worker would hold
        it): the same result and bookkeeping without two thread hand-offs."""
        x, timeout, priority = self._validate(x, timeout, priority)
        if self._native is not None:
            return self._native.infer(x, timeout, priority)
        if not self._policy.pull:
            return self._submit(x, timeout, priority, time.monotonic(), Waiter()).result()
        now = time.monotonic()
        with self._lock:
            r = None
            if not self._closing and not self._pending:   # nothing else in flight
                for o in self._replicas:
                    if o.state == _IN and not o.busy:
                        r = o
                        break
            if r is not None:
                q = Request(x, Waiter(), None if timeout is None else now + timeout,
                            priority, next(self._seq), now)
                q.state = TAKEN
                q.replica = r.index
                r.busy = True
                self._running += 1
                self._submitted += 1
                self._note_arrival(now)
                self._pending.add(q)
        if r is None:
            return self._submit(x, timeout, priority, now, Waiter()).result()
        self._run_batch(r, [q])
        return q.future.result()

    async def infer_async(self, x: Any, timeout: float | None = None, priority: int = 0) -> Any:
        """Awaitable infer: the event loop is not blocked while the request runs."""
        return await asyncio.wrap_future(self.submit(x, timeout, priority))

    def close(self, drain: bool = True) -> None:
        """Stop taking requests. drain=True: finish everything queued (retries too);
        drain=False: fail what waits with `Closed` and finish only the running batches.
        Joins the worker threads; idempotent."""
        if self._native is not None:
            with self._lock:
                first = not self._closing
                self._closing = True
            self._native.close(drain)
            if first:
                self._closed.set()
            return
        with self._lock:
            first = not self._closing
            self._closing = True
            dropped: list[Request] = []
            if not drain and not self._stopping:
                self._stopping = True
                seen = set()
                for r in self._replicas:
                    if id(r.queue) not in seen:
                        seen.add(id(r.queue))
                        dropped += r.queue.take_all()
                self._queued = 0
            done = [self._finish(q, Closed("closed (drain=False) before this request ran"))
                    for q in dropped]
            self._wake_all()
        self._resolve(done)
        for r in self._replicas:
            if r.thread is not threading.current_thread():
                r.thread.join()
        with self._lock:
            self._reaper_cond.notify_all()
            left = [self._finish(q, Closed("closed before this request ran"))
                    for q in list(self._pending)]
        self._resolve(left)
        if self._reaper is not threading.current_thread():
            self._reaper.join()
        if first:
            self._closed.set()

    def __enter__(self) -> "LoadBalancer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close(drain=True)

    # ------------------------------------------------------------------ metrics
    def stats(self) -> dict[str, Any]:
        """Counters and percentiles (ms; recent window) per replica and overall.
        `requests`, `rows`, `batches` count runs (a retried request counts again);
        `completed` counts results delivered; `queue_ms` is submit -> compute start,
        `latency_ms` submit -> result."""
        counts, parts, states, gauges = self._scopes()
        overall = Metrics.overall(counts, parts).as_dict()
        overall.update(gauges)
        reps = []
        for r, m, st in zip(self._replicas, parts, states):
            d = m.as_dict()
            d.update(index=r.index, state=st, weight=r.weight,
                     outstanding=r.outstanding, max_batch_rows=r.cap)
            reps.append(d)
        return {"policy": self._policy.name, "max_batch_size": self.max_batch_size,
                "max_delay_ms": self._max_delay * 1e3, "threads_per_replica":
                self.threads_per_replica, "overall": overall, "replicas": reps}

    def prometheus(self) -> str:
        """stats() in Prometheus text format (metrics prefixed `pyruntime_serve_`)."""
        counts, parts, states, g = self._scopes()
        gauges = {"queued": g["queued"], "running_batches": g["running"],
                  "pending": g["pending"], "submitted_total": g["submitted"],
                  "overloaded_total": g["overloaded"]}
        rg = [{"in_service": int(st == _IN), "outstanding": r.outstanding,
               "weight": r.weight} for r, st in zip(self._replicas, states)]
        return prometheus(Metrics.overall(counts, parts), parts, gauges, rg)

    def snapshot(self) -> tuple[dict[str, int], list[Metrics], list[bool], dict[str, int]]:
        """(overall counters, per-replica Metrics with their recent samples oldest
        first, in service per replica, gauges): a consistent copy for exporters (the HTTP
        server's Prometheus histograms), which need the samples, not only percentiles."""
        counts, parts, states, gauges = self._scopes()
        return counts, parts, [st == _IN for st in states], gauges

    def _scopes(self) -> tuple[dict[str, int], list[Metrics], list[str], dict[str, int]]:
        """(overall counts, per-replica Metrics, replica states, gauges): a consistent
        copy, from the native engine or from the Python workers' records."""
        if self._native is not None:
            counts, parts, in_service, gauges = self._native.metrics()
            return counts, parts, [_IN if i else _OUT for i in in_service], gauges
        with self._lock:
            parts = []
            for r in self._replicas:
                m = Metrics()
                m.counts = dict(r.metrics.counts)
                for attr in ("queue", "compute", "latency", "batch"):
                    setattr(m, attr, getattr(r.metrics, attr).copy())
                parts.append(m)
            gauges = {"submitted": self._submitted, "overloaded": self._overloaded,
                      "queued": self._queued, "running": self._running,
                      "pending": len(self._pending)}
            return dict(self.metrics.counts), parts, [r.state for r in self._replicas], gauges

    def __repr__(self) -> str:
        return (f"LoadBalancer({len(self._replicas)} replicas, policy={self._policy.name!r}, "
                f"max_batch_size={self.max_batch_size}, max_delay_ms={self._max_delay * 1e3:g},"
                f" max_queue={self.max_queue}{', closed' if self._closing else ''})")

    # ------------------------------------------------------------------ internals (lock held)
    def _in_service(self) -> list[_Replica]:
        return [r for r in self._replicas if r.state == _IN]

    def _enqueue(self, req: Request, front: bool = False) -> None:
        """Put `req` where a replica will take it and wake that replica."""
        if self._policy.pull:
            r = self._replicas[0]
        else:
            cands = [r.index for r in self._replicas if r.state == _IN]
            fresh = [i for i in cands if i not in req.failed_on]
            cands = fresh or cands
            j = self._policy.choose(cands, [r.outstanding for r in self._replicas],
                                    [r.weight for r in self._replicas])
            r = self._replicas[cands[j]]
            r.outstanding += 1
        req.replica = r.index
        r.queue.push(req, front)
        self._queued += 1
        if req.failed_on:
            r.cond.notify_all()   # some workers may not take it: wake every one
        else:
            r.cond.notify()       # any idle worker can take it: wake one

    def _wake_all(self) -> None:
        for c in self._conds:
            c.notify_all()
        self._reaper_cond.notify_all()

    def _finish(self, req: Request, exc: BaseException | None = None, result: Any = None,
                cancelled: bool = False) -> tuple[Future, Any, bool]:
        """Book `req` as done; return what to set on its future (outside the lock)."""
        req.state = DONE
        self._pending.discard(req)
        if not self._policy.pull and req.replica >= 0:
            self._replicas[req.replica].outstanding -= 1
            req.replica = -1
        m = self.metrics.counts
        if cancelled:
            m["cancelled"] += 1
        elif exc is None:
            m["completed"] += 1
        elif isinstance(exc, DeadlineExceeded):
            m["deadline_exceeded"] += 1
        elif isinstance(exc, ReplicaFailed):
            m["replica_failed"] += 1
        elif isinstance(exc, Closed):
            m["closed"] += 1
        return (req.future, exc if exc is not None else result, exc is not None)

    @staticmethod
    def _resolve(done: list[tuple[Future, Any, bool]]) -> None:
        for fut, v, is_exc in done:
            if fut.done():
                continue
            try:
                if is_exc:
                    fut.set_exception(v)
                else:
                    fut.set_result(v)
            except InvalidStateError:   # cancelled by its caller meanwhile
                pass

    def _expire(self, req: Request) -> tuple[Future, Any, bool]:
        waited = time.monotonic() - req.t_submit
        what = (f"before its retry after {req.attempts} failed tries" if req.attempts
                else "before compute started")
        return self._finish(req, DeadlineExceeded(
            f"deadline passed after {waited * 1e3:.1f} ms {what} (timeout "
            f"{(req.deadline - req.t_submit) * 1e3:.1f} ms); not computed"))

    def _other_idle(self, r: _Replica) -> bool:
        """Shared queue: another in-service replica waits for work."""
        if not self._policy.pull:
            return False
        return any(o is not r and o.state == _IN and not o.busy for o in self._replicas)

    def _eligible(self, r: _Replica) -> Callable[[Request], bool]:
        def ok(req: Request) -> bool:
            if r.index not in req.failed_on:
                return True
            # Retry elsewhere when another replica in service has not failed it.
            return not any(o.state == _IN and o.index not in req.failed_on
                           for o in self._replicas)
        return ok

    def _fail_all_queued(self, why: str) -> list[tuple[Future, Any, bool]]:
        out = []
        seen = set()
        for r in self._replicas:
            if id(r.queue) not in seen:
                seen.add(id(r.queue))
                for q in r.queue.take_all():
                    out.append(self._finish(q, ReplicaFailed(why)))
        self._queued = 0
        return out

    def _take(self, r: _Replica) -> tuple[str, list[Request], list]:
        """Block until replica `r` has something to do: ("run", batch, to_resolve),
        ("probe", [], to_resolve), ("resolve", [], to_resolve) or ("stop", [], [])."""
        while True:
            if self._stopping:
                return "stop", [], []
            if self._closing and self._queued == 0 and self._running == 0:
                return "stop", [], []
            if r.busy:          # held by a caller running its batch inline (infer)
                if self._queued:
                    r.cond.notify()   # pass on a wake-up this worker cannot use
                r.wake.wait()
                continue
            now = time.monotonic()
            if r.state == _OUT:
                if now >= r.probe_at and not self._closing:
                    return "probe", [], []
                if self._queued and self._policy.pull:
                    r.cond.notify()   # pass on a wake-up this worker cannot use
                r.wake.wait(None if self._closing else r.probe_at - now)
                continue
            elig = self._eligible(r)
            batch, expired = r.queue.take(r.cap, elig, None, now)
            self._queued -= len(batch) + len(expired)
            done = [self._expire(q) for q in expired]
            if not batch:
                if done:
                    return "resolve", [], done
                r.cond.wait()
                continue
            r.busy = True
            self._running += 1
            rows = sum(q.rows for q in batch)
            # Fill only while other requests are in flight (their callers come back
            # soon): a lone caller never waits. A wait slice lasts the replica's fixed
            # per-batch cost (what a fuller batch saves; at most ~2 arrival gaps), and
            # only when about 2 arrivals are due within it (mean rate over ~64
            # arrivals); a slice without an arrival ends the wait. So CPU replicas with cheap batches wait little, and replicas
            # with a large per-batch cost (GPU launches) wait up to max_delay.
            # With a shared queue, never while another replica idles: it would take
            # the arrivals at once, so waiting here only adds latency.
            fixed = r.cost.fixed()
            if rows < r.cap and self._max_delay > 0 and len(self._pending) > len(batch) \
                    and fixed >= 2 * self._gap and not self._other_idle(r):
                end = min(q.t_submit for q in batch) + self._max_delay
                for q in batch:
                    if q.deadline is not None:
                        end = min(end, q.deadline)
                key = batch[0].key
                while rows < r.cap and not self._closing:
                    now = time.monotonic()
                    if now >= end:
                        break
                    last = self._last_arrival
                    # not woken per arrival: sleep the slice, then take all that came
                    r.wake.wait(min(end - now, 2 * self._gap, fixed))
                    more, exp = r.queue.take(r.cap - rows, elig, key, time.monotonic())
                    self._queued -= len(more) + len(exp)
                    done += [self._expire(q) for q in exp]
                    batch += more
                    rows += sum(q.rows for q in more)
                    if not more and self._last_arrival == last or self._other_idle(r):
                        break   # nothing arrived, or another replica is free: run now
            return "run", batch, done

    # ------------------------------------------------------------------ threads
    def _worker(self, r: _Replica) -> None:
        while True:
            with self._lock:
                kind, batch, done = self._take(r)
            self._resolve(done)
            if kind == "stop":
                return
            if kind == "probe":
                self._probe(r)
            elif kind == "run":
                self._run_batch(r, batch)

    def _probe(self, r: _Replica) -> None:
        sample = self._sample
        ok = True
        if sample is not None:
            try:
                r.target.run(sample)
            except Exception:
                ok = False
        with self._lock:
            r.metrics.counts["probes"] += 1
            if ok:
                r.state = _IN
                self._n_in += 1
                # With no known-good input, the next real batch is the probe.
                r.consecutive = 0 if sample is not None else self.evict_after - 1
                r.metrics.counts["recoveries"] += 1
                self.metrics.counts["recoveries"] += 1
                self._wake_all()
            else:
                r.probe_at = time.monotonic() + self.probe_interval_s

    def _run_batch(self, r: _Replica, batch: list[Request]) -> None:
        now = time.monotonic()
        live: list[Request] = []
        early: list[Request] = []     # expired or cancelled: never computed
        for q in batch:
            if q.deadline is not None and now >= q.deadline:
                early.append(q)
            elif not q.started and not q.future.set_running_or_notify_cancel():
                early.append(q)        # cancelled by its caller
            else:
                q.started = True
                live.append(q)
        if early:
            with self._lock:
                done = []
                for q in early:
                    if q.future.cancelled():
                        r.metrics.counts["cancelled"] += 1
                        self._finish(q, cancelled=True)
                    else:
                        done.append(self._expire(q))
            self._resolve(done)
        y: Any = None
        err: BaseException | None = None
        outs: list[Any] = []
        t0 = time.perf_counter()
        if live:
            for q in live:
                if q.t_start is None:
                    q.t_start = now
            try:
                x = pack(live)
                y = r.target.run(x)
                outs = split(y, live)
            except Exception as e:  # a replica fault (or a caller's input error)
                err = e
        t1 = time.perf_counter()
        end = time.monotonic()
        with self._lock:
            self._running -= 1
            r.busy = False
            done = []
            if live:
                rows = sum(q.rows for q in live)
                for c in (r.metrics.counts, self.metrics.counts):
                    c["batches"] += 1
                    c["requests"] += len(live)
                    c["rows"] += rows
                r.metrics.batch.add(rows)
                r.metrics.compute.add(t1 - t0)
                r.cost.add(rows, t1 - t0)
            if err is None:
                if live:
                    r.consecutive = 0
                    if self._sample is None:
                        self._sample = first_rows(live[0].x, 1)
                r.metrics.counts["completed"] += len(live)
                qa, la = r.metrics.queue.add, r.metrics.latency.add
                for q, o in zip(live, outs):
                    qa(q.t_start - q.t_submit)
                    la(end - q.t_submit)
                    done.append(self._finish(q, result=o))
            elif isinstance(err, _INPUT_ERRORS):
                for q in live:
                    done.append(self._finish(q, err))
            else:
                done += self._fail_batch(r, live, err)
            if self._closing:
                self._wake_all()
            elif self._queued and r.thread is not threading.current_thread():
                r.wake.notify()         # an inline run ends: its worker may take what waits
        self._resolve(done)

    def _fail_batch(self, r: _Replica, live: list[Request], err: BaseException) -> list:
        """Book a replica fault (lock held): retry or fail its requests, maybe evict."""
        done = []
        r.consecutive += 1
        r.metrics.counts["failures"] += 1
        self.metrics.counts["failures"] += 1
        if r.consecutive >= self.evict_after and r.state == _IN:
            r.state = _OUT
            self._n_in -= 1
            r.probe_at = time.monotonic() + self.probe_interval_s
            r.metrics.counts["evictions"] += 1
            self.metrics.counts["evictions"] += 1
            if not self._policy.pull and self._in_service():
                moved = r.queue.take_all()
                self._queued -= len(moved)
                for q in moved:
                    r.outstanding -= 1
                    self._enqueue(q, front=True)
        serving = bool(self._in_service())
        for q in live:
            q.attempts += 1
            q.failed_on.add(r.index)
            if not self._policy.pull:
                r.outstanding -= 1
                q.replica = -1
            if q.deadline is not None and time.monotonic() >= q.deadline:
                done.append(self._expire(q))   # a retry would start past its deadline
            elif q.attempts > self.max_retries or self._stopping or not serving:
                why = (f"failed on replica(s) {sorted(q.failed_on)} in {q.attempts} "
                       f"tries: {type(err).__name__}: {err}")
                e = ReplicaFailed(why)
                e.__cause__ = err
                done.append(self._finish(q, e))
            else:
                r.metrics.counts["retries"] += 1
                self.metrics.counts["retries"] += 1
                self._enqueue(q, front=True)
        if not serving:
            done += self._fail_all_queued(
                f"no replica is in service (all failed repeatedly); last error: "
                f"{type(err).__name__}: {err}")
        return done

    def _reap(self) -> None:
        """Fail queued requests as their deadlines pass (workers may all be busy)."""
        with self._lock:
            while True:
                if self._closing and self._running == 0 and self._queued == 0 \
                        and all(not (r.thread and r.thread.is_alive()) for r in self._replicas):
                    return
                now = time.monotonic()
                done = []
                while self._deadlines and self._deadlines[0][0] <= now:
                    _, _, q = heapq.heappop(self._deadlines)
                    if q.state == QUEUED:
                        self._replicas[q.replica].queue.forget(q)
                        self._queued -= 1
                        done.append(self._expire(q))
                if done:
                    self._lock.release()
                    try:
                        self._resolve(done)
                    finally:
                        self._lock.acquire()
                    continue
                wait = self._deadlines[0][0] - now if self._deadlines else None
                if self._closing:
                    wait = 0.05 if wait is None else min(wait, 0.05)
                self._reaper_cond.wait(wait)
