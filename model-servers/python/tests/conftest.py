"""Starts the real `seldon-core-microservice` command on free ports for HTTP/gRPC tests."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest

MODELS = Path(__file__).parent / "models"
CLI = shutil.which("seldon-core-microservice", path=str(Path(sys.executable).parent)) or "seldon-core-microservice"


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when pytest dies (no process outlives its test run)."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _listen_range() -> tuple[int, int]:
    """Ports to pick from: 20000 up to the kernel's ephemeral range (ip_local_port_range)."""
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return 20000, max(low, 20001)


def free_port() -> int:
    """A loopback port that was free a moment ago, for a child to bind later.

    Not from bind(0): such a port is in the ephemeral range, where any outgoing connection
    may take it before the child binds it (a CI run's Jaeger failed so: "bind: address already
    in use"). Random candidates below that range, each checked by binding it; bind(0) last.
    """
    low, high = _listen_range()
    for _ in range(64):
        port = random.randrange(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    http: str
    metrics: str
    grpc: str
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.http, timeout=30)


def start_server(
    interface: str,
    tmp: Path,
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path = MODELS,
    wait: bool = True,
) -> Server:
    http, grpc_port, metrics = free_port(), free_port(), free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PREDICTIVE_UNIT", "SELDON_", "GRPC_", "OTEL_", "JAEGER_", "TRACING"))}
    full_env.update(env or {})
    log = tmp / f"server-{http}.log"
    cmd = [
        CLI, interface, "--http-port", str(http), "--grpc-port", str(grpc_port),
        "--metrics-port", str(metrics), "--host", "127.0.0.1", *args,
    ]
    proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            preexec_fn=die_with_parent)
    server = Server(proc, f"http://127.0.0.1:{http}", f"http://127.0.0.1:{metrics}", f"127.0.0.1:{grpc_port}", log)
    if wait:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited {proc.returncode}:\n{server.output()}")
            try:
                if httpx.get(server.http + "/health/ping", timeout=1).text == "pong":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                stop_server(server)
                raise RuntimeError(f"server did not start:\n{server.output()}")
            time.sleep(0.1)
    return server


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture(scope="module")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    started: list[Server] = []
    tmp = tmp_path_factory.mktemp("servers")

    def make(interface: str, *args: str, **kw) -> Server:
        s = start_server(interface, tmp, *args, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        stop_server(s)
