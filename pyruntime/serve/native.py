"""The native lane of LoadBalancer: when every replica is a compiled CPU Session (one
dynamic-batch input) and the policy is the shared queue, the queue, the batching and
the replica workers run in C++ (`_core.ServeEngine`) and never take the GIL.

Why: Python worker threads must take the GIL back after every batch, and with many
client threads that wait dominated (1-row MLP requests from 16 threads: ~10k req/s
with the replicas mostly idle). Here a caller's thread copies its rows in, waits with
the GIL released and builds its result; submit() futures are resolved by one thread.

Same behaviour as the Python workers (priorities, deadlines, backpressure, retries,
eviction and probing, metrics), with these differences: cancelling a submit() future
stops its request only while it is still queued (once taken into a batch it is
computed and the result dropped); a ReplicaFailed carries the replica's C++ error in
its message, not as __cause__; input errors are raised by submit/infer at once; and
done-callbacks of submit() futures run on the one resolver thread, so a callback must
not block on another future's result."""

from __future__ import annotations

import atexit
import threading
import weakref
from concurrent.futures import Future, InvalidStateError
from typing import Any, Sequence

import numpy as np

from .. import _core
from .errors import Closed, DeadlineExceeded, ReplicaFailed
from .metrics import Metrics, Series

_F32 = np.dtype(np.float32)

#: ServeTicket.outcome() status codes
_OK, _DEADLINE, _FAILED, _CLOSED, _CANCELLED = 1, 2, 3, 4, 5


def native_capable(targets: Sequence[Any]) -> str | None:
    """None when the engine can serve these replicas, else why not."""
    from ..cpu.session import Session

    if not all(type(t) is Session for t in targets):
        return "a replica is not a pyruntime CPU Session"
    if any(t._fast is None for t in targets):
        return "the model does not have exactly one input with a dynamic batch dimension"
    if len(targets) > 64:
        return "more than 64 replicas"
    first = targets[0]
    same = all(t.inputs == first.inputs and t.outputs == first.outputs for t in targets)
    return None if same else "the replicas are not the same model"


#: Lanes not closed yet (closed at interpreter exit, see _close_at_exit).
_OPEN: "weakref.WeakSet[NativeLane]" = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    """Close every engine still open before the interpreter finalizes (queued requests
    fail with Closed, running batches finish): the resolver thread, and any caller
    thread still waiting, then leave the engine before CPython stops daemon threads.
    Without this a process that exited (or raised) with balancers open aborted about
    once in three runs (the resolver, inside the engine with the GIL released, was ended
    by CPython while it took the GIL back; the C++ side now also survives that)."""
    for lane in list(_OPEN):
        try:
            lane.close(False)
        except Exception:  # noqa: BLE001 - exiting anyway; close the others
            pass


def _error(status: int, message: str) -> BaseException:
    if status == _DEADLINE:
        return DeadlineExceeded(message)
    if status == _FAILED:
        return ReplicaFailed(message)
    if status == _CLOSED:
        return Closed(message)
    return Closed(f"request ended without a result ({message})")


class NativeLane:
    """The engine plus what Python needs around it: input checks and conversion (the
    Session's own), result arrays, futures for submit()."""

    def __init__(self, sessions: Sequence[Any], caps: list[int], max_delay: float,
                 max_queue: int, max_retries: int, evict_after: int,
                 probe_interval: float) -> None:
        self._sess = sessions[0]
        self._out_names = [o.name for o in self._sess.outputs]
        self._max_cap = max(caps)
        self._sess.arena_bytes(self._max_cap)   # the largest batch fits (else ShapeError)
        self.engine = _core.ServeEngine([s._plan for s in sessions], caps, max_delay,
                                        max_queue, max_retries, evict_after, probe_interval)
        self._futures: dict[int, tuple[Future, Any]] = {}
        self._flock = threading.Lock()
        self._closed = False
        self._resolver = threading.Thread(target=self._resolve_loop, daemon=True,
                                          name="pyruntime-serve-resolver")
        self._resolver.start()
        _OPEN.add(self)

    # ------------------------------------------------------------ requests
    def _prepare(self, x: np.ndarray) -> np.ndarray:
        """The Session's input check and float32 conversion (the balancer checked the
        shape already); a request bigger than every batch (it runs alone) must fit in
        memory."""
        if x.dtype is not _F32 or not x.flags.c_contiguous:
            x = self._sess.spec.array(0, x)
        if x.shape[0] > self._max_cap:
            self._sess.arena_bytes(x.shape[0])   # ShapeError when too large
        return x

    def _result(self, outs: list[np.ndarray]) -> Any:
        return outs[0] if len(outs) == 1 else dict(zip(self._out_names, outs))

    def infer(self, x: np.ndarray, timeout: float | None, priority: int) -> Any:
        t = self.engine.submit(self._prepare(x), timeout, priority, False, True)
        status, message, outs = t.result()
        if status == _OK:
            return self._result(outs)
        raise _error(status, message)

    def submit(self, x: np.ndarray, timeout: float | None, priority: int) -> Future:
        x = self._prepare(x)
        fut: Future = Future()
        with self._flock:
            t = self.engine.submit(x, timeout, priority, True)
            self._futures[t.seq] = (fut, t)
        fut.add_done_callback(lambda f: f.cancelled() and t.cancel())
        return fut

    def _resolve_loop(self) -> None:
        while True:
            seqs = self.engine.completed(0.2)
            for seq in seqs:
                with self._flock:
                    fut, t = self._futures.pop(seq)
                try:
                    t.wait()                     # done is signalled just after the report
                    status, message, outs = t.outcome()
                    if fut.cancelled():
                        continue
                    if status == _OK:
                        fut.set_result(self._result(outs))
                    else:
                        fut.set_exception(_error(status, message))
                except InvalidStateError:      # cancelled by its caller meanwhile
                    pass
                except BaseException as e:     # never leave a future hanging
                    try:
                        fut.set_exception(e)
                    except InvalidStateError:
                        pass
            if not seqs and self._closed:
                with self._flock:
                    if not self._futures:
                        return

    def close(self, drain: bool) -> None:
        self.engine.close(drain)    # every request ends; futures are reported
        self._closed = True
        _OPEN.discard(self)
        if self._resolver is not threading.current_thread():
            self._resolver.join()

    # ------------------------------------------------------------ metrics
    def metrics(self) -> tuple[dict[str, int], list[Metrics], list[bool], dict[str, int]]:
        """(overall counts, per-replica Metrics, in service, gauges) from the engine."""
        s = self.engine.stats()
        reps = []
        for d in s["replicas"]:
            m = Metrics()
            m.counts = dict(d["counts"])
            for attr in ("queue", "compute", "latency", "batch"):
                samples, count, total = d[attr]
                ser = Series()
                ser.samples.extend(samples.tolist())
                ser.count, ser.total = int(count), float(total)
                setattr(m, attr, ser)
            reps.append(m)
        gauges = {k: int(s[k]) for k in ("submitted", "overloaded", "queued", "running",
                                         "pending")}
        return dict(s["overall"]["counts"]), reps, [bool(v) for v in s["in_service"]], gauges
