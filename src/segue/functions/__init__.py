"""User-written destination functions, run in a sandbox.

A Python function module imports what it needs from here::

    from segue.functions import fetch, EventNotSupported, InvalidEventPayload
    from segue.functions import ValidationError, RetryError

``fetch`` only works inside segue's function workers, where every request goes through
segue's egress guard.
"""

from __future__ import annotations

from typing import Any

from segue.functions.errors import (
    EventNotSupported,
    FunctionError,
    InvalidEventPayload,
    RetryError,
    ValidationError,
)

__all__ = [
    "EventNotSupported",
    "FetchError",
    "FetchResponse",
    "FunctionError",
    "InvalidEventPayload",
    "RetryError",
    "ValidationError",
    "fetch",
]


def __getattr__(name: str) -> Any:
    """``fetch`` and its types load on first use: segue's own process never needs them."""
    if name in ("fetch", "FetchResponse", "FetchError"):
        import importlib

        return getattr(importlib.import_module("segue.functions.fetching"), name)
    raise AttributeError(f"module 'segue.functions' has no attribute {name!r}")
