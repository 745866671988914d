"""Plain records that cross the Store boundary (no backend types leak out)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class SourceKind(StrEnum):
    STANDARD = "standard"
    STREAM = "stream"


@dataclass(frozen=True, slots=True)
class Source:
    """A place events come from, identified on the wire by its write key."""

    id: str
    name: str
    write_key: str
    kind: SourceKind = SourceKind.STANDARD
    enabled: bool = True
    rate_limit: float | None = None  # requests per second; None = unlimited
    created_at_ms: int = 0


@dataclass(slots=True)  # not frozen: one is built per ingested event, and frozen costs
class NewEvent:
    """A normalised event ready to be appended; payload is its JSON encoding.

    ``destinations`` names the destination ids the event fans out to, so that the
    event and its deliveries are committed in one transaction.
    """

    source_id: str
    message_id: str
    type: str
    received_at_ms: int
    payload: bytes
    user_id: str | None = None
    anonymous_id: str | None = None
    destinations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    source_id: str
    message_id: str
    type: str
    received_at_ms: int
    payload: bytes
    user_id: str | None = None
    anonymous_id: str | None = None


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters for listing stored events, newest first; ``before`` is the cursor."""

    source_id: str | None = None
    user_id: str | None = None
    type: str | None = None
    limit: int = 100
    before: int | None = None


class DeliveryState(StrEnum):
    """Centrifuge-like states of one event on its way to one destination."""

    PENDING = "pending"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    DISCARDED = "discarded"
    AWAITING_RETRY = "awaiting_retry"
    EXPIRED = "expired"


FINAL_STATES = frozenset({DeliveryState.SUCCEEDED, DeliveryState.DISCARDED, DeliveryState.EXPIRED})


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery leased to one worker; ``attempts`` is the number of this attempt.

    The stored count goes up when the attempt is settled, so a lease lost in a crash
    (the attempt never finished) is not counted.
    """

    id: int
    event_id: int
    destination_id: str
    attempts: int
    created_at_ms: int
    payload: bytes
    window_start_ms: int = 0  # the retry window is measured from here
    replay: bool = False


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a worker decided about a claimed delivery, with the attempt that led there."""

    delivery_id: int
    state: DeliveryState
    next_attempt_at_ms: int | None = None
    error: str | None = None  # the human message (a JSON body's `message`, an exception)
    reason: str | None = None  # groupable: "discarded.400", "awaiting-retry.ECONNREFUSED"
    attempt_number: int = 0
    attempt: dict[str, Any] | None = None  # the debugger's record: request, response, timing
    attempted: bool = True  # False: settled without calling the destination (it is gone)


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: int
    destination_id: str
    state: DeliveryState
    attempts: int
    created_at_ms: int
    updated_at_ms: int
    next_attempt_at_ms: int | None = None
    last_error: str | None = None
    reason: str | None = None
    completed_at_ms: int | None = None
    window_start_ms: int = 0
    replay_id: str | None = None

    @property
    def replay(self) -> bool:
        return self.replay_id is not None


@dataclass(frozen=True, slots=True)
class Attempt:
    delivery_id: int
    number: int
    at_ms: int
    state: DeliveryState
    reason: str | None
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeliveryQuery:
    destination_id: str | None = None
    state: DeliveryState | None = None
    reason: str | None = None
    limit: int = 100
    before: int | None = None


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    """The Event Delivery summary of one destination over a window."""

    by_state: dict[str, int]
    latencies_ms: list[int]  # end to end (ingest → 2xx) of the deliveries that succeeded
    buckets: list[tuple[int, str, int]]  # (bucket start ms, final state, count)
    reasons: list[tuple[str, str, int]]  # (reason, state, count)


@dataclass(frozen=True, slots=True)
class RetryFilter:
    destination_id: str
    states: tuple[DeliveryState, ...] = (DeliveryState.DISCARDED, DeliveryState.EXPIRED)
    reason: str | None = None
    since_ms: int | None = None
