"""Prometheus metrics of the HTTP server, through prometheus-client: requests by model
and outcome and the end-to-end latency (observed per request by the server), and per
model and replica the balancer's queue and compute times and batch sizes as histograms.

The balancers keep the recent samples of each series (oldest first) and running counts;
`BalancerCollector` turns the samples that arrived since its last look into cumulative
histogram buckets (at every scrape and once a second from a poller thread). `_count` and
`_sum` are exact; the buckets are exact while fewer than the balancer's window (8192
samples per replica and series) arrive between two looks, and beyond that the lost
samples are counted in the buckets in the proportions of the ones seen."""

from __future__ import annotations

import bisect
import threading
from typing import Any, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, \
    HistogramMetricFamily

__all__ = ["ServerMetrics", "BalancerCollector", "LATENCY_BUCKETS", "BATCH_BUCKETS",
           "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: outcomes of a request, as the `outcome` label says them
OUTCOMES = ("ok", "bad_request", "not_found", "too_large", "overloaded", "timeout",
            "failed", "disconnected")


class _Hist:
    """Cumulative buckets of one series, fed with the samples new since the last look."""
    __slots__ = ("bounds", "counts", "sum", "seen")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = list(bounds)
        self.counts = [0] * (len(bounds) + 1)     # per bucket (not cumulative); last: +Inf
        self.sum = 0.0
        self.seen = 0

    def feed(self, samples: Sequence[float], count: int, total: float) -> None:
        new = count - self.seen
        if new <= 0:
            return
        recent = list(samples)[-new:] if samples else []
        add = [0] * len(self.counts)
        for v in recent:
            add[bisect.bisect_left(self.bounds, v)] += 1
        if len(recent) < new:          # more arrived than the window keeps: scale up
            if recent:
                scale = new / len(recent)
                add = [int(a * scale) for a in add]
            add[-1] += new - sum(add)
        for i, a in enumerate(add):
            self.counts[i] += a
        self.seen = count
        self.sum = total

    def buckets(self) -> list[tuple[str, float]]:
        out, acc = [], 0
        for b, c in zip(self.bounds + [float("inf")], self.counts):
            acc += c
            out.append(("+Inf" if b == float("inf") else repr(float(b)), acc))
        return out


class BalancerCollector:
    """Per model and replica: queue, compute and batch-size histograms, rows and batches
    counters, in-service gauge; per model: queued, running batches."""

    SERIES = (("queue", "pyruntime_queue_seconds", LATENCY_BUCKETS,
               "Time from submit to compute start (seconds)"),
              ("compute", "pyruntime_compute_seconds", LATENCY_BUCKETS,
               "Compute time of one batch (seconds)"),
              ("batch", "pyruntime_batch_rows", BATCH_BUCKETS, "Rows per batch"))

    def __init__(self, balancers: dict[str, Any]) -> None:
        self._lbs = balancers
        self._lock = threading.Lock()
        self._hists: dict[tuple[str, int, str], _Hist] = {}
        self._last: dict[str, tuple] = {}

    def update(self) -> None:
        """Pull every balancer's new samples into the buckets."""
        with self._lock:
            for name, lb in self._lbs.items():
                snap = lb.snapshot()
                self._last[name] = snap
                for i, m in enumerate(snap[1]):
                    for attr, _, bounds, _ in self.SERIES:
                        h = self._hists.get((name, i, attr))
                        if h is None:
                            h = self._hists[(name, i, attr)] = _Hist(bounds)
                        s = getattr(m, attr)
                        h.feed(s.samples, s.count, s.total)

    def collect(self) -> Iterable[Any]:
        self.update()
        with self._lock:
            for attr, metric, _, doc in self.SERIES:
                f = HistogramMetricFamily(metric, doc, labels=["model", "replica"])
                for (name, i, a), h in self._hists.items():
                    if a == attr:
                        f.add_metric([name, str(i)], h.buckets(), h.sum)
                yield f
            rows = CounterMetricFamily("pyruntime_rows", "Rows computed",
                                       labels=["model", "replica"])
            batches = CounterMetricFamily("pyruntime_batches", "Batches computed",
                                          labels=["model", "replica"])
            up = GaugeMetricFamily("pyruntime_replica_in_service",
                                   "1 while the replica is in service",
                                   labels=["model", "replica"])
            queued = GaugeMetricFamily("pyruntime_queued_requests", "Requests waiting",
                                       labels=["model"])
            running = GaugeMetricFamily("pyruntime_running_batches", "Batches computing",
                                        labels=["model"])
            for name, (_, parts, in_service, gauges) in self._last.items():
                for i, (m, ok) in enumerate(zip(parts, in_service)):
                    rows.add_metric([name, str(i)], m.counts["rows"])
                    batches.add_metric([name, str(i)], m.counts["batches"])
                    up.add_metric([name, str(i)], int(ok))
                queued.add_metric([name], gauges["queued"])
                running.add_metric([name], gauges["running"])
            yield from (rows, batches, up, queued, running)


class ServerMetrics:
    """The server's registry: its own per-request metrics plus the balancers'."""

    def __init__(self, balancers: dict[str, Any], poll_s: float = 1.0) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter("pyruntime_requests", "Infer requests by model and outcome",
                                 ["model", "outcome"], registry=self.registry)
        self._latency = Histogram("pyruntime_request_seconds",
                                  "End-to-end infer latency in the server, body received to "
                                  "response sent (seconds)", ["model"],
                                  buckets=LATENCY_BUCKETS, registry=self.registry)
        self.collector = BalancerCollector(balancers)
        self.registry.register(self.collector)
        self._count = {(m, o): self._requests.labels(m, o) for m in balancers for o in OUTCOMES}
        self._lat = {m: self._latency.labels(m) for m in balancers}
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, args=(poll_s,), daemon=True,
                                        name="pyruntime-serve-metrics")
        self._poller.start()

    def _poll(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.collector.update()
            except Exception:   # a closing balancer; the next scrape retries
                pass

    def request(self, model: str, outcome: str, seconds: float | None = None) -> None:
        """Count one request (model "" when unknown) and observe its latency."""
        c = self._count.get((model, outcome))
        if c is None:
            c = self._count[(model, outcome)] = self._requests.labels(model, outcome)
        c.inc()
        if seconds is not None and model in self._lat:
            self._lat[model].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def close(self) -> None:
        self._stop.set()
