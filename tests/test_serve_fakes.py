"""Fake replicas for the serving tests: they record every batch they run, can be held
at a gate, slowed, or made to fail. Request ids ride in the data: a request is
np.full((rows, width), id), and the fake returns x * 2."""

from __future__ import annotations

import threading
import time

import numpy as np

WAIT = 10.0  # seconds: bound on every wait in the serving tests


def req(i: float, rows: int = 1, width: int = 3, dtype=np.float32) -> np.ndarray:
    return np.full((rows, width), i, dtype=dtype)


class Fake:
    """run(x) -> x * 2, recording (start time, ids, rows, trailing shape, dtype)."""

    def __init__(self, delay: float = 0.0, hold_first: bool = False,
                 fail_p: float = 0.0, seed: int = 0) -> None:
        self.delay = delay
        self.batches: list[tuple[float, list[float], int, tuple, str]] = []
        self.entered = threading.Event()     # set once run() has been called
        self.gate = threading.Event()        # opened to release a held call
        if not hold_first:
            self.gate.set()
        self.fail_p = fail_p
        self.broken = False
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def run(self, x: np.ndarray) -> np.ndarray:
        t = time.monotonic()
        with self._lock:
            self.batches.append((t, sorted(set(x[:, 0].tolist())), x.shape[0],
                                 x.shape[1:], x.dtype.str))
            fail = self.broken or (self.fail_p > 0 and self._rng.random() < self.fail_p)
        self.entered.set()
        if not self.gate.wait(WAIT):
            raise RuntimeError("test gate never opened")
        if self.delay:
            time.sleep(self.delay)
        if fail:
            raise RuntimeError("injected replica fault")
        return x * 2

    def ids(self) -> list[float]:
        with self._lock:
            return [i for b in self.batches for i in b[1]]

    def rows(self) -> list[int]:
        with self._lock:
            return [b[2] for b in self.batches]


def wait_until(pred, timeout: float = WAIT, step: float = 0.005) -> bool:
    """Poll `pred` every `step` s until true or `timeout` s passed (bounded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()
