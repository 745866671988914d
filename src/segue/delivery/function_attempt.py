"""A delivery to a function: one call in the sandbox, judged like an HTTP attempt.

The outcome table of the seeds (subscription-functions): a return value succeeds;
RetryError and timeouts are retried; EventNotSupported is discarded as unsupported;
InvalidEventPayload, ValidationError and any other error are discarded with their
message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from segue.delivery.policy import AttemptOutcome, FailureKind
from segue.destinations.redaction import Redactor
from segue.destinations.settings import masked
from segue.functions.result import CallError, CallResult

_FAILURES = {
    CallError.EVENT_NOT_SUPPORTED: FailureKind.UNSUPPORTED,
    CallError.INVALID_EVENT_PAYLOAD: FailureKind.REJECTED,
    CallError.VALIDATION_ERROR: FailureKind.REJECTED,
    CallError.ERROR: FailureKind.REJECTED,
    CallError.MEMORY: FailureKind.REJECTED,
    CallError.RETRY: FailureKind.RETRY,
    CallError.TIMEOUT: FailureKind.TIMEOUT,
    CallError.CRASH: FailureKind.CRASHED,
}


def outcome_of_call(result: CallResult) -> AttemptOutcome:
    if result.ok:
        return AttemptOutcome(succeeded=True)
    failure = _FAILURES[result.error or CallError.ERROR]
    label = result.error.value if result.error else "Error"
    message = f"{label}: {result.message}" if result.message else label
    return AttemptOutcome(failure=failure, message=message)


@dataclass(frozen=True, slots=True)
class FunctionAttemptRecord:
    """What the debugger shows for a function: the event in, Callback Return, Log Output."""

    handler: str
    event: dict[str, Any] | list[dict[str, Any]]
    settings: dict[str, Any]
    result: CallResult
    outcome: AttemptOutcome

    @property
    def duration_ms(self) -> float:
        return self.result.duration_ms

    @property
    def error(self) -> str | None:
        return None if self.result.ok else self.outcome.message

    def as_json(
        self, sensitive_keys: frozenset[str] = frozenset(), redactor: Redactor | None = None
    ) -> dict[str, Any]:
        """For the API and the store: the settings masked, and their sensitive values too
        wherever the function printed, returned or threw them."""
        redact = redactor or Redactor.for_settings(self.settings, sensitive_keys)
        return {
            "kind": "function",
            "request": {
                "handler": self.handler,
                "event": self.event,
                "settings": masked(self.settings, sensitive_keys),
            },
            "response": None,
            "callback_return": redact.value(self.result.value),
            "logs": redact.text(self.result.logs),
            "batch_results": redact.value(self.result.batch_results),
            "status": None,
            "reason": self.outcome.reason,
            "message": redact.value(self.outcome.message),
            "error": redact.value(self.error),
            "duration_ms": round(self.result.duration_ms, 2),
        }
