"""The Store contract: every backend must pass these unchanged."""

from __future__ import annotations

import asyncio

import pytest

from segue.store import (
    DeliveryState,
    EventQuery,
    NewEvent,
    Settlement,
    SourceExistsError,
    SourceKind,
    Store,
)

WINDOW = 24 * 3600 * 1000


def event(source_id: str, message_id: str, at: int = 1_000_000, **kw: object) -> NewEvent:
    fields: dict[str, object] = {
        "source_id": source_id,
        "message_id": message_id,
        "type": "track",
        "received_at_ms": at,
        "payload": b'{"type":"track","messageId":"%s"}' % message_id.encode(),
        "user_id": "u1",
    }
    fields.update(kw)
    return NewEvent(**fields)  # type: ignore[arg-type]


async def test_sources_crud(store: Store) -> None:
    created = await store.create_source("web", "wk_web")
    assert created.name == "web" and created.enabled and created.kind is SourceKind.STANDARD
    assert await store.get_source("web") == created
    with pytest.raises(SourceExistsError):
        await store.create_source("web", "other")
    with pytest.raises(SourceExistsError):
        await store.create_source("other", "wk_web")
    await store.create_source("app", "wk_app", SourceKind.STREAM, rate_limit=5)
    assert [s.name for s in await store.list_sources()] == ["app", "web"]

    updated = await store.update_source("web", enabled=False, write_key="wk_new", rate_limit=10)
    assert updated is not None
    assert (updated.enabled, updated.write_key, updated.rate_limit) == (False, "wk_new", 10)
    cleared = await store.update_source("web", rate_limit=0)
    assert cleared is not None and cleared.rate_limit is None and cleared.write_key == "wk_new"
    with pytest.raises(SourceExistsError):
        await store.update_source("web", write_key="wk_app")
    assert await store.update_source("missing", enabled=False) is None
    assert await store.delete_source("web") is True
    assert await store.delete_source("web") is False
    assert await store.get_source("web") is None


async def test_append_dedups_within_window(store: Store) -> None:
    stored = await store.append_events(
        [event("s1", "m1"), event("s1", "m1"), event("s2", "m1"), event("s1", "m2")],
        dedup_window_ms=WINDOW,
    )
    assert stored == [True, False, True, True]
    again = await store.append_events(
        [event("s1", "m1", at=1_000_000 + WINDOW - 1)], dedup_window_ms=WINDOW
    )
    assert again == [False]
    later = await store.append_events(
        [event("s1", "m1", at=1_000_000 + WINDOW + 1)], dedup_window_ms=WINDOW
    )
    assert later == [True]
    assert await store.count_events() == 4
    assert await store.count_events("s1") == 3


async def test_concurrent_appends_all_land(store: Store) -> None:
    batches = [[event("s", f"m{i}-{j}") for j in range(10)] for i in range(50)]
    results = await asyncio.gather(
        *(store.append_events(b, dedup_window_ms=WINDOW) for b in batches)
    )
    assert all(all(r) for r in results)
    assert await store.count_events() == 500


async def test_list_events_newest_first_with_filters_and_cursor(store: Store) -> None:
    await store.append_events(
        [
            event("s1", f"m{i}", type="identify" if i % 2 else "track", user_id=f"u{i % 3}")
            for i in range(10)
        ],
        dedup_window_ms=WINDOW,
    )
    page = await store.list_events(EventQuery(limit=4))
    assert [e.message_id for e in page] == ["m9", "m8", "m7", "m6"]
    rest = await store.list_events(EventQuery(limit=100, before=page[-1].id))
    assert [e.message_id for e in rest] == ["m5", "m4", "m3", "m2", "m1", "m0"]
    tracks = await store.list_events(EventQuery(type="track"))
    assert {e.message_id for e in tracks} == {"m0", "m2", "m4", "m6", "m8"}
    user = await store.list_events(EventQuery(user_id="u1"))
    assert [e.message_id for e in user] == ["m7", "m4", "m1"]
    assert await store.list_events(EventQuery(source_id="nope")) == []
    assert page[0].payload.startswith(b'{"type":"track"') or page[0].payload.startswith(b"{")


