"""HTTP serving benchmark (issue 14): `pyruntime serve` (KServe v2 over uvicorn) under load
from other processes.

1. Dynamic batching vs `--max-batch-size 1`, both servers 1 replica x 2 threads, 1-row
   requests from client processes in closed loop over keep-alive connections (binary
   tensors), for the MLP 784-512-256-10 and the weight-bound wide MLP 1024-4096-4096-10:
   throughput, client-side p50/p99, CPU used by the server and by the clients. Target
   (wide MLP): batching >= 3x the throughput.
2. Server overhead at low load: one keep-alive connection, 1-row binary requests to the
   MLP, HTTP p50 minus a direct `session.run` p50 (same Session settings, in this
   process). A bare uvicorn echo app (same loop/parser, returns the body) is measured
   the same way for reference. Target: <= 500 us.
3. 5x overload: open-loop arrivals at 5x the measured capacity of the unbatched wide-MLP
   server (`--max-queue 16`): every request must get 200 or 503 (none lost, none hung:
   a 60 s client timeout), and the p99 of the served ones stays bounded.

Servers and clients share this machine's CPUs (say so with the figures). Cases 1 and 2
alternate their two sides over rounds; medians over rounds are reported. Prints a table,
writes JSON to bench/results/.

    PYTHONPATH=. python bench/serve_http.py [--seconds 3] [--rounds 3] [--conns 16]
        [--procs 4] [--cases batching,overhead,overload]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

import pyruntime as rt

ROOT = Path(__file__).resolve().parents[1]
_LISTEN = re.compile(r"listening on http://([\d.]+):(\d+)")


# ---------------------------------------------------------------- servers
class Proc:
    """A server subprocess on a free port; its CPU time from /proc."""

    def __init__(self, cmd: list[str]) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=env)
        end = time.monotonic() + 180
        out = []
        while time.monotonic() < end:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("server exited:\n" + "".join(out))
            out.append(line)
            m = _LISTEN.search(line)
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                threading.Thread(target=self._drain, daemon=True).start()
                return
        raise RuntimeError("server did not start:\n" + "".join(out))

    def _drain(self) -> None:
        for _ in iter(self.p.stdout.readline, ""):
            pass

    def cpu_s(self) -> float:
        f = Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait(10)


def serve_cmd(model: Path, batch: int, extra: list[str] = ()) -> list[str]:
    return [sys.executable, "-m", "pyruntime", "serve", str(model), "--port", "0",
            "--replicas", "1", "--threads-per-replica", "2", "--max-batch-size", str(batch),
            "--max-delay-ms", "2", *extra]


ECHO = r"""
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
class S(uvicorn.Server):
    async def startup(self, sockets=None):
        await super().startup(sockets)
        h, p = self.servers[0].sockets[0].getsockname()[:2]
        print(f"listening on http://{h}:{p}", flush=True)
S(uvicorn.Config(app, port=0, lifespan="off", access_log=False, log_level="warning",
                 http="httptools", loop="uvloop")).run()
