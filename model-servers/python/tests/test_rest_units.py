"""Routers, combiners, transformers, raw hooks and fallbacks, through the real command."""

from __future__ import annotations

import base64
import json
import threading

import httpx
import pytest

NDARRAY = {"data": {"names": ["a", "b"], "ndarray": [[1, 2]]}}


def post(server, path, body=None, **kw):
    with server.client() as c:
        return c.post(path, json=body, **kw) if body is not None else c.post(path, **kw)


@pytest.fixture(scope="module")
def empty(server_factory):
    return server_factory("Empty")


@pytest.fixture(scope="module")
def router(server_factory):
    return server_factory("Router", "--service-type", "ROUTER",
                          env={"INCLUDE_METRICS_IN_CLIENT_RESPONSE": "false", "GRPC_WORKERS": "0"})


def test_missing_hooks_fall_back_like_seldon(empty):
    assert post(empty, "/predict", NDARRAY).json() == {"data": {"ndarray": [], "names": []}, "meta": {}}
    assert post(empty, "/transform-input", NDARRAY).json() == {
        "data": {"ndarray": [[1, 2]], "names": ["a", "b"]}, "meta": {}}
    assert post(empty, "/transform-output", NDARRAY).json() == {
        "data": {"ndarray": [[1, 2]], "names": ["t:0", "t:1"]}, "meta": {}}
    assert post(empty, "/send-feedback", {"request": NDARRAY, "reward": 1}).json() == {
        "data": {"ndarray": [], "names": []}, "meta": {}}
    with empty.client() as c:
        assert c.get("/health/status").json() == {"data": {"tensor": {"values": [], "shape": [0]}, "names": []},
                                                  "meta": {}}
        assert c.get("/metadata").json() == {"name": "Empty", "versions": [], "platform": "", "inputs": [],
                                             "outputs": []}


@pytest.mark.parametrize(("path", "info"), [("/route", "Route not defined"), ("/aggregate", "Aggregate not defined")])
def test_missing_route_or_aggregate_is_400(empty, path, info):
    body = NDARRAY if path == "/route" else [NDARRAY]
    r = post(empty, path, body)
    assert r.status_code == 400
    assert r.json() == {"status": {"status": 1, "info": info, "code": -1, "reason": "MICROSERVICE_BAD_DATA"}}


def test_route_returns_branch_as_2d_ndarray(router):
    assert post(router, "/route", {"data": {"ndarray": [[5]]}}).json() == {
        "data": {"ndarray": [[1]], "names": ["t:0"]}, "meta": {}}
    assert post(router, "/route", {"data": {"tensor": {"shape": [1], "values": [-5]}}}).json() == {
        "data": {"tensor": {"values": [0], "shape": [1, 1]}, "names": ["t:0"]}, "meta": {}}


def test_route_seldon_response_tags_kept_metrics_hidden_when_disabled(router):
    r = post(router, "/route", {"data": {"ndarray": [[42]]}})
    assert r.json() == {"data": {"ndarray": [[1]], "names": ["t:0"]}, "meta": {"tags": {"routed": "yes"}}}
    text = httpx.get(router.metrics + "/prometheus").text
    assert 'routes_total{' in text and 'method="router"' in text


def test_route_non_int_is_400(router):
    r = post(router, "/route", {"data": {"ndarray": [[99]]}})
    assert r.status_code == 400
    assert r.json()["status"]["info"] == "Routing response must be int but got not-an-int"


def test_router_feedback_gets_its_routing(router):
    fb = {"request": {"data": {"ndarray": [[1]]}}, "response": {"meta": {"routing": {"0": 1}}}, "reward": 0.5}
    assert post(router, "/send-feedback", fb).json() == {
        "data": {"ndarray": [[0.5, 1.0]], "names": ["t:0", "t:1"]}, "meta": {}}
    fb["response"] = {}
    assert post(router, "/send-feedback", fb).json()["data"]["ndarray"] == [[0.5, -1.0]]


