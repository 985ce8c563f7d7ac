"""Pure functions: payload conversion, settings, metrics store, v2 parsing, error mapping."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from prometheus_client import generate_latest

from seldon_mesh_wrapper.errors import SeldonMicroserviceException, error_response
from seldon_mesh_wrapper.metadata import InvalidMetadataError, init_metadata, validate_model_metadata
from seldon_mesh_wrapper.metrics import SeldonMetrics, checked_metrics, validate_metrics
from seldon_mesh_wrapper.payload import (
    array_to_tftensor,
    construct_response,
    extract_request_parts,
    merge_meta,
    tftensor_to_array,
)
from seldon_mesh_wrapper.settings import ConfigError, load_settings, load_user_class, parse_parameters
from seldon_mesh_wrapper import v2


class Bare:
    pass


def test_construct_response_without_request_data_uses_tensor_for_numbers_and_ndarray_for_strings():
    assert construct_response(Bare(), False, {"strData": "x"}, np.array([[1, 2]])) == {
        "data": {"tensor": {"values": [1, 2], "shape": [1, 2]}, "names": ["t:0", "t:1"]}, "meta": {}}
    assert construct_response(Bare(), False, {}, [["a"]]) == {
        "data": {"ndarray": [["a"]], "names": ["t:0"]}, "meta": {}}


def test_construct_response_rejects_unknown_types():
    with pytest.raises(SeldonMicroserviceException, match="Unknown data type"):
        construct_response(Bare(), False, {}, object())


def test_construct_response_own_request_path_is_overridden_by_incoming():
    out = construct_response(Bare(), False, {"meta": {"requestPath": {"a": "x:2"}}}, "s",
                             request_path={"a": "x:1", "b": "y:1"})
    assert out["meta"]["requestPath"] == {"a": "x:2", "b": "y:1"}


def test_tftensor_round_trip_and_failures():
    arr = np.array([[1.5, 2.5]], dtype=np.float32)
    assert np.array_equal(tftensor_to_array(array_to_tftensor(arr)), arr)
    assert tftensor_to_array({"dtype": "DT_INT64", "tensorShape": {"dim": [{"size": "2"}]},
                              "int64Val": ["3", "4"]}).tolist() == [3, 4]
    assert tftensor_to_array({"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "3"}]},
                              "floatVal": [7]}).tolist() == [7, 7, 7]
    s = tftensor_to_array({"dtype": "DT_STRING", "tensorShape": {"dim": [{"size": "1"}]},
                           "stringVal": [base64.b64encode(b"hi").decode()]})
    assert s.tolist() == [b"hi"]
    with pytest.raises(SeldonMicroserviceException, match="Unsupported tftensor dtype"):
        tftensor_to_array({"dtype": "DT_VARIANT"})
    with pytest.raises(SeldonMicroserviceException, match="Invalid tftensor"):
        tftensor_to_array({"dtype": "DT_DOUBLE", "tensorShape": {"dim": [{"size": "3"}]}, "doubleVal": [1, 2]})
    with pytest.raises(SeldonMicroserviceException, match="Cannot encode"):
        array_to_tftensor(np.array([1 + 2j]))


def test_extract_request_parts():
    features, meta, datadef, kind = extract_request_parts({"data": {"ndarray": [[1]]}, "meta": {"puid": "p"}})
    assert (features.tolist(), meta, kind) == ([[1]], {"puid": "p"}, "data")
    with pytest.raises(SeldonMicroserviceException, match="Invalid request data type"):
        extract_request_parts("nope")


def test_merge_meta_skips_missing():
    assert merge_meta([None, {"tags": {"a": 1}}, {"requestPath": {"m": "i"}, "metrics": [1]}]) == {
        "tags": {"a": 1}, "requestPath": {"m": "i"}, "metrics": [1]}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, {}),
        ('[{"name":"i","value":"3","type":"INT"},{"name":"f","value":"1.5","type":"DOUBLE"},'
         '{"name":"s","value":"x","type":"STRING"},{"name":"b","value":"false","type":"BOOL"},'
         '{"name":"t","value":true,"type":"BOOL"}]',
         {"i": 3, "f": 1.5, "s": "x", "b": False, "t": True}),
    ],
)
def test_parse_parameters(raw, expected):
    assert parse_parameters(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{", "not valid JSON"),
        ('{"a": 1}', "must be a JSON list"),
        ('[{"name": "a"}]', "needs name and value"),
        ('[{"name": "a", "value": "1", "type": "LIST"}]', "unknown type LIST"),
        ('[{"name": "a", "value": "x", "type": "FLOAT"}]', "'x' is not FLOAT"),
    ],
)
def test_parse_parameters_failures(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_parameters(raw)


def test_settings_env_defaults_and_cli_precedence():
    s = load_settings(["M"], {})
    assert (s.http_port, s.grpc_port, s.metrics_port, s.metrics_endpoint) == (9000, 5000, 6000, "/metrics")
    assert s.request_path == {} and s.feedback_unit_id == "0" and s.model_name == "M"
    env = {"PREDICTIVE_UNIT_HTTP_SERVICE_PORT": "1", "GRPC_WORKERS": "0", "SELDON_LOG_LEVEL": "debug",
           "PREDICTIVE_UNIT_ID": "u", "PREDICTIVE_UNIT_IMAGE": "i:3", "INCLUDE_METRICS_IN_CLIENT_RESPONSE": "false"}
    s = load_settings(["M", "--http-port", "2", "--service-type", "router"], env)
    assert (s.http_port, s.grpc_workers, s.log_level, s.service_type) == (2, 0, "DEBUG", "ROUTER")
    assert s.request_path == {"u": "i:3"} and not s.include_metrics_in_response
    assert s.metric_labels()["model_version"] == "3"


def test_settings_failures():
    with pytest.raises(ConfigError, match="must be an integer"):
        load_settings(["M"], {"PREDICTIVE_UNIT_GRPC_SERVICE_PORT": "x"})
    with pytest.raises(ConfigError, match="PREDICTOR_LABELS"):
        load_settings(["M"], {"PREDICTOR_LABELS": "{"})
    with pytest.raises(SystemExit):
        load_settings(["M", "--service-type", "BOGUS"], {})


def test_load_user_class(tmp_path):
    (tmp_path / "pkgmod.py").write_text("class pkgmod:\n    pass\nclass Other:\n    pass\n")
    assert load_user_class("pkgmod", str(tmp_path)).__name__ == "pkgmod"
    assert load_user_class("pkgmod.Other", str(tmp_path)).__name__ == "Other"
    with pytest.raises(ConfigError, match="no class Missing"):
        load_user_class("pkgmod.Missing", str(tmp_path))
    with pytest.raises(ConfigError, match="cannot import"):
        load_user_class("nothere.Cls", str(tmp_path))


def test_validate_metrics():
    assert validate_metrics([{"type": "TIMER", "key": "t", "value": np.float32(1)}])
    for bad in ({"type": "COUNTER"}, [{"type": "X", "key": "k", "value": 1}],
                [{"type": "GAUGE", "key": "k", "value": "1"}], [{"type": "GAUGE", "key": "k", "value": True}],
                [{"type": "GAUGE", "key": 1, "value": 1}], [{"type": "GAUGE", "key": "k", "value": 1, "tags": []}]):
        assert not validate_metrics(bad)
    with pytest.raises(SeldonMicroserviceException) as e:
        checked_metrics([{}])
    assert e.value.reason == "MICROSERVICE_BAD_METRIC"


def test_metrics_store_exposition():
    m = SeldonMetrics({"model_name": "m"})
    m.update([{"type": "COUNTER", "key": "c", "value": 2}, {"type": "COUNTER", "key": "c", "value": 3},
              {"type": "GAUGE", "key": "g", "value": 5}, {"type": "GAUGE", "key": "g", "value": 7},
              {"type": "TIMER", "key": "t", "value": 2000}], "predict")
    text = generate_latest(m.registry()).decode()
    assert 'c_total{method="predict",model_name="m"} 5.0' in text
    assert 'g{method="predict",model_name="m"} 7.0' in text
    assert 't_count{method="predict",model_name="m"} 1.0' in text
    assert 't_sum{method="predict",model_name="m"} 2.0' in text
    assert 't_bucket{le="+Inf",method="predict",model_name="m"} 1.0' in text
    # seldon-core's exposed bounds: 0.001 … 29.999999999999996 (np.logspace's 30), +Inf; no le="0.0"
    bounds = [line.split('le="')[1].split('"')[0] for line in text.splitlines() if line.startswith("t_bucket{")]
    assert (len(bounds), bounds[0], bounds[-2], bounds[-1]) == (51, "0.001", "29.999999999999996", "+Inf")
    # a time under 1 ms counts in the first bucket; a tag cannot override Seldon's labels
    m.update([{"type": "TIMER", "key": "fast", "value": 0.5},
              {"type": "COUNTER", "key": "c2", "value": 1, "tags": {"model_name": "evil", "t": "x"}}], "predict")
    text = generate_latest(m.registry()).decode()
    assert 'fast_bucket{le="0.001",method="predict",model_name="m"} 1.0' in text
    assert 'c2_total{method="predict",model_name="m",t="x"} 1.0' in text


def test_metadata_validation():
    assert validate_model_metadata({}, "d") == {"name": "d", "versions": [], "platform": "", "inputs": [],
                                                "outputs": []}
    for bad in ([], {"inputs": {}}, {"outputs": [1]}, {"inputs": [{"messagetype": "nope"}]},
                {"custom": []}):
        with pytest.raises(InvalidMetadataError):
            validate_model_metadata(bad, "d")

    class M:
        def init_metadata(self):
            return "not a dict"

    assert init_metadata(M(), "platform: p", "d")["platform"] == "p"
    assert init_metadata(M(), ": : bad yaml [", "d") == validate_model_metadata({}, "d")
    assert init_metadata(M(), "[1, 2]", "d")["name"] == "d"


def test_v2_parsing():
    x, names, _ = v2.parse_infer_request({"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES",
                                                       "data": ["a", "b"]}]})
    assert (x.tolist(), names) == ([b"a", b"b"], ["s"])
    x, names, _ = v2.parse_infer_request({"inputs": [{"name": "a", "shape": [1], "datatype": "BOOL", "data": [1]},
                                                      {"name": "b", "shape": [1], "datatype": "INT8", "data": [2]}]})
    assert isinstance(x, list) and names == ["a", "b"] and x[0].dtype == np.bool_
    assert v2.output_tensor("o", "txt") == {"name": "o", "shape": [1], "datatype": "BYTES", "data": ["txt"]}
    with pytest.raises(v2.V2Error):
        v2.parse_infer_request([])
    with pytest.raises(v2.V2Error, match="dict"):
        v2.output_tensor("o", {"a": 1})
    with pytest.raises(v2.V2Error, match="cannot return dtype"):
        v2.output_tensor("o", np.array([1j]))


def test_error_response_mapping():
    assert error_response(SeldonMicroserviceException("m", status_code=409)) == (
        409, {"status": {"status": 1, "info": "m", "code": -1, "reason": "MICROSERVICE_BAD_DATA"}})
    assert error_response(KeyError("k"))[0] == 500
    assert error_response(RuntimeError())[1]["status"]["info"] == "RuntimeError"

    foreign = type("SeldonMicroserviceException", (Exception,), {
        "status_code": 400, "to_dict": lambda self: {"status": {"info": "foreign"}}})()
    assert error_response(foreign) == (400, {"status": {"info": "foreign"}})


def test_worker_snapshots_merge_and_bad_files_are_skipped(tmp_path):
    from seldon_mesh_wrapper.metrics import MergedMetrics, SeldonMetrics

    for worker in ("101", "102"):
        m = SeldonMetrics({"worker_id": worker}, snapshot_dir=str(tmp_path))
        m._snapshot = str(tmp_path / f"{worker}.json")  # one process plays both workers
        m.update([{"type": "COUNTER", "key": "calls", "value": 2},
                  {"type": "TIMER", "key": "lat", "value": 5.0}], "predict")
    (tmp_path / "999.json").write_text("{not json")  # a torn or foreign file
    (tmp_path / "notes.txt").write_text("ignored")
    samples = {(s.name, s.labels.get("worker_id"), s.labels.get("le")): s.value
               for fam in MergedMetrics(str(tmp_path)).collect() for s in fam.samples}
    assert samples[("calls_total", "101", None)] == 2
    assert samples[("calls_total", "102", None)] == 2
    assert samples[("lat_count", "101", None)] == 1
    assert samples[("lat_bucket", "102", "+Inf")] == 1
