"""Tail latency at batch 1: p50 and p99 of single calls, pyruntime beside onnxruntime.

    python bench/latency.py                       # MLP and digits CNNs, 1 and 2 threads, quiet
    python bench/latency.py --busy both           # also with a process keeping one core busy
    python bench/latency.py --models mlp --threads 2 --calls 5000

Every call is timed on its own (perf_counter_ns around the Python call, so both engines
pay their Python binding). Engines run in alternating blocks of calls with a pause
between blocks, so neither engine's spinning workers steal the other's cores; the
first calls of each block are warm-up and not counted (after the pause, workers of both
engines have gone to sleep: `--gap-ms` measures that case on purpose instead).

Busy mode starts one `python -c "while True: pass"` process (not pinned: the OS moves
it between cores like any other load) before the timing and always stops it after.

Each model's output is checked against onnxruntime's (np.allclose, rtol=1e-4,
atol=1e-5) before anything is timed; a mismatch stops the run.
Prints a table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

import pyruntime as rt
from pyruntime.graph import Graph
from run import cpu_name, ort_session  # bench/run.py (this script's directory is on sys.path)

RTOL, ATOL = 1e-4, 1e-5


def models() -> dict[str, tuple[Callable[[], Graph], tuple[int, ...]]]:
    """name -> (graph factory, input shape at batch 1)."""
    from pyruntime.train import digits

    return {
        "mlp": (rt.zoo.mlp, (1, 784)),
        "digits_cnn": (digits.teacher_cnn, (1, 1, 8, 8)),
        "digits_student": (digits.student_cnn, (1, 1, 8, 8)),
    }


@contextlib.contextmanager
def busy_core(on: bool) -> Iterator[None]:
    """While active, one extra process keeps one core busy (a Python spin loop)."""
    if not on:
        yield
        return
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it get going
        yield
    finally:
        p.kill()
        p.wait()


Engine = tuple[Callable[[], object], Callable[[], None]]  # (call, setup before a block)


def time_calls(engines: dict[str, Engine], *, calls: int, block: int,
               warm: int, pause: float, gap_s: float) -> dict[str, np.ndarray]:
    """Seconds of each counted call per engine, taken in alternating blocks (the order
    reverses every round)."""
    for fn, setup in engines.values():
        setup()
        for _ in range(200):
            fn()
    out: dict[str, list[float]] = {k: [] for k in engines}
    clock = time.perf_counter_ns
    r = 0
    while min(len(v) for v in out.values()) < calls:
        order = list(engines.items())
        if r % 2:
            order.reverse()
        for name, (fn, setup) in order:
            setup()
            time.sleep(pause)
            buf = out[name]
            for i in range(warm + block):
                if gap_s:
                    time.sleep(gap_s)
                t0 = clock()
                fn()
                dt = clock() - t0
                if i >= warm:
                    buf.append(dt * 1e-9)
        r += 1
    return {k: np.asarray(v[:calls]) for k, v in out.items()}


def cpu_jiffies() -> tuple[float, float]:
    """(busy, steal) seconds of all CPUs since boot, from /proc/stat (Linux)."""
    try:
        f = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan"), float("nan")
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = f[:8]
    return (user + nice + system + irq + softirq) / hz, steal / hz


def own_cpu() -> float:
    """CPU seconds of this process and its waited-for children (the busy loop)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def stats(t: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(t, 50)), "p90": float(np.percentile(t, 90)),
            "p99": float(np.percentile(t, 99)), "p999": float(np.percentile(t, 99.9)),
            "max": float(t.max()), "mean": float(t.mean())}


def pool_setup(variant: str | None) -> Callable[[], None]:
    """A setup that puts the worker pool in `variant` ("SPIN_US" or "SPIN_US:ASIDE",
    e.g. "100:0"); None leaves it as the environment made it."""
    if variant is None:
        return lambda: None
    from pyruntime import _core

    spin, _, aside = variant.partition(":")

    def setup() -> None:
        _core.testing.set_pool_spin_us(float(spin))
        _core.testing.set_pool_step_aside(aside != "0")
    return setup


