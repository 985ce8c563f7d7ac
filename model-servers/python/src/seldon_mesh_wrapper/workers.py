"""`GUNICORN_WORKERS` / `--workers` > 1: one master, N worker processes on the same ports.

seldon-core ran gunicorn: a master forking N workers that share the REST socket, each
loading its own copy of the model, with custom metrics collected across workers
(`PROMETHEUS_MULTIPROC_DIR`). Here:

* the master starts N copies of this command (`python -m seldon_mesh_wrapper.microservice`,
  same arguments, `SELDON_MESH_WORKER=<i>`); each loads the user class and calls `load()`
  itself, as gunicorn's workers did;
* each worker binds the REST port with SO_REUSEPORT (the kernel spreads connections over the
  workers) and the gRPC port likewise (grpcio's default);
* each worker writes its metrics store to `<PROMETHEUS_MULTIPROC_DIR>/<pid>.json` after every
  update; the master serves the metrics port and merges the files on each scrape. Series keep
  seldon-core's `worker_id` label (the worker's pid);
* SIGTERM/SIGINT to the master: SIGTERM to every worker, wait (30 s, then SIGKILL), exit 0.
  A worker that exits on its own stops the rest and the master exits 1 (the pod restarts:
  loud, where gunicorn would quietly fork a new one). Workers get PR_SET_PDEATHSIG, so a
  master killed with SIGKILL takes them along.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Sequence

import uvicorn

from .metrics import MergedMetrics

logger = logging.getLogger("seldon_mesh_wrapper")

STOP_GRACE_SECONDS = 30.0


def _die_with_parent() -> None:
    """preexec_fn: the worker gets SIGTERM when the master dies."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_workers(n: int, argv: Sequence[str], metrics_dir: str) -> list[subprocess.Popen]:
    from .microservice import METRICS_DIR_ENV, WORKER_ENV

    procs = []
    for i in range(n):
        env = {**os.environ, WORKER_ENV: str(i), METRICS_DIR_ENV: metrics_dir}
        cmd = [sys.executable, "-m", "seldon_mesh_wrapper.microservice", *argv]
        procs.append(subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent))
    logger.info("started %d workers: pids %s", n, [p.pid for p in procs])
    return procs


def stop_workers(procs: list[subprocess.Popen], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to every live worker, then SIGKILL to any still running after `grace` s; all reaped."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("worker %d did not stop in %.0f s: SIGKILL", p.pid, grace)
            p.kill()
            p.wait()


def run_master(settings, argv: Sequence[str]) -> int:
    from .microservice import METRICS_DIR_ENV, _Server
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from prometheus_client.registry import CollectorRegistry
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    given = os.environ.get(METRICS_DIR_ENV)
    metrics_dir = given or tempfile.mkdtemp(prefix="seldon-metrics-")
    os.makedirs(metrics_dir, exist_ok=True)
    for name in os.listdir(metrics_dir):  # a previous run's files would be counted again
        if name.endswith((".json", ".json.tmp")):
            os.unlink(os.path.join(metrics_dir, name))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(MergedMetrics(metrics_dir))

    async def scrape(_):
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    paths = {"/prometheus", "/metrics", settings.metrics_endpoint}
    app = Starlette(routes=[Route(p, scrape, methods=["GET"]) for p in sorted(paths)])
    server = _Server(uvicorn.Config(app, host=settings.host, port=settings.metrics_port,
                                    log_level=settings.log_level.lower(), access_log=False, lifespan="off"))

    procs = start_workers(settings.workers, argv, metrics_dir)
    try:
        return asyncio.run(_supervise(server, procs))
    finally:
        stop_workers(procs)
        if not given:
            shutil.rmtree(metrics_dir, ignore_errors=True)


async def _supervise(server: uvicorn.Server, procs: list[subprocess.Popen]) -> int:
    """Serves the merged metrics until a signal (→ 0) or a worker's exit (→ 1)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    rc = 0

    async def watch() -> None:
        nonlocal rc
        while not stop.is_set():
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                logger.error("worker %d exited with %s: stopping", dead[0].pid, dead[0].returncode)
                rc = 1
                stop.set()
                return
            await asyncio.sleep(0.2)

    async def stopper() -> None:
        await stop.wait()
        server.should_exit = True

    tasks = [asyncio.create_task(watch()), asyncio.create_task(stopper())]
    await server.serve()
    if not server.started:
        rc = 1
        logger.error("metrics port %d: server failed to start", server.config.port)
    stop.set()
    await asyncio.gather(*tasks)
    # the workers drain their own connections on SIGTERM; wait for them off the loop
    await loop.run_in_executor(None, stop_workers, procs)
    logger.info("all workers stopped")
    return rc
