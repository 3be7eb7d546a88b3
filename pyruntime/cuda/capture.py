"""The per-batch-size cache of a CUDA Session: one captured CUDA graph (with its arena
and input/output buffers) per batch size seen, built on first use and replayed after.

Capturing costs milliseconds and device memory, so the cache holds at most `capacity`
entries and drops the least recently used (calling its `close()`). Threads: a batch size
is built once even when several threads ask for it at the same moment (the others wait
for that build, and get its exception if it fails; the next call tries again), and a
build never blocks requests for other batch sizes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Callable, Generic, TypeVar

from ..errors import InputError

__all__ = ["CaptureCache"]

T = TypeVar("T")


class CaptureCache(Generic[T]):
    """`get(batch)` returns `build(batch)`'s result, built once per batch size."""

    def __init__(self, build: Callable[[int], T], capacity: int = 8) -> None:
        if not callable(build):
            raise InputError(f"CaptureCache: build must be callable, got {type(build).__name__}")
        if not (isinstance(capacity, int) and capacity >= 1):
            raise InputError(f"CaptureCache: capacity must be an int >= 1, got {capacity!r}")
        self._build = build
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, Future] = OrderedDict()

    def get(self, batch: int) -> T:
        if not (isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1):
            raise InputError(f"CaptureCache: batch must be an int >= 1, got {batch!r}")
        with self._lock:
            fut = self._entries.get(batch)
            owner = fut is None
            if owner:
                fut = Future()
                self._entries[batch] = fut
            self._entries.move_to_end(batch)
            evicted = self._evict_locked()
        for old in evicted:
            _close(old)
        if not owner:
            return fut.result()
        try:
            value = self._build(batch)
        except BaseException as e:  # waiting threads get it too; the next call retries
            with self._lock:
                if self._entries.get(batch) is fut:
                    del self._entries[batch]
            fut.set_exception(e)
            raise
        fut.set_result(value)
        return value

    def _evict_locked(self) -> list[Future]:
        """Least recently used finished entries beyond capacity (one being built stays)."""
        out = []
        for key in list(self._entries):
            if len(self._entries) <= self._capacity:
                break
            f = self._entries[key]
            if f.done():
                del self._entries[key]
                out.append(f)
        return out

    def sizes(self) -> list[int]:
        """Batch sizes held, least recently used first."""
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        """Drop every finished entry (closing it)."""
        with self._lock:
            done = [k for k, f in self._entries.items() if f.done()]
            futs = [self._entries.pop(k) for k in done]
        for f in futs:
            _close(f)


def _close(fut: Future) -> None:
    if fut.exception() is None:
        close = getattr(fut.result(), "close", None)
        if callable(close):
            close()