def test_grpc_workers_zero_disables_grpc(router):
    import grpc

    with grpc.insecure_channel(router.grpc) as ch:
        with pytest.raises(grpc.FutureTimeoutError):
            grpc.channel_ready_future(ch).result(timeout=1)


def test_transformer_uses_feature_names_for_input_and_class_names_for_output(server_factory):
    s = server_factory("Transformer", "--service-type", "TRANSFORMER")
    assert post(s, "/transform-input", NDARRAY).json() == {
        "data": {"ndarray": [[2, 3]], "names": ["f0", "f1"]}, "meta": {}}
    assert post(s, "/transform-output", NDARRAY).json() == {
        "data": {"ndarray": [[10, 20]], "names": ["t:0", "t:1"]}, "meta": {}}


def test_combiner_merges_meta_of_all_inputs(server_factory):
    s = server_factory("Combiner", "--service-type", "COMBINER", env={"PREDICTIVE_UNIT_ID": "comb",
                                                                       "PREDICTIVE_UNIT_IMAGE": "c:1"})
    msgs = [
        {"data": {"ndarray": [[1, 2]]}, "meta": {"puid": "p", "tags": {"a": 1}, "requestPath": {"m1": "i1"},
                                                 "metrics": [{"type": "COUNTER", "key": "k1", "value": 1}]}},
        {"data": {"ndarray": [[3, 4]]}, "meta": {"tags": {"b": 2}, "requestPath": {"m2": "i2"}}},
    ]
    expected = {
        "data": {"ndarray": [[2.0, 3.0]], "names": ["t:0", "t:1"]},
        "meta": {"puid": "p", "tags": {"a": 1, "b": 2}, "metrics": [{"type": "COUNTER", "key": "k1", "value": 1}],
                 "requestPath": {"comb": "c:1", "m1": "i1", "m2": "i2"}},
    }
    assert post(s, "/aggregate", msgs).json() == expected
    assert post(s, "/aggregate", {"seldonMessages": msgs}).json() == expected
    for bad, info in [({"x": 1}, "Invalid request data type: {'x': 1}"),
                      ([], "Aggregate needs at least one SeldonMessage")]:
        r = post(s, "/aggregate", bad)
        assert (r.status_code, r.json()["status"]["info"]) == (400, info)


def test_raw_hooks_get_the_message_and_their_metrics_are_recorded(server_factory):
    s = server_factory("RawModel")
    assert post(s, "/predict", {"strData": "x"}).json() == {
        "jsonData": {"raw": True, "keys": ["strData"]},
        "meta": {"metrics": [{"type": "COUNTER", "key": "raw_calls", "value": 1}]},
    }
    assert post(s, "/transform-input", {"strData": "x"}).json() == {"strData": "ti-raw"}
    assert post(s, "/transform-output", {"strData": "x"}).json() == {"strData": "to-raw"}
    assert post(s, "/route", {"strData": "x"}).json() == {"data": {"ndarray": [[2]]}}
    assert post(s, "/aggregate", [{"strData": "x"}, {"strData": "y"}]).json() == {"jsonData": {"count": 2}}
    assert post(s, "/send-feedback", {"reward": 1}).json() == {"strData": "fb-raw"}
    with s.client() as c:
        assert c.get("/health/status").json() == {"strData": "healthy"}
    text = httpx.get(s.metrics + "/prometheus").text
    assert 'raw_calls_total{' in text


def test_payload_passthrough_hands_raw_bytes_to_predict_raw(server_factory):
    s = server_factory("RawModel", env={"PAYLOAD_PASSTHROUGH": "true"})
    r = post(s, "/predict", content=b'{"strData":"in"}', headers={"content-type": "application/json"})
    assert (r.status_code, r.content) == (200, b'{"strData":"out"}')


