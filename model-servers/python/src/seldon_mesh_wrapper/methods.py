"""The Seldon v1 operations (predict, transform, route, aggregate, feedback, health).

Each takes the decoded JSON request and returns the response JSON. `*_raw` hooks receive
`raw` when given (the protobuf message on gRPC) and their result is returned untouched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import metrics as m
from . import user_model as um
from .errors import SeldonMicroserviceException, SeldonNotImplementedError
from .metrics import SeldonMetrics, checked_metrics
from .payload import construct_response, datadef_to_array, extract_request_parts, merge_meta, request_names
from .settings import Settings

logger = logging.getLogger(__name__)

_NO_RAW = object()


@dataclass
class Runtime:
    """Everything a request needs: the user object, the settings, the metrics store."""

    user_model: Any
    settings: Settings
    metrics: SeldonMetrics
    model_metadata: dict | None = None


def _call_raw(rt: Runtime, hook: str, raw: Any, method: str) -> Any:
    fn = getattr(rt.user_model, hook, None)
    if fn is None:
        return _NO_RAW
    try:
        result = fn(raw) if raw is not _NO_RAW else fn()
    except SeldonNotImplementedError:
        return _NO_RAW
    return _raw_metrics(rt, result, method)


def _raw_metrics(rt: Runtime, result: Any, method: str) -> Any:
    """Records `meta.metrics` of a raw hook's response; strips them if not to be returned."""
    if isinstance(result, dict):
        meta = result.get("meta")
        if isinstance(meta, dict) and "metrics" in meta:
            rt.metrics.update(checked_metrics(meta["metrics"]), method)
            if not rt.settings.include_metrics_in_response:
                del meta["metrics"]
    elif hasattr(result, "DESCRIPTOR") and hasattr(result, "meta") and len(result.meta.metrics):
        from google.protobuf.json_format import MessageToDict

        found = MessageToDict(result.meta).get("metrics", [])
        rt.metrics.update(checked_metrics(found), method)
        if not rt.settings.include_metrics_in_response:
            del result.meta.metrics[:]
    return result


def _custom_metrics(rt: Runtime, runtime_metrics: list | None, method: str) -> list:
    collected = checked_metrics(um.client_user_metrics(rt.user_model))
    if runtime_metrics:
        collected += checked_metrics(runtime_metrics)
    rt.metrics.update(collected, method)
    return collected if rt.settings.include_metrics_in_response else []


def _respond(rt: Runtime, is_request: bool, request: dict, resp: um.SeldonResponse, meta: Any, method: str,
             data: Any = None) -> dict:
    metrics = _custom_metrics(rt, resp.metrics, method)
    return construct_response(
        rt.user_model,
        is_request,
        request,
        resp.data if data is None else data,
        meta if isinstance(meta, dict) else None,
        metrics,
        resp.tags,
        rt.settings.request_path,
    )


def predict(rt: Runtime, request: Any, raw: Any = _NO_RAW) -> Any:
    out = _call_raw(rt, "predict_raw", request if raw is _NO_RAW else raw, m.PREDICT)
    if out is not _NO_RAW:
        return out
    features, meta, datadef, _ = extract_request_parts(request)
    resp = um.client_predict(rt.user_model, features, request_names(datadef), meta)
    return _respond(rt, False, request, resp, meta, m.PREDICT)


def transform_input(rt: Runtime, request: Any, raw: Any = _NO_RAW) -> Any:
    out = _call_raw(rt, "transform_input_raw", request if raw is _NO_RAW else raw, m.INPUT_TRANSFORM)
    if out is not _NO_RAW:
        return out
    features, meta, datadef, _ = extract_request_parts(request)
    resp = um.client_transform_input(rt.user_model, features, request_names(datadef), meta)
    return _respond(rt, True, request, resp, meta, m.INPUT_TRANSFORM)


def transform_output(rt: Runtime, request: Any, raw: Any = _NO_RAW) -> Any:
    out = _call_raw(rt, "transform_output_raw", request if raw is _NO_RAW else raw, m.OUTPUT_TRANSFORM)
    if out is not _NO_RAW:
        return out
    features, meta, datadef, _ = extract_request_parts(request)
    resp = um.client_transform_output(rt.user_model, features, request_names(datadef), meta)
    return _respond(rt, False, request, resp, meta, m.OUTPUT_TRANSFORM)


