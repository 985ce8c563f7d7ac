"""Model metadata: `init_metadata()` merged with env `MODEL_METADATA` (YAML/JSON, env wins)."""

from __future__ import annotations

import logging
from typing import Any

import yaml

from .errors import SeldonNotImplementedError

logger = logging.getLogger(__name__)

V1_MESSAGE_TYPES = {"jsonData", "strData", "binData", "customData", "tensor", "ndarray", "tftensor"}


class InvalidMetadataError(Exception):
    """Model metadata that does not follow Seldon's metadata schema."""


def _validate_tensors(items: Any, what: str) -> list:
    if not isinstance(items, list):
        raise InvalidMetadataError(f"{what} must be a list")
    for item in items:
        if not isinstance(item, dict):
            raise InvalidMetadataError(f"{what} entries must be objects: {item!r}")
        if "messagetype" in item:
            if item["messagetype"] not in V1_MESSAGE_TYPES:
                raise InvalidMetadataError(f"{what}: unknown messagetype {item['messagetype']!r}")
        elif not {"name", "datatype", "shape"} <= item.keys():
            raise InvalidMetadataError(
                f"{what}: entry needs messagetype (v1) or name, datatype and shape (v2): {item!r}"
            )
    return items


def validate_model_metadata(data: Any, default_name: str) -> dict:
    if not isinstance(data, dict):
        raise InvalidMetadataError(f"metadata must be an object: {data!r}")
    meta = {
        "name": str(data.get("name", default_name)),
        "versions": list(data.get("versions", [])),
        "platform": str(data.get("platform", "")),
        "inputs": _validate_tensors(data.get("inputs", []), "inputs"),
        "outputs": _validate_tensors(data.get("outputs", []), "outputs"),
    }
    if "custom" in data:
        custom = data["custom"]
        if not isinstance(custom, dict):
            raise InvalidMetadataError("custom must be a map of strings")
        meta["custom"] = {str(k): str(v) for k, v in custom.items()}
    return meta


def init_metadata(user_model: Any, env_metadata: str | None, default_name: str) -> dict | None:
    """Returns the validated metadata, or None (logged) when it is unusable — as Seldon does."""
    env_meta: Any = {}
    if env_metadata:
        try:
            env_meta = yaml.safe_load(env_metadata) or {}
        except yaml.YAMLError as exc:
            logger.error("MODEL_METADATA is not valid YAML: %s", exc)
            env_meta = {}
    if not isinstance(env_meta, dict):
        logger.error("MODEL_METADATA must be a mapping, got %r", env_meta)
        env_meta = {}
    user_meta: Any = {}
    if hasattr(user_model, "init_metadata"):
        try:
            user_meta = user_model.init_metadata()
        except SeldonNotImplementedError:
            user_meta = {}
    if not isinstance(user_meta, dict):
        logger.error("init_metadata() must return a dict, got %r", user_meta)
        user_meta = {}
    try:
        return validate_model_metadata({**user_meta, **env_meta}, default_name)
    except InvalidMetadataError as exc:
        logger.error("model metadata is invalid, /metadata will answer 500: %s", exc)
        return None
