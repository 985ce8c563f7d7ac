"""A model's custom `metrics()` on the real `/prometheus`, with exact values: COUNTER adds (one
`_total` series per tag set), GAUGE keeps the last value, TIMER observes milliseconds as seconds
in seldon-core's buckets. REST and gRPC calls record into the same series; `meta.metrics` in the
response carries the same entries as seldon-core's wrapper returns them."""

from __future__ import annotations

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf import json_format
from prometheus_client.parser import text_string_to_metric_families

from seldon_mesh_wrapper.proto.seldon import prediction_pb2 as pb
from seldon_mesh_wrapper.proto.seldon import prediction_pb2_grpc as pb_grpc

ENV = {"PREDICTIVE_UNIT_ID": "metered", "SELDON_DEPLOYMENT_ID": "dep", "PREDICTIVE_UNIT_IMAGE": "img:3"}
# seldon-core's exposed TIMER bounds (BINS[1:]), then +Inf
BOUNDS = [float(b) for b in np.logspace(-3, np.log10(30), 50)]


def families(s) -> dict:
    text = httpx.get(s.metrics + "/prometheus", timeout=10).text
    return {f.name: f for f in text_string_to_metric_families(text)}


def predict_samples(fam) -> dict:
    """{(sample name, le or None): value} of the method="predict" series."""
    out = {}
    for s in fam.samples:
        if s.labels.get("method") == "predict":
            key = (s.name, s.labels.get("le"))
            assert key not in out, f"one series per name and le: {fam.samples}"
            out[key] = s.value
    return out


def test_counter_gauge_and_timer_have_seldons_names_and_exact_values(server_factory):
    s = server_factory("Metered", env=ENV)
    values_ms = [2.0, 5.0, 0.5]  # 0.5 ms is under the first bound (le="0.001")
    with httpx.Client(base_url=s.http, timeout=30) as c:
        for v in values_ms[:2]:
            r = c.post("/api/v1.0/predictions", json={"data": {"ndarray": [[v]]}})
            assert r.json()["meta"]["metrics"] == [
                {"type": "COUNTER", "key": "metered_units", "value": v, "tags": {"unit": "ms"}},
                {"type": "GAUGE", "key": "metered_last", "value": v},
                {"type": "TIMER", "key": "metered_latency", "value": v},
            ]
    with grpc.insecure_channel(s.grpc) as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        out = pb_grpc.ModelStub(ch).Predict(
            json_format.ParseDict({"data": {"ndarray": [[values_ms[2]]]}}, pb.SeldonMessage()))
        assert json_format.MessageToDict(out)["data"]["ndarray"] == [[0.5]]

    fams = families(s)
    assert (fams["metered_units"].type, fams["metered_last"].type, fams["metered_latency"].type) == (
        "counter", "gauge", "histogram")
    counter = fams["metered_units"].samples
    assert [(x.name, x.value) for x in counter if x.labels.get("method") == "predict"] == [
        ("metered_units_total", 7.5)]
    labels = next(x.labels for x in counter if x.labels.get("method") == "predict")
    assert labels == {
        "unit": "ms", "method": "predict", "deployment_name": "dep", "model_name": "metered",
        "model_image": "img", "model_version": "3", "predictor_name": labels["predictor_name"],
        "predictor_version": labels["predictor_version"], "worker_id": labels["worker_id"],
        "seldon_deployment_name": "dep", "image_name": "img", "image_version": "3",
    }
    assert predict_samples(fams["metered_last"]) == {("metered_last", None): 0.5}

    timer = predict_samples(fams["metered_latency"])
    assert timer.pop(("metered_latency_count", None)) == 3
    assert timer.pop(("metered_latency_sum", None)) == pytest.approx(0.0075)
    expected = {("metered_latency_bucket", repr(b)): float(sum(v / 1000 <= b for v in values_ms)) for b in BOUNDS}
    expected[("metered_latency_bucket", "+Inf")] = 3.0
    assert timer == expected
    # seldon-core's `le` strings: 0.5 ms in the first bucket, 2 ms between the 4th and 5th bound
    b = "metered_latency_bucket"
    assert [timer[(b, le)] for le in ("0.001", "0.001879790561123359", "0.002319953531544542", "+Inf")] == [
        1.0, 1.0, 2.0, 3.0]


def test_raw_meta_metrics_are_recorded_once_per_call(server_factory):
    s = server_factory("RawModel", env={"PREDICTIVE_UNIT_ID": "raw"})
    with httpx.Client(base_url=s.http, timeout=30) as c:
        for _ in range(3):
            assert c.post("/predict", json={"strData": "x"}).status_code == 200
    assert predict_samples(families(s)["raw_calls"]) == {("raw_calls_total", None): 3.0}
