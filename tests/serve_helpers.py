"""Start `python -m pyruntime serve` in a subprocess on a free loopback port (it binds
port 0 and prints the one it got), and always stop it."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Iterator

_LISTEN = re.compile(r"listening on http://([\d.]+):(\d+)")


class Server:
    """A running server process: its base URL, its output so far."""

    def __init__(self, proc: subprocess.Popen, url: str, lines: "queue.Queue[str]",
                 seen: list[str]) -> None:
        self.proc = proc
        self.url = url
        self.host_port = url.split("//", 1)[1]
        self._lines = lines
        self.output = seen

    def read_rest(self, timeout: float) -> str:
        """Everything it printed until it exits (bounded by `timeout`)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self._lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None and self._lines.empty():
                    break
                continue
            if line is None:
                break
            self.output.append(line)
        return "".join(self.output)


def _pump(stream, lines: "queue.Queue[str | None]") -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def running_server(*args: str, startup_s: float = 120.0, port: int = 0,
                   env: dict | None = None, stop_s: float = 15.0) -> Iterator[Server]:
    """`python -m pyruntime serve *args --port 0` (or `port`), until it listens; stopped
    (SIGTERM, then SIGKILL) however the block ends."""
    cmd = [sys.executable, "-m", "pyruntime", "serve", *args, "--host", "127.0.0.1",
           "--port", str(port)]
    # cwd: this folder, so the child imports the package under test (installed, or on
    # PYTHONPATH), never a source checkout in the cwd that lacks the compiled module
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
                            cwd=os.path.dirname(os.path.abspath(__file__)))
    lines: "queue.Queue[str | None]" = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        end = time.monotonic() + startup_s
        url = None
        while url is None:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"server did not listen within {startup_s} s:\n"
                                     + "".join(seen))
            try:
                line = lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"server exited with {proc.wait(10)} before listening:\n"
                                     + "".join(seen))
            seen.append(line)
            m = _LISTEN.search(line)
            if m:
                url = f"http://{m.group(1)}:{m.group(2)}"
        yield Server(proc, url, lines, seen)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(stop_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(15)


def free_port() -> int:
    """A loopback port free right now (for servers that cannot bind port 0 themselves)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
