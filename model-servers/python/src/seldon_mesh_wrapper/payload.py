"""Pure conversions between Seldon v1 JSON messages and what user hooks see.

Mirrors seldon-core's `extract_request_parts_json` / `construct_response_json`: JSON in,
JSON out, no protobuf round trip (which would turn every int into a float).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
from google.protobuf import any_pb2, json_format

from .errors import SeldonMicroserviceException
from .user_model import client_class_names, client_custom_tags, client_feature_names

# tensorflow.DataType enum values used in the JSON form of a TensorProto.
_TF_DTYPES: dict[str, tuple[Any, str | None]] = {
    "DT_FLOAT": (np.float32, "floatVal"),
    "DT_DOUBLE": (np.float64, "doubleVal"),
    "DT_INT32": (np.int32, "intVal"),
    "DT_UINT8": (np.uint8, "intVal"),
    "DT_INT16": (np.int16, "intVal"),
    "DT_INT8": (np.int8, "intVal"),
    "DT_STRING": (np.object_, "stringVal"),
    "DT_INT64": (np.int64, "int64Val"),
    "DT_BOOL": (np.bool_, "boolVal"),
    "DT_UINT16": (np.uint16, "intVal"),
    "DT_HALF": (np.float16, "halfVal"),
    "DT_UINT32": (np.uint32, "uint32Val"),
    "DT_UINT64": (np.uint64, "uint64Val"),
}
_NP_TO_TF = {np.dtype(v[0]).str: k for k, v in _TF_DTYPES.items() if v[0] is not np.object_}


def tftensor_to_array(tensor: dict) -> np.ndarray:
    """Decodes the proto3-JSON form of `tensorflow.TensorProto` without TensorFlow."""
    try:
        dtype_name = tensor.get("dtype", "DT_INVALID")
        if dtype_name not in _TF_DTYPES:
            raise SeldonMicroserviceException(f"Unsupported tftensor dtype: {dtype_name}")
        np_dtype, field = _TF_DTYPES[dtype_name]
        dims = tensor.get("tensorShape", {}).get("dim", [])
        shape = [int(d.get("size", 0)) for d in dims]
        if "tensorContent" in tensor:
            raw = base64.b64decode(tensor["tensorContent"])
            return np.frombuffer(raw, dtype=np.dtype(np_dtype).newbyteorder("<")).reshape(shape)
        values = tensor.get(field, [])
        if dtype_name == "DT_STRING":
            arr = np.array([base64.b64decode(v) for v in values], dtype=object)
        elif dtype_name == "DT_HALF":
            arr = np.array(values, dtype=np.uint16).view(np.float16)
        else:
            arr = np.array([int(v) if isinstance(v, str) else v for v in values], dtype=np_dtype)
        size = int(np.prod(shape)) if shape else 1
        if arr.size == 1 and size > 1:
            arr = np.full(size, arr[0], dtype=arr.dtype)
        return arr.reshape(shape)
    except SeldonMicroserviceException:
        raise
    except (ValueError, TypeError, AttributeError, binascii.Error) as exc:
        raise SeldonMicroserviceException(f"Invalid tftensor: {exc}") from exc


def array_to_tftensor(array: np.ndarray) -> dict:
    """Encodes a numeric array as `make_tensor_proto` does: dtype, shape, tensorContent."""
    key = array.dtype.newbyteorder("<").str if array.dtype.byteorder == ">" else array.dtype.str
    dtype_name = _NP_TO_TF.get(key)
    if dtype_name is None:
        raise SeldonMicroserviceException(f"Cannot encode dtype {array.dtype} as tftensor")
    out: dict[str, Any] = {"dtype": dtype_name, "tensorShape": {}}
    if array.ndim:
        out["tensorShape"] = {"dim": [{"size": str(d)} for d in array.shape]}
    content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    if content:
        out["tensorContent"] = base64.b64encode(content).decode("ascii")
    return out


def datadef_to_array(datadef: dict) -> np.ndarray:
    if not isinstance(datadef, dict):
        raise SeldonMicroserviceException(f"Invalid data: {datadef}")
    try:
        if "tensor" in datadef:
            tensor = datadef["tensor"]
            return np.array(tensor.get("values", []), dtype=np.float64).reshape(
                tensor.get("shape", [])
            )
        if "ndarray" in datadef:
            return np.array(datadef["ndarray"])
    except (ValueError, TypeError, AttributeError) as exc:
        raise SeldonMicroserviceException(f"Invalid data: {exc}") from exc
    if "tftensor" in datadef:
        return tftensor_to_array(datadef["tftensor"])
    return np.array([])


def extract_request_parts(request: Any) -> tuple[Any, dict | None, dict | None, str]:
    """Returns (features, meta, datadef, data_type) of a SeldonMessage JSON."""
    if not isinstance(request, dict):
        raise SeldonMicroserviceException(f"Invalid request data type: {request}")
    meta = request.get("meta")
    if "data" in request:
        return datadef_to_array(request["data"]), meta, request["data"], "data"
    if "jsonData" in request:
        return request["jsonData"], meta, None, "jsonData"
    if "strData" in request:
        return request["strData"], meta, None, "strData"
    if "binData" in request:
        try:
            return base64.b64decode(request["binData"], validate=True), meta, None, "binData"
        except (binascii.Error, TypeError, ValueError) as exc:
            raise SeldonMicroserviceException(f"Invalid binData: {exc}") from exc
    if "customData" in request:
        return custom_data(request["customData"]), meta, None, "customData"
    raise SeldonMicroserviceException(f"Invalid request data type: {request}")


def custom_data(value: Any) -> any_pb2.Any:
    """v1 `customData`: the `google.protobuf.Any` itself, as seldon-core hands it to the hooks.

    gRPC gives the message (kept as is by `grpc_server.to_dict`); REST gives its proto3 JSON
    form (`{"@type": "type.googleapis.com/<T>", ...}`), parsed into an `Any` when the process
    knows `<T>` (the well-known types, or the user's `_pb2` module imported by the model).
    seldon-core 1.18's REST refused customData for all but the `*_raw` hooks.
    """
    if isinstance(value, any_pb2.Any):
        return value
    if not isinstance(value, dict) or not isinstance(value.get("@type"), str):
        raise SeldonMicroserviceException(
            'Invalid customData: expected the JSON form of google.protobuf.Any, {"@type": ..., ...}'
        )
    try:
        return json_format.ParseDict(value, any_pb2.Any())
    except (json_format.ParseError, TypeError, KeyError) as exc:
        raise SeldonMicroserviceException(
            f"Invalid customData of type {value['@type']}: {exc} "
            "(a type that is not a protobuf well-known type must be imported by the model)"
        ) from exc


def request_names(datadef: dict | None) -> list:
    return list(datadef.get("names", [])) if isinstance(datadef, dict) else []


def _data_section(user_model: Any, is_request: bool, request: dict, result: Any) -> dict:
    arr = result if isinstance(result, np.ndarray) else np.array(result)
    as_list = result.tolist() if isinstance(result, np.ndarray) else result
    numeric = np.issubdtype(arr.dtype, np.number)
    req_data = request.get("data") if isinstance(request.get("data"), dict) else None
    if numeric and (req_data is None or "tensor" in req_data):
        kind, value = "tensor", {"values": arr.ravel().tolist(), "shape": list(arr.shape)}
    elif numeric and "tftensor" in req_data:
        kind, value = "tftensor", array_to_tftensor(arr)
    else:
        kind, value = "ndarray", as_list
    if is_request:
        names = client_feature_names(user_model, request_names(req_data))
    else:
        names = client_class_names(user_model, arr)
    return {kind: value, "names": names}


def construct_response(
    user_model: Any,
    is_request: bool,
    request: dict,
    result: Any,
    meta: dict | None = None,
    custom_metrics: list | None = None,
    runtime_tags: dict | None = None,
    request_path: dict | None = None,
) -> dict:
    """Builds the SeldonMessage JSON for a hook's result (seldon-core `construct_response_json`).

    `meta` is the incoming meta (its tags and metrics are carried forward); `request_path`
    is this unit's own `{PREDICTIVE_UNIT_ID: PREDICTIVE_UNIT_IMAGE}` entry.
    """
    response: dict[str, Any] = {}
    if isinstance(result, dict):
        response["jsonData"] = result
    elif isinstance(result, (bytes, bytearray)):
        response["binData"] = base64.b64encode(result).decode("utf-8")
    elif isinstance(result, str):
        response["strData"] = result
    elif isinstance(result, (np.ndarray, list)):
        response["data"] = _data_section(user_model, is_request, request, result)
    elif isinstance(result, any_pb2.Any):
        # REST renders it with MessageToDict, gRPC puts it in the oneof (grpc_server.to_message)
        response["customData"] = result
    else:
        raise SeldonMicroserviceException(
            "Unknown data type returned as payload (must be list or np array):" + str(result)
        )

    meta = meta or {}
    out_meta: dict[str, Any] = {}
    tags = dict(meta.get("tags") or {})
    tags.update(client_custom_tags(user_model))
    tags.update(runtime_tags or {})
    metrics = list(meta.get("metrics") or [])
    metrics.extend(custom_metrics or [])
    if tags:
        out_meta["tags"] = tags
    if metrics:
        out_meta["metrics"] = metrics
    req_meta = request.get("meta") or {}
    if req_meta.get("puid"):
        out_meta["puid"] = req_meta["puid"]
    path = {**(request_path or {}), **(meta.get("requestPath") or req_meta.get("requestPath") or {})}
    if path:
        out_meta["requestPath"] = path
    response["meta"] = out_meta
    return response


def merge_meta(metas: list[dict | None]) -> dict:
    """Combiner inputs' meta merged: tags and requestPath unioned, metrics concatenated."""
    tags: dict = {}
    path: dict = {}
    metrics: list = []
    for m in metas:
        if not m:
            continue
        tags.update(m.get("tags") or {})
        path.update(m.get("requestPath") or {})
        metrics.extend(m.get("metrics") or [])
    return {"tags": tags, "requestPath": path, "metrics": metrics}
