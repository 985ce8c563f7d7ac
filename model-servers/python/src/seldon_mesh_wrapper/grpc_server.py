"""grpcio (asyncio) edge: Seldon v1 services and the Open Inference Protocol v2 service.

Messages are converted to the same JSON dicts the REST edge uses and handed to `methods`,
so both edges share one behaviour; `*_raw` hooks receive the protobuf message itself.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from functools import partial
from typing import Any, Callable, Sequence

import grpc
import numpy as np
from google.protobuf import any_pb2, json_format

from . import methods, v2
from .errors import error_response
from .methods import Runtime
from .proto.inference import open_inference_grpc_pb2 as oip
from .proto.inference import open_inference_grpc_pb2_grpc as oip_grpc
from .proto.seldon import prediction_pb2 as pb
from .proto.seldon import prediction_pb2_grpc as pb_grpc
from .user_model import client_predict

logger = logging.getLogger(__name__)

_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
          413: grpc.StatusCode.RESOURCE_EXHAUSTED}


def status_code_for(http_status: int) -> grpc.StatusCode:
    return _CODES.get(http_status, grpc.StatusCode.INTERNAL if http_status >= 500 else grpc.StatusCode.INVALID_ARGUMENT)


def to_message(result: Any) -> pb.SeldonMessage:
    if isinstance(result, pb.SeldonMessage):
        return result
    custom = result.get("customData") if isinstance(result, dict) else None
    if isinstance(custom, any_pb2.Any):
        # a hook returned an Any: put it in the oneof as is (its type need not be known here)
        message = json_format.ParseDict({k: v for k, v in result.items() if k != "customData"}, pb.SeldonMessage())
        message.customData.CopyFrom(custom)
        return message
    return json_format.ParseDict(result, pb.SeldonMessage())


def to_dict(message: Any) -> Any:
    """The message as JSON, except `customData`, which stays the `Any` message: seldon-core
    passes `request.customData` to the hooks, and JSON needs the packed type's descriptor."""
    if isinstance(message, pb.SeldonMessage) and message.WhichOneof("data_oneof") == "customData":
        rest = pb.SeldonMessage()
        rest.CopyFrom(message)
        rest.ClearField("customData")
        out = json_format.MessageToDict(rest)
        out["customData"] = message.customData
        return out
    return json_format.MessageToDict(message)


class SeldonServicer:
    """Implements every RPC of Generic, Model, Router, Transformer, OutputTransformer, Combiner, Seldon."""

    def __init__(self, rt: Runtime, executor: Executor) -> None:
        self.rt = rt
        self.executor = executor

    async def _run(self, context: grpc.aio.ServicerContext, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args))
        except Exception as exc:  # noqa: BLE001 — the one gRPC error edge
            status, body = error_response(exc)
            if status >= 500:
                logger.exception("gRPC request failed")
            await context.abort(status_code_for(status), body["status"]["info"])

    async def _seldon(self, op: Callable[..., Any], request: Any, context: Any) -> pb.SeldonMessage:
        def call() -> pb.SeldonMessage:
            return to_message(op(self.rt, to_dict(request), request))

        return await self._run(context, call)

    async def Predict(self, request: pb.SeldonMessage, context: Any) -> pb.SeldonMessage:
        return await self._seldon(methods.predict, request, context)

    async def TransformInput(self, request: pb.SeldonMessage, context: Any) -> pb.SeldonMessage:
        return await self._seldon(methods.transform_input, request, context)

    async def TransformOutput(self, request: pb.SeldonMessage, context: Any) -> pb.SeldonMessage:
        return await self._seldon(methods.transform_output, request, context)

    async def Route(self, request: pb.SeldonMessage, context: Any) -> pb.SeldonMessage:
        return await self._seldon(methods.route, request, context)

    async def Aggregate(self, request: pb.SeldonMessageList, context: Any) -> pb.SeldonMessage:
        def call() -> pb.SeldonMessage:
            body = {"seldonMessages": [to_dict(m) for m in request.seldonMessages]}
            return to_message(methods.aggregate(self.rt, body, request))

        return await self._run(context, call)

    async def SendFeedback(self, request: pb.Feedback, context: Any) -> pb.SeldonMessage:
        return await self._seldon(methods.send_feedback, request, context)

    def _metadata(self) -> pb.SeldonModelMetadata:
        return json_format.ParseDict(methods.metadata(self.rt), pb.SeldonModelMetadata(), ignore_unknown_fields=True)

    async def Metadata(self, request: Any, context: Any) -> pb.SeldonModelMetadata:
        return await self._run(context, self._metadata)

    async def ModelMetadata(self, request: pb.SeldonModelMetadataRequest, context: Any) -> pb.SeldonModelMetadata:
        return await self._run(context, self._metadata)

    async def GraphMetadata(self, request: Any, context: Any) -> pb.SeldonGraphMetadata:
        def call() -> pb.SeldonGraphMetadata:
            return json_format.ParseDict(methods.graph_metadata(self.rt), pb.SeldonGraphMetadata(),
                                         ignore_unknown_fields=True)

        return await self._run(context, call)


_CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
    "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
    "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def infer_input_to_array(tensor: Any, raw: bytes | None) -> np.ndarray:
    datatype = tensor.datatype
    if datatype not in v2.DATATYPES:
        raise v2.V2Error(f"unsupported datatype {datatype!r}")
    shape = list(tensor.shape)
    if raw is not None:
        if datatype == "BYTES":
            raise v2.V2Error("raw BYTES inputs are not supported")
        return np.frombuffer(raw, dtype=np.dtype(v2.DATATYPES[datatype]).newbyteorder("<")).reshape(shape)
    if datatype == "FP16":
        raise v2.V2Error("FP16 needs raw_input_contents")
    values = list(getattr(tensor.contents, _CONTENTS[datatype]))
    dtype = object if datatype == "BYTES" else v2.DATATYPES[datatype]
    try:
        return np.array(values, dtype=dtype).reshape(shape)
    except ValueError as exc:
        raise v2.V2Error(f"input {tensor.name!r}: {exc}") from exc


class InferenceServicer(oip_grpc.GRPCInferenceServiceServicer):
    """Open Inference Protocol v2 over gRPC, calling the user's `predict`."""

    def __init__(self, rt: Runtime, executor: Executor) -> None:
        self.rt = rt
        self.executor = executor
        self.name = rt.settings.model_name

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return oip.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return oip.ServerReadyResponse(ready=True)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        return oip.ModelReadyResponse(ready=request.name == self.name)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return oip.ServerMetadataResponse(name="seldon-mesh-wrapper", extensions=[])

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        if request.name != self.name:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Model {request.name} not found")
        meta = v2.model_metadata(self.name, self.rt.model_metadata)
        return json_format.ParseDict(meta, oip.ModelMetadataResponse())

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        if request.model_name != self.name:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Model {request.model_name} not found")

        def call() -> Any:
            raws = list(request.raw_input_contents)
            if raws and len(raws) != len(request.inputs):
                raise v2.V2Error("raw_input_contents must have one entry per input")
            arrays = [infer_input_to_array(t, raws[i] if raws else None) for i, t in enumerate(request.inputs)]
            if not arrays:
                raise v2.V2Error("request needs a non-empty inputs list")
            names = [t.name for t in request.inputs]
            resp = client_predict(self.rt.user_model, arrays[0] if len(arrays) == 1 else arrays, names, {})
            methods._custom_metrics(self.rt, resp.metrics, "predict")
            body = {"id": request.id, "outputs": [{"name": o.name} for o in request.outputs]}
            out = v2.infer_response(self.name, body, resp.data)["outputs"][0]
            tensor = oip.ModelInferResponse.InferOutputTensor(name=out["name"], datatype=out["datatype"],
                                                              shape=out["shape"])
            field = _CONTENTS.get(out["datatype"])
            if field is None:
                raise v2.V2Error(f"cannot return {out['datatype']} over gRPC", 500)
            data = [d.encode() for d in out["data"]] if out["datatype"] == "BYTES" else out["data"]
            getattr(tensor.contents, field).extend(data)
            return oip.ModelInferResponse(model_name=self.name, id=request.id, outputs=[tensor])

        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, call)
        except v2.V2Error as exc:
            await context.abort(status_code_for(exc.status_code), str(exc))
        except Exception as exc:  # noqa: BLE001
            status, body = error_response(exc)
            await context.abort(status_code_for(status), body["status"]["info"])


def build_server(
    rt: Runtime, executor: Executor, address: str, max_message_bytes: int, interceptors: Sequence[Any] = ()
) -> grpc.aio.Server:
    options = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]
    server = grpc.aio.server(options=options, interceptors=list(interceptors))
    servicer = SeldonServicer(rt, executor)
    for add in (
        pb_grpc.add_GenericServicer_to_server,
        pb_grpc.add_ModelServicer_to_server,
        pb_grpc.add_RouterServicer_to_server,
        pb_grpc.add_TransformerServicer_to_server,
        pb_grpc.add_OutputTransformerServicer_to_server,
        pb_grpc.add_CombinerServicer_to_server,
        pb_grpc.add_SeldonServicer_to_server,
    ):
        add(servicer, server)
    oip_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(rt, executor), server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot bind gRPC to {address}")
    return server
