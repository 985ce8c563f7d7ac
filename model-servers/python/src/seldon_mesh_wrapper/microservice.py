"""`seldon-core-microservice` entry point: load the user class, serve REST, gRPC and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Sequence

import uvicorn

from .metadata import init_metadata
from .methods import Runtime
from .metrics import SeldonMetrics
from .rest import build_app, build_metrics_app
from .settings import ConfigError, Settings, load_settings, load_user_class
from .tracing import Tracing, TracingMiddleware, grpc_interceptor, setup

logger = logging.getLogger("seldon_mesh_wrapper")


class _Server(uvicorn.Server):
    """uvicorn server whose signals are handled once, by `serve_all`, for every server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# Set by the master (`workers.py`) in each worker process it starts: the worker's index.
WORKER_ENV = "SELDON_MESH_WORKER"
# The directory where each worker writes its metrics for the master (seldon-core's name).
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other workers bind too: the kernel spreads new connections
    over all of them (SO_REUSEPORT hashes each connection to one listener)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)  # uvicorn's default backlog
    return sock


def make_runtime(settings: Settings, metrics_dir: str | None = None) -> Runtime:
    cls = load_user_class(settings.interface_name)
    user_model = cls(**settings.parameters)
    if hasattr(user_model, "load"):
        logger.info("calling load()")
        user_model.load()
    metrics = SeldonMetrics(settings.metric_labels(), snapshot_dir=metrics_dir)
    model_metadata = init_metadata(user_model, settings.model_metadata, settings.model_name)
    return Runtime(user_model, settings, metrics, model_metadata)


async def serve_all(rt: Runtime, tracing: Tracing | None = None, worker: bool = False) -> None:
    """Serves REST, metrics and gRPC until SIGTERM/SIGINT. As one of several `worker`s: REST
    on a SO_REUSEPORT socket shared with the others, gRPC likewise (grpcio sets SO_REUSEPORT
    itself), and no metrics port (the master serves every worker's metrics)."""
    s = rt.settings
    executor = ThreadPoolExecutor(max_workers=s.threads, thread_name_prefix="user-model")
    log_level = s.log_level.lower()
    app = build_app(rt, executor)
    rest_app = app if tracing is None else TracingMiddleware(app, tracing)
    servers = [
        _Server(uvicorn.Config(rest_app, host=s.host, port=s.http_port,
                               log_level=log_level, access_log=False, lifespan="off")),
    ]
    sockets: list[list[socket.socket] | None] = [[reuseport_socket(s.host, s.http_port)] if worker else None]
    if not worker:
        servers.append(_Server(uvicorn.Config(build_metrics_app(rt, [] if tracing is None else [tracing.stats]),
                                              host=s.host, port=s.metrics_port,
                                              log_level=log_level, access_log=False, lifespan="off")))
        sockets.append(None)
    grpc_server = None
    if s.grpc_workers > 0:
        from .grpc_server import build_server

        interceptors = [] if tracing is None else [grpc_interceptor(tracing)]
        grpc_server = build_server(rt, executor, f"{s.host}:{s.grpc_port}", s.max_body_bytes, interceptors)
        await grpc_server.start()
        logger.info("gRPC listening on %s:%d", s.host, s.grpc_port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def stopper() -> None:
        await stop.wait()
        for server in servers:
            server.should_exit = True
        if grpc_server is not None:
            await grpc_server.stop(grace=5)

    stop_task = asyncio.create_task(stopper())
    logger.info("REST on %s:%d, metrics on %s:%d", s.host, s.http_port, s.host, s.metrics_port)
    results = await asyncio.gather(*(server.serve(sockets=socks) for server, socks in zip(servers, sockets)),
                                   return_exceptions=True)
    stop.set()
    await stop_task
    executor.shutdown(wait=False, cancel_futures=True)
    if tracing is not None:
        # export what is queued before exit (blocking: the batch processor's own thread sends)
        await loop.run_in_executor(None, tracing.shutdown)
    for server, result in zip(servers, results):
        if isinstance(result, BaseException) or not server.started:
            raise SystemExit(f"server on port {server.config.port} failed to start")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(argv, os.environ)
    except ConfigError as exc:
        print(f"seldon-core-microservice: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, settings.log_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    worker = os.environ.get(WORKER_ENV) is not None
    if settings.workers > 1 and not worker:
        from .workers import run_master

        return run_master(settings, argv)
    try:
        tracing = setup(settings, os.environ)
        rt = make_runtime(settings, os.environ.get(METRICS_DIR_ENV) if worker else None)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    asyncio.run(serve_all(rt, tracing, worker=worker))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
