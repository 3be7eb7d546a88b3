"""Counters and recent-sample percentiles for the balancer, per replica and overall,
and their Prometheus text rendering. Updated under the balancer's lock."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

#: recent samples kept per series for the percentiles
WINDOW = 8192
QUANTILES = (0.5, 0.9, 0.99)


class Series:
    """Recent samples of one quantity (seconds or rows) and their running count/sum."""
    __slots__ = ("samples", "count", "total")

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=WINDOW)
        self.count = 0
        self.total = 0.0

    @classmethod
    def merged(cls, parts: list["Series"]) -> "Series":
        """One series holding every part's recent samples and totals (overall view)."""
        out = cls()
        out.samples = deque((v for p in parts for v in p.samples), maxlen=None)
        out.count = sum(p.count for p in parts)
        out.total = sum(p.total for p in parts)
        return out

    def copy(self) -> "Series":
        out = Series()
        out.samples.extend(self.samples)
        out.count, out.total = self.count, self.total
        return out

    def add(self, v: float) -> None:
        self.samples.append(v)
        self.count += 1
        self.total += v

    def summary(self, scale: float = 1.0) -> dict[str, float]:
        """count, mean, p50, p90, p99, max over the recent window (times `scale`)."""
        if not self.samples:
            return {"count": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
        a = np.fromiter(self.samples, dtype=np.float64, count=len(self.samples))
        p = np.quantile(a, QUANTILES)
        return {"count": self.count, "mean": self.total / self.count * scale,
                "p50": float(p[0]) * scale, "p90": float(p[1]) * scale,
                "p99": float(p[2]) * scale, "max": float(a.max()) * scale}


COUNTERS = ("requests", "rows", "batches", "completed", "failures", "retries",
            "deadline_exceeded", "replica_failed", "closed", "cancelled", "evictions",
            "probes", "recoveries")


class Metrics:
    """One scope (a replica, or the whole balancer)."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.queue = Series()     # submit -> compute start, seconds
        self.compute = Series()   # one batch's run(), seconds
        self.latency = Series()   # submit -> result, seconds (successes)
        self.batch = Series()     # rows per batch

    @classmethod
    def overall(cls, counts: dict[str, int], parts: list["Metrics"]) -> "Metrics":
        """The balancer-wide view: its own counters, series merged from the replicas'
        (samples are recorded once, per replica, to keep the per-request cost low)."""
        out = cls()
        out.counts = dict(counts)
        for attr in ("queue", "compute", "latency", "batch"):
            setattr(out, attr, Series.merged([getattr(p, attr) for p in parts]))
        return out

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.counts)
        d["queue_ms"] = self.queue.summary(1e3)
        d["compute_ms"] = self.compute.summary(1e3)
        d["latency_ms"] = self.latency.summary(1e3)
        d["batch_rows"] = self.batch.summary()
        return d


def prometheus(overall: Metrics, replicas: list[Metrics], gauges: dict[str, float],
               replica_gauges: list[dict[str, float]], prefix: str = "pyruntime_serve"
               ) -> str:
    """Prometheus text exposition (version 0.0.4) of every counter, gauge and summary."""
    lines: list[str] = []

    def scopes():
        yield "", overall
        for i, m in enumerate(replicas):
            yield f'replica="{i}"', m

    for c in COUNTERS:
        name = f"{prefix}_{c}_total"
        lines.append(f"# TYPE {name} counter")
        for lab, m in scopes():
            lines.append(f"{name}{{{lab}}} {m.counts[c]}" if lab else f"{name} {m.counts[c]}")
    for g, v in gauges.items():
        kind = "counter" if g.endswith("_total") else "gauge"
        lines.append(f"# TYPE {prefix}_{g} {kind}")
        lines.append(f"{prefix}_{g} {v}")
    for g in (replica_gauges[0] if replica_gauges else {}):
        lines.append(f"# TYPE {prefix}_replica_{g} gauge")
        for i, rg in enumerate(replica_gauges):
            lines.append(f'{prefix}_replica_{g}{{replica="{i}"}} {rg[g]}')
    for attr, name in (("queue", "queue_seconds"), ("compute", "compute_seconds"),
                       ("latency", "latency_seconds"), ("batch", "batch_rows")):
        full = f"{prefix}_{name}"
        lines.append(f"# TYPE {full} summary")
        for lab, m in scopes():
            s: Series = getattr(m, attr)
            if s.samples:
                a = np.fromiter(s.samples, dtype=np.float64, count=len(s.samples))
                for q, v in zip(QUANTILES, np.quantile(a, QUANTILES)):
                    sep = "," if lab else ""
                    lines.append(f'{full}{{{lab}{sep}quantile="{q}"}} {float(v):.9g}')
            suffix = f"{{{lab}}}" if lab else ""
            lines.append(f"{full}_sum{suffix} {s.total:.9g}")
            lines.append(f"{full}_count{suffix} {s.count}")
    return "\n".join(lines) + "\n"
