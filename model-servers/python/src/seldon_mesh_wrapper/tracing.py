"""OpenTelemetry server spans: one SERVER span per REST or gRPC request, continuing the caller's
W3C `traceparent` (or B3), exported as OTLP/HTTP protobuf by the SDK's batch processor.

Off unless `--tracing` / `TRACING=1` (seldon-core's switch) or `OTEL_EXPORTER_OTLP_ENDPOINT` is
set; when off, nothing of OpenTelemetry is imported. Choices: README.md ("Tracing").
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence

from .settings import NOT_IMPLEMENTED, ConfigError, Settings

logger = logging.getLogger(__name__)

SCOPE = "seldon-mesh-wrapper"
# Where seldon-core's Jaeger agent ran; Jaeger v2 (and any OpenTelemetry collector) takes
# OTLP/HTTP on 4318.
OTLP_HTTP_PORT = 4318
DEFAULT_ENDPOINT = f"http://localhost:{OTLP_HTTP_PORT}"

_V1_ROUTES = frozenset({
    "/predict", "/api/v1.0/predictions", "/api/v0.1/predictions", "/send-feedback",
    "/api/v1.0/feedback", "/api/v0.1/feedback", "/transform-input", "/transform-output",
    "/route", "/aggregate", "/health/ping", "/ping", "/health/status", "/api/v1.0/health/status",
    "/metadata", "/api/v1.0/metadata",
})
_V2_FIXED = frozenset({"/v2", "/v2/health/live", "/v2/health/ready"})
_V2_MODEL = re.compile(r"^/v2/models/[^/]+(/ready|/infer)?$")
# gRPC codes that fail a server span (OpenTelemetry RPC conventions)
_GRPC_ERRORS = frozenset({2, 4, 12, 13, 14, 15})


@dataclass(frozen=True)
class TracingConfig:
    """What `setup` needs: `endpoint` None lets the exporter read OTEL_EXPORTER_OTLP_*."""

    endpoint: str | None
    service_name: str
    sampler: tuple[str, float] | None  # from JAEGER_SAMPLER_*: ("const"|"probabilistic", param)


def tracing_config(settings: Settings, env: Mapping[str, str]) -> TracingConfig | None:
    """None when tracing is off; the exporter endpoint, service name and sampler otherwise."""
    otlp = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not (settings.tracing or otlp or traces):
        return None
    endpoint: str | None = None
    if not (otlp or traces):
        host = env.get("JAEGER_AGENT_HOST", "").strip()
        endpoint = f"http://{host}:{OTLP_HTTP_PORT}/v1/traces" if host else f"{DEFAULT_ENDPOINT}/v1/traces"
    for url in (otlp, traces):
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"OTLP endpoint {url!r} is not an http:// or https:// URL")
    service = (env.get("OTEL_SERVICE_NAME") or env.get("JAEGER_SERVICE_NAME") or settings.model_name).strip()
    return TracingConfig(endpoint, service, _jaeger_sampler(env))


def _jaeger_sampler(env: Mapping[str, str]) -> tuple[str, float] | None:
    """seldon-core's JAEGER_SAMPLER_TYPE/PARAM (const, probabilistic), unless OTEL_TRACES_SAMPLER."""
    kind = env.get("JAEGER_SAMPLER_TYPE", "").strip().lower()
    if env.get("OTEL_TRACES_SAMPLER") or kind not in ("const", "probabilistic"):
        if kind and kind not in ("const", "probabilistic"):
            logger.warning("JAEGER_SAMPLER_TYPE=%s is not supported; using OTEL_TRACES_SAMPLER or the default", kind)
        return None
    raw = env.get("JAEGER_SAMPLER_PARAM", "1").strip() or "1"
    try:
        param = float(raw)
    except ValueError as exc:
        raise ConfigError(f"JAEGER_SAMPLER_PARAM must be a number, got {raw!r}") from exc
    if not 0.0 <= param <= 1.0:
        raise ConfigError(f"JAEGER_SAMPLER_PARAM must be between 0 and 1, got {raw!r}")
    return kind, param


def rest_route(path: str) -> tuple[str, str] | None:
    """(`http.route`, protocol) of a REST path; None for a path no route serves."""
    if path in _V1_ROUTES:
        return path, "seldon"
    if path in _V2_FIXED:
        return path, "v2"
    match = _V2_MODEL.match(path)
    if match:
        return "/v2/models/{model}" + (match.group(1) or ""), "v2"
    return None


def grpc_names(method: str) -> tuple[str, str, str] | None:
    """(`rpc.service`, `rpc.method`, protocol) of a gRPC method path `/pkg.Service/Method`."""
    parts = method.split("/")
    if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
        return None
    service, name = parts[1], parts[2]
    return service, name, "v2" if service.startswith("inference.") else "seldon"