def run_case(model: str, threads: int, busy: bool, args: argparse.Namespace) -> list[dict]:
    make, shape = models()[model]
    g = make()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sess = rt.compile(g, threads=threads)
    ort = ort_session(g, threads)
    ours, theirs = sess.run(x), ort(x)
    if not np.allclose(ours, theirs, rtol=RTOL, atol=ATOL):
        raise SystemExit(f"{model}: pyruntime's output differs from onnxruntime's "
                         f"(max abs diff {np.max(np.abs(ours - theirs)):.3g}); not timed")
    variants = args.variants or [None]
    engines: dict[str, Engine] = {"onnxruntime": (lambda: ort(x), lambda: None)}
    for v in variants:
        engines[f"pyruntime {v}" if v else "pyruntime"] = (lambda: sess.run(x), pool_setup(v))
    busy0, steal0 = cpu_jiffies()
    own0, wall0 = own_cpu(), time.perf_counter()
    with busy_core(busy):
        t = time_calls(engines, calls=args.calls, block=args.block, warm=args.warm,
                       pause=args.pause, gap_s=args.gap_ms * 1e-3)
    busy1, steal1 = cpu_jiffies()
    wall = time.perf_counter() - wall0
    pool_setup(variants[0])()  # leave the pool as the first variant has it
    # CPU used by other processes (not this one, not the busy loop), in cores: a check
    # that nobody else ran during the measurement.
    others = max(0.0, (busy1 - busy0) - (own_cpu() - own0)) / wall
    base_s = stats(t["onnxruntime"])
    rows = []
    for name in engines:
        if name == "onnxruntime":
            continue
        ours_s = stats(t[name])
        rows.append({"model": model, "threads": threads, "busy": busy, "calls": args.calls,
                     "variant": name.partition(" ")[2], "gap_ms": args.gap_ms,
                     "pyruntime": ours_s, "onnxruntime": base_s,
                     "p50_ratio": ours_s["p50"] / base_s["p50"],
                     "p99_ratio": ours_s["p99"] / base_s["p99"],
                     "other_cores": others, "steal_cores": (steal1 - steal0) / wall})
    return rows


def calibrate(isas: list[str], repeat: int) -> list[dict]:
    """Per plan step of small models: its (multiply-adds, bytes), its time on one
    thread, and on 2 threads with every step split (the pool's threshold at 0). Fits the
    cost model's rates (ns per multiply-add per ISA, ns per byte) to the 1-thread times
    and prints where splitting starts to pay. The numbers behind step_ns in plan.cpp."""
    from pyruntime import _core
    from pyruntime.train import digits

    cases = [("mlp", rt.zoo.mlp(), (784,), (1, 4, 16, 64)),
             ("mlp_small", rt.zoo.mlp((256, 128, 64, 10)), (256,), (1, 8)),
             ("digits_cnn", digits.teacher_cnn(), (1, 8, 8), (1, 4, 16)),
             ("digits_student", digits.student_cnn(), (1, 8, 8), (1, 16)),
             ("mobilenetv2_96", rt.zoo.mobilenetv2_style((3, 96, 96), width=0.5), (3, 96, 96), (1,))]
    rows = []
    old = _core.testing.min_parallel_us()
    try:
        for isa in isas:
            for name, g, shape, batches in cases:
                s1 = rt.compile(g, threads=1, isa=isa)
                s2 = rt.compile(g, threads=2, isa=isa)
                for b in batches:
                    x = np.random.default_rng(0).standard_normal((b, *shape)).astype(np.float32)
                    work = s1._plan.step_work(b)
                    _core.testing.set_min_parallel_us(1e12)
                    for _ in range(50):
                        s1.run(x)
                    p1 = s1.profile(x, repeat=repeat)
                    _core.testing.set_min_parallel_us(0)
                    for _ in range(50):
                        s2.run(x)
                    p2 = s2.profile(x, repeat=repeat)
                    for (macs, nbytes), a, c in zip(work, p1, p2):
                        if a["op"] == "copy":
                            continue
                        rows.append({"isa": isa, "model": name, "batch": b, "op": a["op"],
                                     "macs": macs, "bytes": nbytes, "t1": a["seconds"],
                                     "t2": c["seconds"]})
    finally:
        _core.testing.set_min_parallel_us(old)
    # Least squares on relative error: t1 ~ macs * r_isa + bytes * r_byte.
    cols = isas + ["byte"]
    A = np.array([[r["macs"] if r["isa"] == i else 0.0 for i in isas] + [r["bytes"]] for r in rows])
    t = np.array([r["t1"] for r in rows])
    w = 1.0 / np.maximum(t, 1e-7)
    coef, *_ = np.linalg.lstsq(A * w[:, None], t * w, rcond=None)
    fit = dict(zip(cols, coef * 1e9))
    print("fitted ns per multiply-add:", {i: round(fit[i], 4) for i in isas},
          "ns per byte:", round(fit["byte"], 4))
    print("in use:", {i: round(_core.testing.step_us(i, 1e6, 0) * 1e-3, 4) for i in isas},
          round(_core.testing.step_us(isas[0], 0, 1e6) * 1e-3, 4),
          f"threshold {_core.testing.min_parallel_us():.1f} us")
    print(f"{'isa':7} {'model':15} {'b':>3} {'op':15} {'est us':>7} {'1t us':>7} {'2t us':>7} {'2t/1t':>6}")
    for r in sorted(rows, key=lambda r: (r["isa"], _core.testing.step_us(r["isa"], r["macs"], r["bytes"]))):
        est = _core.testing.step_us(r["isa"], r["macs"], r["bytes"])
        print(f"{r['isa']:7} {r['model']:15} {r['batch']:3d} {r['op']:15} {est:7.2f} "
              f"{r['t1'] * 1e6:7.2f} {r['t2'] * 1e6:7.2f} {r['t2'] / max(r['t1'], 1e-9):6.2f}")
    return rows