def test_faulty_hooks(server_factory):
    s = server_factory("Faulty")
    r = post(s, "/predict", NDARRAY)
    assert r.status_code == 400
    assert r.json()["status"]["reason"] == "MICROSERVICE_BAD_METRIC"
    assert r.json()["status"]["info"].startswith("Bad metric created during request: ")
    with s.client() as c:
        r = c.get("/metadata")
        assert (r.status_code, r.json()) == (500, {"status": {"status": 1, "info": "Model metadata unavailable",
                                                              "code": -1, "reason": "MICROSERVICE_BAD_METADATA"}})
        r = c.get("/health/status")
        assert (r.status_code, r.json()["status"]["info"]) == (500, "unhealthy")


def test_module_dot_class_and_plain_predict_without_meta(server_factory):
    s = server_factory("Multi.Second")
    assert post(s, "/predict", {"strData": "x"}).json() == {"strData": "second", "meta": {}}
    p = server_factory("Plain", env={"PREDICTIVE_UNIT_ID": "plain", "PREDICTIVE_UNIT_IMAGE": "p:0"})
    assert post(p, "/predict", NDARRAY).json() == {
        "data": {"ndarray": [[1, 2]], "names": ["t:0", "t:1"]}, "meta": {"requestPath": {"plain": "p:0"}}}
    assert post(p, "/predict", {"data": {"ndarray": [1, 2]}}).json()["data"] == {"ndarray": [1, 2], "names": []}
    assert post(p, "/predict", {"data": {"names": ["a"]}}).json()["data"] == {"ndarray": [], "names": []}


def test_oversize_body_is_413(server_factory):
    s = server_factory("Plain", "--max-body-bytes", "64")
    r = post(s, "/predict", {"strData": "x" * 100})
    assert r.status_code == 413
    assert r.json() == {"status": {"status": 1, "info": "Request body exceeds 64 bytes", "code": -1,
                                   "reason": "MICROSERVICE_PAYLOAD_TOO_LARGE"}}

    def chunks():
        yield b'{"strData": "'
        yield b"y" * 100
        yield b'"}'

    r = post(s, "/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert post(s, "/predict", {"strData": "ok"}).json() == {"strData": "ok", "meta": {}}


def test_blocking_predict_does_not_stall_the_server(server_factory, tmp_path):
    s = server_factory("Blocking")
    release = tmp_path / "release"
    result = {}

    def call():
        result["body"] = post(s, "/predict", {"strData": str(release)}).json()

    t = threading.Thread(target=call)
    t.start()
    with s.client() as c:
        assert c.get("/health/ping").text == "pong"
        assert c.get("/v2/health/live").json() == {"live": True}
    assert t.is_alive()
    release.write_text("go")
    t.join(timeout=30)
    assert result["body"] == {"strData": "released", "meta": {}}


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["NoSuchModule"], {}, "cannot import NoSuchModule"),
        (["Plain", "--parameters", "not json"], {}, "parameters are not valid JSON"),
        (["Plain"], {"PREDICTIVE_UNIT_PARAMETERS": '[{"name": "a", "value": "x", "type": "INT"}]'},
         "parameter a: 'x' is not INT"),
        (["Plain", "--workers", "0"], {}, "--workers / GUNICORN_WORKERS must be at least 1, got 0"),
        (["Plain"], {"GUNICORN_WORKERS": "-1"}, "--workers / GUNICORN_WORKERS must be at least 1, got -1"),
        (["Multi.Nope"], {}, "module Multi has no class Nope"),
    ],
)
def test_bad_startup_exits_with_message(tmp_path, args, env, message):
    from conftest import start_server

    s = start_server(args[0], tmp_path, *args[1:], env=env, wait=False)
    assert s.proc.wait(timeout=60) == 2
    assert message in s.output()


def test_constructor_failure_exits_nonzero(tmp_path):
    from conftest import start_server

    s = start_server("BadInit", tmp_path, wait=False)
    assert s.proc.wait(timeout=60) != 0
    assert "needed" in s.output()
