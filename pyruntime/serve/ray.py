"""A Ray Serve deployment of a pyruntime model (extra `ray`): replicas spread over a Ray
cluster, requests batched with `@serve.batch`, answering the same KServe v2 infer
requests (JSON tensors and the binary extension, serve/v2.py) as `pyruntime serve`, so
the same client (tritonclient.http, curl) talks to either.

The model travels as bytes (a .pyrt container or an ONNX file) in the deployment's
arguments, so nodes need pyruntime installed but no shared filesystem. Each replica
compiles its own Session (`threads` threads, `device`).

    from pyruntime.serve.ray import app
    serve.run(app("model.pyrt", max_batch_size=32), route_prefix="/v2/models/model")
"""

from __future__ import annotations

import io
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import MissingDependencyError

try:
    import ray
    from ray import serve
except ImportError as _e:         # the extra is not installed
    raise MissingDependencyError(f"pyruntime.serve.ray needs Ray Serve: pip install "
                                 f"'pyruntime[ray]' ({_e})") from None

from starlette.requests import Request
from starlette.responses import Response

from .server import status_of
from .v2 import HEADER_LENGTH, ModelNotFound, encode_infer, error_body, model_metadata, \
    parse_infer, tensor_info

__all__ = ["PyruntimeModel", "app", "serve_ray"]


def _graph(data: bytes, kind: str) -> Any:
    if kind == "onnx":
        from ..onnx import load_onnx
        return load_onnx(data)
    from ..fileformat import load
    return load(data)


@serve.deployment
class PyruntimeModel:
    """One replica: a compiled Session; `__call__` answers v2 requests under
    /v2/models/{name}; infer requests are batched across callers by `@serve.batch`."""

    def __init__(self, name: str, data: bytes, kind: str, threads: int = 1,
                 device: str = "cpu", max_batch_size: int = 32,
                 max_delay_ms: float = 2.0) -> None:
        from ..backends import compile as rt_compile
        self.name = name
        self.session = rt_compile(_graph(data, kind), device=device, threads=threads)
        self.inputs = [tensor_info(i) for i in self.session.inputs]
        self.outputs = [tensor_info(o) for o in self.session.outputs]
        self.metadata = model_metadata(name, self.inputs, self.outputs)
        self.infer_batch.set_max_batch_size(max_batch_size)
        self.infer_batch.set_batch_wait_timeout_s(max_delay_ms / 1e3)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def infer_batch(self, feeds: list[dict[str, np.ndarray]]) -> list[Any]:
        """Several requests' rows in one run, split back per request; a request whose
        inputs the model refuses fails alone (the others are re-run without it)."""
        names = [i.name for i in self.inputs]
        try:
            cat = {n: np.concatenate([f[n] for f in feeds]) for n in names}
            outs = self.session.run(cat)
        except Exception:
            if len(feeds) == 1:
                raise
            return [await self._one(f) for f in feeds]
        res, start = [], 0
        for f in feeds:
            k = len(f[names[0]])
            res.append({n: v[start:start + k] for n, v in outs.items()})
            start += k
        return res

    async def _one(self, f: dict[str, np.ndarray]) -> Any:
        try:
            return self.session.run(f)
        except Exception as e:        # returned, not raised: it fails only its request
            return e

    async def __call__(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        try:
            if request.method == "POST" and path.endswith("/infer"):
                body = await request.body()
                req = parse_infer(body, request.headers.get(HEADER_LENGTH), self.inputs,
                                  self.outputs)
                out = await self.infer_batch(req.inputs)
                if isinstance(out, Exception):
                    raise out
                data, jlen = encode_infer(self.name, req.id, out, req.outputs)
                if jlen is None:
                    return Response(data, media_type="application/json")
                return Response(data, media_type="application/octet-stream",
                                headers={HEADER_LENGTH: str(jlen)})
            if request.method == "GET" and path.endswith("/ready"):
                return Response(b'{"ready": true}', media_type="application/json")
            if request.method == "GET":
                import json
                return Response(json.dumps(self.metadata), media_type="application/json")
            raise ModelNotFound(f"{request.method} {path}: expected GET /v2/models/"
                                f"{self.name}[/ready] or POST /v2/models/{self.name}/infer")
        except Exception as e:
            status, _ = status_of(e)
            return Response(error_body(str(e)), status_code=status,
                            media_type="application/json")


def _model_bytes(model: Any) -> tuple[bytes, str]:
    """(bytes, "pyrt" | "onnx") of a path or a Graph."""
    from ..graph import Graph
    if isinstance(model, Graph):
        from ..fileformat import save
        buf = io.BytesIO()
        save(model, buf)
        return buf.getvalue(), "pyrt"
    p = Path(model)
    return p.read_bytes(), "onnx" if p.suffix.lower() == ".onnx" else "pyrt"


def app(model: Any, name: str | None = None, replicas: int = 1, threads_per_replica: int = 1,
        max_batch_size: int = 32, max_delay_ms: float = 2.0, device: str = "cpu",
        ray_actor_options: dict | None = None) -> Any:
    """A Ray Serve application for `model` (a .pyrt/.onnx path or a Graph): `replicas`
    replicas of `threads_per_replica` threads (each reserves that many Ray CPUs), batches
    of up to `max_batch_size` requests. Run it with `serve.run(app(...), route_prefix=
    f"/v2/models/{name}")`; `name` defaults to the file stem ("model" for a Graph)."""
    data, kind = _model_bytes(model)
    if name is None:
        name = "model" if not isinstance(model, (str, os.PathLike)) else Path(model).stem
    opts = {"num_cpus": threads_per_replica}
    opts.update(ray_actor_options or {})
    return PyruntimeModel.options(name=f"pyruntime-{name}", num_replicas=replicas,
                                  ray_actor_options=opts).bind(
        name, data, kind, threads_per_replica, device, max_batch_size, max_delay_ms)


def serve_ray(paths: dict[str, Path], host: str = "127.0.0.1", port: int = 8000,
              replicas: int | None = None, threads_per_replica: int | None = None,
              max_batch_size: int = 32, max_delay_ms: float = 2.0, device: str = "cpu",
              say: Callable[[str], None] = print) -> int:
    """`pyruntime serve --ray`: join the cluster at RAY_ADDRESS (else start a local one),
    deploy each model under /v2/models/{name}, serve until SIGTERM/SIGINT, then delete
    the applications (a local Ray is stopped too)."""
    stop = threading.Event()
    ray.init(address=os.environ.get("RAY_ADDRESS") or None, include_dashboard=False,
             log_to_driver=False)
    for sig in (signal.SIGTERM, signal.SIGINT):     # after ray.init, which sets its own
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": host, "port": port})
        for name, path in paths.items():
            serve.run(app(path, name, replicas or 1, threads_per_replica or 1,
                          max_batch_size, max_delay_ms, device), name=name,
                      route_prefix=f"/v2/models/{name}")
            say(f"model {name}: Ray Serve deployment, {replicas or 1} replicas x "
                f"{threads_per_replica or 1} threads")
        say(f"pyruntime serve --ray: listening on http://{host}:{port} (KServe v2 infer)")
        while not stop.wait(0.5):
            pass
        for name in paths:
            serve.delete(name)
        serve.shutdown()
    finally:
        ray.shutdown()
    say("pyruntime serve --ray: stopped")
    return 0
