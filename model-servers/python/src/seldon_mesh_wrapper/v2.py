"""Open Inference Protocol (v2) request/response conversion — pure functions."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "BYTES": np.object_,
}


class V2Error(Exception):
    """A v2 request that cannot be served; rendered as `{"error": message}`."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


def input_to_array(tensor: Any) -> tuple[str, np.ndarray]:
    if not isinstance(tensor, dict) or not {"name", "shape", "datatype", "data"} <= tensor.keys():
        raise V2Error("each input needs name, shape, datatype and data")
    datatype = tensor["datatype"]
    if datatype not in DATATYPES:
        raise V2Error(f"unsupported datatype {datatype!r}")
    try:
        shape = [int(d) for d in tensor["shape"]]
        data = tensor["data"]
        if datatype == "BYTES":
            flat = np.array(data, dtype=object).ravel()
            arr = np.array([d.encode() if isinstance(d, str) else d for d in flat], dtype=object)
        else:
            arr = np.array(data, dtype=DATATYPES[datatype])
        return str(tensor["name"]), arr.reshape(shape)
    except (ValueError, TypeError) as exc:
        raise V2Error(f"input {tensor.get('name')!r}: {exc}") from exc


def parse_infer_request(body: Any) -> tuple[Any, list[str], dict]:
    """Returns (X, names, request): one input → its array; several → list of arrays."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise V2Error("request needs a non-empty inputs list")
    pairs = [input_to_array(t) for t in body["inputs"]]
    names = [n for n, _ in pairs]
    arrays = [a for _, a in pairs]
    return (arrays[0] if len(arrays) == 1 else arrays), names, body


def _datatype(arr: np.ndarray) -> str:
    if arr.dtype == np.object_ or arr.dtype.kind in ("U", "S"):
        return "BYTES"
    for name, dt in DATATYPES.items():
        if dt is not np.object_ and arr.dtype == np.dtype(dt):
            return name
    raise V2Error(f"cannot return dtype {arr.dtype} over v2", 500)


def output_tensor(name: str, result: Any) -> dict:
    if isinstance(result, (bytes, str)):
        result = [result]
    if isinstance(result, dict):
        raise V2Error("the model returned a dict; v2 infer needs an array result", 500)
    arr = np.asarray(result)
    datatype = _datatype(arr)
    flat = arr.ravel().tolist()
    if datatype == "BYTES":
        flat = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    return {"name": name, "shape": list(arr.shape), "datatype": datatype, "data": flat}


def infer_response(model_name: str, request: dict, result: Any) -> dict:
    outputs = request.get("outputs")
    name = "output-0"
    if isinstance(outputs, list) and len(outputs) == 1 and isinstance(outputs[0], dict):
        name = str(outputs[0].get("name", name))
    return {
        "model_name": model_name,
        "id": str(request.get("id") or uuid.uuid4()),
        "parameters": {},
        "outputs": [output_tensor(name, result)],
    }


def model_metadata(model_name: str, seldon_metadata: dict | None) -> dict:
    """v2 model metadata from Seldon metadata, keeping only v2-style tensor entries."""
    meta = seldon_metadata or {}

    def tensors(items: list) -> list:
        return [
            {"name": t["name"], "datatype": t["datatype"], "shape": t["shape"]}
            for t in items
            if isinstance(t, dict) and {"name", "datatype", "shape"} <= t.keys()
        ]

    return {
        "name": model_name,
        "versions": meta.get("versions", []),
        "platform": meta.get("platform", ""),
        "inputs": tensors(meta.get("inputs", [])),
        "outputs": tensors(meta.get("outputs", [])),
    }
