"""Timing engines fairly on a few shared cores: alternating blocks of calls.

onnxruntime's and pyruntime's worker threads (and OpenBLAS's) spin for a while after a
call; timed call by call in turn, one engine's spinning threads steal the other's cores
(onnxruntime against itself read 0.55x to 1.69x that way on 2 cores). So each engine runs
a block of calls while the others sleep, with a pause between blocks that outlasts the
spinning, and the order flips every round. Ratios are taken per round (paired), so a
burst of steal from other guests hits both sides of a ratio alike."""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Callable

__all__ = ["Samples", "alternate", "paired_ratio", "percentile", "cpu_name"]


def cpu_name() -> str:
    """This CPU's model name (every figure names its machine)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Samples:
    """Per-call seconds of one engine, and its mean per block (one block per round)."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.blocks: list[float] = []

    def p(self, q: float) -> float:
        return percentile(self.calls, q)


def percentile(xs: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank of sorted xs (NaN when empty)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))]


def alternate(engines: dict[str, Callable[[], object]], *, rounds: int, calls: int,
              pause: float = 0.2, warmup: int = 3, min_block_s: float = 0.0,
              progress: Callable[[int], None] | None = None) -> dict[str, Samples]:
    """Time every engine in `rounds` rounds of one block each (module doc): a block is at
    least `calls` calls and `min_block_s` seconds; `progress(1)` after each block."""
    for fn in engines.values():
        for _ in range(warmup):
            fn()
    out = {k: Samples() for k in engines}
    for r in range(rounds):
        order = list(engines.items())
        if r % 2:
            order.reverse()
        for name, fn in order:
            time.sleep(pause)
            s = out[name]
            t_block = time.perf_counter()
            n = 0
            while n < calls or time.perf_counter() - t_block < min_block_s:
                t = time.perf_counter()
                fn()
                s.calls.append(time.perf_counter() - t)
                n += 1
            s.blocks.append((time.perf_counter() - t_block) / n)
            if progress is not None:
                progress(1)
    return out


def paired_ratio(a: Samples, b: Samples) -> float:
    """Median over rounds of a's block mean over b's (a / b: < 1 means a is faster)."""
    return statistics.median(x / y for x, y in zip(a.blocks, b.blocks))
