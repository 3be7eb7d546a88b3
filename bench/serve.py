"""Serving benchmark (issue 4): rt.serve.LoadBalancer on an MLP 784-512-256-10.

1. 1-row requests from many client threads: no batching (max_batch_size=1) vs dynamic
   batching, both with the default layout (one 1-thread replica per CPU): throughput
   and client-side p50/p99 latency. Target: dynamic batching >= 3x the throughput.
   Both run on the native engine; the same pair with Python worker threads
   (engine="python") is shown for reference.
2. The balancer's own overhead at low load: one client calling `lb.infer(x)` (1 row)
   vs calling `session.run(x)` directly on the same Session. Target: p50 difference
   under 50 us.
3. 64-row requests (compute-bound) from several clients: 1 vs 2 replicas of 1 thread.
   Target: >= 1.7x throughput (the Session releases the GIL, so replicas run in
   parallel).

"CPU cores used" is this process's CPU time over wall time in each case: on a shared
machine it shows how much of the CPUs the bench really got.

Cases are timed in alternating blocks (A B B A ...) so drift in machine load hits both
sides; medians over blocks are reported. Prints a table, writes JSON to bench/results/.

    PYTHONPATH=. python bench/serve.py [--block-s 2] [--blocks 3] [--clients 16] [--no-progress]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

import pyruntime as rt
from pyruntime import serve

try:
    from tqdm import tqdm
except ImportError:  # progress bars are optional
    tqdm = None


def load_avg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def run_clients(call: Callable[[], object], clients: int, seconds: float) -> dict:
    """`clients` threads call `call()` back to back for `seconds`; client latencies."""
    stop = threading.Event()
    lats: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []

    def client(k: int) -> None:
        mine = lats[k]
        pc = time.perf_counter
        try:
            while not stop.is_set():
                t = pc()
                call()
                mine.append(pc() - t)
        except BaseException as e:  # reported, not hidden
            errors.append(e)

    ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    c0 = time.process_time()
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if errors:
        raise RuntimeError(f"client failed: {errors[0]!r}") from errors[0]
    allv = np.array([v for m in lats for v in m])
    return {"n": int(allv.size), "seconds": dt, "lat": allv, "cores": cpu / dt}


def alternating(cases: dict[str, Callable[[], dict]], blocks: int, bar) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {k: [] for k in cases}
    for b in range(blocks):
        order = list(cases.items())
        if b % 2:
            order.reverse()
        for name, fn in order:
            time.sleep(0.05)
            out[name].append(fn())
            if bar is not None:
                bar.update(1)
    return out


def summarize(blocks: list[dict], rows: int) -> dict:
    thr = [b["n"] / b["seconds"] for b in blocks]
    lat = np.concatenate([b["lat"] for b in blocks])
    return {"req_per_s": statistics.median(thr), "rows_per_s": statistics.median(thr) * rows,
            "p50_us": float(np.percentile(lat, 50)) * 1e6,
            "p99_us": float(np.percentile(lat, 99)) * 1e6, "requests": int(lat.size),
            "blocks_req_per_s": [round(t, 1) for t in thr],
            "cores_used": statistics.median(b["cores"] for b in blocks)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--block-s", type=float, default=2.0, help="seconds per timed block")
    ap.add_argument("--blocks", type=int, default=3, help="alternating blocks per case")
    ap.add_argument("--clients", type=int, default=16, help="client threads (1-row case)")
    ap.add_argument("--clients-64", type=int, default=4, help="client threads (64-row case)")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-delay-ms", type=float, default=2.0)
    ap.add_argument("--overhead-calls", type=int, default=3000, help="calls per overhead block")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()

    g = rt.zoo.mlp((784, 512, 256, 10))
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((1, 784)).astype(np.float32)
    x64 = rng.standard_normal((64, 784)).astype(np.float32)
    n_rep, n_thr = serve.default_layout(None, None)
    total = a.blocks * (4 + 2 + 2)
    bar = tqdm(total=total, desc="serve bench", disable=a.no_progress) if tqdm else None
    load_start = load_avg()
    results: dict = {}

    # 1. no batching vs dynamic batching, 1-row requests, many clients
    nob = serve.LoadBalancer(g, max_batch_size=1, max_delay_ms=0)
    dyn = serve.LoadBalancer(g, max_batch_size=a.max_batch, max_delay_ms=a.max_delay_ms)
    # the same two with Python worker threads instead of the native engine, for reference
    nob_py = serve.LoadBalancer(g, max_batch_size=1, max_delay_ms=0, engine="python")
    dyn_py = serve.LoadBalancer(g, max_batch_size=a.max_batch, max_delay_ms=a.max_delay_ms,
                                engine="python")
    lbs = {"no batching": nob, "dynamic batching": dyn, "no batching (Python workers)": nob_py,
           "dynamic batching (Python workers)": dyn_py}
    for lb in lbs.values():
        for _ in range(50):
            lb.infer(x1)
    r = alternating({k: (lambda lb=lb: run_clients(lambda: lb.infer(x1), a.clients, a.block_s))
                     for k, lb in lbs.items()}, a.blocks, bar)
    summ = {}
    for k, lb in lbs.items():
        summ[k] = summarize(r[k], 1)
        summ[k]["mean_batch_rows"] = lb.stats()["overall"]["batch_rows"]["mean"]
        summ[k]["engine"] = "python" if lb._native is None else "native"
        lb.close()
    s_nob, s_dyn = summ["no batching"], summ["dynamic batching"]
    results["batching"] = {"no_batching": s_nob, "dynamic": s_dyn,
                           "speedup": s_dyn["req_per_s"] / s_nob["req_per_s"], "target": 3.0,
                           "python_workers": {"no_batching": summ["no batching (Python workers)"],
                                              "dynamic": summ["dynamic batching (Python workers)"]}}

    # 2. overhead at low load: one client, lb.infer vs session.run on the same Session
    sess = rt.compile(g, threads=1)
    lb1 = serve.LoadBalancer([sess], max_batch_size=a.max_batch, max_delay_ms=a.max_delay_ms)

    def serial(fn: Callable[[], object]) -> Callable[[], dict]:
        def block() -> dict:
            lat = np.empty(a.overhead_calls)
            pc = time.perf_counter
            c0 = time.process_time()
            t0 = pc()
            for i in range(a.overhead_calls):
                t = pc()
                fn()
                lat[i] = pc() - t
            dt = pc() - t0
            return {"n": a.overhead_calls, "seconds": dt, "lat": lat,
                    "cores": (time.process_time() - c0) / dt}
        return block

    for _ in range(200):
        sess.run(x1)
        lb1.infer(x1)
    r = alternating({"direct": serial(lambda: sess.run(x1)), "lb": serial(lambda: lb1.infer(x1))},
                    a.blocks, bar)
    lb1.close()
    p50_d = statistics.median(float(np.median(b["lat"])) for b in r["direct"]) * 1e6
    p50_l = statistics.median(float(np.median(b["lat"])) for b in r["lb"]) * 1e6
    results["overhead"] = {"direct_p50_us": p50_d, "lb_p50_us": p50_l,
                           "overhead_p50_us": p50_l - p50_d, "target_us": 50.0,
                           "direct": summarize(r["direct"], 1), "lb": summarize(r["lb"], 1)}

    # 3. 64-row requests: 1 vs 2 replicas of 1 thread
    one = serve.LoadBalancer(g, replicas=1, threads_per_replica=1, max_batch_size=64,
                             max_delay_ms=0)
    two = serve.LoadBalancer(g, replicas=2, threads_per_replica=1, max_batch_size=64,
                             max_delay_ms=0)
    for lb in (one, two):
        for _ in range(10):
            lb.infer(x64)
    r = alternating({"1x1": lambda: run_clients(lambda: one.infer(x64), a.clients_64, a.block_s),
                     "2x1": lambda: run_clients(lambda: two.infer(x64), a.clients_64, a.block_s)},
                    a.blocks, bar)
    one.close()
    two.close()
    s1, s2 = summarize(r["1x1"], 64), summarize(r["2x1"], 64)
    results["replicas"] = {"1x1": s1, "2x1": s2, "speedup": s2["req_per_s"] / s1["req_per_s"],
                           "target": 1.7}
    if bar is not None:
        bar.close()

    machine = {"platform": platform.platform(), "processor": platform.processor(),
               "cpus": os.cpu_count(), "isa": sess.isa, "python": platform.python_version(),
               "load_avg_start": load_start, "load_avg_end": load_avg()}
    settings = {"block_s": a.block_s, "blocks": a.blocks, "clients": a.clients,
                "clients_64": a.clients_64, "max_batch": a.max_batch,
                "max_delay_ms": a.max_delay_ms, "default_layout": [n_rep, n_thr]}

    b, o, rp = results["batching"], results["overhead"], results["replicas"]
    bp = b["python_workers"]
    rows = [
        ("1-row, no batching", f"{b['no_batching']['req_per_s']:,.0f} req/s",
         f"{b['no_batching']['p50_us']:,.0f}", f"{b['no_batching']['p99_us']:,.0f}", "", ""),
        ("1-row, dynamic batching", f"{b['dynamic']['req_per_s']:,.0f} req/s",
         f"{b['dynamic']['p50_us']:,.0f}", f"{b['dynamic']['p99_us']:,.0f}",
         f"{b['speedup']:.2f}x", ">= 3x"),
        ("1-row, no batching, Python workers", f"{bp['no_batching']['req_per_s']:,.0f} req/s",
         f"{bp['no_batching']['p50_us']:,.0f}", f"{bp['no_batching']['p99_us']:,.0f}", "", ""),
        ("1-row, dynamic batching, Python workers", f"{bp['dynamic']['req_per_s']:,.0f} req/s",
         f"{bp['dynamic']['p50_us']:,.0f}", f"{bp['dynamic']['p99_us']:,.0f}",
         f"{bp['dynamic']['req_per_s'] / bp['no_batching']['req_per_s']:.2f}x", ""),
        ("low load, session.run", f"{o['direct']['req_per_s']:,.0f} req/s",
         f"{o['direct_p50_us']:,.1f}", f"{o['direct']['p99_us']:,.0f}", "", ""),
        ("low load, lb.infer", f"{o['lb']['req_per_s']:,.0f} req/s", f"{o['lb_p50_us']:,.1f}",
         f"{o['lb']['p99_us']:,.0f}", f"+{o['overhead_p50_us']:.1f} us p50", "< 50 us"),
        ("64-row, 1 replica x 1 thread", f"{rp['1x1']['rows_per_s']:,.0f} rows/s",
         f"{rp['1x1']['p50_us']:,.0f}", f"{rp['1x1']['p99_us']:,.0f}", "", ""),
        ("64-row, 2 replicas x 1 thread", f"{rp['2x1']['rows_per_s']:,.0f} rows/s",
         f"{rp['2x1']['p50_us']:,.0f}", f"{rp['2x1']['p99_us']:,.0f}",
         f"{rp['speedup']:.2f}x", ">= 1.7x"),
    ]
    cores = [b["no_batching"], b["dynamic"], bp["no_batching"], bp["dynamic"], o["direct"],
             o["lb"], rp["1x1"], rp["2x1"]]
    rows = [row[:4] + (f"{c['cores_used']:.2f}",) + row[4:] for row, c in zip(rows, cores)]
    head = ("case", "throughput", "p50 us", "p99 us", "CPU cores used", "result", "target")
    print(f"\nMLP 784-512-256-10, {os.cpu_count()} CPUs ({sess.isa}), default layout "
          f"{n_rep} x {n_thr}; clients {a.clients} (1-row) / {a.clients_64} (64-row); "
          f"max_batch {a.max_batch}, max_delay {a.max_delay_ms} ms; load avg "
          f"{load_start} -> {machine['load_avg_end']}")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"mean batch rows: no batching {b['no_batching']['mean_batch_rows']:.1f}, "
          f"dynamic {b['dynamic']['mean_batch_rows']:.1f} (Python workers: "
          f"{bp['dynamic']['mean_batch_rows']:.1f}); engine of the Graph cases: "
          f"{s_dyn['engine']}")

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"serve-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"machine": machine, "settings": settings, "results": results},
                               indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
