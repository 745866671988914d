"""The Store protocol: everything segue persists goes through these methods.

Backends (SQLite embedded, PostgreSQL scale-out, an in-memory fake for tests) all
pass the same contract suite in ``tests/integration/test_store_contract.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from segue.store.availability import StoreHealth
from segue.store.claims import ClaimQuotas
from segue.store.records import (
    Attempt,
    ClaimedDelivery,
    Delivery,
    DeliveryQuery,
    DeliveryStats,
    EventQuery,
    NewEvent,
    RetryFilter,
    Settlement,
    Source,
    SourceKind,
    StoredEvent,
)


class SourceExistsError(Exception):
    """A source with that name or write key already exists."""


class Store(Protocol):
    """Durable state of one segue deployment.

    When the store cannot write for a reason outside segue (a full disk, a read-only
    file, an I/O error), a method raises ``StoreUnavailableError`` and nothing of
    that call was stored; the same call succeeds once the cause is gone.
    """

    async def open(self) -> None:
        """Connect and apply pending schema migrations."""

    async def close(self) -> None:
        """Flush pending writes and release connections."""

    async def health(self) -> StoreHealth:
        """Whether writes succeed now, and if not, why. Cheap: fit for ``/health``."""

    # -- sources -----------------------------------------------------------
    async def create_source(
        self,
        name: str,
        write_key: str,
        kind: SourceKind = SourceKind.STANDARD,
        rate_limit: float | None = None,
    ) -> Source: ...

    async def get_source(self, name: str) -> Source | None: ...

    async def list_sources(self) -> list[Source]: ...

    async def update_source(
        self,
        name: str,
        *,
        enabled: bool | None = None,
        write_key: str | None = None,
        kind: SourceKind | None = None,
        rate_limit: float | None = None,
    ) -> Source | None:
        """Change the given fields; ``rate_limit=0`` removes the limit."""

    async def delete_source(self, name: str) -> bool: ...

    # -- events ------------------------------------------------------------
    async def append_events(
        self, events: Sequence[NewEvent], *, dedup_window_ms: int
    ) -> list[bool]:
        """Durably commit ``events`` (and their deliveries) before returning.

        Returns, per event, True if stored or False if it was a duplicate of a
        (source, messageId) seen within ``dedup_window_ms``.
        """

    async def list_events(self, query: EventQuery) -> list[StoredEvent]: ...

    async def get_events(self, ids: Sequence[int]) -> dict[int, StoredEvent]:
        """The events with these ids (missing ones are left out)."""

    async def count_events(self, source_id: str | None = None) -> int: ...

    async def prune_dedup(self, older_than_ms: int) -> int:
        """Forget messageIds first seen before ``older_than_ms``."""

    # -- delivery queue ----------------------------------------------------
    async def claim_deliveries(
        self,
        worker: str,
        limit: int,
        now_ms: int,
        lease_ms: int,
        quotas: ClaimQuotas | None = None,
    ) -> list[ClaimedDelivery]:
        """Lease due deliveries (or ones whose lease ran out) to ``worker``.

        At most ``limit`` in all, shared among the destinations with due work as
        ``claims.allot`` says (each within its quota); oldest first within one.
        """

    async def extend_leases(self, worker: str, ids: Sequence[int], until_ms: int) -> int:
        """Keep deliveries still in flight leased to ``worker`` (a slow endpoint)."""

    async def release_leases(self, worker: str, now_ms: int) -> int:
        """Hand back every delivery leased to ``worker`` (it restarted: they are orphans)."""

    async def settle_deliveries(self, settlements: Sequence[Settlement], now_ms: int) -> None:
        """Record outcomes of claimed deliveries in one commit."""

    async def get_delivery(self, delivery_id: int) -> Delivery | None: ...

    async def list_deliveries(self, query: DeliveryQuery) -> list[Delivery]:
        """Newest first; ``before`` is the id cursor."""

    async def list_attempts(self, delivery_id: int) -> list[Attempt]: ...

    async def delivery_stats(
        self, destination_id: str, since_ms: int, bucket_ms: int
    ) -> DeliveryStats: ...

    async def retry_deliveries(self, retry: RetryFilter, now_ms: int) -> int:
        """Put failed deliveries back in the queue with a fresh retry window."""

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
        """Queue replay deliveries for the next ``limit`` events of the range.

        Returns (deliveries queued, last event id): call again with that id until 0.
        """

    async def count_replay_deliveries(self, replay_id: str) -> dict[str, int]:
        """How many deliveries of one replay are in each state."""

    # -- configuration objects (apps, destinations, replays) as JSON documents --
    async def put_object(self, kind: str, name: str, doc: dict[str, Any]) -> None: ...

    async def get_object(self, kind: str, name: str) -> dict[str, Any] | None: ...

    async def list_objects(self, kind: str) -> list[dict[str, Any]]: ...

    async def delete_object(self, kind: str, name: str) -> bool: ...

    # -- settings ----------------------------------------------------------
    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...
