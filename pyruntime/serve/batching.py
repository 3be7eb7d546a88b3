"""The request queue a replica takes its batches from (not locked: the balancer holds
its lock around every call).

Order: higher priority first, then oldest first. A batch is the first eligible request
plus the following eligible requests with the same key (trailing shape, dtype) that
still fit in `max_rows`; a request larger than `max_rows` alone forms its own batch.
Requests that expired or were cancelled are removed lazily as they are met."""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterator

from .request import DONE, QUEUED, TAKEN, Request


class BatchQueue:
    def __init__(self) -> None:
        self._lanes: dict[int, deque[Request]] = {}
        self._prios: list[int] = []   # descending
        self.size = 0                 # live (QUEUED) requests
        self._dead = 0                # finished requests still sitting in lanes

    def __len__(self) -> int:
        return self.size

    def push(self, req: Request, front: bool = False) -> None:
        """Queue `req` (at the front of its priority lane for a retry: it is older)."""
        lane = self._lanes.get(req.priority)
        if lane is None:
            lane = self._lanes[req.priority] = deque()
            self._prios.append(req.priority)
            self._prios.sort(reverse=True)
        req.state = QUEUED
        (lane.appendleft if front else lane.append)(req)
        self.size += 1

    def forget(self, req: Request) -> None:
        """`req` (queued here) was finished elsewhere (expired, cancelled): stop counting it."""
        self.size -= 1
        self._dead += 1
        if self._dead > 64 and self._dead > self.size:
            self._compact()

    def _compact(self) -> None:
        for p in list(self._prios):
            lane = self._lanes[p]
            live = deque(r for r in lane if r.state == QUEUED)
            if live:
                self._lanes[p] = live
            else:
                del self._lanes[p]
                self._prios.remove(p)
        self._dead = 0

    def __iter__(self) -> Iterator[Request]:
        for p in self._prios:
            for r in self._lanes[p]:
                if r.state == QUEUED:
                    yield r

    def take(self, max_rows: int, eligible: Callable[[Request], bool] | None = None,
             key: tuple | None = None, now: float | None = None
             ) -> tuple[list[Request], list[Request]]:
        """Remove and return (batch, expired): a batch of up to `max_rows` rows (see the
        module doc), and the requests found past their deadline on the way (state DONE,
        for the caller to fail). `key` restricts the batch to that key (to add to a batch
        being filled). `eligible` is asked only about retried requests (the others may
        run anywhere)."""
        filling = key is not None   # adding to a batch: never past max_rows
        taken: list[Request] = []
        expired: list[Request] = []
        rows = 0
        for p in list(self._prios):
            lane = self._lanes[p]
            keep: list[Request] | None = None   # lane entries kept, once one is taken
            n = len(lane)
            i = 0
            while i < n:
                r = lane[i]
                i += 1
                if r.state != QUEUED:
                    self._dead -= 1
                    if keep is None:
                        keep = list(lane)[: i - 1]
                    continue
                if now is not None and r.deadline is not None and now >= r.deadline:
                    r.state = DONE
                    self.size -= 1
                    expired.append(r)
                    if keep is None:
                        keep = list(lane)[: i - 1]
                    continue
                ok = rows < max_rows and (key is None or r.key == key) \
                    and (not r.failed_on or eligible is None or eligible(r)) \
                    and (rows + r.rows <= max_rows or (not taken and not filling))
                if ok:
                    if key is None:
                        key = r.key
                    r.state = TAKEN
                    self.size -= 1
                    taken.append(r)
                    rows += r.rows
                    if keep is None:
                        keep = list(lane)[: i - 1]
                    if rows >= max_rows:
                        break
                elif keep is not None:
                    keep.append(r)
            if keep is not None:
                keep.extend(list(lane)[i:])
                if keep:
                    self._lanes[p] = deque(keep)
                else:
                    del self._lanes[p]
                    self._prios.remove(p)
            if rows >= max_rows:
                break
        return taken, expired

    def take_all(self) -> list[Request]:
        """Remove and return every queued request (for close or re-routing)."""
        out = [r for r in self]
        for r in out:
            r.state = TAKEN
        self._lanes.clear()
        self._prios.clear()
        self.size = 0
        self._dead = 0
        return out


class BatchCost:
    """Online fit of a replica's batch compute time as `fixed + per_row * rows`
    (least squares with exponential forgetting). `fixed` is the per-batch cost that
    waiting to fill a batch can amortize: a replica never idles longer than that."""

    __slots__ = ("_n", "_b", "_bb", "_t", "_bt")

    def __init__(self) -> None:
        self._n = self._b = self._bb = self._t = self._bt = 0.0

    def add(self, rows: int, seconds: float, decay: float = 0.98) -> None:
        self._n = decay * self._n + 1.0
        self._b = decay * self._b + rows
        self._bb = decay * self._bb + rows * rows
        self._t = decay * self._t + seconds
        self._bt = decay * self._bt + rows * seconds

    def fixed(self) -> float:
        """Estimated per-batch seconds (0 before any sample). With too little spread in
        batch sizes to fit a slope, half the mean batch time."""
        n = self._n
        if n == 0.0:
            return 0.0
        mb, mt = self._b / n, self._t / n
        var = self._bb / n - mb * mb
        if var < 0.25:
            return 0.5 * mt
        slope = max(0.0, (self._bt / n - mb * mt) / var)
        return min(mt, max(0.0, mt - slope * mb))
