"""Server spans in a real Jaeger v2: the real command with `--tracing` exporting OTLP/HTTP to
Jaeger on free loopback ports, requests over REST and gRPC (Seldon v1 and v2) carrying known
`traceparent`s, then Jaeger's query API. Also B3, no context and a malformed `traceparent` (new
roots, requests still answered), failures, and spans queued at SIGTERM exported before exit.

Jaeger comes from `scripts/jaeger-test-env.sh` (built once per machine, cached), configured
like `control-plane/cli/tests/up_tracing.rs` and `model-servers/serving/tests/common/jaeger.rs`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import grpc
import httpx
import pytest
from google.protobuf import json_format

from conftest import die_with_parent, free_port, stop_server
from seldon_mesh_wrapper.proto.inference import open_inference_grpc_pb2 as oip
from seldon_mesh_wrapper.proto.inference import open_inference_grpc_pb2_grpc as oip_grpc
from seldon_mesh_wrapper.proto.seldon import prediction_pb2 as pb
from seldon_mesh_wrapper.proto.seldon import prediction_pb2_grpc as pb_grpc
from seldon_mesh_wrapper.settings import ConfigError, load_settings
from seldon_mesh_wrapper.tracing import grpc_names, rest_route, setup, tracing_config

REPO = Path(__file__).resolve().parents[3]
UNIT = "pymodel"
CALLER = "00f067aa0ba902b7"

JAEGER_CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 1000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


class Jaeger:
    def __init__(self, proc: subprocess.Popen, otlp: int, query: int) -> None:
        self.proc, self.otlp, self.query = proc, otlp, query

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp}"

    def trace(self, trace_id: str) -> tuple[list, dict]:
        r = httpx.get(f"http://127.0.0.1:{self.query}/api/traces/{trace_id}", timeout=10)
        if r.status_code != 200:
            return [], {}
        data = r.json()["data"][0]
        return data["spans"], data["processes"]

    def find(self, key: str, value: str) -> list:
        r = httpx.get(f"http://127.0.0.1:{self.query}/api/traces",
                      params={"service": UNIT, "tags": json.dumps({key: value}), "limit": "20"}, timeout=10)
        return r.json()["data"] or [] if r.status_code == 200 else []


    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def start_jaeger(tmp: Path, otlp: int) -> Jaeger:
    """Jaeger with OTLP/HTTP on `otlp` and its query API on a free port, ready."""
    built = subprocess.run(["bash", str(REPO / "scripts/jaeger-test-env.sh")], stdout=subprocess.PIPE, check=True)
    binary = built.stdout.decode().strip()
    query, query_grpc = free_port(), free_port()
    (tmp / "jaeger.yaml").write_text(JAEGER_CONFIG.format(otlp=otlp, query=query, query_grpc=query_grpc))
    log = tmp / "jaeger.log"
    # its own process group, killed whole at teardown, and killed with pytest
    proc = subprocess.Popen([binary, "--config", f"file:{tmp / 'jaeger.yaml'}"], stdout=subprocess.DEVNULL,
                            stderr=log.open("w"), start_new_session=True, preexec_fn=die_with_parent)
    j = Jaeger(proc, otlp, query)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jaeger exited {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{query}/api/services", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jaeger not ready in 30 s:\n{log.read_text()}")
            time.sleep(0.1)
    except BaseException:
        j.stop()
        raise
    return j


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    j = start_jaeger(tmp_path_factory.mktemp("jaeger"), free_port())
    try:
        yield j
    finally:
        j.stop()


def tag(span: dict, key: str):
    return next((t["value"] for t in span["tags"] if t["key"] == key), None)


def parent(span: dict) -> str | None:
    return next((r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"), None)


def only_span(jaeger: Jaeger, trace_id: str) -> dict:
    deadline = time.monotonic() + 20
    while True:
        spans, processes = jaeger.trace(trace_id)
        if spans:
            assert len(spans) == 1, spans
            span = spans[0]
            assert processes[span["processID"]]["serviceName"] == UNIT
            assert span["traceID"] == trace_id
            assert tag(span, "span.kind") == "server", span
            assert tag(span, "seldon.model.name") == UNIT, span
            assert tag(span, "seldon.node.name") == UNIT, span
            return span
        assert time.monotonic() < deadline, f"no span of trace {trace_id} in Jaeger after 20 s"
        time.sleep(0.2)


def only_trace_with_path(jaeger: Jaeger, path: str) -> dict:
    deadline = time.monotonic() + 20
    while True:
        traces = jaeger.find("url.path", path)
        if traces:
            assert len(traces) == 1, traces
            assert len(traces[0]["spans"]) == 1, traces
            return traces[0]["spans"][0]
        assert time.monotonic() < deadline, f"no trace with url.path {path} after 20 s"
        time.sleep(0.2)


def tp(trace_id: str) -> str:
    return f"00-{trace_id}-{CALLER}-01"


def traced_env(jaeger: Jaeger, delay_ms: int) -> dict[str, str]:
    return {"PREDICTIVE_UNIT_ID": UNIT, "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": str(delay_ms)}


def test_server_spans_continue_the_callers_trace(jaeger, server_factory):
    s = server_factory("FullModel", "--tracing", env=traced_env(jaeger, 100))
    c = httpx.Client(base_url=s.http, timeout=30)
    t = {name: f"{i:x}" * 4 + "f92f3577b34da6a3ce929d0e0e47" for i, name in
         enumerate(["v1", "v2", "grpc1", "grpc2", "grpc3", "b3", "fail"], start=1)}

    r = c.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1, 2]]}}, headers={"traceparent": tp(t["v1"])})
    assert r.json()["data"]["ndarray"] == [[1.0, 2.0]]
    r = c.post(f"/v2/models/{UNIT}/infer", headers={"traceparent": tp(t["v2"])},
               json={"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [3, 4]}]})
    assert r.json()["outputs"][0]["data"] == [3.0, 4.0]
    with grpc.insecure_channel(s.grpc) as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        out = pb_grpc.ModelStub(ch).Predict(json_format.ParseDict({"data": {"ndarray": [[5]]}}, pb.SeldonMessage()),
                                            metadata=[("traceparent", tp(t["grpc1"]))])
        assert json_format.MessageToDict(out)["data"]["ndarray"] == [[5.0]]
        infer = oip.ModelInferRequest(model_name=UNIT, inputs=[oip.ModelInferRequest.InferInputTensor(
            name="x", datatype="FP64", shape=[1], contents=oip.InferTensorContents(fp64_contents=[6]))])
        out = oip_grpc.GRPCInferenceServiceStub(ch).ModelInfer(infer, metadata=[("traceparent", tp(t["grpc2"]))])
        assert list(out.outputs[0].contents.fp64_contents) == [6.0]
        with pytest.raises(grpc.RpcError) as err:  # the model raises ValueError("boom") on -2
            bad = oip.ModelInferRequest(model_name=UNIT, inputs=[oip.ModelInferRequest.InferInputTensor(
                name="x", datatype="FP64", shape=[1], contents=oip.InferTensorContents(fp64_contents=[-2]))])
            oip_grpc.GRPCInferenceServiceStub(ch).ModelInfer(bad, metadata=[("traceparent", tp(t["grpc3"]))])
        assert err.value.code() == grpc.StatusCode.INTERNAL
    r = c.post("/transform-input", json={"data": {"ndarray": [[1]]}}, headers={"b3": f"{t['b3']}-{CALLER}-1"})
    assert r.status_code == 200
    r = c.post("/api/v1.0/predictions", json={"data": {"ndarray": [[-2]]}}, headers={"traceparent": tp(t["fail"])})
    assert r.status_code == 500 and r.json()["status"]["info"] == "boom"
    # no context, and a malformed one: new roots, still answered
    assert c.post("/predict", json={"data": {"ndarray": [[7]]}}).json()["data"]["ndarray"] == [[7.0]]
    r = c.post("/api/v0.1/predictions", json={"data": {"ndarray": [[8]]}}, headers={"traceparent": "00-nope-01"})
    assert r.json()["data"]["ndarray"] == [[8.0]]

    span = only_span(jaeger, t["v1"])
    assert parent(span) == CALLER
    assert span["operationName"] == "POST /api/v1.0/predictions"
    assert {k: tag(span, k) for k in ("http.request.method", "http.route", "url.path", "http.response.status_code",
                                      "seldon.protocol", "otel.status_code")} == {
        "http.request.method": "POST", "http.route": "/api/v1.0/predictions", "url.path": "/api/v1.0/predictions",
        "http.response.status_code": 200, "seldon.protocol": "seldon", "otel.status_code": None}

    span = only_span(jaeger, t["v2"])
    assert (parent(span), span["operationName"]) == (CALLER, "POST /v2/models/{model}/infer")
    assert (tag(span, "url.path"), tag(span, "seldon.protocol")) == (f"/v2/models/{UNIT}/infer", "v2")

    span = only_span(jaeger, t["grpc1"])
    assert (parent(span), span["operationName"]) == (CALLER, "seldon.protos.Model/Predict")
    assert {k: tag(span, k) for k in ("rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code",
                                      "seldon.protocol")} == {
        "rpc.system": "grpc", "rpc.service": "seldon.protos.Model", "rpc.method": "Predict",
        "rpc.grpc.status_code": 0, "seldon.protocol": "seldon"}

    span = only_span(jaeger, t["grpc2"])
    assert (parent(span), span["operationName"]) == (CALLER, "inference.GRPCInferenceService/ModelInfer")
    assert (tag(span, "seldon.protocol"), tag(span, "rpc.grpc.status_code")) == ("v2", 0)

    span = only_span(jaeger, t["grpc3"])
    assert (tag(span, "rpc.grpc.status_code"), tag(span, "otel.status_code")) == (13, "ERROR")

    span = only_span(jaeger, t["b3"])
    assert (parent(span), span["operationName"]) == (CALLER, "POST /transform-input")

    span = only_span(jaeger, t["fail"])
    assert (tag(span, "http.response.status_code"), tag(span, "otel.status_code")) == (500, "ERROR")

    for path in ("/predict", "/api/v0.1/predictions"):
        span = only_trace_with_path(jaeger, path)
        assert parent(span) is None, span
        assert span["traceID"] not in t.values()
        assert tag(span, "http.response.status_code") == 200


def test_spans_queued_at_sigterm_are_exported_before_exit(jaeger, server_factory):
    # a 10-minute batch delay: only the shutdown flush can export this span
    s = server_factory("FullModel", env={**traced_env(jaeger, 600_000), "TRACING": "1"})
    trace_id = "dbf92f3577b34da6a3ce929d0e0e473e"
    r = httpx.post(s.http + "/predict", json={"data": {"ndarray": [[1]]}}, headers={"traceparent": tp(trace_id)})
    assert r.status_code == 200
    time.sleep(0.5)
    assert jaeger.trace(trace_id) == ([], {}), "exported before the stop: the batch delay did not apply"
    stop_server(s)
    assert s.proc.returncode == 0, s.output()
    assert parent(only_span(jaeger, trace_id)) == CALLER


def metric(s, name: str) -> float | None:
    """An unlabelled sample on the server's /prometheus."""
    for line in httpx.get(s.metrics + "/prometheus", timeout=10).text.splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return float(value)
    return None


