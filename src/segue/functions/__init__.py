"""User-written destination functions, run in a sandbox.

A Python function module imports what it needs from here::

    from segue.functions import fetch, EventNotSupported, InvalidEventPayload
    from segue.functions import ValidationError, RetryError

``fetch`` only works inside segue's function workers, where every request goes through
segue's egress guard.
"""

from segue.functions.errors import (
    EventNotSupported,
    FunctionError,
    InvalidEventPayload,
    RetryError,
    ValidationError,
)
from segue.functions.fetch import FetchResponse, fetch

__all__ = [
    "EventNotSupported",
    "FetchResponse",
    "FunctionError",
    "InvalidEventPayload",
    "RetryError",
    "ValidationError",
    "fetch",
]
