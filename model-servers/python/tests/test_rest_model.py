"""A MODEL with every hook, through the real command over HTTP."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

PARAMS = json.dumps([
    {"name": "scale", "value": "2", "type": "INT"},
    {"name": "offset", "value": "0.5", "type": "FLOAT"},
    {"name": "label", "value": "lbl", "type": "STRING"},
    {"name": "enabled", "value": "true", "type": "BOOL"},
])
ENV = {
    "PREDICTIVE_UNIT_PARAMETERS": PARAMS,
    "PREDICTIVE_UNIT_ID": "full",
    "PREDICTIVE_UNIT_IMAGE": "img:1.2",
    "SELDON_DEPLOYMENT_ID": "dep",
    "PREDICTOR_ID": "pred",
    "PREDICTOR_LABELS": '{"version": "v7"}',
    "MODEL_METADATA": "versions: [v2]",
    "PREDICTIVE_UNIT_METRICS_ENDPOINT": "/custom-metrics",
}
METRICS = [
    {"type": "COUNTER", "key": "mycounter", "value": 1},
    {"type": "GAUGE", "key": "mygauge", "value": 100, "tags": {"mytag": "a"}},
    {"type": "TIMER", "key": "mytimer", "value": 20.2},
]
META = {"tags": {"model_tag": "lbl"}, "metrics": METRICS, "requestPath": {"full": "img:1.2"}}


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory("FullModel", env=ENV)


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def test_ndarray_predict_echoes_ndarray_with_class_names_and_meta(client):
    r = client.post("/predict", json={"data": {"ndarray": [[1, 2]]}})
    assert r.status_code == 200
    assert r.json() == {"data": {"ndarray": [[2.5, 4.5]], "names": ["c0", "c1"]}, "meta": META}


def test_tensor_request_gets_tensor_and_request_meta_is_merged(client):
    req = {
        "meta": {"puid": "abc", "tags": {"in": "t"}, "requestPath": {"up": "img:0"},
                 "metrics": [{"type": "GAUGE", "key": "upstream", "value": 3}]},
        "data": {"names": ["a", "b"], "tensor": {"shape": [1, 2], "values": [1, 2]}},
    }
    r = client.post("/api/v1.0/predictions", json=req)
    assert r.json() == {
        "data": {"tensor": {"values": [2.5, 4.5], "shape": [1, 2]}, "names": ["c0", "c1"]},
        "meta": {
            "puid": "abc",
            "tags": {"in": "t", "model_tag": "lbl"},
            "metrics": [{"type": "GAUGE", "key": "upstream", "value": 3}, *METRICS],
            "requestPath": {"full": "img:1.2", "up": "img:0"},
        },
    }


def test_tftensor_request_gets_tftensor(client):
    tft = {"dtype": "DT_DOUBLE", "tensorShape": {"dim": [{"size": "1"}, {"size": "2"}]}, "doubleVal": [1, 2]}
    r = client.post("/api/v0.1/predictions", json={"data": {"tftensor": tft}})
    content = base64.b64encode(np.array([[2.5, 4.5]]).tobytes()).decode()
    assert r.json()["data"] == {
        "tftensor": {"dtype": "DT_DOUBLE", "tensorShape": {"dim": [{"size": "1"}, {"size": "2"}]},
                     "tensorContent": content},
        "names": ["c0", "c1"],
    }


def test_parameters_are_typed_and_load_was_called(client):
    r = client.post("/predict", json={"strData": "params"})
    assert r.json() == {
        "jsonData": {"scale": 2, "offset": 0.5, "label": "lbl", "enabled": True, "loaded": True},
        "meta": META,
    }


def test_meta_kwarg_and_names_reach_predict(client):
    r = client.post("/predict", json={"strData": "meta", "meta": {"puid": "p1"}})
    assert r.json()["jsonData"] == {"meta": {"puid": "p1"}, "names": []}
    assert r.json()["meta"]["puid"] == "p1"


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        ({"strData": "hello"}, {"strData": "HELLO"}),
        ({"strData": "bytes"}, {"binData": "AAFoaQ=="}),
        ({"binData": base64.b64encode(b"abc").decode()}, {"binData": "Y2Jh"}),
        ({"jsonData": {"k": [1, 2]}}, {"jsonData": {"echo": {"k": [1, 2]}}}),
        ({"strData": "strings"}, {"data": {"ndarray": [["a", "b"]], "names": ["c0", "c1"]}}),
    ],
)
def test_payload_kinds_map_to_response_kinds(client, request_body, expected):
    r = client.post("/predict", json=request_body)
    assert r.status_code == 200
    assert r.json() == {**expected, "meta": META}


def test_query_and_form_json_field(client):
    assert client.get("/predict", params={"json": '{"strData": "q"}'}).json()["strData"] == "Q"
    assert client.post("/predict", data={"json": '{"strData": "f"}'}).json()["strData"] == "F"


def test_multipart_bindata_file_and_strdata_field(client):
    r = client.post("/predict", files={"binData": ("x.bin", b"xyz")})
    assert r.json()["binData"] == base64.b64encode(b"zyx").decode()
    r = client.post("/predict", files={"strData": (None, "part")})
    assert r.json()["strData"] == "PART"


def test_user_exception_is_400_bad_data(client):
    r = client.post("/predict", json={"data": {"ndarray": [[-1]]}})
    assert r.status_code == 400
    assert r.json() == {"status": {"status": 1, "info": "negative one is not allowed", "code": -1,
                                   "reason": "MICROSERVICE_BAD_DATA"}}


def test_unhandled_exception_is_500_internal_error(client):
    r = client.post("/predict", json={"data": {"ndarray": [[-2]]}})
    assert r.status_code == 500
    assert r.json() == {"status": {"status": 1, "info": "boom", "code": -1,
                                   "reason": "MICROSERVICE_INTERNAL_ERROR"}}


def test_unsupported_return_type_is_400(client):
    r = client.post("/predict", json={"strData": "bad-type"})
    assert r.status_code == 400
    assert r.json()["status"]["info"] == "Unknown data type returned as payload (must be list or np array):3.5"


@pytest.mark.parametrize(
    ("content", "info_prefix"),
    [
        (b"", "Invalid Data Format - empty JSON"),
        (b"null", "Invalid Data Format - empty JSON"),
        (b"{not json", "Invalid JSON: "),
        (b"{}", "Invalid request data type: {}"),
        (b"[1, 2]", "Invalid request data type: [1, 2]"),
        (b'{"data": {"tensor": {"shape": [3], "values": [1]}}}', "Invalid data: "),
        (b'{"binData": "***"}', "Invalid binData: "),
    ],
)
def test_bad_requests_are_400_json(client, content, info_prefix):
    r = client.post("/predict", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 400
    body = r.json()
    assert body["status"]["reason"] == "MICROSERVICE_BAD_DATA"
    assert body["status"]["info"].startswith(info_prefix)


def test_unknown_route_and_method_are_json(client):
    r = client.get("/nope")
    assert r.status_code == 404
    assert r.json()["status"]["reason"] == "NOT_FOUND"
    r = client.delete("/predict")
    assert r.status_code == 405
    assert r.json()["status"]["info"] == "Method DELETE not allowed"


def test_health(client):
    r = client.get("/health/ping")
    assert (r.status_code, r.text) == (200, "pong")
    r = client.get("/health/status")
    assert r.json() == {"data": {"tensor": {"values": [1.0], "shape": [1, 1]}, "names": ["c0", "c1"]},
                        "meta": META}


def test_metadata_merges_init_metadata_with_env(client):
    expected = {
        "name": "full-model",
        "versions": ["v2"],
        "platform": "seldon",
        "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 2]}],
        "outputs": [{"messagetype": "ndarray", "schema": {"names": ["c0", "c1"]}}],
        "custom": {"author": "test"},
    }
    assert client.get("/metadata").json() == expected
    assert client.get("/api/v1.0/metadata").json() == expected


def test_feedback_passes_routing_reward_truth_and_counts(client, server):
    fb = {
        "request": {"data": {"ndarray": [[1, 2]]}, "meta": {"puid": "fb1"}},
        "response": {"meta": {"routing": {"full": 3}}},
        "reward": 0.5,
        "truth": {"data": {"ndarray": [[1]]}},
    }
    r = client.post("/send-feedback", json=fb)
    assert r.json() == {"data": {"ndarray": [], "names": []}, "meta": {**META, "puid": "fb1"}}
    r = client.post("/api/v1.0/feedback", json={**fb, "reward": 1})
    assert r.status_code == 200
    seen = client.post("/predict", json={"strData": "feedback"}).json()["jsonData"]["feedback"]
    assert seen == [
        {"features": [[1, 2]], "reward": 0.5, "truth": [[1]], "routing": 3},
        {"features": [[1, 2]], "reward": 1.0, "truth": [[1]], "routing": 3},
    ]
    samples = _samples(server)
    labels = {"method": "feedback", "model_name": "full", "deployment_name": "dep"}
    assert _value(samples, "seldon_api_model_feedback_total", labels) == 2.0
    assert _value(samples, "seldon_api_model_feedback_reward_total", labels) == 1.5


def test_feedback_with_bad_reward_is_400(client):
    r = client.post("/send-feedback", json={"request": {}, "reward": "lots"})
    assert r.status_code == 400
    assert r.json()["status"]["info"] == "Invalid feedback reward: 'lots'"


def test_custom_metrics_are_exposed_with_seldon_labels(client, server):
    client.post("/predict", json={"data": {"ndarray": [[1, 2]]}})
    samples = _samples(server)
    base = {
        "deployment_name": "dep", "model_name": "full", "model_image": "img", "model_version": "1.2",
        "predictor_name": "pred", "predictor_version": "v7", "method": "predict",
        "seldon_deployment_name": "dep", "image_name": "img", "image_version": "1.2",
    }
    assert _value(samples, "mycounter_total", base) >= 1.0
    assert _value(samples, "mygauge", {**base, "mytag": "a"}) == 100.0
    assert _value(samples, "mytimer_sum", base) == pytest.approx(0.0202 * _value(samples, "mytimer_count", base))
    assert _value(samples, "mytimer_bucket", {**base, "le": "+Inf"}) == _value(samples, "mytimer_count", base)
    assert _value(samples, "mytimer_bucket", {**base, "le": "0.001"}) == 0.0
    # health checks record under their own method label
    client.get("/health/status")
    assert _value(_samples(server), "mycounter_total", {**base, "method": "health"}) >= 1.0


def test_metrics_served_on_all_paths(server):
    import httpx

    for path in ("/prometheus", "/metrics", "/custom-metrics"):
        r = httpx.get(server.metrics + path)
        assert r.status_code == 200
        assert "text/plain" in r.headers["content-type"]


def test_v2_infer_calls_predict_with_numpy(client):
    req = {"id": "r1", "inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}
    r = client.post("/v2/models/full/infer", json=req)
    assert r.json() == {
        "model_name": "full", "id": "r1", "parameters": {},
        "outputs": [{"name": "output-0", "shape": [1, 2], "datatype": "FP64", "data": [2.5, 4.5]}],
    }
    req = {"inputs": [{"name": "x", "shape": [2], "datatype": "INT32", "data": [[1], [2]]}],
           "outputs": [{"name": "scores"}]}
    out = client.post("/v2/models/full/infer", json=req).json()["outputs"]
    assert out == [{"name": "scores", "shape": [2], "datatype": "FP64", "data": [2.5, 4.5]}]


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/v2/models/other/infer", {"inputs": []}, 404, "Model other not found"),
        ("/v2/models/full/infer", {"inputs": []}, 400, "request needs a non-empty inputs list"),
        ("/v2/models/full/infer", {"inputs": [{"name": "a", "shape": [1], "datatype": "FP99", "data": [1]}]},
         400, "unsupported datatype 'FP99'"),
        ("/v2/models/full/infer", {"inputs": [{"name": "a"}]}, 400, "each input needs name, shape, datatype and data"),
        ("/v2/models/full/infer", {"inputs": [{"name": "a", "shape": [3], "datatype": "FP32", "data": [1]}]},
         400, "input 'a': cannot reshape array of size 1 into shape (3,)"),
        ("/v2/models/full/infer", {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [-1]}]},
         400, "negative one is not allowed"),
        ("/v2/models/full/infer", {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [-2]}]},
         500, "boom"),
    ],
)
def test_v2_infer_errors(client, path, body, status, error):
    r = client.post(path, json=body)
    assert (r.status_code, r.json()) == (status, {"error": error})


def test_v2_health_and_metadata(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/full/ready").json() == {"name": "full", "ready": True}
    assert client.get("/v2/models/full").json() == {
        "name": "full", "versions": ["v2"], "platform": "seldon",
        "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 2]}], "outputs": [],
    }
    assert client.get("/v2/models/x/ready").status_code == 404
    assert client.get("/v2").json()["name"] == "seldon-mesh-wrapper"


def _samples(server) -> list:
    import httpx

    text = httpx.get(server.metrics + "/prometheus").text
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def _value(samples: list, name: str, labels: dict) -> float:
    matches = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(matches) == 1, (name, labels, [s for s in samples if s.name == name])
    return matches[0]
