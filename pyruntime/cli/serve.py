"""`pyruntime serve MODEL...`: serve models over HTTP with the KServe v2 protocol
(uvicorn, pyruntime/serve/server.py), or as a Ray Serve deployment with `--ray`."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, Callable

from .common import int_at_least, number


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve", parents=parents, help="serve models over HTTP (KServe v2 protocol)",
        description="Serve models with the KServe v2 / Open Inference Protocol over HTTP "
                    "(Triton's and KServe's clients work), each model behind its own load "
                    "balancer with dynamic batching; /metrics for Prometheus. SIGTERM "
                    "drains in-flight requests and exits 0.")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="an ONNX or .pyrt file, or a folder of them (name = file stem)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                   "127.0.0.1)")
    p.add_argument("--port", type=int_at_least(0), default=8000,
                   help="port (default 8000; 0 = a free one, printed when listening)")
    p.add_argument("--replicas", type=int_at_least(1), default=None,
                   help="replicas per model (default: one per CPU, or cpus // threads)")
    p.add_argument("--threads-per-replica", type=int_at_least(1), default=None,
                   help="threads per replica (default: cpus // replicas)")
    p.add_argument("--max-batch-size", type=int_at_least(1), default=32,
                   help="rows per dynamic batch (1 = no batching; default 32)")
    p.add_argument("--max-delay-ms", type=number(0.0, False), default=2.0,
                   help="longest wait to fill a batch (default 2)")
    p.add_argument("--max-queue", type=int_at_least(1), default=1024,
                   help="waiting requests per model beyond which requests get 503 "
                        "(default 1024)")
    p.add_argument("--max-request-mb", type=number(0.0, True), default=64.0,
                   help="largest request body in MiB; larger ones get 413 (default 64)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="device the models are compiled for (default cpu)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--ray", action="store_true",
                   help="serve with Ray Serve instead (extra `ray`; joins a running cluster "
                        "if RAY_ADDRESS is set, else starts a local one)")
    p.set_defaults(run=run)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt       # before the server listens: stop loading, exit cleanly


def run(args: argparse.Namespace) -> int:
    from ..serve.models import find_models
    paths = find_models(args.models)           # ModelFormatError -> exit 1
    say: Callable[[str], None] = (lambda s: None) if args.quiet else \
        (lambda s: print(s, flush=True))
    if args.ray:
        from ..serve.ray import serve_ray
        return serve_ray(paths, host=args.host, port=args.port, replicas=args.replicas,
                         threads_per_replica=args.threads_per_replica,
                         max_batch_size=args.max_batch_size, max_delay_ms=args.max_delay_ms,
                         device=args.device, say=say)
    try:
        import uvicorn  # noqa: F401
        import starlette  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as e:
        from ..errors import MissingDependencyError
        raise MissingDependencyError(f"pyruntime serve needs the `serve` extra (pip install "
                                     f"'pyruntime[serve]'): {e}") from None
    old = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        from ..serve.models import ModelSet, ServedModel, load_graph
        built = []
        try:
            for name, path in paths.items():
                built.append(ServedModel.build(
                    name, load_graph(path), device=args.device, replicas=args.replicas,
                    threads_per_replica=args.threads_per_replica,
                    max_batch_size=args.max_batch_size, max_delay_ms=args.max_delay_ms,
                    max_queue=args.max_queue))
        except BaseException:
            ModelSet(built).close(drain=False)
            raise
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, old)
    models = ModelSet(built)
    for m in built:
        lb = m.balancer
        say(f"model {m.name}: {len(lb.replicas)} replicas x {lb.threads_per_replica} threads,"
            f" max_batch_size {lb.max_batch_size}, inputs "
            + ", ".join(f"{i.name} {i.datatype}{list(i.shape)}" for i in m.inputs))

    def listening(host: str, port: int) -> None:
        say(f"pyruntime serve: listening on http://{host}:{port} (KServe v2; /metrics)")

    from ..serve.server import serve_http
    started = serve_http(models, host=args.host, port=args.port,
                         max_request_mb=args.max_request_mb, access_log=args.access_log,
                         log_level="debug" if args.debug else "warning",
                         on_listen=listening)
    if not started:
        print(f"pyruntime serve: error: could not listen on {args.host}:{args.port}",
              file=sys.stderr)
        return 1
    say("pyruntime serve: stopped (in-flight requests drained, balancers closed)")
    return 0
