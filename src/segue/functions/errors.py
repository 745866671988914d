"""The errors a function raises to say what happened to an event (Segment's names)."""

from __future__ import annotations


class FunctionError(Exception):
    """Base of the errors a function may raise on purpose."""


class EventNotSupported(FunctionError):
    """The function does not handle this event type: discarded as unsupported."""


class InvalidEventPayload(FunctionError):
    """The event lacks what the function needs: discarded, not retried."""


class ValidationError(FunctionError):
    """The settings or the event are invalid: discarded, not retried."""


class RetryError(FunctionError):
    """A temporary failure: the event is retried with backoff."""


ERROR_KINDS = ("EventNotSupported", "InvalidEventPayload", "ValidationError", "RetryError")