def route(rt: Runtime, request: Any, raw: Any = _NO_RAW) -> Any:
    out = _call_raw(rt, "route_raw", request if raw is _NO_RAW else raw, m.ROUTER)
    if out is not _NO_RAW:
        return out
    features, meta, datadef, _ = extract_request_parts(request)
    resp = um.client_route(rt.user_model, features, request_names(datadef))
    branch = resp.data
    if isinstance(branch, bool) or not isinstance(branch, (int, np.integer)):
        raise SeldonMicroserviceException(f"Routing response must be int but got {branch}")
    return _respond(rt, False, request, resp, meta, m.ROUTER, data=np.array([[int(branch)]]))


def aggregate(rt: Runtime, request: Any, raw: Any = _NO_RAW) -> Any:
    out = _call_raw(rt, "aggregate_raw", request if raw is _NO_RAW else raw, m.AGGREGATE)
    if out is not _NO_RAW:
        return out
    if isinstance(request, list):
        messages = request
    elif isinstance(request, dict) and isinstance(request.get("seldonMessages"), list):
        messages = request["seldonMessages"]
    else:
        raise SeldonMicroserviceException(f"Invalid request data type: {request}")
    if not messages:
        raise SeldonMicroserviceException("Aggregate needs at least one SeldonMessage")
    features_list, names_list, metas = [], [], []
    for msg in messages:
        features, meta, datadef, _ = extract_request_parts(msg)
        features_list.append(features)
        names_list.append(request_names(datadef))
        metas.append(meta if isinstance(meta, dict) else None)
    resp = um.client_aggregate(rt.user_model, features_list, names_list)
    return _respond(rt, False, messages[0], resp, merge_meta(metas), m.AGGREGATE)


def send_feedback(rt: Runtime, request: Any, raw: Any = _NO_RAW) -> Any:
    if not isinstance(request, dict):
        raise SeldonMicroserviceException(f"Invalid feedback: {request}")
    reward = request.get("reward", 0.0)
    if isinstance(reward, bool) or not isinstance(reward, (int, float)):
        raise SeldonMicroserviceException(f"Invalid feedback reward: {reward!r}")
    rt.metrics.update_reward(float(reward))
    out = _call_raw(rt, "send_feedback_raw", request if raw is _NO_RAW else raw, m.FEEDBACK)
    if out is not _NO_RAW:
        return out
    req = request.get("request") or {}
    truth = request.get("truth") or {}
    if not isinstance(req, dict) or not isinstance(truth, dict):
        raise SeldonMicroserviceException(f"Invalid feedback: {request}")
    features = datadef_to_array(req["data"]) if "data" in req else np.array([])
    truth_arr = datadef_to_array(truth["data"]) if "data" in truth else np.array([])
    response_meta = (request.get("response") or {}).get("meta") or {}
    routing = (response_meta.get("routing") or {}).get(rt.settings.feedback_unit_id)
    resp = um.client_send_feedback(
        rt.user_model, features, request_names(req.get("data")), float(reward), truth_arr, routing
    )
    data = np.array([]) if resp.data is None else np.array(resp.data)
    return _respond(rt, False, req, resp, None, m.FEEDBACK, data=data)


def health_status(rt: Runtime) -> Any:
    out = _call_raw(rt, "health_status_raw", _NO_RAW, m.HEALTH)
    if out is not _NO_RAW:
        return out
    resp = um.client_health_status(rt.user_model)
    return _respond(rt, False, {}, resp, None, m.HEALTH)


def metadata(rt: Runtime) -> dict:
    if not rt.model_metadata:
        raise SeldonMicroserviceException(
            "Model metadata unavailable", status_code=500, reason="MICROSERVICE_BAD_METADATA"
        )
    return rt.model_metadata


def graph_metadata(rt: Runtime) -> dict:
    """Seldon's GraphMetadata for a one-node graph made of this unit."""
    model = metadata(rt)
    return {
        "name": rt.settings.predictor_id,
        "models": {rt.settings.model_name: model},
        "inputs": model.get("inputs", []),
        "outputs": model.get("outputs", []),
    }


SERVICE_METHODS = {
    "predict": predict,
    "transform-input": transform_input,
    "transform-output": transform_output,
    "route": route,
    "aggregate": aggregate,
    "send-feedback": send_feedback,
}
