"""Calls the optional hooks of a Seldon Core user class, looked up with `hasattr`."""

from __future__ import annotations

import inspect
import logging
from typing import Any, Iterable

import numpy as np

from .errors import SeldonNotImplementedError

logger = logging.getLogger(__name__)


class SeldonComponent:
    """Optional base class; user classes need not inherit from it."""

    def __init__(self, **kwargs: Any) -> None:
        pass


class SeldonResponse:
    """A hook's return value carrying per-request tags and metrics next to the data."""

    def __init__(self, data: Any, tags: dict | None = None, metrics: list | None = None) -> None:
        self.data = data
        self.tags = tags
        self.metrics = metrics

    @classmethod
    def create(cls, data: Any) -> "SeldonResponse":
        if isinstance(data, SeldonResponse):
            return data
        return cls(data)


def _accepts_kwarg(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _call_with_meta(fn: Any, *args: Any, meta: Any) -> Any:
    if _accepts_kwarg(fn, "meta"):
        return fn(*args, meta=meta)
    return fn(*args)


def has_hook(user_model: Any, name: str) -> bool:
    return hasattr(user_model, name)


def client_predict(user_model: Any, features: Any, names: list, meta: Any) -> SeldonResponse:
    if hasattr(user_model, "predict"):
        return SeldonResponse.create(_call_with_meta(user_model.predict, features, names, meta=meta))
    logger.debug("predict is not implemented; returning an empty array")
    return SeldonResponse([])


def client_transform_input(user_model: Any, features: Any, names: list, meta: Any) -> SeldonResponse:
    if hasattr(user_model, "transform_input"):
        return SeldonResponse.create(
            _call_with_meta(user_model.transform_input, features, names, meta=meta)
        )
    return SeldonResponse(features)


def client_transform_output(user_model: Any, features: Any, names: list, meta: Any) -> SeldonResponse:
    if hasattr(user_model, "transform_output"):
        return SeldonResponse.create(
            _call_with_meta(user_model.transform_output, features, names, meta=meta)
        )
    return SeldonResponse(features)


def client_route(user_model: Any, features: Any, names: list) -> SeldonResponse:
    if hasattr(user_model, "route"):
        return SeldonResponse.create(user_model.route(features, names))
    raise SeldonNotImplementedError("Route not defined")


def client_aggregate(user_model: Any, features_list: list, names_list: list) -> SeldonResponse:
    if hasattr(user_model, "aggregate"):
        return SeldonResponse.create(user_model.aggregate(features_list, names_list))
    raise SeldonNotImplementedError("Aggregate not defined")


def client_send_feedback(
    user_model: Any, features: Any, names: list, reward: float, truth: Any, routing: int | None
) -> SeldonResponse:
    if hasattr(user_model, "send_feedback"):
        fn = user_model.send_feedback
        if _accepts_kwarg(fn, "routing"):
            return SeldonResponse.create(fn(features, names, reward, truth, routing=routing))
        return SeldonResponse.create(fn(features, names, reward, truth))
    return SeldonResponse(None)


def client_health_status(user_model: Any) -> SeldonResponse:
    if hasattr(user_model, "health_status"):
        return SeldonResponse.create(user_model.health_status())
    return SeldonResponse([])


def client_custom_tags(user_model: Any) -> dict:
    if hasattr(user_model, "tags"):
        tags = user_model.tags()
        return dict(tags) if tags else {}
    return {}


def client_user_metrics(user_model: Any) -> list:
    if hasattr(user_model, "metrics"):
        return user_model.metrics()
    return []


def client_class_names(user_model: Any, predictions: np.ndarray) -> list:
    """`class_names()` (method or attribute), else `t:0..t:n-1` for 2-D outputs, else []."""
    if predictions.ndim < 2:
        return []
    if hasattr(user_model, "class_names"):
        attr = user_model.class_names
        return list(attr() if callable(attr) else attr)
    return [f"t:{i}" for i in range(predictions.shape[1])]


def client_feature_names(user_model: Any, original: Iterable[str]) -> list:
    if hasattr(user_model, "feature_names"):
        attr = user_model.feature_names
        return list(attr() if callable(attr) else attr)
    return list(original)