def test_a_collector_that_is_down_costs_spans_not_requests(server_factory, tmp_path_factory):
    otlp = free_port()  # nothing listens here yet: every export is refused
    s = server_factory("FullModel", "--tracing", env={
        "PREDICTIVE_UNIT_ID": UNIT, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp}",
        "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_EXPORTER_OTLP_TIMEOUT": "1"})
    c = httpx.Client(base_url=s.http, timeout=30)
    slowest = 0.0
    for i in range(1, 6):
        started = time.monotonic()
        r = c.post("/predict", json={"data": {"ndarray": [[i]]}}, headers={"traceparent": tp(f"{0xdead0000 + i:032x}")})
        slowest = max(slowest, time.monotonic() - started)
        assert r.json()["data"]["ndarray"] == [[float(i)]]
        time.sleep(0.05)
    # generous: a request never waits for the export (1 s timeout here, with retries)
    assert slowest < 1.0, slowest

    # failures counted on /prometheus (the start-up health pings were spans too) and logged
    deadline = time.monotonic() + 30
    while (metric(s, "seldon_otlp_spans_failed_total") or 0) < 5:
        assert time.monotonic() < deadline, httpx.get(s.metrics + "/prometheus").text
        time.sleep(0.2)
    time.sleep(2.5)  # let a retrying batch finish
    failed = metric(s, "seldon_otlp_spans_failed_total")
    assert failed is not None and failed >= 5
    assert (metric(s, "seldon_otlp_export_failures_total") or 0) >= 1
    assert metric(s, "seldon_otlp_spans_exported_total") == 0
    assert f"OTLP span export to http://127.0.0.1:{otlp}/v1/traces failed" in s.output()

    # the collector comes up on that port: the next spans arrive, with their parent
    j = start_jaeger(tmp_path_factory.mktemp("jaeger-late"), otlp)
    try:
        trace_id = "ebf92f3577b34da6a3ce929d0e0e473f"
        r = c.post("/api/v1.0/predictions", json={"data": {"ndarray": [[9]]}}, headers={"traceparent": tp(trace_id)})
        assert r.json()["data"]["ndarray"] == [[9.0]]
        assert parent(only_span(j, trace_id)) == CALLER
        deadline = time.monotonic() + 10
        while metric(s, "seldon_otlp_spans_exported_total") != 1:
            assert time.monotonic() < deadline, httpx.get(s.metrics + "/prometheus").text
            time.sleep(0.1)
        assert metric(s, "seldon_otlp_spans_failed_total") == failed
    finally:
        j.stop()