class ExportStats:
    """What the exporter did, exposed on the metrics port as the Rust servers' `seldon_otlp_*`
    counters (a prometheus_client collector)."""

    COUNTERS = (
        ("seldon_otlp_spans_exported", "server spans the OTLP collector accepted"),
        ("seldon_otlp_spans_failed", "server spans lost in failed OTLP exports"),
        ("seldon_otlp_export_failures", "OTLP export calls (batches) that failed"),
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans_exported = self.spans_failed = self.export_failures = 0

    def record(self, spans: int, ok: bool) -> None:
        with self._lock:
            if ok:
                self.spans_exported += spans
            else:
                self.spans_failed += spans
                self.export_failures += 1

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily

        with self._lock:
            values = (self.spans_exported, self.spans_failed, self.export_failures)
        for (name, doc), value in zip(self.COUNTERS, values):
            yield CounterMetricFamily(name, doc, value=value)


def _counting(inner: Any, stats: ExportStats, where: str) -> Any:
    """`inner` (a SpanExporter) counting its results into `stats` and logging failures; the
    OTLP exporter retries a failed batch within its timeout (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s),
    then drops it."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Counting(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            result = inner.export(spans)
            ok = result is SpanExportResult.SUCCESS
            stats.record(len(spans), ok)
            if not ok:
                logger.warning("OTLP span export to %s failed; %d spans dropped", where, len(spans))
            return result

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis)

    return Counting()


class Tracing:
    """The SDK's tracer provider, its propagator and the identity every span carries."""

    def __init__(self, config: TracingConfig, settings: Settings) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.propagators.b3 import B3MultiFormat
        from opentelemetry.propagators.composite import CompositePropagator
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        sampler = None
        if config.sampler is not None:
            from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased

            kind, param = config.sampler
            root = (ALWAYS_ON if param >= 1 else ALWAYS_OFF) if kind == "const" else TraceIdRatioBased(param)
            sampler = ParentBased(root)
        # Resource.create adds OTEL_RESOURCE_ATTRIBUTES and the SDK's own attributes; without a
        # sampler the provider reads OTEL_TRACES_SAMPLER(_ARG), the processor OTEL_BSP_*.
        self.provider = TracerProvider(resource=Resource.create({SERVICE_NAME: config.service_name}), sampler=sampler)
        exporter = OTLPSpanExporter(endpoint=config.endpoint)
        self.stats = ExportStats()
        where = config.endpoint or getattr(exporter, "_endpoint", "OTEL_EXPORTER_OTLP_*")
        self.provider.add_span_processor(BatchSpanProcessor(_counting(exporter, self.stats, where)))
        self.tracer = self.provider.get_tracer(SCOPE)
        # later propagators win: a valid traceparent overrides B3
        self.propagator = CompositePropagator([B3MultiFormat(), TraceContextTextMapPropagator()])
        self.model_name = settings.model_name
        self.node = "" if settings.predictive_unit_id == NOT_IMPLEMENTED else settings.predictive_unit_id
        logger.info("exporting server spans (OTLP/HTTP) to %s as %s",
                    config.endpoint or "OTEL_EXPORTER_OTLP_*", config.service_name)

    def _identity(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"seldon.model.name": self.model_name}
        if self.node:
            attrs["seldon.node.name"] = self.node
        return attrs

    def start(self, name: str, carrier: Mapping[str, str], attributes: dict[str, Any]) -> Any:
        from opentelemetry.trace import SpanKind

        parent = self.propagator.extract(carrier)
        return self.tracer.start_span(name, context=parent, kind=SpanKind.SERVER,
                                      attributes={**attributes, **self._identity()})

    def shutdown(self) -> None:
        """Exports what is queued (graceful stop)."""
        self.provider.shutdown()


def setup(settings: Settings, env: Mapping[str, str]) -> Tracing | None:
    config = tracing_config(settings, env)
    return None if config is None else Tracing(config, settings)


class TracingMiddleware:
    """ASGI middleware: one SERVER span per HTTP request, with the response status."""

    def __init__(self, app: Callable[..., Awaitable[None]], tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from opentelemetry.trace import Status, StatusCode, use_span

        carrier = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        method, path = scope["method"], scope["path"]
        attrs: dict[str, Any] = {"http.request.method": method, "url.path": path}
        route = rest_route(path)
        if route is not None:
            attrs["http.route"], attrs["seldon.protocol"] = route
        span = self.tracing.start(f"{method} {route[0]}" if route else method, carrier, attrs)
        status: list[int] = []

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        with use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=True):
            try:
                await self.app(scope, receive, send_status)
            finally:
                if status:
                    span.set_attribute("http.response.status_code", status[0])
                    if status[0] >= 500:
                        span.set_status(Status(StatusCode.ERROR, f"HTTP {status[0]}"))


def _code_number(code: Any) -> int:
    value = getattr(code, "value", code)
    if isinstance(value, tuple):
        value = value[0]
    return int(value)


def grpc_interceptor(tracing: Tracing) -> Any:
    """A grpc.aio server interceptor making one SERVER span per unary call."""
    import grpc
    from opentelemetry.trace import Status, StatusCode, use_span

    class TracingInterceptor(grpc.aio.ServerInterceptor):
        async def intercept_service(self, continuation: Callable, details: Any) -> Any:
            handler = await continuation(details)
            if handler is None or handler.unary_unary is None:
                return handler
            behavior = handler.unary_unary
            carrier = {k.lower(): v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
            names = grpc_names(details.method)

            async def traced(request: Any, context: Any) -> Any:
                attrs: dict[str, Any] = {"rpc.system": "grpc"}
                name = "grpc"
                if names is not None:
                    attrs["rpc.service"], attrs["rpc.method"], attrs["seldon.protocol"] = names
                    name = f"{names[0]}/{names[1]}"
                span = tracing.start(name, carrier, attrs)
                with use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
                    code = 0
                    try:
                        return await behavior(request, context)
                    except BaseException:
                        code = 2  # UNKNOWN, unless the servicer aborted with its own code
                        raise
                    finally:
                        set_code = context.code()
                        if set_code is not None:
                            code = _code_number(set_code)
                        span.set_attribute("rpc.grpc.status_code", code)
                        if code in _GRPC_ERRORS:
                            span.set_status(Status(StatusCode.ERROR, f"gRPC status {code}"))

            return grpc.unary_unary_rpc_method_handler(
                traced,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

    return TracingInterceptor()
