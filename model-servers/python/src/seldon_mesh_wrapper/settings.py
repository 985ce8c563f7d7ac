"""Typed configuration, loaded once from the command line and the environment (§5 names)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

SERVICE_TYPES = ("MODEL", "ROUTER", "TRANSFORMER", "OUTPUT_TRANSFORMER", "COMBINER", "OUTLIER_DETECTOR")
NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
DEFAULT_MAX_BODY_BYTES = 100 * 1024 * 1024


class ConfigError(Exception):
    """The command line, environment or user module cannot be used to start a server."""


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "t", "yes", "y")


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from exc


def parse_parameters(raw: str | None) -> dict[str, Any]:
    """`[{"name","value","type"}]` (types INT, FLOAT, DOUBLE, STRING, BOOL) → constructor kwargs."""
    if raw is None or raw.strip() == "":
        return {}
    try:
        params = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"parameters are not valid JSON: {exc}") from exc
    if not isinstance(params, list):
        raise ConfigError("parameters must be a JSON list of {name, value, type}")
    out: dict[str, Any] = {}
    for p in params:
        if not isinstance(p, dict) or "name" not in p or "value" not in p:
            raise ConfigError(f"parameter needs name and value: {p!r}")
        kind = str(p.get("type", "STRING")).upper()
        value = p["value"]
        try:
            if kind == "INT":
                out[p["name"]] = int(value)
            elif kind in ("FLOAT", "DOUBLE"):
                out[p["name"]] = float(value)
            elif kind == "STRING":
                out[p["name"]] = str(value)
            elif kind == "BOOL":
                out[p["name"]] = value if isinstance(value, bool) else str(value).lower() in ("true", "1")
            else:
                raise ConfigError(f"parameter {p['name']}: unknown type {kind}")
        except ValueError as exc:
            raise ConfigError(f"parameter {p['name']}: {value!r} is not {kind}") from exc
    return out


@dataclass(frozen=True)
class Settings:
    interface_name: str
    service_type: str = "MODEL"
    parameters: dict[str, Any] = field(default_factory=dict)
    http_port: int = 9000
    grpc_port: int = 5000
    metrics_port: int = 6000
    metrics_endpoint: str = "/metrics"
    host: str = "0.0.0.0"
    log_level: str = "INFO"
    threads: int = 1
    workers: int = 1
    grpc_workers: int = 1
    grpc_threads: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    predictive_unit_id: str = NOT_IMPLEMENTED
    predictive_unit_image: str = f"{NOT_IMPLEMENTED}:{NOT_IMPLEMENTED}"
    predictor_id: str = NOT_IMPLEMENTED
    predictor_labels: dict[str, str] = field(default_factory=dict)
    deployment_id: str = NOT_IMPLEMENTED
    model_metadata: str | None = None
    payload_passthrough: bool = False
    include_metrics_in_response: bool = True
    tracing: bool = False

    @property
    def request_path(self) -> dict[str, str]:
        """This unit's entry in `meta.requestPath`; empty when PREDICTIVE_UNIT_ID is unset."""
        if self.predictive_unit_id == NOT_IMPLEMENTED:
            return {}
        return {self.predictive_unit_id: self.predictive_unit_image}

    @property
    def feedback_unit_id(self) -> str:
        """Key looked up in `response.meta.routing` for a router's feedback (Seldon default "0")."""
        return "0" if self.predictive_unit_id == NOT_IMPLEMENTED else self.predictive_unit_id

    @property
    def model_name(self) -> str:
        if self.predictive_unit_id != NOT_IMPLEMENTED:
            return self.predictive_unit_id
        return self.interface_name.rsplit(".", 1)[-1]

    def metric_labels(self) -> dict[str, str]:
        image, _, version = self.predictive_unit_image.partition(":")
        version = version or "latest"
        return {
            "deployment_name": self.deployment_id,
            "model_name": self.predictive_unit_id,
            "model_image": image,
            "model_version": version,
            "predictor_name": self.predictor_id,
            "predictor_version": self.predictor_labels.get("version", NOT_IMPLEMENTED),
            "worker_id": str(os.getpid()),
            # Legacy label names kept by Seldon Core for old dashboards.
            "seldon_deployment_name": self.deployment_id,
            "image_name": image,
            "image_version": version,
        }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="seldon-core-microservice",
        description="Serve a Seldon Core Python model class over REST, gRPC and Prometheus.",
    )
    p.add_argument("interface_name", help="Module (class of the same name) or Module.Class")
    p.add_argument("api_type", nargs="?", help=argparse.SUPPRESS)  # legacy REST|GRPC, ignored
    p.add_argument("--service-type", type=str.upper, choices=SERVICE_TYPES)
    p.add_argument("--parameters", help="JSON list of {name, value, type}")
    p.add_argument("--http-port", type=int)
    p.add_argument("--grpc-port", type=int)
    p.add_argument("--metrics-port", type=int)
    p.add_argument("--host", default=None)
    p.add_argument("--log-level", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--workers", type=int, help="worker processes serving REST and gRPC (default 1)")
    p.add_argument("--threads", type=int, help="threads running user code (default 1)")
    p.add_argument("--grpc-workers", type=int, help="0 disables gRPC")
    p.add_argument("--grpc-threads", type=int)
    p.add_argument("--max-body-bytes", type=int)
    # Accepted for command-line compatibility with seldon-core; no effect here.
    for flag in ("--max-requests", "--max-requests-jitter", "--keepalive"):
        p.add_argument(flag, type=int, help=argparse.SUPPRESS)
    # seldon-core's switch: `--tracing`, `--tracing 1` or TRACING=1 (spans: tracing.py)
    p.add_argument("--tracing", nargs="?", const=1, type=int, help="export OpenTelemetry spans (also TRACING=1)")
    for flag in ("--debug", "--single-threaded", "--access-log"):
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--pidfile", help=argparse.SUPPRESS)
    p.add_argument("--persistence", type=int, help=argparse.SUPPRESS)
    return p


def load_settings(argv: Sequence[str], env: Mapping[str, str]) -> Settings:
    args = build_parser().parse_args(list(argv))

    def pick(arg: Any, name: str, default: int) -> int:
        return arg if arg is not None else _env_int(env, name, default)

    workers = pick(args.workers, "GUNICORN_WORKERS", 1)
    if workers < 1:
        raise ConfigError(f"--workers / GUNICORN_WORKERS must be at least 1, got {workers}")
    labels_raw = env.get("PREDICTOR_LABELS", "{}")
    try:
        predictor_labels = json.loads(labels_raw) if labels_raw else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"PREDICTOR_LABELS is not JSON: {exc}") from exc
    params_raw = args.parameters if args.parameters is not None else env.get("PREDICTIVE_UNIT_PARAMETERS")
    return Settings(
        interface_name=args.interface_name,
        service_type=args.service_type or env.get("SERVICE_TYPE", "MODEL").upper(),
        parameters=parse_parameters(params_raw),
        http_port=pick(args.http_port, "PREDICTIVE_UNIT_HTTP_SERVICE_PORT", 9000),
        grpc_port=pick(args.grpc_port, "PREDICTIVE_UNIT_GRPC_SERVICE_PORT", 5000),
        metrics_port=pick(args.metrics_port, "PREDICTIVE_UNIT_METRICS_SERVICE_PORT", 6000),
        metrics_endpoint=env.get("PREDICTIVE_UNIT_METRICS_ENDPOINT", "/metrics"),
        host=args.host or env.get("PREDICTIVE_UNIT_SERVICE_HOST", "0.0.0.0"),
        log_level=(args.log_level or env.get("SELDON_LOG_LEVEL", "INFO")).upper(),
        threads=max(1, pick(args.threads, "GUNICORN_THREADS", 1)),
        workers=workers,
        grpc_workers=pick(args.grpc_workers, "GRPC_WORKERS", 1),
        grpc_threads=max(1, pick(args.grpc_threads, "GRPC_THREADS", 1)),
        max_body_bytes=pick(args.max_body_bytes, "SELDON_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        predictive_unit_id=env.get("PREDICTIVE_UNIT_ID", NOT_IMPLEMENTED),
        predictive_unit_image=env.get("PREDICTIVE_UNIT_IMAGE", f"{NOT_IMPLEMENTED}:{NOT_IMPLEMENTED}"),
        predictor_id=env.get("PREDICTOR_ID", NOT_IMPLEMENTED),
        predictor_labels={str(k): str(v) for k, v in predictor_labels.items()},
        deployment_id=env.get("SELDON_DEPLOYMENT_ID", NOT_IMPLEMENTED),
        model_metadata=env.get("MODEL_METADATA"),
        payload_passthrough=_env_bool(env, "PAYLOAD_PASSTHROUGH", False),
        include_metrics_in_response=_env_bool(env, "INCLUDE_METRICS_IN_CLIENT_RESPONSE", True),
        tracing=bool(args.tracing) if args.tracing is not None else _env_bool(env, "TRACING", False),
    )


def load_user_class(interface_name: str, workdir: str | None = None) -> type:
    """`Module` → class `Module` in module `Module`; `pkg.Module.Class` → that class."""
    workdir = workdir or os.getcwd()
    if workdir not in sys.path:
        sys.path.insert(0, workdir)
    parts = interface_name.rsplit(".", 1)
    if len(parts) == 1:
        module_name, class_name = interface_name, interface_name
    else:
        module_name, class_name = parts
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if len(parts) == 2:
            # `pkg.Module` where the class is named like the module.
            try:
                module = importlib.import_module(interface_name)
                class_name = parts[1]
            except ModuleNotFoundError:
                raise ConfigError(f"cannot import {module_name}: {exc}") from exc
        else:
            raise ConfigError(f"cannot import {module_name}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"module {module.__name__} has no class {class_name}")
    return cls