async def test_prune_dedup_forgets_old_ids(store: Store) -> None:
    await store.append_events(
        [event("s", "old", at=100), event("s", "new", at=5000)], dedup_window_ms=10**12
    )
    assert await store.prune_dedup(older_than_ms=1000) == 1
    assert await store.append_events([event("s", "old", at=6000)], dedup_window_ms=10**12) == [True]
    assert await store.append_events([event("s", "new", at=6000)], dedup_window_ms=10**12) == [
        False
    ]


async def test_claim_lease_settle(store: Store) -> None:
    await store.append_events(
        [
            event("s", "m1", at=1000, destinations=("d1", "d2")),
            event("s", "m2", at=2000, destinations=("d1",)),
        ],
        dedup_window_ms=WINDOW,
    )
    assert await store.claim_deliveries("w1", 10, now_ms=500, lease_ms=1000) == []
    first = await store.claim_deliveries("w1", 2, now_ms=3000, lease_ms=1000)
    assert len(first) == 2 and {c.destination_id for c in first} == {"d1", "d2"}
    assert all(c.attempts == 1 and b'"m1"' in c.payload for c in first)
    second = await store.claim_deliveries("w2", 10, now_ms=3000, lease_ms=1000)
    assert [c.event_id for c in second] != [] and len(second) == 1  # only the m2 delivery is left
    assert await store.claim_deliveries("w3", 10, now_ms=3500, lease_ms=1000) == []

    ok, retry = first
    await store.settle_deliveries(
        [
            Settlement(ok.id, DeliveryState.SUCCEEDED),
            Settlement(
                retry.id, DeliveryState.AWAITING_RETRY, next_attempt_at_ms=10_000, error="503"
            ),
        ],
        now_ms=3600,
    )
    done = await store.get_delivery(ok.id)
    assert done is not None and done.state is DeliveryState.SUCCEEDED
    waiting = await store.get_delivery(retry.id)
    assert waiting is not None and waiting.state is DeliveryState.AWAITING_RETRY
    assert waiting.last_error == "503" and waiting.next_attempt_at_ms == 10_000

    # the lease of w2 runs out: the delivery is claimed again by someone else
    expired = await store.claim_deliveries("w4", 10, now_ms=4001, lease_ms=100_000)
    # the lease ran out without a settlement: that attempt never counted
    assert [c.id for c in expired] == [second[0].id]
    assert expired[0].attempts == 1
    again = await store.claim_deliveries("w5", 10, now_ms=10_000, lease_ms=1000)
    assert [c.id for c in again] == [retry.id] and again[0].attempts == 2


async def test_meta(store: Store) -> None:
    assert await store.get_meta("k") is None
    await store.set_meta("k", "v1")
    await store.set_meta("k", "v2")
    assert await store.get_meta("k") == "v2"


async def test_duplicate_event_does_not_enqueue(store: Store) -> None:
    await store.append_events([event("s", "m", destinations=("d",))], dedup_window_ms=WINDOW)
    await store.append_events([event("s", "m", destinations=("d",))], dedup_window_ms=WINDOW)
    claimed = await store.claim_deliveries("w", 10, now_ms=10**7, lease_ms=1000)
    assert len(claimed) == 1


async def test_release_leases_hands_back_a_dead_workers_deliveries(store: Store) -> None:
    await store.append_events([event("s", "m1", destinations=("d1", "d2"))], dedup_window_ms=WINDOW)
    claimed = await store.claim_deliveries("node-a", 1, now_ms=2_000_000, lease_ms=60_000)
    assert len(claimed) == 1
    assert await store.release_leases("node-b", now_ms=2_000_001) == 0
    assert await store.release_leases("node-a", now_ms=2_000_001) == 1
    again = await store.claim_deliveries("node-a", 10, now_ms=2_000_001, lease_ms=60_000)
    assert claimed[0].id in {c.id for c in again}
    assert next(c for c in again if c.id == claimed[0].id).attempts == 1
