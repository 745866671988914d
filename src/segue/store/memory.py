"""An in-memory Store for tests: same contract, no durability."""

from __future__ import annotations

import copy
import dataclasses
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from segue.store.availability import StoreHealth, StoreUnavailableError, UnavailableReason
from segue.store.claims import ClaimQuotas, allot
from segue.store.protocol import SourceExistsError
from segue.store.records import (
    FINAL_STATES,
    Attempt,
    ClaimedDelivery,
    Delivery,
    DeliveryQuery,
    DeliveryState,
    DeliveryStats,
    EventQuery,
    NewEvent,
    RetryFilter,
    Settlement,
    Source,
    SourceKind,
    StoredEvent,
)
from segue.timeutil import now_ms

_DUE_STATES = (DeliveryState.PENDING, DeliveryState.AWAITING_RETRY)
P = ParamSpec("P")
R = TypeVar("R")


def _writes(
    method: Callable[Concatenate[InMemoryStore, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[InMemoryStore, P], Coroutine[Any, Any, R]]:
    """A method that changes state: refused while writes fail (``fail_writes``)."""

    async def guarded(self: InMemoryStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.failing is not None:
            raise StoreUnavailableError(self.failing, "simulated by the in-memory store")
        return await method(self, *args, **kwargs)

    return guarded


class InMemoryStore:
    dialect = "memory"

    def __init__(self) -> None:
        self.sources: dict[str, Source] = {}
        self.events: list[StoredEvent] = []
        self.dedup: dict[tuple[str, str], int] = {}
        self.deliveries: dict[int, Delivery] = {}
        self._leases: dict[int, int] = {}
        self._owners: dict[int, str] = {}
        self.meta: dict[str, str] = {}
        self.attempts: list[Attempt] = []
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.failing: UnavailableReason | None = None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- simulating a store that cannot write (a full disk, a read-only file) ---
    def fail_writes(self, reason: UnavailableReason = UnavailableReason.DISK_FULL) -> None:
        """From now on every write raises StoreUnavailableError; reads still work."""
        self.failing = reason

    def allow_writes(self) -> None:
        self.failing = None

    async def health(self) -> StoreHealth:
        if self.failing is not None:
            return StoreHealth.unavailable(self.failing, "simulated by the in-memory store")
        return StoreHealth(ok=True)

    @_writes
    async def create_source(
        self,
        name: str,
        write_key: str,
        kind: SourceKind = SourceKind.STANDARD,
        rate_limit: float | None = None,
    ) -> Source:
        if name in self.sources or any(s.write_key == write_key for s in self.sources.values()):
            raise SourceExistsError(f"a source named {name!r} or with that write key exists")
        source = Source(
            id=f"src_{uuid.uuid4().hex[:20]}",
            name=name,
            write_key=write_key,
            kind=kind,
            rate_limit=rate_limit or None,
            created_at_ms=now_ms(),
        )
        self.sources[name] = source
        return source

    async def get_source(self, name: str) -> Source | None:
        return self.sources.get(name)

    async def list_sources(self) -> list[Source]:
        return sorted(self.sources.values(), key=lambda s: s.name)

    @_writes
    async def update_source(
        self,
        name: str,
        *,
        enabled: bool | None = None,
        write_key: str | None = None,
        kind: SourceKind | None = None,
        rate_limit: float | None = None,
    ) -> Source | None:
        current = self.sources.get(name)
        if current is None:
            return None
        if write_key is not None and any(
            s.write_key == write_key and s.name != name for s in self.sources.values()
        ):
            raise SourceExistsError("another source has that write key")
        updated = dataclasses.replace(
            current,
            enabled=current.enabled if enabled is None else enabled,
            write_key=current.write_key if write_key is None else write_key,
            kind=current.kind if kind is None else kind,
            rate_limit=current.rate_limit if rate_limit is None else (rate_limit or None),
        )
        self.sources[name] = updated
        return updated

    @_writes
    async def delete_source(self, name: str) -> bool:
        return self.sources.pop(name, None) is not None

    @_writes
    async def append_events(
        self, events: Sequence[NewEvent], *, dedup_window_ms: int
    ) -> list[bool]:
        stored = []
        for event in events:
            key = (event.source_id, event.message_id)
            seen = self.dedup.get(key)
            if seen is not None and seen >= event.received_at_ms - dedup_window_ms:
                stored.append(False)
                continue
            self.dedup[key] = event.received_at_ms
            event_id = len(self.events) + 1
            self.events.append(
                StoredEvent(
                    id=event_id,
                    source_id=event.source_id,
                    message_id=event.message_id,
                    type=event.type,
                    received_at_ms=event.received_at_ms,
                    payload=event.payload,
                    user_id=event.user_id,
                    anonymous_id=event.anonymous_id,
                )
            )
            for destination in event.destinations:
                delivery_id = len(self.deliveries) + 1
                self.deliveries[delivery_id] = Delivery(
                    id=delivery_id,
                    event_id=event_id,
                    destination_id=destination,
                    state=DeliveryState.PENDING,
                    attempts=0,
                    created_at_ms=event.received_at_ms,
                    updated_at_ms=event.received_at_ms,
                    next_attempt_at_ms=event.received_at_ms,
                    window_start_ms=event.received_at_ms,
                )
            stored.append(True)
        return stored

    async def list_events(self, query: EventQuery) -> list[StoredEvent]:
        found = []
        for event in reversed(self.events):
            if query.before is not None and event.id >= query.before:
                continue
            if query.source_id is not None and event.source_id != query.source_id:
                continue
            if query.user_id is not None and event.user_id != query.user_id:
                continue
            if query.type is not None and event.type != query.type:
                continue
            found.append(event)
            if len(found) >= query.limit:
                break
        return found

    async def get_events(self, ids: Sequence[int]) -> dict[int, StoredEvent]:
        return {i: self.events[i - 1] for i in ids if 0 < i <= len(self.events)}

    async def count_events(self, source_id: str | None = None) -> int:
        return sum(1 for e in self.events if source_id is None or e.source_id == source_id)

    @_writes
    async def prune_dedup(self, older_than_ms: int) -> int:
        old = [key for key, seen in self.dedup.items() if seen < older_than_ms]
        for key in old:
            del self.dedup[key]
        return len(old)

    @_writes
    async def claim_deliveries(
        self,
        worker: str,
        limit: int,
        now_ms: int,
        lease_ms: int,
        quotas: ClaimQuotas | None = None,
    ) -> list[ClaimedDelivery]:
        queues: dict[str, list[Delivery]] = {}
        for d in self.deliveries.values():
            if (d.next_attempt_at_ms or 0) <= now_ms and (
                d.state in _DUE_STATES
                or (d.state is DeliveryState.EXECUTING and self._leases.get(d.id, 0) <= now_ms)
            ):
                queues.setdefault(d.destination_id, []).append(d)
        due: list[Delivery] = []
        for destination_id, count in allot(queues, limit, quotas):
            oldest = sorted(queues[destination_id], key=lambda d: d.next_attempt_at_ms or 0)
            due += oldest[:count]
        due.sort(key=lambda d: d.id)
        claimed = []
        for delivery in due:
            leased = dataclasses.replace(
                delivery,
                state=DeliveryState.EXECUTING,
                next_attempt_at_ms=now_ms + lease_ms,
                updated_at_ms=now_ms,
            )
            self.deliveries[delivery.id] = leased
            self._leases[delivery.id] = now_ms + lease_ms
            self._owners[delivery.id] = worker
            claimed.append(
                ClaimedDelivery(
                    id=leased.id,
                    event_id=leased.event_id,
                    destination_id=leased.destination_id,
                    attempts=leased.attempts + 1,  # counted once it is settled
                    created_at_ms=leased.created_at_ms,
                    payload=self.events[leased.event_id - 1].payload,
                    window_start_ms=leased.window_start_ms,
                    replay=leased.replay,
                )
            )
        return claimed

    @_writes
    async def extend_leases(self, worker: str, ids: Sequence[int], until_ms: int) -> int:
        extended = 0
        for delivery_id in ids:
            current = self.deliveries.get(delivery_id)
            if (
                current is not None
                and current.state is DeliveryState.EXECUTING
                and self._owners.get(delivery_id) == worker
            ):
                self._leases[delivery_id] = until_ms
                self.deliveries[delivery_id] = dataclasses.replace(
                    current, next_attempt_at_ms=until_ms
                )
                extended += 1
        return extended

    @_writes
    async def release_leases(self, worker: str, now_ms: int) -> int:
        released = 0
        for delivery_id, owner in list(self._owners.items()):
            current = self.deliveries[delivery_id]
            if owner == worker and current.state is DeliveryState.EXECUTING:
                self.deliveries[delivery_id] = dataclasses.replace(
                    current,
                    state=DeliveryState.PENDING,
                    next_attempt_at_ms=now_ms,
                    updated_at_ms=now_ms,
                )
                self._leases.pop(delivery_id, None)
                del self._owners[delivery_id]
                released += 1
        return released

    @_writes
    async def settle_deliveries(self, settlements: Sequence[Settlement], now_ms: int) -> None:
        for s in settlements:
            current = self.deliveries[s.delivery_id]
            self._leases.pop(s.delivery_id, None)
            self._owners.pop(s.delivery_id, None)
            self.deliveries[s.delivery_id] = dataclasses.replace(
                current,
                state=s.state,
                next_attempt_at_ms=s.next_attempt_at_ms or now_ms,
                last_error=s.error,
                reason=s.reason,
                completed_at_ms=now_ms if s.state in FINAL_STATES else None,
                updated_at_ms=now_ms,
                attempts=current.attempts + (1 if s.attempted else 0),
            )
            if s.attempt is not None:
                self.attempts.append(
                    Attempt(
                        s.delivery_id,
                        s.attempt_number,
                        now_ms,
                        s.state,
                        s.reason,
                        copy.deepcopy(s.attempt),
                    )
                )

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        return self.deliveries.get(delivery_id)

    async def list_deliveries(self, query: DeliveryQuery) -> list[Delivery]:
        found = []
        for delivery in sorted(self.deliveries.values(), key=lambda d: -d.id):
            if query.before is not None and delivery.id >= query.before:
                continue
            if query.destination_id is not None and delivery.destination_id != query.destination_id:
                continue
            if query.state is not None and delivery.state is not query.state:
                continue
            if query.reason is not None and delivery.reason != query.reason:
                continue
            found.append(delivery)
            if len(found) >= query.limit:
                break
        return found

    async def list_attempts(self, delivery_id: int) -> list[Attempt]:
        return [a for a in self.attempts if a.delivery_id == delivery_id]

    async def delivery_stats(
        self, destination_id: str, since_ms: int, bucket_ms: int
    ) -> DeliveryStats:
        mine = [d for d in self.deliveries.values() if d.destination_id == destination_id]
        by_state: dict[str, int] = {}
        for d in mine:
            if d.updated_at_ms >= since_ms:
                by_state[d.state.value] = by_state.get(d.state.value, 0) + 1
        completed = [
            d for d in mine if d.completed_at_ms is not None and d.completed_at_ms >= since_ms
        ]
        latencies = [
            d.completed_at_ms - d.created_at_ms  # type: ignore[operator]
            for d in completed
            if d.state is DeliveryState.SUCCEEDED
        ]
        buckets: dict[tuple[int, str], int] = {}
        for d in completed:
            key = ((d.completed_at_ms or 0) // bucket_ms * bucket_ms, d.state.value)
            buckets[key] = buckets.get(key, 0) + 1
        reasons: dict[tuple[str, str], int] = {}
        failing = (DeliveryState.DISCARDED, DeliveryState.EXPIRED, DeliveryState.AWAITING_RETRY)
        for d in mine:
            if d.updated_at_ms >= since_ms and d.state in failing:
                key2 = (d.reason or "unknown", d.state.value)
                reasons[key2] = reasons.get(key2, 0) + 1
        return DeliveryStats(
            by_state=by_state,
            latencies_ms=latencies,
            buckets=sorted((b, s, n) for (b, s), n in buckets.items()),
            reasons=sorted(((r, s, n) for (r, s), n in reasons.items()), key=lambda x: -x[2]),
        )

    @_writes
    async def retry_deliveries(self, retry: RetryFilter, now_ms: int) -> int:
        count = 0
        for d in list(self.deliveries.values()):
            if (
                d.destination_id == retry.destination_id
                and d.state in retry.states
                and (retry.reason is None or d.reason == retry.reason)
                and (retry.since_ms is None or d.created_at_ms >= retry.since_ms)
            ):
                self.deliveries[d.id] = dataclasses.replace(
                    d,
                    state=DeliveryState.PENDING,
                    next_attempt_at_ms=now_ms,
                    window_start_ms=now_ms,
                    completed_at_ms=None,
                    reason=None,
                    updated_at_ms=now_ms,
                )
                count += 1
        return count

    @_writes
    async def enqueue_replay(
        self,
        source_id: str,
        destination_id: str,
        since_ms: int,
        until_ms: int,
        *,
        after_event_id: int,
        limit: int,
        now_ms: int,
        replay_id: str | None = None,
    ) -> tuple[int, int]:
        picked = [
            e
            for e in self.events
            if e.source_id == source_id
            and since_ms <= e.received_at_ms < until_ms
            and e.id > after_event_id
        ][:limit]
        for event in picked:
            delivery_id = len(self.deliveries) + 1
            self.deliveries[delivery_id] = Delivery(
                id=delivery_id,
                event_id=event.id,
                destination_id=destination_id,
                state=DeliveryState.PENDING,
                attempts=0,
                created_at_ms=now_ms,
                updated_at_ms=now_ms,
                next_attempt_at_ms=now_ms,
                window_start_ms=now_ms,
                replay_id=replay_id or "replay",
            )
        return len(picked), (picked[-1].id if picked else after_event_id)

    async def count_replay_deliveries(self, replay_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in self.deliveries.values():
            if d.replay_id == replay_id:
                counts[d.state.value] = counts.get(d.state.value, 0) + 1
        return counts

    @_writes
    async def put_object(self, kind: str, name: str, doc: dict[str, Any]) -> None:
        self.objects[(kind, name)] = copy.deepcopy(doc)

    async def get_object(self, kind: str, name: str) -> dict[str, Any] | None:
        doc = self.objects.get((kind, name))
        return copy.deepcopy(doc) if doc is not None else None

    async def list_objects(self, kind: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(d) for (k, _), d in sorted(self.objects.items()) if k == kind]

    @_writes
    async def delete_object(self, kind: str, name: str) -> bool:
        return self.objects.pop((kind, name), None) is not None

    async def get_meta(self, key: str) -> str | None:
        return self.meta.get(key)

    @_writes
    async def set_meta(self, key: str, value: str) -> None:
        self.meta[key] = value
