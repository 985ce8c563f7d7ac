"""Errors a user model (or the wrapper) raises, and their one JSON/HTTP mapping."""

from __future__ import annotations

from typing import Any

BAD_DATA = "MICROSERVICE_BAD_DATA"
INTERNAL_ERROR = "MICROSERVICE_INTERNAL_ERROR"
BAD_METRIC = "MICROSERVICE_BAD_METRIC"
BAD_METADATA = "MICROSERVICE_BAD_METADATA"
PAYLOAD_TOO_LARGE = "MICROSERVICE_PAYLOAD_TOO_LARGE"


class SeldonMicroserviceException(Exception):
    """Same constructor and `to_dict` as `seldon_core.flask_utils.SeldonMicroserviceException`.

    User models written for Seldon Core raise this (imported from either package) to
    answer HTTP 400 with a Seldon status body.
    """

    status_code = 400

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        payload: Any = None,
        reason: str = BAD_DATA,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.payload = payload
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        return status_body(self.message, self.reason)


class SeldonNotImplementedError(SeldonMicroserviceException):
    """A hook the user model does not provide (for example `route` on a MODEL)."""

    status_code = 400


def status_body(info: str, reason: str) -> dict[str, Any]:
    """The Seldon v1 failure body: `{"status": {"status": 1, "info", "code": -1, "reason"}}`."""
    return {"status": {"status": 1, "info": info, "code": -1, "reason": reason}}


def error_response(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """Maps any exception raised while serving a request to (HTTP status, JSON body).

    This is the only place that decides how an error looks on the wire.
    """
    if isinstance(exc, SeldonMicroserviceException):
        return exc.status_code, exc.to_dict()
    # seldon_core's own exception class, when a user model still imports it.
    if type(exc).__name__ == "SeldonMicroserviceException" and hasattr(exc, "to_dict"):
        return int(getattr(exc, "status_code", 400)), exc.to_dict()
    return 500, status_body(str(exc) or type(exc).__name__, INTERNAL_ERROR)
