"""Runs Seldon Core v1 Python model classes unchanged, for seldon-mesh (REST, gRPC, metrics)."""

from .errors import SeldonMicroserviceException, SeldonNotImplementedError
from .user_model import SeldonComponent, SeldonResponse

__all__ = [
    "SeldonComponent",
    "SeldonMicroserviceException",
    "SeldonNotImplementedError",
    "SeldonResponse",
]
