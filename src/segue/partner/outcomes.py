"""What a handler can say about an event, mapped onto the seed's status table.

Handlers raise these (or return ``Accepted``) instead of choosing status codes, so a
partner cannot answer with a code Segment does not expect, and every error carries
the JSON ``message`` that segue shows in its debugger. The names follow Segment's
destination functions (``InvalidEventPayload``, ``ValidationError``) where they exist.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar


class DestinationError(Exception):
    """An answer other than success. Subclasses fix the status; raise those, not this."""

    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = str(message) if message else self.default_message
        super().__init__(self.message)

    def headers(self) -> tuple[tuple[str, str], ...]:
        """Extra response headers (only ``Unavailable`` has one: Retry-After)."""
        return ()


class InvalidEventPayload(DestinationError):
    """400: the event is malformed or lacks what you need; Segment will not retry it."""

    status = 400
    default_message = "invalid event payload"


class ValidationError(DestinationError):
    """400: the event failed your validation (same answer as ``InvalidEventPayload``)."""

    status = 400
    default_message = "validation failed"


class Unauthorized(DestinationError):
    """401: the API key is malformed, expired or otherwise no longer valid."""

    status = 401
    default_message = "invalid API key"


class Forbidden(DestinationError):
    """403: the API key is valid but lacks the permission this event needs."""

    status = 403
    default_message = "permission denied"


class Unavailable(DestinationError):
    """503: temporarily not accepting messages; Segment (and segue) retry later.

    ``retry_after`` (seconds) becomes a Retry-After header, which segue honours
    when it schedules the next attempt.
    """

    status = 503
    default_message = "temporarily unavailable"

    def __init__(self, message: str | None = None, retry_after: float | None = None) -> None:
        if retry_after is not None and (math.isnan(retry_after) or retry_after < 0):
            raise ValueError("retry_after must be a number of seconds ≥ 0")
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> tuple[tuple[str, str], ...]:
        if self.retry_after is None:
            return ()
        # delta-seconds must be a whole number; round up so the partner gets its pause
        return (("Retry-After", str(math.ceil(self.retry_after))),)


class Accepted:
    """Return ``Accepted()`` (or ``Accepted(body)``) for 202: taken, not yet processed.

    A return marker rather than an exception because it is a success: code after
    the decision (queueing the work) should run normally.
    """

    __slots__ = ("body",)

    def __init__(self, body: Any = None) -> None:
        self.body = body

    def __repr__(self) -> str:
        return f"Accepted({self.body!r})"