"""


# ---------------------------------------------------------------- clients
def request_bytes(model: str, dim: int) -> tuple[str, bytes, dict]:
    x = np.random.default_rng(0).standard_normal((1, dim)).astype(np.float32)
    head = json.dumps({"inputs": [{"name": "input", "shape": [1, dim], "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "parameters": {"binary_data_output": True}}).encode()
    return (f"/v2/models/{model}/infer", head + x.tobytes(),
            {"Inference-Header-Content-Length": str(len(head)),
             "Content-Type": "application/octet-stream"})


def client_proc(host: str, port: int, path: str, body: bytes, headers: dict, conns: int,
                t_start: float, t_end: float, period: float | None, out: "mp.Queue") -> None:
    """`conns` threads, one keep-alive connection each. Closed loop (period None) or open
    loop (each thread sends every `period` s on its schedule). Only requests sent in
    [t_start, t_end) are recorded; the thread then finishes its last one."""
    lats: list[float] = []
    codes: dict[int, int] = {}
    lost: list[str] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        c = http.client.HTTPConnection(host, port, timeout=60)
        mine, my_codes = [], {}
        nxt = t_start + (k * period / conns if period else 0)
        while True:
            now = time.time()
            if period:
                if nxt >= t_end:
                    break
                if nxt > now:
                    time.sleep(nxt - now)
                nxt += period
            elif now >= t_end:
                break
            t0 = time.time()
            try:
                c.request("POST", path, body, headers)
                r = c.getresponse()
                r.read()
                code = r.status
            except Exception as e:      # lost or hung: counted, the connection renewed
                code = -1
                with lock:
                    lost.append(f"{type(e).__name__}: {e}")
                c.close()
                c = http.client.HTTPConnection(host, port, timeout=60)
            t1 = time.time()
            if t0 >= t_start:
                my_codes[code] = my_codes.get(code, 0) + 1
                if code == 200:
                    mine.append(t1 - t0)
        c.close()
        with lock:
            lats.extend(mine)
            for k2, v in my_codes.items():
                codes[k2] = codes.get(k2, 0) + v

    c0 = time.process_time()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put({"lats": lats, "codes": codes, "lost": lost[:5], "n_lost": len(lost),
             "cpu_s": time.process_time() - c0})


def load(server: Proc, path: str, body: bytes, headers: dict, conns: int, procs: int,
         seconds: float, rate: float | None = None, warm: float = 0.5) -> dict:
    """Run `procs` client processes with `conns` connections in all; figures over the
    measured window."""
    t_start = time.time() + warm + 0.3
    t_end = t_start + seconds
    q: "mp.Queue" = mp.Queue()
    per = [conns // procs + (1 if i < conns % procs else 0) for i in range(procs)]
    period = conns / rate if rate else None
    ps = [mp.Process(target=client_proc, args=(server.host, server.port, path, body, headers,
                                                n, t_start, t_end, period, q))
          for n in per if n]
    for p in ps:
        p.start()
    while time.time() < t_start:
        time.sleep(0.01)
    cpu0 = server.cpu_s()
    w0 = time.time()
    while time.time() < t_end:
        time.sleep(0.01)
    cpu1 = server.cpu_s()
    w1 = time.time()
    res = [q.get(timeout=120) for _ in ps]
    for p in ps:
        p.join(30)
    lats = np.array([v for r in res for v in r["lats"]])
    codes: dict[int, int] = {}
    for r in res:
        for k, v in r["codes"].items():
            codes[k] = codes.get(k, 0) + v
    ok = codes.get(200, 0)
    return {"req_per_s": ok / seconds, "sent": sum(codes.values()), "codes": codes,
            "p50_us": float(np.percentile(lats, 50) * 1e6) if len(lats) else None,
            "p99_us": float(np.percentile(lats, 99) * 1e6) if len(lats) else None,
            "server_cores": (cpu1 - cpu0) / (w1 - w0),
            "client_cores": sum(r["cpu_s"] for r in res) / (seconds + warm),
            "lost": sum(r["n_lost"] for r in res), "lost_examples": [e for r in res
                                                                       for e in r["lost"]]}


def med(blocks: list[dict], key: str) -> float:
    return statistics.median(b[key] for b in blocks if b[key] is not None)


def direct_p50(model: Path, dim: int, seconds: float) -> tuple[float, float]:
    """p50 and p99 (us) of session.run on one row, threads=2 as the servers use."""
    s = rt.compile(rt.load(str(model)), threads=2)
    x = np.random.default_rng(0).standard_normal((1, dim)).astype(np.float32)
    for _ in range(200):
        s.run(x)
    lat = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        s.run(x)
        lat.append(time.perf_counter() - t)
    return float(np.percentile(lat, 50) * 1e6), float(np.percentile(lat, 99) * 1e6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--cases", default="batching,overhead,overload")
    ap.add_argument("--models", default="mlp,wide", help="models of the batching case")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()
    cases = set(a.cases.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="pyrt-bench-http-"))
    models = {"mlp": ((784, 512, 256, 10), tmp / "mlp.pyrt"),
              "wide": ((1024, 4096, 4096, 10), tmp / "wide.pyrt")}
    for sizes, path in models.values():
        rt.save(rt.zoo.mlp(sizes), path)
    results: dict = {}
    caps: dict[str, float] = {}
    if "batching" in cases:
        for name, (sizes, path) in models.items():
            if name not in a.models.split(","):
                continue
            path_, body, headers = request_bytes(path.stem, sizes[0])
            srv = {"dynamic": Proc(serve_cmd(path, 32)), "none": Proc(serve_cmd(path, 1))}
            try:
                blocks: dict[str, list[dict]] = {k: [] for k in srv}
                for r in range(a.rounds):
                    order = list(srv) if r % 2 == 0 else list(srv)[::-1]
                    for k in order:
                        b = load(srv[k], path_, body, headers, a.conns, a.procs, a.seconds)
                        blocks[k].append(b)
                        print(f"{name} {k} round {r}: {b['req_per_s']:.0f} req/s p50 "
                              f"{b['p50_us']:.0f} us p99 {b['p99_us']:.0f} us server "
                              f"{b['server_cores']:.2f} cores codes {b['codes']}",
                              flush=True)
            finally:
                for s in srv.values():
                    s.stop()
            summ = {k: {m: med(v, m) for m in ("req_per_s", "p50_us", "p99_us",
                                                "server_cores", "client_cores")}
                    for k, v in blocks.items()}
            summ["speedup"] = summ["dynamic"]["req_per_s"] / summ["none"]["req_per_s"]
            summ["blocks"] = blocks
            results[f"batching_{name}"] = summ
            caps[name] = summ["none"]["req_per_s"]
    if "overhead" in cases:
        sizes, path = models["mlp"]
        path_, body, headers = request_bytes("mlp", sizes[0])
        srv = Proc(serve_cmd(path, 32))
        echo = Proc([sys.executable, "-c", ECHO])
        try:
            rounds = []
            for r in range(a.rounds):
                d50, d99 = direct_p50(path, sizes[0], a.seconds)
                h = load(srv, path_, body, headers, 1, 1, a.seconds)
                e = load(echo, "/", body, headers, 1, 1, a.seconds)
                rounds.append({"direct_p50_us": d50, "direct_p99_us": d99,
                               "http_p50_us": h["p50_us"], "http_p99_us": h["p99_us"],
                               "echo_p50_us": e["p50_us"], "echo_p99_us": e["p99_us"],
                               "server_cores": h["server_cores"],
                               "overhead_p50_us": h["p50_us"] - d50})
                print(f"overhead round {r}: {rounds[-1]}", flush=True)
        finally:
            srv.stop()
            echo.stop()
        results["overhead"] = {k: med(rounds, k) for k in rounds[0]}
        results["overhead"]["rounds"] = rounds
    if "overload" in cases:
        sizes, path = models["wide"]
        path_, body, headers = request_bytes("wide", sizes[0])
        srv = Proc(serve_cmd(path, 1, ["--max-queue", "16"]))
        try:
            cap = caps.get("wide") or load(srv, path_, body, headers, a.conns, a.procs,
                                           a.seconds)["req_per_s"]
            o = load(srv, path_, body, headers, 64, a.procs, 2 * a.seconds, rate=5 * cap)
            o["capacity_req_per_s"] = cap
            o["offered_req_per_s"] = o["sent"] / (2 * a.seconds)
            o["answered_all"] = o["lost"] == 0 and set(o["codes"]) <= {200, 503}
            print(f"overload: {o}", flush=True)
        finally:
            o_exit = srv.stop()
        o["exit_code"] = o_exit
        results["overload"] = o
    machine = {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "python": platform.python_version(), "load_avg": list(os.getloadavg())}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                machine["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    p = out / f"serve_http-{time.strftime('%Y%m%d-%H%M%S')}.json"
    p.write_text(json.dumps({"machine": machine, "settings": vars(a), "results": results},
                            indent=1, default=str))
    print(f"\nmachine: {machine['cpu']}, {machine['cpus']} CPUs (servers and clients share "
          f"them)")
    for name in ("mlp", "wide"):
        r = results.get(f"batching_{name}")
        if r:
            for k in ("none", "dynamic"):
                s = r[k]
                print(f"{name:5s} {k:8s} {s['req_per_s']:9.0f} req/s  p50 {s['p50_us']:7.0f} us"
                      f"  p99 {s['p99_us']:8.0f} us  server {s['server_cores']:.2f} cores  "
                      f"clients {s['client_cores']:.2f} cores")
            print(f"{name:5s} batching speedup {r['speedup']:.2f}x")
    if "overhead" in results:
        o = results["overhead"]
        print(f"overhead: http p50 {o['http_p50_us']:.0f} us (p99 {o['http_p99_us']:.0f}) - "
              f"session.run p50 {o['direct_p50_us']:.0f} us = {o['overhead_p50_us']:.0f} us; "
              f"bare uvicorn echo p50 {o['echo_p50_us']:.0f} us (p99 {o['echo_p99_us']:.0f})")
    if "overload" in results:
        o = results["overload"]
        print(f"overload: offered {o['offered_req_per_s']:.0f} req/s (5x capacity "
              f"{o['capacity_req_per_s']:.0f}), codes {o['codes']}, lost {o['lost']}, "
              f"served p50 {o['p50_us']:.0f} us p99 {o['p99_us']:.0f} us")
    print(f"results: {p}")


if __name__ == "__main__":
    main()
