"""One queued request and the packing of requests into a batch and back."""

from __future__ import annotations

from _thread import allocate_lock as _allocate_lock
from concurrent.futures import Future, InvalidStateError
from typing import Any

import numpy as np

QUEUED, TAKEN, DONE = 0, 1, 2


class Request:
    """A caller's array (first dim = rows), or dict of arrays for a model with several
    inputs, on its way through the balancer.

    `key` (trailing shapes, dtypes; input names) decides which requests may share a
    batch: only requests with equal keys are concatenated."""

    __slots__ = ("x", "rows", "key", "future", "deadline", "priority", "seq", "t_submit",
                 "t_start", "attempts", "failed_on", "state", "replica", "started")

    def __init__(self, x: Any, future: Future, deadline: float | None,
                 priority: int, seq: int, t_submit: float) -> None:
        self.x = x
        if isinstance(x, dict):   # several inputs: the same rows in each
            self.rows = int(next(iter(x.values())).shape[0])
            self.key = tuple(sorted((k, v.shape[1:], v.dtype.str) for k, v in x.items()))
        else:
            self.rows = int(x.shape[0])
            self.key = (x.shape[1:], x.dtype)
        self.future = future
        self.deadline = deadline
        self.priority = priority
        self.seq = seq
        self.t_submit = t_submit
        self.t_start: float | None = None   # first time its compute started
        self.attempts = 0                   # failed tries so far
        self.failed_on: set[int] = set()    # replicas it failed on
        self.state = QUEUED
        self.replica = -1                   # replica it is routed to / running on
        self.started = False                # future moved to RUNNING


def pack(reqs: list[Request]) -> Any:
    """The batch input: requests' rows stacked in order (no copy for one request); per
    input name for dict requests (requests in a batch share their key, so their names)."""
    if len(reqs) == 1:
        return reqs[0].x
    if isinstance(reqs[0].x, dict):
        return {k: np.concatenate([r.x[k] for r in reqs], axis=0) for k in reqs[0].x}
    return np.concatenate([r.x for r in reqs], axis=0)


def first_rows(x: Any, n: int) -> Any:
    """A copy of the first `n` rows of a request (array or dict of arrays)."""
    if isinstance(x, dict):
        return {k: np.array(v[:n], copy=True) for k, v in x.items()}
    return np.array(x[:n], copy=True)


def split(y: Any, reqs: list[Request]) -> list[Any]:
    """Split a replica's batch output back per request, in order. The output may be one
    array or a dict/tuple/list of arrays, each with the batch's rows as first dim;
    anything else raises TypeError/ValueError (a replica fault)."""
    if len(reqs) == 1 and type(y) is np.ndarray and y.ndim and y.shape[0] == reqs[0].rows:
        return [y]      # the common low-load case, without the general checks
    total = sum(r.rows for r in reqs)
    bounds = []
    start = 0
    for r in reqs:
        bounds.append((start, start + r.rows))
        start += r.rows

    def check(a: Any, what: str) -> np.ndarray:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"replica output{what}: expected a numpy array, got {type(a).__name__}")
        if a.ndim == 0 or a.shape[0] != total:
            raise ValueError(f"replica output{what}: expected first dim {total} (the batch "
                             f"rows), got shape {a.shape}")
        return a

    if isinstance(y, dict):
        ys = {k: check(v, f" {k!r}") for k, v in y.items()}
        return [{k: v[a:b] for k, v in ys.items()} for a, b in bounds]
    if isinstance(y, (tuple, list)):
        ys = [check(v, f" [{i}]") for i, v in enumerate(y)]
        return [type(y)(v[a:b] for v in ys) for a, b in bounds]
    y = check(y, "")
    if len(reqs) == 1:
        return [y]
    return [y[a:b] for a, b in bounds]


class Waiter:
    """The result slot of a blocking `infer`: one lock instead of a Future's condition,
    which matters at tens of thousands of requests per second. Implements the part of
    the Future interface the balancer uses; set twice -> InvalidStateError."""

    __slots__ = ("_lock", "_value", "_is_exc", "_done")

    def __init__(self) -> None:
        self._lock = _allocate_lock()
        self._lock.acquire()
        self._done = False
        self._value: Any = None
        self._is_exc = False

    def set_running_or_notify_cancel(self) -> bool:
        return True

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return self._done

    def _set(self, v: Any, is_exc: bool) -> None:
        if self._done:
            raise InvalidStateError("result already set")
        self._value, self._is_exc, self._done = v, is_exc, True
        self._lock.release()

    def set_result(self, v: Any) -> None:
        self._set(v, False)

    def set_exception(self, e: BaseException) -> None:
        self._set(e, True)

    def result(self) -> Any:
        """Block until set; return the result or raise the error."""
        if not self._done:
            self._lock.acquire()
            self._lock.release()
        if self._is_exc:
            raise self._value
        return self._value
