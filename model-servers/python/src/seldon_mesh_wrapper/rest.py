"""Starlette REST edge: Seldon v1 routes, Open Inference Protocol v2 routes, health.

User code runs on the runtime's thread pool, so a blocking `predict` never stalls the loop.
Every failure leaves through `_error` as JSON; there is no HTML error page.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from concurrent.futures import Executor
from functools import partial
from typing import Any, Callable, Sequence
from urllib.parse import parse_qs

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from . import methods, v2
from .errors import PAYLOAD_TOO_LARGE, SeldonMicroserviceException, error_response, status_body
from .methods import Runtime
from .user_model import SeldonResponse, client_predict

logger = logging.getLogger(__name__)


class PayloadTooLarge(SeldonMicroserviceException):
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"Request body exceeds {limit} bytes", reason=PAYLOAD_TOO_LARGE)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (bytes, bytearray)):
        return base64.b64encode(obj).decode("ascii")
    if hasattr(obj, "DESCRIPTOR"):
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


class SeldonJSONResponse(JSONResponse):
    """JSON that also encodes numpy values and protobuf messages returned by raw hooks."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=_default, separators=(",", ":")).encode("utf-8")


def _error(exc: BaseException) -> Response:
    status, body = error_response(exc)
    if status >= 500:
        logger.exception("request failed", exc_info=exc)
    else:
        logger.info("bad request: %s", exc)
    return SeldonJSONResponse(body, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _loads(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SeldonMicroserviceException(f"Invalid JSON: {exc}") from exc


async def _multipart(request: Request) -> dict:
    form = await request.form()
    message: dict[str, Any] = {}
    for key, value in form.multi_items():
        if hasattr(value, "read"):
            content = await value.read()
            message[key] = (
                base64.b64encode(content).decode("ascii") if key == "binData" else content.decode("utf-8")
            )
        elif key in ("data", "meta", "jsonData"):
            message[key] = _loads(value)
        else:
            message[key] = value
    return message


async def read_message(request: Request, limit: int, passthrough: bool = False) -> Any:
    """The request's SeldonMessage: `json=` query/form field, multipart parts, or the JSON body."""
    query_json = request.query_params.get("json")
    if query_json is not None:
        return _loads(query_json)
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        return await _multipart(request)
    body = await _read_body(request, limit)
    if ctype.startswith("application/x-www-form-urlencoded"):
        fields = parse_qs(body.decode("utf-8", "replace"))
        if "json" in fields:
            return _loads(fields["json"][0])
    if passthrough:
        return body
    if not body.strip():
        raise SeldonMicroserviceException("Invalid Data Format - empty JSON")
    message = _loads(body)
    if message is None:
        raise SeldonMicroserviceException("Invalid Data Format - empty JSON")
    return message


def build_app(rt: Runtime, executor: Executor) -> Starlette:
    limit = rt.settings.max_body_bytes

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, partial(fn, *args))

    def seldon_route(op: Callable[..., Any], is_predict: bool = False) -> Callable[[Request], Any]:
        passthrough = is_predict and rt.settings.payload_passthrough and hasattr(rt.user_model, "predict_raw")

        async def endpoint(request: Request) -> Response:
            try:
                message = await read_message(request, limit, passthrough)
                result = await run(op, rt, message)
            except Exception as exc:  # noqa: BLE001 — the one error edge
                return _error(exc)
            if passthrough and isinstance(result, (bytes, str)):
                return Response(result, media_type="application/json")
            status = 200
            if is_predict and isinstance(result, dict):
                code = (result.get("status") or {}).get("code") if isinstance(result.get("status"), dict) else None
                if isinstance(code, int) and 100 <= code <= 599:
                    status = code
            return SeldonJSONResponse(result, status_code=status)

        return endpoint

    async def ping(_: Request) -> Response:
        return PlainTextResponse("pong")

    async def health_status(_: Request) -> Response:
        try:
            return SeldonJSONResponse(await run(methods.health_status, rt))
        except Exception as exc:  # noqa: BLE001
            return _error(exc)

    async def metadata(_: Request) -> Response:
        try:
            return SeldonJSONResponse(methods.metadata(rt))
        except Exception as exc:  # noqa: BLE001
            return _error(exc)

    # ---- Open Inference Protocol v2
    model_name = rt.settings.model_name

    def v2_error(message: str, status: int) -> Response:
        return SeldonJSONResponse({"error": message}, status_code=status)

    def check_model(request: Request) -> Response | None:
        name = request.path_params["model"]
        if name != model_name:
            return v2_error(f"Model {name} not found", 404)
        return None

    async def v2_live(_: Request) -> Response:
        return SeldonJSONResponse({"live": True})

    async def v2_ready(_: Request) -> Response:
        return SeldonJSONResponse({"ready": True})

    async def v2_server_metadata(_: Request) -> Response:
        return SeldonJSONResponse({"name": "seldon-mesh-wrapper", "version": _version(), "extensions": []})

    async def v2_model_metadata(request: Request) -> Response:
        return check_model(request) or SeldonJSONResponse(v2.model_metadata(model_name, rt.model_metadata))

    async def v2_model_ready(request: Request) -> Response:
        return check_model(request) or SeldonJSONResponse({"name": model_name, "ready": True})

    def v2_predict(x: Any, names: list, body: dict) -> dict:
        resp: SeldonResponse = client_predict(rt.user_model, x, names, {})
        methods._custom_metrics(rt, resp.metrics, "predict")
        return v2.infer_response(model_name, body, resp.data)

    async def v2_infer(request: Request) -> Response:
        missing = check_model(request)
        if missing:
            return missing
        try:
            body = _loads(await _read_body(request, limit))
            x, names, parsed = v2.parse_infer_request(body)
            return SeldonJSONResponse(await run(v2_predict, x, names, parsed))
        except v2.V2Error as exc:
            return v2_error(str(exc), exc.status_code)
        except SeldonMicroserviceException as exc:
            status, _ = error_response(exc)
            return v2_error(exc.message, status)
        except Exception as exc:  # noqa: BLE001
            logger.exception("v2 infer failed")
            return v2_error(str(exc) or type(exc).__name__, 500)

    verbs = ["GET", "POST"]
    routes = [
        Route("/health/ping", ping, methods=["GET"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health/status", health_status, methods=["GET"]),
        Route("/api/v1.0/health/status", health_status, methods=["GET"]),
        Route("/metadata", metadata, methods=["GET"]),
        Route("/api/v1.0/metadata", metadata, methods=["GET"]),
        Route("/v2/health/live", v2_live, methods=["GET"]),
        Route("/v2/health/ready", v2_ready, methods=["GET"]),
        Route("/v2", v2_server_metadata, methods=["GET"]),
        Route("/v2/models/{model}", v2_model_metadata, methods=["GET"]),
        Route("/v2/models/{model}/ready", v2_model_ready, methods=["GET"]),
        Route("/v2/models/{model}/infer", v2_infer, methods=["POST"]),
    ]
    for path, op, is_predict in [
        ("/predict", methods.predict, True),
        ("/api/v1.0/predictions", methods.predict, True),
        ("/api/v0.1/predictions", methods.predict, True),
        ("/send-feedback", methods.send_feedback, False),
        ("/api/v1.0/feedback", methods.send_feedback, False),
        ("/api/v0.1/feedback", methods.send_feedback, False),
        ("/transform-input", methods.transform_input, False),
        ("/transform-output", methods.transform_output, False),
        ("/route", methods.route, False),
        ("/aggregate", methods.aggregate, False),
    ]:
        routes.append(Route(path, seldon_route(op, is_predict), methods=verbs))

    async def not_found(request: Request, exc: Exception) -> Response:
        return SeldonJSONResponse(status_body(f"Not found: {request.url.path}", "NOT_FOUND"), status_code=404)

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return SeldonJSONResponse(
            status_body(f"Method {request.method} not allowed", "METHOD_NOT_ALLOWED"), status_code=405
        )

    async def internal(request: Request, exc: Exception) -> Response:
        return _error(exc)

    return Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: method_not_allowed, Exception: internal},
    )


def build_metrics_app(rt: Runtime, collectors: Sequence[Any] = ()) -> Starlette:
    """The metrics port: the custom metrics, plus `collectors` (tracing's export counters)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    registry = rt.metrics.registry()
    for collector in collectors:
        registry.register(collector)

    async def scrape(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    paths = {"/prometheus", "/metrics", rt.settings.metrics_endpoint}
    return Starlette(routes=[Route(p, scrape, methods=["GET"]) for p in sorted(paths)])


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seldon-mesh-wrapper")
    except PackageNotFoundError:
        return "0.0.0"
