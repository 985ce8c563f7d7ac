"""GUNICORN_WORKERS > 1 with the real command: several processes answer on one port, their
metrics are merged on /prometheus, and SIGTERM leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import grpc
import httpx
from google.protobuf import json_format

from conftest import start_server
from seldon_mesh_wrapper.proto.seldon import prediction_pb2 as pb
from seldon_mesh_wrapper.proto.seldon import prediction_pb2_grpc as pb_grpc

N_REQUESTS = 40


def children(pid: int) -> set[int]:
    """Pids whose parent is `pid`, from `ps` (every process on the machine is listed)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    return {int(p) for p, pp in (line.split() for line in out.splitlines()) if int(pp) == pid}


def alive(pid: int) -> bool:
    out = subprocess.run(["ps", "-o", "pid=", "-p", str(pid)], capture_output=True, text=True).stdout
    return out.strip() != ""


def test_two_workers_share_the_port_merge_metrics_and_stop_on_sigterm(tmp_path):
    s = start_server("Pid", tmp_path, env={"GUNICORN_WORKERS": "2"})
    try:
        master = s.proc.pid
        workers = children(master)
        assert len(workers) == 2, (workers, s.output())

        # fresh connection per request: SO_REUSEPORT hashes each one to a worker
        seen: list[int] = []
        for i in range(N_REQUESTS):
            r = httpx.post(s.http + "/predict", json={"data": {"ndarray": [[i]]}}, timeout=10)
            assert r.status_code == 200, r.text
            assert r.json()["data"]["ndarray"] == [[i]]
            seen.append(r.json()["meta"]["tags"]["pid"])
        assert set(seen) == workers, (set(seen), workers)

        # gRPC answers too, from a worker
        with grpc.insecure_channel(s.grpc) as ch:
            out = pb_grpc.ModelStub(ch).Predict(
                json_format.ParseDict({"data": {"ndarray": [[1]]}}, pb.SeldonMessage()), timeout=10
            )
        grpc_pid = int(json_format.MessageToDict(out)["meta"]["tags"]["pid"])
        assert grpc_pid in workers

        # the master's /prometheus: one series per worker (worker_id = its pid), summing to all calls
        text = httpx.get(s.metrics + "/prometheus", timeout=10).text
        per_worker = {
            int(m.group(1)): float(m.group(2))
            for m in re.finditer(r'pid_requests_total\{[^}]*worker_id="(\d+)"[^}]*\} (\S+)', text)
        }
        assert set(per_worker) == workers, text
        assert sum(per_worker.values()) == N_REQUESTS + 1, per_worker
        for pid, count in per_worker.items():
            assert count == seen.count(pid) + (pid == grpc_pid), (pid, per_worker)
    finally:
        s.proc.send_signal(signal.SIGTERM)
        rc = s.proc.wait(timeout=60)
    assert rc == 0, s.output()
    left = [p for p in workers | {master} if alive(p)]
    assert left == [], (left, s.output())
    assert "all workers stopped" in s.output()


def test_a_worker_that_dies_stops_the_master_and_the_others(tmp_path):
    s = start_server("Pid", tmp_path, env={"GUNICORN_WORKERS": "2"})
    try:
        workers = sorted(children(s.proc.pid))
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        rc = s.proc.wait(timeout=60)
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
    assert rc == 1, s.output()
    assert f"worker {workers[0]} exited with -9: stopping" in s.output()
    assert not alive(workers[1])


def test_a_worker_that_cannot_start_stops_the_master(tmp_path):
    s = start_server("NoSuchModule", tmp_path, env={"GUNICORN_WORKERS": "2"}, wait=False)
    rc = s.proc.wait(timeout=60)
    assert rc == 1, s.output()
    assert "cannot import NoSuchModule" in s.output()
    deadline = time.monotonic() + 5
    while children(s.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert children(s.proc.pid) == set()
