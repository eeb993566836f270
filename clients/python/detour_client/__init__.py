"""Detour's Python client: a typed convenience layer over the gRPC API
(`Client`), with the generated messages and stubs in `detour.v1`."""

from .client import MAX_FEATURE_ROWS, Client, DetourError

__all__ = ["Client", "DetourError", "MAX_FEATURE_ROWS"]
