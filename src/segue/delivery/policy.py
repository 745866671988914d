"""What to do after an attempt: succeed, discard, retry later, or give up (expire).

Pure logic, no I/O: the table of the partner contract (shared/seeds) in one place.
2xx succeeds (202 = accepted); 400/401/403 and other 4xx are discarded; 501 is
discarded as an unsupported type; 408, 423, 429, 500 and 502-511, timeouts and
connection errors are retried with randomised exponential backoff, honouring
Retry-After, until the retry window closes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from segue.store.records import DeliveryState

RETRYABLE_STATUSES = frozenset({408, 423, 429, 500, *range(502, 512)})


class FailureKind(StrEnum):
    """Why an attempt got no usable HTTP answer (Segment's error names)."""

    TIMEOUT = "ETIMEDOUT"
    CONNECTION_REFUSED = "ECONNREFUSED"
    CONNECTION_RESET = "ECONNRESET"
    DNS = "ENOTFOUND"
    UNREACHABLE = "EHOSTUNREACH"
    BLOCKED = "EGRESS_BLOCKED"  # the egress guard refused the address: never retried
    INVALID_SETTINGS = "INVALID_SETTINGS"  # cannot build the request: never retried
    RETRY = "RETRY"  # a function asked to be retried (RetryError)
    CRASHED = "FUNCTION_CRASHED"  # the function's worker died: retried
    REJECTED = "MESSAGE_REJECTED"  # a function rejected the message (discard)
    UNSUPPORTED = "UNSUPPORTED"  # a function has no handler for the type (discard)
    INTERNAL = "INTERNAL_ERROR"  # segue failed to make the attempt (a defect): retried


_RETRYABLE_FAILURES = frozenset(
    {
        FailureKind.TIMEOUT,
        FailureKind.CONNECTION_REFUSED,
        FailureKind.CONNECTION_RESET,
        FailureKind.DNS,
        FailureKind.UNREACHABLE,
        FailureKind.RETRY,
        FailureKind.CRASHED,
        FailureKind.INTERNAL,
    }
)


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """The result of one attempt: an HTTP status, or a failure without one."""

    status: int | None = None
    failure: FailureKind | None = None
    retry_after_s: float | None = None
    message: str | None = None
    succeeded: bool = False  # a function returned (there is no HTTP status)

    @property
    def reason(self) -> str:
        """A short, groupable reason for the delivery summary: ``429``, ``ECONNREFUSED``…"""
        if self.succeeded:
            return "ok"
        if self.failure is not None:
            return self.failure.value
        return str(self.status) if self.status is not None else "unknown"


@dataclass(frozen=True, slots=True)
class RetryDecision:
    state: DeliveryState
    next_attempt_at_ms: int | None = None
    reason: str | None = None  # e.g. "discarded.400", "awaiting-retry.503", "expired.503"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Randomised exponential backoff inside a retry window (per destination)."""

    first_backoff_s: float = 2.0
    factor: float = 2.0
    max_backoff_s: float = 600.0
    window_s: float = 4 * 3600.0
    jitter: float = 0.5  # the wait is drawn from [base * (1 - jitter), base]

    def backoff_s(self, attempts: int, rng: random.Random | None = None) -> float:
        """Wait before attempt ``attempts + 1`` (``attempts`` ≥ 1 already made)."""
        base = min(self.max_backoff_s, self.first_backoff_s * self.factor ** max(0, attempts - 1))
        draw = (rng or random).random()
        return base * (1.0 - self.jitter * draw)

    def decide(
        self,
        outcome: AttemptOutcome,
        *,
        attempts: int,
        created_at_ms: int,
        now_ms: int,
        rng: random.Random | None = None,
    ) -> RetryDecision:
        status, failure = outcome.status, outcome.failure
        if outcome.succeeded or (status is not None and 200 <= status < 300):
            return RetryDecision(DeliveryState.SUCCEEDED, reason=None)
        retryable = (
            (status in RETRYABLE_STATUSES)
            if status is not None
            else (failure in _RETRYABLE_FAILURES)
        )
        if not retryable:
            label = "unsupported" if status == 501 or failure is FailureKind.UNSUPPORTED else ""
            return RetryDecision(
                DeliveryState.DISCARDED, reason=f"discarded.{label or outcome.reason}"
            )
        wait_s = self.backoff_s(attempts, rng)
        if outcome.retry_after_s is not None:
            wait_s = max(wait_s, min(outcome.retry_after_s, self.window_s))
        next_at = now_ms + int(wait_s * 1000)
        if next_at > created_at_ms + int(self.window_s * 1000):
            return RetryDecision(DeliveryState.EXPIRED, reason=f"expired.{outcome.reason}")
        return RetryDecision(
            DeliveryState.AWAITING_RETRY,
            next_attempt_at_ms=next_at,
            reason=f"awaiting-retry.{outcome.reason}",
        )


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_s)