def test_tracing_switches_and_endpoint():
    off = load_settings(["M"], {})
    assert tracing_config(off, {}) is None and setup(off, {}) is None
    assert tracing_config(load_settings(["M", "--tracing", "0"], {"TRACING": "1"}), {}) is None
    on = load_settings(["M", "--tracing"], {"PREDICTIVE_UNIT_ID": "u"})
    assert load_settings(["M"], {"TRACING": "1"}).tracing
    # seldon-core's Jaeger agent host → OTLP/HTTP on the same host
    cfg = tracing_config(on, {"JAEGER_AGENT_HOST": "jaeger", "JAEGER_SAMPLER_TYPE": "probabilistic",
                              "JAEGER_SAMPLER_PARAM": "0.25"})
    assert (cfg.endpoint, cfg.service_name, cfg.sampler) == ("http://jaeger:4318/v1/traces", "u", ("probabilistic", 0.25))
    cfg = tracing_config(on, {})
    assert (cfg.endpoint, cfg.sampler) == ("http://localhost:4318/v1/traces", None)
    # the standard variable alone turns it on, and the exporter reads it itself
    cfg = tracing_config(off, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SERVICE_NAME": "svc"})
    assert (cfg.endpoint, cfg.service_name) == (None, "svc")
    # OTEL_TRACES_SAMPLER wins over JAEGER_SAMPLER_*
    assert tracing_config(on, {"OTEL_TRACES_SAMPLER": "always_off", "JAEGER_SAMPLER_TYPE": "const"}).sampler is None
    for bad in ({"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4318"}, {"JAEGER_SAMPLER_TYPE": "const", "JAEGER_SAMPLER_PARAM": "x"},
                {"JAEGER_SAMPLER_TYPE": "probabilistic", "JAEGER_SAMPLER_PARAM": "2"}):
        with pytest.raises(ConfigError):
            tracing_config(on, bad)


def test_route_and_rpc_names():
    assert rest_route("/api/v1.0/predictions") == ("/api/v1.0/predictions", "seldon")
    assert rest_route("/v2/models/iris/infer") == ("/v2/models/{model}/infer", "v2")
    assert rest_route("/v2/models/iris") == ("/v2/models/{model}", "v2")
    assert rest_route("/v2/health/ready") == ("/v2/health/ready", "v2")
    for unknown in ("/", "/nope", "/v2/models/", "/v2/models/a/b"):
        assert rest_route(unknown) is None, unknown
    assert grpc_names("/inference.GRPCInferenceService/ModelInfer") == (
        "inference.GRPCInferenceService", "ModelInfer", "v2")
    assert grpc_names("/seldon.protos.Seldon/Predict") == ("seldon.protos.Seldon", "Predict", "seldon")
    for bad in ("", "/", "/x", "//m", "/a/b/c"):
        assert grpc_names(bad) is None, bad