def print_header() -> None:
    print(f"{'model':15} {'thr':>3} {'load':5} {'variant':8} | {'ours p50':>8} {'p99':>7} {'p99.9':>7} | "
          f"{'ort p50':>8} {'p99':>7} {'p99.9':>7} | {'p50 x':>6} {'p99 x':>6} | others")


def print_row(r: dict) -> None:
    a, b = r["pyruntime"], r["onnxruntime"]
    print(f"{r['model']:15} {r['threads']:3d} {'busy' if r['busy'] else 'quiet':5} "
          f"{r['variant'] or '-':8} | "
          f"{a['p50'] * 1e6:8.1f} {a['p99'] * 1e6:7.1f} {a['p999'] * 1e6:7.1f} | "
          f"{b['p50'] * 1e6:8.1f} {b['p99'] * 1e6:7.1f} {b['p999'] * 1e6:7.1f} | "
          f"{r['p50_ratio']:6.2f} {r['p99_ratio']:6.2f} | {r['other_cores']:5.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp,digits_cnn,digits_student")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--busy", choices=["off", "on", "both"], default="off",
                    help="run with one extra process keeping a core busy")
    ap.add_argument("--calls", type=int, default=2000, help="counted calls per engine and case")
    ap.add_argument("--block", type=int, default=200, help="counted calls per block")
    ap.add_argument("--warm", type=int, default=10, help="uncounted calls at a block's start")
    ap.add_argument("--pause", type=float, default=0.05, help="seconds between blocks")
    ap.add_argument("--gap-ms", type=float, default=0.0,
                    help="sleep before every call (idle workers park: the cold-call case)")
    ap.add_argument("--variants", nargs="*", default=None,
                    help="worker-pool settings timed side by side, each SPIN_US[:ASIDE] "
                         "(e.g. 20 100:0 1000); default: as the environment sets it")
    ap.add_argument("--calibrate", action="store_true",
                    help="time every step of small models on 1 and 2 threads and fit the "
                         "cost model instead (prints the table)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = set(names) - set(models())
    if unknown:
        ap.error(f"unknown models {sorted(unknown)}; known: {sorted(models())}")
    if args.calibrate:
        from pyruntime import _core
        isas = [i for i in ("avx512", "avx2", "scalar") if _core.isa_supported(i)]
        calibrate(isas, repeat=200)
        return 0
    loads = {"off": [False], "on": [True], "both": [False, True]}[args.busy]
    env = {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                          "PYRUNTIME_SPIN_US", "PYRUNTIME_POOL")}
    info = rt.info()
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, ISA {info['isa']}; env {env}")
    print(f"{args.calls} calls per engine and case, blocks of {args.block} (+{args.warm} warm-up), "
          f"times in microseconds; x = pyruntime / onnxruntime")
    print_header()
    rows = []
    for busy in loads:
        for threads in args.threads:
            for m in names:
                for row in run_case(m, threads, busy, args):
                    rows.append(row)
                    print_row(row)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"latency_{time.strftime('%Y%m%d_%H%M%S')}.json"
    meta = {"cpu": cpu_name(), "cpus": os.cpu_count(), "isa": info["isa"], "env": env,
            "args": vars(args), "python": sys.version.split()[0]}
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
