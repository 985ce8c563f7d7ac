"""Seldon v1 and Open Inference Protocol gRPC services of the real command."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import empty_pb2, json_format

from seldon_mesh_wrapper.proto.inference import open_inference_grpc_pb2 as oip
from seldon_mesh_wrapper.proto.inference import open_inference_grpc_pb2_grpc as oip_grpc
from seldon_mesh_wrapper.proto.seldon import prediction_pb2 as pb
from seldon_mesh_wrapper.proto.seldon import prediction_pb2_grpc as pb_grpc

from test_rest_model import ENV


def msg(d: dict) -> pb.SeldonMessage:
    return json_format.ParseDict(d, pb.SeldonMessage())


def as_dict(m) -> dict:
    return json_format.MessageToDict(m)


@pytest.fixture(scope="module")
def full(server_factory):
    s = server_factory("FullModel", env=ENV)
    with grpc.insecure_channel(s.grpc) as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        yield ch


@pytest.fixture(scope="module")
def transformer(server_factory):
    s = server_factory("Transformer")
    with grpc.insecure_channel(s.grpc) as ch:
        yield ch


META = {
    "tags": {"model_tag": "lbl"},
    "metrics": [
        {"key": "mycounter", "value": 1.0},
        {"key": "mygauge", "type": "GAUGE", "value": 100.0, "tags": {"mytag": "a"}},
        {"key": "mytimer", "type": "TIMER", "value": 20.2},
    ],
    "requestPath": {"full": "img:1.2"},
}


@pytest.mark.parametrize("stub_cls", [pb_grpc.ModelStub, pb_grpc.SeldonStub])
def test_predict(full, stub_cls):
    out = stub_cls(full).Predict(msg({"meta": {"puid": "g1"}, "data": {"ndarray": [[1, 2]]}}))
    d = as_dict(out)
    d["meta"]["metrics"][2]["value"] = round(d["meta"]["metrics"][2]["value"], 4)
    assert d == {"data": {"names": ["c0", "c1"], "ndarray": [[2.5, 4.5]]}, "meta": {**META, "puid": "g1"}}


def test_predict_tensor_and_bindata(full):
    stub = pb_grpc.ModelStub(full)
    out = stub.Predict(msg({"data": {"tensor": {"shape": [2], "values": [1, 2]}}}))
    assert list(out.data.tensor.values) == [2.5, 4.5] and list(out.data.tensor.shape) == [2]
    out = stub.Predict(pb.SeldonMessage(binData=b"abc"))
    assert out.binData == b"cba"


def test_errors_map_to_grpc_status(full):
    stub = pb_grpc.ModelStub(full)
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(msg({"data": {"ndarray": [[-1]]}}))
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "negative one is not allowed")
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(msg({"data": {"ndarray": [[-2]]}}))
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INTERNAL, "boom")
    with pytest.raises(grpc.RpcError) as e:
        pb_grpc.RouterStub(full).Route(msg({"data": {"ndarray": [[1]]}}))
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Route not defined")


def test_feedback_and_metadata(full):
    fb = json_format.ParseDict({"request": {"data": {"ndarray": [[1, 2]]}}, "reward": 1.0}, pb.Feedback())
    out = pb_grpc.ModelStub(full).SendFeedback(fb)
    assert out.data.WhichOneof("data_oneof") == "ndarray"
    meta = pb_grpc.ModelStub(full).Metadata(empty_pb2.Empty())
    assert as_dict(meta) == {
        "name": "full-model", "versions": ["v2"], "platform": "seldon",
        "inputs": [{"name": "input", "datatype": "FP64", "shape": ["-1", "2"]}],
        "outputs": [{"messagetype": "ndarray", "schema": {"names": ["c0", "c1"]}}],
        "custom": {"author": "test"},
    }
    assert pb_grpc.SeldonStub(full).ModelMetadata(pb.SeldonModelMetadataRequest(name="full")) == meta
    graph = pb_grpc.SeldonStub(full).GraphMetadata(empty_pb2.Empty())
    assert graph.name == "pred" and graph.models["full"] == meta


def test_generic_transformer_output_transformer_services(transformer):
    req = msg({"data": {"names": ["a", "b"], "ndarray": [[1, 2]]}})
    for call in (pb_grpc.TransformerStub(transformer).TransformInput, pb_grpc.GenericStub(transformer).TransformInput):
        assert as_dict(call(req)) == {"data": {"names": ["f0", "f1"], "ndarray": [[2.0, 3.0]]}, "meta": {}}
    out = pb_grpc.OutputTransformerStub(transformer).TransformOutput(req)
    assert as_dict(out) == {"data": {"names": ["t:0", "t:1"], "ndarray": [[10.0, 20.0]]}, "meta": {}}


def test_combiner_service(server_factory):
    s = server_factory("Combiner")
    with grpc.insecure_channel(s.grpc) as ch:
        req = pb.SeldonMessageList(seldonMessages=[msg({"data": {"ndarray": [[1]]}, "meta": {"tags": {"a": 1}}}),
                                                   msg({"data": {"ndarray": [[3]]}, "meta": {"tags": {"b": 2}}})])
        for stub in (pb_grpc.CombinerStub(ch), pb_grpc.GenericStub(ch)):
            assert as_dict(stub.Aggregate(req)) == {"data": {"names": ["t:0"], "ndarray": [[2.0]]},
                                                    "meta": {"tags": {"a": 1.0, "b": 2.0}}}


def test_raw_hook_receives_protobuf(server_factory):
    s = server_factory("RawModel")
    with grpc.insecure_channel(s.grpc) as ch:
        out = pb_grpc.ModelStub(ch).Predict(pb.SeldonMessage(strData="x"))
        assert as_dict(out)["jsonData"] == {"raw": True, "keys": ["strData"]}


def test_open_inference_grpc(full):
    stub = oip_grpc.GRPCInferenceServiceStub(full)
    assert stub.ServerLive(oip.ServerLiveRequest()).live
    assert stub.ServerReady(oip.ServerReadyRequest()).ready
    assert stub.ModelReady(oip.ModelReadyRequest(name="full")).ready
    inp = oip.ModelInferRequest.InferInputTensor(name="input", datatype="FP64", shape=[1, 2])
    inp.contents.fp64_contents.extend([1, 2])
    out = stub.ModelInfer(oip.ModelInferRequest(model_name="full", id="g", inputs=[inp]))
    assert out.id == "g" and out.outputs[0].datatype == "FP64"
    assert list(out.outputs[0].shape) == [1, 2] and list(out.outputs[0].contents.fp64_contents) == [2.5, 4.5]
    raw = oip.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=[2])
    import numpy as np

    out = stub.ModelInfer(oip.ModelInferRequest(model_name="full", inputs=[raw],
                                                raw_input_contents=[np.array([1, 2], "<f4").tobytes()]))
    assert out.outputs[0].datatype == "FP32" and list(out.outputs[0].contents.fp32_contents) == [2.5, 4.5]
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(oip.ModelInferRequest(model_name="other"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(oip.ModelInferRequest(model_name="full"))
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                   "request needs a non-empty inputs list")
