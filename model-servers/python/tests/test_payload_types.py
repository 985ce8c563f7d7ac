"""String ndarrays and `customData` through the real command, over REST and gRPC (issue 10)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2, json_format, wrappers_pb2

from seldon_mesh_wrapper.proto.seldon import prediction_pb2 as pb
from seldon_mesh_wrapper.proto.seldon import prediction_pb2_grpc as pb_grpc

STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory("Strings")


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.grpc) as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        yield pb_grpc.ModelStub(ch)


def test_string_ndarray_reaches_the_model_as_a_numpy_str_array_over_rest(server):
    body = {"data": {"names": ["a", "b"], "ndarray": [["x", "yz"], ["u", "v"]]}}
    r = server.client().post("/api/v1.0/predictions", json=body)
    assert r.status_code == 200, r.text
    # seldon-core: np.array(ndarray) -> '<U2'; a non-numeric answer goes back as ndarray
    assert r.json() == {
        "data": {"names": ["t:0", "t:1"], "ndarray": [["X", "YZ"], ["U", "V"]]},
        "meta": {"tags": {"got": "ndarray", "dtype": "<U2", "shape": [2, 2]}},
    }
    # mixed strings and numbers: numpy makes them all strings, as in seldon-core
    r = server.client().post("/predict", json={"data": {"ndarray": ["a", 1]}})
    assert r.json()["data"]["ndarray"] == ["A", "1"]
    assert r.json()["meta"]["tags"]["dtype"] == "<U21"


def test_string_ndarray_over_grpc(stub):
    req = json_format.ParseDict({"data": {"names": ["a"], "ndarray": [["hello"], ["w"]]}}, pb.SeldonMessage())
    out = json_format.MessageToDict(stub.Predict(req, timeout=10))
    assert out == {
        "data": {"names": ["t:0"], "ndarray": [["HELLO"], ["W"]]},
        "meta": {"tags": {"got": "ndarray", "dtype": "<U5", "shape": [2.0, 1.0]}},
    }


def test_custom_data_over_grpc_is_the_any_message_both_ways(stub):
    packed = any_pb2.Any()
    packed.Pack(wrappers_pb2.StringValue(value="hi"))
    out = stub.Predict(pb.SeldonMessage(customData=packed), timeout=10)
    assert out.WhichOneof("data_oneof") == "customData"
    value = wrappers_pb2.StringValue()
    assert out.customData.Unpack(value) and value.value == "HI"
    assert json_format.MessageToDict(out.meta) == {"tags": {"got": "Any", "type_url": STRING_VALUE}}

    # a type this process has never heard of: passed through untouched, bytes and all
    unknown = any_pb2.Any(type_url="type.googleapis.com/acme.Thing", value=b"\x08\x96\x01")
    out = stub.Predict(pb.SeldonMessage(customData=unknown), timeout=10)
    assert (out.customData.type_url, out.customData.value) == (unknown.type_url, unknown.value)


def test_custom_data_over_rest_in_its_json_form(server):
    r = server.client().post("/predict", json={"customData": {"@type": STRING_VALUE, "value": "hi"}})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "customData": {"@type": STRING_VALUE, "value": "HI"},
        "meta": {"tags": {"got": "Any", "type_url": STRING_VALUE}},
    }


@pytest.mark.parametrize(
    "custom, info",
    [
        ("hi", 'Invalid customData: expected the JSON form of google.protobuf.Any, {"@type": ..., ...}'),
        ({"value": "hi"}, 'Invalid customData: expected the JSON form of google.protobuf.Any, {"@type": ..., ...}'),
        ({"@type": "type.googleapis.com/acme.Thing", "x": 1}, "Invalid customData of type type.googleapis.com/acme.Thing:"),
        ({"@type": STRING_VALUE, "value": 3}, f"Invalid customData of type {STRING_VALUE}:"),
    ],
)
def test_bad_custom_data_over_rest_is_400_naming_it(server, custom, info):
    r = server.client().post("/predict", json={"customData": custom})
    assert r.status_code == 400
    status = r.json()["status"]
    assert (status["reason"], status["code"]) == ("MICROSERVICE_BAD_DATA", -1)
    assert status["info"].startswith(info), status["info"]
