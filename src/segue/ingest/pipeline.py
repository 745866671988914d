"""From parsed messages to committed events: validate, normalise, dedup, store.

No HTTP here: the ASGI layer hands over decoded JSON and turns the outcome into a
response, so the same pipeline serves every route (and tests without sockets).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from segue.metrics import Metrics
from segue.spec import IngestContext, Rejection, RejectionCode, normalize, validate, wire
from segue.store import NewEvent, Source, Store
from segue.timeutil import to_ms

MAX_EVENT_BYTES = 32 * 1024

log = logging.getLogger("segue.ingest")

Router = Callable[[Source, dict[str, Any]], tuple[str, ...]]
"""Given a normalised event, the ids of the destinations it must be delivered to."""


def _no_destinations(source: Source, event: dict[str, Any]) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True, slots=True)
class ItemRejection:
    index: int
    code: RejectionCode
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "code": self.code.value, "message": self.message}


@dataclass(slots=True)
class IngestOutcome:
    accepted: int = 0
    duplicates: int = 0
    rejections: list[ItemRejection] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BatchFields:
    """Batch-level fields that apply to every item."""

    sent_at: object = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None


NO_BATCH_FIELDS = BatchFields()


class Ingestor:
    def __init__(
        self,
        store: Store,
        *,
        dedup_window_ms: int,
        metrics: Metrics | None = None,
        router: Router = _no_destinations,
        max_event_bytes: int = MAX_EVENT_BYTES,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._dedup_window_ms = dedup_window_ms
        self._metrics = metrics
        self.router = router
        self._max_event_bytes = max_event_bytes
        self.on_enqueued = on_enqueued  # wakes the delivery worker after a commit
        self._received: dict[str, Any] = {}  # metric children per source: no label lookup

    async def ingest(
        self,
        source: Source,
        items: list[Any],
        ctx: IngestContext,
        batch: BatchFields = NO_BATCH_FIELDS,
        *,
        check_item_size: bool = False,
    ) -> IngestOutcome:
        """Store every valid item; report the others. Returns after the commit."""
        outcome = IngestOutcome()
        events: list[NewEvent] = []
        received_at_ms = to_ms(ctx.received_at)
        for index, item in enumerate(items):
            prepared = self._prepare(source, item, ctx, batch, received_at_ms, check_item_size)
            if isinstance(prepared, Rejection):
                outcome.rejections.append(ItemRejection(index, prepared.code, prepared.message))
            else:
                events.append(prepared)
        if events:
            stored = await self._store.append_events(events, dedup_window_ms=self._dedup_window_ms)
            outcome.accepted = sum(stored)
            outcome.duplicates = len(stored) - outcome.accepted
            if self.on_enqueued is not None and any(
                ok and e.destinations for ok, e in zip(stored, events, strict=True)
            ):
                self.on_enqueued()
        self._count(source, outcome)
        return outcome

    def _prepare(
        self,
        source: Source,
        item: Any,
        ctx: IngestContext,
        batch: BatchFields,
        received_at_ms: int,
        check_size: bool,
    ) -> NewEvent | Rejection:
        """One item: the event to store, or why it is refused.

        Whatever an item holds, it costs only itself: the other items of its batch
        are kept. The client-facing steps (validate, normalise, encode) are pure, so
        an exception in them is caused by the item; it is logged and refuses the item.
        """
        try:
            problem = self._check(item, check_size)
            if problem is not None:
                return problem
            message = normalize(
                item,
                ctx,
                batch_sent_at=batch.sent_at,
                batch_context=batch.context,
                batch_integrations=batch.integrations,
            )
            payload = wire.encode(message)
        except wire.JSONError as exc:
            return Rejection(RejectionCode.BAD_REQUEST, f"the event cannot be stored: {exc}")
        except Exception as exc:  # a defect of segue's: refuse the item, keep the batch
            log.exception("an event could not be ingested")
            return Rejection(
                RejectionCode.BAD_REQUEST,
                f"segue could not process the event ({type(exc).__name__})",
            )
        return NewEvent(
            source_id=source.id,
            message_id=message["messageId"],
            type=message["type"],
            received_at_ms=received_at_ms,
            payload=payload,
            user_id=message.get("userId"),
            anonymous_id=message.get("anonymousId"),
            destinations=self.router(source, message),
        )

    def _check(self, item: Any, check_size: bool) -> Rejection | None:
        if not isinstance(item, dict):
            return Rejection(RejectionCode.BAD_REQUEST, "every event must be a JSON object")
        if check_size and len(wire.encode(item, check_depth=False)) > self._max_event_bytes:
            return Rejection(
                RejectionCode.BAD_REQUEST,
                f"the event is larger than {self._max_event_bytes // 1024} KB",
            )
        return validate(item)

    def _count(self, source: Source, outcome: IngestOutcome) -> None:
        if self._metrics is None:
            return
        if outcome.accepted:
            counter = self._received.get(source.name)
            if counter is None:
                counter = self._received[source.name] = self._metrics.events_received.labels(
                    source.name
                )
            counter.inc(outcome.accepted)
        if outcome.duplicates:
            self._metrics.events_duplicate.labels(source.name).inc(outcome.duplicates)
        for rejection in outcome.rejections:
            self._metrics.events_rejected.labels(rejection.code.value).inc()
