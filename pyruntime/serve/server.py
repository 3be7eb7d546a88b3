"""The KServe v2 HTTP server: uvicorn runs an ASGI app in front of one LoadBalancer per
model (extra `serve`: uvicorn, starlette, prometheus-client).

Why two layers: the infer route is the hot path, so it is a plain ASGI function (uvicorn
parses HTTP; we read the body, decode it with serve/v2.py, submit to the balancer and
await its future on the event loop, never blocking it); everything else (health,
metadata, /metrics) is a Starlette router, whose per-request cost does not matter there.

Status codes: 400 bad request (malformed JSON or binary header, datatype, shape, unknown
input or output), 404 unknown model or path, 413 body over the limit, 503 queue full
(at once) or server closing, 504 the request's timeout passed before its compute
started (never computed late), 500 a replica failed; every error body is
`{"error": "..."}`. A client that disconnects while its request waits cancels it."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Iterator

import numpy as np

from ..errors import Error
from .errors import Closed, DeadlineExceeded, Overloaded, ReplicaFailed
from .models import ModelSet, ServedModel
from .v2 import HEADER_LENGTH, BadRequest, ModelNotFound, RequestTooLarge, encode_infer, \
    error_body, parse_infer

__all__ = ["build_app", "serve_http", "status_of"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = b"application/json"
_OCTET = b"application/octet-stream"
_HL = HEADER_LENGTH.encode()
_PREFIX = "/v2/models/"


def status_of(e: BaseException) -> tuple[int, str]:
    """(HTTP status, outcome label) for an error a request ended with."""
    if isinstance(e, ModelNotFound):
        return 404, "not_found"
    if isinstance(e, RequestTooLarge):
        return 413, "too_large"
    if isinstance(e, Overloaded):
        return 503, "overloaded"
    if isinstance(e, Closed):
        return 503, "overloaded"
    if isinstance(e, DeadlineExceeded):
        return 504, "timeout"
    if isinstance(e, ReplicaFailed):
        return 500, "failed"
    if isinstance(e, Error):            # BadRequest, ShapeError, DTypeError, InputError
        return 400, "bad_request"
    return 500, "failed"


async def _respond(send: Send, status: int, body: bytes, ctype: bytes = _JSON,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Disconnected(Exception):
    """The client went away before its request was answered."""


class InferApp:
    """The ASGI app: POST /v2/models/{name}[/versions/{v}]/infer here, the rest to the
    Starlette router."""

    def __init__(self, models: ModelSet, max_request_bytes: int, metrics: Any) -> None:
        self.models = models
        self.limit = max_request_bytes
        self.metrics = metrics
        self.router = _router(models, metrics)
        # Low load: a request alone in flight for its model runs through the balancer's
        # blocking infer in one of these threads, which runs it inline on an idle replica
        # (one hand-off each way instead of three: loop -> replica worker -> resolver ->
        # loop). Under load, requests are submitted and awaited as futures.
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pyruntime-http")
        self.inflight: dict[str, int] = dict.fromkeys(models.models, 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith(_PREFIX) and path.endswith("/infer"):
                name = path[len(_PREFIX):-len("/infer")]
                if "/versions/" in name:
                    name = name.split("/versions/", 1)[0]
                await self.infer(name, scope, receive, send)
                return
        await self.router(scope, receive, send)

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        cl = None
        for k, v in scope["headers"]:
            if k == b"content-length":
                cl = v
        if cl is not None and cl.isdigit() and int(cl) > self.limit:
            raise RequestTooLarge(f"request body: expected at most {self.limit} bytes "
                                  f"(--max-request-mb), got Content-Length {int(cl)}")
        chunks: list[bytes] = []
        n = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise _Disconnected()
            b = msg.get("body", b"")
            n += len(b)
            if n > self.limit:
                raise RequestTooLarge(f"request body: expected at most {self.limit} bytes "
                                      f"(--max-request-mb), got more")
            chunks.append(b)
            if not msg.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def infer(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        label = ""
        try:
            m = self.models.get(name)
            label = name
            body = await self._body(scope, receive)
            hl = None
            for k, v in scope["headers"]:
                if k == _HL:
                    hl = v.decode("latin-1")
            req = parse_infer(body, hl, m.inputs, m.outputs)
            results = await self._run(m, req.inputs, req.timeout, receive)
            out, jlen = encode_infer(name, req.id, results, req.outputs)
        except _Disconnected:
            self.metrics.request(label, "disconnected")
            return
        except Exception as e:          # the process never dies of a request
            status, outcome = status_of(e)
            self.metrics.request(label, outcome)
            msg = str(e) if isinstance(e, Error) else f"internal error: {type(e).__name__}: {e}"
            await _respond(send, status, error_body(msg))
            return
        if jlen is None:
            await _respond(send, 200, out)
        else:
            await _respond(send, 200, out, _OCTET, [(_HL, str(jlen).encode())])
        self.metrics.request(name, "ok", time.perf_counter() - t0)

    async def _run(self, m: ServedModel, inputs: dict[str, np.ndarray],
                   timeout: float | None, receive: Receive) -> dict[str, np.ndarray]:
        """Submit to the balancer; await the result without blocking the loop; cancel the
        request if the client disconnects while it waits."""
        x: Any = inputs[m.inputs[0].name] if len(m.inputs) == 1 else inputs
        inflight = self.inflight
        if inflight[m.name] == 0:
            inflight[m.name] = 1
            try:
                y = await asyncio.get_running_loop().run_in_executor(
                    self.pool, m.balancer.infer, x, timeout)
            finally:
                inflight[m.name] -= 1
            return y if isinstance(y, dict) else {m.outputs[0].name: y}
        inflight[m.name] += 1
        try:
            return await self._submit(m, x, timeout, receive)
        finally:
            inflight[m.name] -= 1

    async def _submit(self, m: ServedModel, x: Any, timeout: float | None,
                      receive: Receive) -> dict[str, np.ndarray]:
        fut = asyncio.wrap_future(m.balancer.submit(x, timeout))
        # After the whole body, the next receive() ends only on a disconnect (or when the
        # response is complete, which is after this returns).
        watch = asyncio.ensure_future(receive())
        watch.add_done_callback(lambda _: fut.cancel())
        try:
            y = await fut
        except asyncio.CancelledError:
            if watch.done() and not watch.cancelled():
                raise _Disconnected() from None
            watch.cancel()
            raise
        if isinstance(y, dict):
            return y
        return {m.outputs[0].name: y}


def _router(models: ModelSet, metrics: Any) -> Any:
    """Health, metadata, readiness and /metrics, as a Starlette app."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from .prom import CONTENT_TYPE

    def server_meta(_: Request) -> JSONResponse:
        from .. import __version__
        return JSONResponse({"name": "pyruntime", "version": __version__,
                             "extensions": ["binary_tensor_data"]})

    def live(_: Request) -> JSONResponse:
        return JSONResponse({"live": True})

    def ready(_: Request) -> JSONResponse:
        ok = not models.closing
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    def model_meta(r: Request) -> JSONResponse:
        try:
            return JSONResponse(models.get(r.path_params["name"]).metadata)
        except ModelNotFound as e:
            return JSONResponse({"error": str(e)}, status_code=404)

    def model_ready(r: Request) -> JSONResponse:
        try:
            models.get(r.path_params["name"])
        except ModelNotFound as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        ok = not models.closing
        return JSONResponse({"name": r.path_params["name"], "ready": ok},
                            status_code=200 if ok else 503)

    def prometheus(_: Request) -> Response:      # sync: runs in the thread pool
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def http_error(_: Request, e: Exception) -> JSONResponse:
        assert isinstance(e, HTTPException)
        return JSONResponse({"error": f"{e.detail}: expected /v2, /v2/health/live, "
                                      f"/v2/health/ready, /v2/models/{{name}}[/ready|/infer]"
                                      f" or /metrics"}, status_code=e.status_code)

    routes = [Route("/v2", server_meta), Route("/v2/health/live", live),
              Route("/v2/health/ready", ready),
              Route("/v2/models/{name}", model_meta),
              Route("/v2/models/{name}/versions/{v}", model_meta),
              Route("/v2/models/{name}/ready", model_ready),
              Route("/v2/models/{name}/versions/{v}/ready", model_ready),
              Route("/metrics", prometheus)]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def build_app(models: ModelSet, max_request_mb: float = 64.0) -> tuple[InferApp, Any]:
    """(ASGI app, its ServerMetrics) for these models."""
    from .prom import ServerMetrics
    metrics = ServerMetrics({n: m.balancer for n, m in models.models.items()})
    return InferApp(models, int(max_request_mb * 1024 * 1024), metrics), metrics


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, announcing its address once it listens, and not re-raising
        SIGTERM/SIGINT after its graceful shutdown (we still have balancers to close and
        exit 0)."""

        on_listen: Callable[[str, int], None] | None = None

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and self.on_listen is not None and self.servers:
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                self.on_listen(host, port)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    return Server


def _pick(module: str, choice: str, fallback: str) -> str:
    try:
        __import__(module)
        return choice
    except ImportError:
        return fallback


def serve_http(models: ModelSet, host: str = "127.0.0.1", port: int = 8000,
               max_request_mb: float = 64.0, access_log: bool = False,
               log_level: str = "warning",
               on_listen: Callable[[str, int], None] | None = None) -> bool:
    """Serve until SIGTERM/SIGINT: stop accepting, let in-flight requests finish, close
    every balancer (draining). Returns whether the server started (False: the address
    was unusable; uvicorn logged why)."""
    import uvicorn
    app, metrics = build_app(models, max_request_mb)
    config = uvicorn.Config(app, host=host, port=port, lifespan="off", access_log=access_log,
                            log_level=log_level, http=_pick("httptools", "httptools", "h11"),
                            loop=_pick("uvloop", "uvloop", "asyncio"),
                            h11_max_incomplete_event_size=None, server_header=False,
                            date_header=False)
    server = _server_class()(config)
    server.on_listen = on_listen
    try:
        server.run()
    finally:
        models.close(drain=True)
        metrics.close()
        sys.stdout.flush()
    return bool(server.started)
