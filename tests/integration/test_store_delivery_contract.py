"""The Store contract for delivery and configuration objects: every backend passes unchanged.

Settling with attempts, listing deliveries (filters + cursor), the attempts of one
delivery, the Event Delivery summary, bulk retry with a fresh window, replay queueing
by pages, and the JSON documents apps and destinations are kept as.
"""

from __future__ import annotations

from typing import Any

import pytest

from segue.store import (
    ClaimedDelivery,
    DeliveryQuery,
    DeliveryState,
    EventQuery,
    NewEvent,
    RetryFilter,
    Settlement,
    Store,
)

WINDOW = 24 * 3600 * 1000
LEASE = 60_000


def event(
    message_id: str, at: int, destinations: tuple[str, ...] = (), source_id: str = "s1"
) -> NewEvent:
    return NewEvent(
        source_id=source_id,
        message_id=message_id,
        type="track",
        received_at_ms=at,
        payload=b'{"type":"track","messageId":"%s"}' % message_id.encode(),
        user_id="u1",
        destinations=destinations,
    )


async def append(store: Store, *events: NewEvent) -> None:
    assert all(await store.append_events(list(events), dedup_window_ms=WINDOW))


async def claim_all(store: Store, now_ms: int) -> dict[str, ClaimedDelivery]:
    """Claim everything due, keyed by ``<messageId>/<destination>``."""
    claimed = await store.claim_deliveries("w", 1000, now_ms, LEASE)
    by_key = {}
    for c in claimed:
        message_id = c.payload.split(b'"messageId":"')[1].split(b'"')[0].decode()
        by_key[f"{message_id}/{c.destination_id}"] = c
    assert len(by_key) == len(claimed)
    return by_key


def record(status: int | None, **extra: Any) -> dict[str, Any]:
    return {
        "request": {
            "method": "POST",
            "url": "https://hooks.example.com/x",
            "headers": {"Authorization": "Basic ••••••", "User-Agent": "Segment.io/1.0"},
            "body": '{"type":"track"}',
        },
        "response": None if status is None else {"status": status, "headers": {}, "body": ""},
        "status": status,
        **extra,
    }


# -- settling with attempts -------------------------------------------------------------
async def test_settle_records_each_attempt_for_the_debugger(store: Store) -> None:
    await append(store, event("m1", 1000, ("d1",)), event("m2", 1000, ("d1",)))
    first = await claim_all(store, 2000)
    one, other = first["m1/d1"], first["m2/d1"]
    assert one.attempts == 1

    attempt1 = record(503, reason="503", message=None, nested={"ünï": [1, 2.5, None]})
    await store.settle_deliveries(
        [
            Settlement(
                one.id,
                DeliveryState.AWAITING_RETRY,
                next_attempt_at_ms=5000,
                error="Service Unavailable",
                reason="awaiting-retry.503",
                attempt_number=1,
                attempt=attempt1,
            ),
            Settlement(other.id, DeliveryState.SUCCEEDED),  # no attempt record: none stored
        ],
        now_ms=2100,
    )
    attempt1["status"] = 999  # the store kept its own copy
    waiting = await store.get_delivery(one.id)
    assert waiting is not None
    assert waiting.state is DeliveryState.AWAITING_RETRY
    assert (waiting.attempts, waiting.next_attempt_at_ms) == (1, 5000)
    assert (waiting.last_error, waiting.reason) == ("Service Unavailable", "awaiting-retry.503")
    assert waiting.completed_at_ms is None
    assert waiting.updated_at_ms == 2100
    assert waiting.created_at_ms == 1000

    assert await store.claim_deliveries("w", 10, 4999, LEASE) == []
    again = await store.claim_deliveries("w", 10, 5000, LEASE)
    assert [c.id for c in again] == [one.id] and again[0].attempts == 2
    await store.settle_deliveries(
        [
            Settlement(
                one.id,
                DeliveryState.SUCCEEDED,
                attempt_number=2,
                attempt=record(200, reason="200"),
            )
        ],
        now_ms=5200,
    )
    done = await store.get_delivery(one.id)
    assert done is not None
    assert done.state is DeliveryState.SUCCEEDED
    assert done.completed_at_ms == 5200
    assert done.attempts == 2
    assert done.last_error is None and done.reason is None

    attempts = await store.list_attempts(one.id)
    assert [(a.delivery_id, a.number, a.at_ms, a.state, a.reason) for a in attempts] == [
        (one.id, 1, 2100, DeliveryState.AWAITING_RETRY, "awaiting-retry.503"),
        (one.id, 2, 5200, DeliveryState.SUCCEEDED, None),
    ]
    assert attempts[0].record == record(
        503, reason="503", message=None, nested={"ünï": [1, 2.5, None]}
    )
    assert attempts[1].record == record(200, reason="200")
    assert await store.list_attempts(other.id) == []
    assert await store.list_attempts(10_000) == []


async def test_settled_final_states_are_never_claimed_again(store: Store) -> None:
    await append(store, event("m1", 1000, ("ok", "bad", "old", "later")))
    claimed = await claim_all(store, 1000)
    await store.settle_deliveries(
        [
            Settlement(claimed["m1/ok"].id, DeliveryState.SUCCEEDED),
            Settlement(claimed["m1/bad"].id, DeliveryState.DISCARDED, reason="discarded.400"),
            Settlement(claimed["m1/old"].id, DeliveryState.EXPIRED, reason="expired.503"),
            Settlement(
                claimed["m1/later"].id, DeliveryState.AWAITING_RETRY, next_attempt_at_ms=9000
            ),
        ],
        now_ms=1500,
    )
    later = await store.claim_deliveries("w", 10, 10**13, LEASE)
    assert [c.destination_id for c in later] == ["later"]
    for key, state in (
        ("m1/ok", DeliveryState.SUCCEEDED),
        ("m1/bad", DeliveryState.DISCARDED),
        ("m1/old", DeliveryState.EXPIRED),
    ):
        delivery = await store.get_delivery(claimed[key].id)
        assert delivery is not None and delivery.state is state
        assert delivery.completed_at_ms == 1500


async def test_a_claimed_delivery_is_executing_until_settled(store: Store) -> None:
    await append(store, event("m1", 1000, ("d1",)))
    (claimed,) = (await claim_all(store, 1000)).values()
    delivery = await store.get_delivery(claimed.id)
    assert delivery is not None
    assert delivery.state is DeliveryState.EXECUTING
    assert delivery.attempts == 0  # counted when the attempt is settled
    assert claimed.attempts == 1  # the number of the attempt under way
    assert delivery.updated_at_ms == 1000
    assert await store.get_delivery(999_999) is None


# -- listing deliveries ---------------------------------------------------------------
async def test_list_deliveries_filters_newest_first_with_a_cursor(store: Store) -> None:
    await append(
        store,
        *(event(f"m{i}", 1000 + i, ("d1", "d2") if i % 2 else ("d1",)) for i in range(8)),
    )
    claimed = await claim_all(store, 2000)
    settlements = []
    for key, c in claimed.items():
        index = int(key.split("/")[0][1:])
        if c.destination_id == "d2":
            settlements.append(Settlement(c.id, DeliveryState.SUCCEEDED))
        elif index % 3 == 0:
            settlements.append(Settlement(c.id, DeliveryState.DISCARDED, reason="discarded.400"))
        elif index % 3 == 1:
            settlements.append(Settlement(c.id, DeliveryState.DISCARDED, reason="discarded.401"))
        else:
            settlements.append(
                Settlement(
                    c.id,
                    DeliveryState.AWAITING_RETRY,
                    next_attempt_at_ms=9000,
                    reason="awaiting-retry.503",
                )
            )
    await store.settle_deliveries(settlements, now_ms=2500)

    everything = await store.list_deliveries(DeliveryQuery(limit=1000))
    assert len(everything) == 12
    ids = [d.id for d in everything]
    assert ids == sorted(ids, reverse=True)

    d1 = await store.list_deliveries(DeliveryQuery(destination_id="d1"))
    assert len(d1) == 8 and all(d.destination_id == "d1" for d in d1)
    assert [d.id for d in d1] == sorted((d.id for d in d1), reverse=True)
    d2 = await store.list_deliveries(DeliveryQuery(destination_id="d2"))
    assert len(d2) == 4 and all(d.state is DeliveryState.SUCCEEDED for d in d2)

    discarded = await store.list_deliveries(DeliveryQuery(state=DeliveryState.DISCARDED))
    assert len(discarded) == 6  # indexes 0,1,3,4,6,7
    by_reason = await store.list_deliveries(
        DeliveryQuery(destination_id="d1", state=DeliveryState.DISCARDED, reason="discarded.400")
    )
    assert len(by_reason) == 3  # indexes 0,3,6
    assert all(d.reason == "discarded.400" for d in by_reason)
    retrying = await store.list_deliveries(
        DeliveryQuery(destination_id="d1", state=DeliveryState.AWAITING_RETRY)
    )
    assert [(d.reason, d.next_attempt_at_ms) for d in retrying] == [
        ("awaiting-retry.503", 9000),
        ("awaiting-retry.503", 9000),
    ]
    assert await store.list_deliveries(DeliveryQuery(destination_id="nope")) == []

    # page through d1 three at a time with the id cursor
    pages: list[list[int]] = []
    before = None
    while True:
        page = await store.list_deliveries(
            DeliveryQuery(destination_id="d1", limit=3, before=before)
        )
        if not page:
            break
        pages.append([d.id for d in page])
        before = page[-1].id
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [i for p in pages for i in p] == [d.id for d in d1]


async def test_listed_deliveries_carry_their_event_and_times(store: Store) -> None:
    await append(store, event("m1", 1234, ("d1",)))
    (listed,) = await store.list_deliveries(DeliveryQuery())
    (stored,) = await store.list_events(EventQuery())
    assert listed.event_id == stored.id
    assert listed.destination_id == "d1"
    assert listed.state is DeliveryState.PENDING
    assert listed.attempts == 0
    assert listed.created_at_ms == listed.updated_at_ms == 1234
    assert listed.next_attempt_at_ms == 1234
    assert listed.window_start_ms == 1234
    assert listed.replay is False
    assert listed.completed_at_ms is None
    assert await store.get_delivery(listed.id) == listed


# -- the Event Delivery summary -------------------------------------------------------
async def stats_fixture(store: Store) -> None:
    """d: 2 succeeded, 2 discarded, 1 expired, 1 retrying, 1 pending; x: noise."""
    await append(
        store,
        event("a", 1000, ("d",)),
        event("b", 1000, ("d", "x")),
        event("c1", 1000, ("d",)),
        event("c2", 1000, ("d",)),
        event("e", 1000, ("d",)),
        event("f", 1000, ("d",)),
    )
    c = await claim_all(store, 1200)

    async def settle(key: str, state: DeliveryState, at: int, **kw: Any) -> None:
        await store.settle_deliveries([Settlement(c[key].id, state, **kw)], now_ms=at)

    await settle("a/d", DeliveryState.SUCCEEDED, 1500)
    await settle("b/d", DeliveryState.SUCCEEDED, 3000)
    await settle("b/x", DeliveryState.DISCARDED, 2000, reason="discarded.403")
    await settle("c1/d", DeliveryState.DISCARDED, 2500, reason="discarded.400")
    await settle("c2/d", DeliveryState.DISCARDED, 2510, reason="discarded.400")
    await settle("e/d", DeliveryState.EXPIRED, 2600, reason="expired.503")
    await settle(
        "f/d",
        DeliveryState.AWAITING_RETRY,
        2700,
        reason="awaiting-retry.ECONNREFUSED",
        next_attempt_at_ms=10_000,
    )
    await append(store, event("g", 1000, ("d",)))  # still pending


async def test_delivery_stats_counts_latencies_buckets_and_reasons(store: Store) -> None:
    await stats_fixture(store)
    stats = await store.delivery_stats("d", since_ms=0, bucket_ms=1000)
    assert stats.by_state == {
        "succeeded": 2,
        "discarded": 2,
        "expired": 1,
        "awaiting_retry": 1,
        "pending": 1,
    }
    assert sorted(stats.latencies_ms) == [500, 2000]  # completed - created, successes only
    assert sorted(stats.buckets) == [
        (1000, "succeeded", 1),
        (2000, "discarded", 2),
        (2000, "expired", 1),
        (3000, "succeeded", 1),
    ]
    assert stats.reasons[0] == ("discarded.400", "discarded", 2)  # most frequent first
    assert sorted(stats.reasons) == [
        ("awaiting-retry.ECONNREFUSED", "awaiting_retry", 1),
        ("discarded.400", "discarded", 2),
        ("expired.503", "expired", 1),
    ]


async def test_delivery_stats_respects_the_window(store: Store) -> None:
    await stats_fixture(store)
    stats = await store.delivery_stats("d", since_ms=2550, bucket_ms=1000)
    assert stats.by_state == {"succeeded": 1, "expired": 1, "awaiting_retry": 1}
    assert stats.latencies_ms == [2000]
    assert sorted(stats.buckets) == [(2000, "expired", 1), (3000, "succeeded", 1)]
    assert sorted(stats.reasons) == [
        ("awaiting-retry.ECONNREFUSED", "awaiting_retry", 1),
        ("expired.503", "expired", 1),
    ]
    empty = await store.delivery_stats("d", since_ms=10**13, bucket_ms=1000)
    assert (empty.by_state, empty.latencies_ms, empty.buckets, empty.reasons) == ({}, [], [], [])
    other = await store.delivery_stats("x", since_ms=0, bucket_ms=60_000)
    assert other.by_state == {"discarded": 1}
    assert other.buckets == [(0, "discarded", 1)]
    assert other.reasons == [("discarded.403", "discarded", 1)]


async def test_delivery_stats_of_an_unknown_destination_is_empty(store: Store) -> None:
    stats = await store.delivery_stats("nope", since_ms=0, bucket_ms=1000)
    assert (stats.by_state, stats.latencies_ms, stats.buckets, stats.reasons) == ({}, [], [], [])


# -- bulk retry ------------------------------------------------------------------------
async def retry_fixture(store: Store) -> dict[str, ClaimedDelivery]:
    await append(
        store,
        event("bad", 1000, ("d1", "d2")),
        event("old", 2000, ("d1",)),
        event("ok", 3000, ("d1",)),
        event("wait", 4000, ("d1",)),
        event("bad2", 5000, ("d1",)),
    )
    c = await claim_all(store, 6000)
    await store.settle_deliveries(
        [
            Settlement(c["bad/d1"].id, DeliveryState.DISCARDED, reason="discarded.400"),
            Settlement(c["bad/d2"].id, DeliveryState.DISCARDED, reason="discarded.400"),
            Settlement(c["old/d1"].id, DeliveryState.EXPIRED, reason="expired.503"),
            Settlement(c["ok/d1"].id, DeliveryState.SUCCEEDED),
            Settlement(
                c["wait/d1"].id,
                DeliveryState.AWAITING_RETRY,
                next_attempt_at_ms=90_000,
                reason="awaiting-retry.503",
            ),
            Settlement(c["bad2/d1"].id, DeliveryState.DISCARDED, reason="discarded.401"),
        ],
        now_ms=7000,
    )
    return c


async def test_retry_puts_failed_deliveries_back_with_a_fresh_window(store: Store) -> None:
    c = await retry_fixture(store)
    assert await store.retry_deliveries(RetryFilter("d1"), now_ms=50_000) == 3
    for key in ("bad/d1", "old/d1", "bad2/d1"):
        delivery = await store.get_delivery(c[key].id)
        assert delivery is not None
        assert delivery.state is DeliveryState.PENDING, key
        assert delivery.next_attempt_at_ms == 50_000
        assert delivery.window_start_ms == 50_000  # the retry window starts again
        assert delivery.completed_at_ms is None
        assert delivery.updated_at_ms == 50_000
        assert delivery.created_at_ms == c[key].created_at_ms  # latency still from ingest
    for key, state in (
        ("bad/d2", DeliveryState.DISCARDED),  # another destination
        ("ok/d1", DeliveryState.SUCCEEDED),
        ("wait/d1", DeliveryState.AWAITING_RETRY),
    ):
        delivery = await store.get_delivery(c[key].id)
        assert delivery is not None and delivery.state is state, key

    assert await store.claim_deliveries("w", 10, 49_999, LEASE) == []
    again = await store.claim_deliveries("w", 10, 50_000, LEASE)
    assert {a.id for a in again} == {c["bad/d1"].id, c["old/d1"].id, c["bad2/d1"].id}
    assert all(a.window_start_ms == 50_000 and a.attempts == 2 for a in again)
    assert {a.created_at_ms for a in again} == {1000, 2000, 5000}


async def test_retry_filters_by_state_reason_and_time(store: Store) -> None:
    c = await retry_fixture(store)
    only_400 = RetryFilter("d1", reason="discarded.400")
    assert await store.retry_deliveries(only_400, now_ms=50_000) == 1
    assert (await store.get_delivery(c["bad/d1"].id)).state is DeliveryState.PENDING  # type: ignore[union-attr]
    assert (await store.get_delivery(c["bad2/d1"].id)).state is DeliveryState.DISCARDED  # type: ignore[union-attr]

    expired_only = RetryFilter("d1", states=(DeliveryState.EXPIRED,))
    assert await store.retry_deliveries(expired_only, now_ms=50_000) == 1
    assert (await store.get_delivery(c["old/d1"].id)).state is DeliveryState.PENDING  # type: ignore[union-attr]

    recent = RetryFilter("d1", since_ms=4500)  # created at/after 4500: only bad2
    assert await store.retry_deliveries(recent, now_ms=50_000) == 1
    assert (await store.get_delivery(c["bad2/d1"].id)).state is DeliveryState.PENDING  # type: ignore[union-attr]

    assert await store.retry_deliveries(RetryFilter("d1"), now_ms=60_000) == 0
    assert await store.retry_deliveries(RetryFilter("nope"), now_ms=60_000) == 0


# -- replay ------------------------------------------------------------------------------
async def test_enqueue_replay_pages_through_the_range(store: Store) -> None:
    await append(
        store,
        event("before", 500, ("live",)),
        event("r1", 1000, ("live",)),
        event("r2", 2000),
        event("other-source", 2500, source_id="s2"),
        event("r3", 3000, ("live",)),
        event("r4", 4000),
        event("r5", 5999),
        event("after", 6000),
    )
    ids = {e.message_id: e.id for e in await store.list_events(EventQuery(limit=100))}
    pages = []
    after = 0
    while True:
        queued, after_next = await store.enqueue_replay(
            "s1", "replayed", 1000, 6000, after_event_id=after, limit=2, now_ms=9000
        )
        pages.append((queued, after_next))
        if queued == 0:
            assert after_next == after
            break
        after = after_next
    assert pages == [
        (2, ids["r2"]),
        (2, ids["r4"]),
        (1, ids["r5"]),
        (0, ids["r5"]),
    ]

    replays = await store.list_deliveries(DeliveryQuery(destination_id="replayed"))
    assert sorted(d.event_id for d in replays) == sorted(
        ids[m] for m in ("r1", "r2", "r3", "r4", "r5")
    )
    for d in replays:
        assert d.replay is True
        assert d.state is DeliveryState.PENDING
        assert (d.created_at_ms, d.next_attempt_at_ms, d.window_start_ms) == (9000, 9000, 9000)
    live = await store.list_deliveries(DeliveryQuery(destination_id="live"))
    assert all(d.replay is False for d in live) and len(live) == 3

    claimed = await store.claim_deliveries("w", 100, 9000, LEASE)
    replayed = [c for c in claimed if c.destination_id == "replayed"]
    assert len(replayed) == 5 and all(c.replay for c in replayed)
    payloads = {e.id: e.payload for e in await store.list_events(EventQuery(limit=100))}
    assert all(c.payload == payloads[c.event_id] for c in replayed)


async def test_enqueue_replay_of_an_empty_range(store: Store) -> None:
    await append(store, event("m", 1000))
    assert await store.enqueue_replay(
        "s1", "d", 2000, 3000, after_event_id=0, limit=10, now_ms=5000
    ) == (0, 0)
    assert await store.enqueue_replay(
        "nope", "d", 0, 10**13, after_event_id=0, limit=10, now_ms=5000
    ) == (0, 0)
    assert await store.list_deliveries(DeliveryQuery()) == []


# -- configuration objects -------------------------------------------------------------
async def test_objects_put_get_list_delete(store: Store) -> None:
    assert await store.get_object("destination", "web") is None
    assert await store.list_objects("destination") == []
    doc = {
        "id": "dst_1",
        "name": "web",
        "settings": {"apiKey": {"$secret": "token"}, "region": "eü ☕"},
        "sources": ["a", "b"],
        "enabled": True,
        "options": {"timeout_s": 0.2, "retry_window_s": 60},
        "nothing": None,
    }
    await store.put_object("destination", "web", doc)
    doc["enabled"] = False  # the store kept its own copy
    got = await store.get_object("destination", "web")
    assert got is not None and got["enabled"] is True
    assert got["settings"] == {"apiKey": {"$secret": "token"}, "region": "eü ☕"}
    assert got["options"] == {"timeout_s": 0.2, "retry_window_s": 60}
    assert got["nothing"] is None
    got["name"] = "changed"  # nor does a reader change it
    assert (await store.get_object("destination", "web"))["name"] == "web"  # type: ignore[index]

    await store.put_object("destination", "analytics", {"name": "analytics"})
    await store.put_object("destination", "zeta", {"name": "zeta"})
    await store.put_object("app", "web", {"name": "web", "kind": "app"})
    assert [d["name"] for d in await store.list_objects("destination")] == [
        "analytics",
        "web",
        "zeta",
    ]
    assert await store.list_objects("app") == [{"name": "web", "kind": "app"}]
    assert await store.list_objects("replay") == []

    await store.put_object("destination", "web", {"name": "web", "version": 2})
    assert await store.get_object("destination", "web") == {"name": "web", "version": 2}
    assert await store.get_object("app", "web") == {"name": "web", "kind": "app"}

    assert await store.delete_object("destination", "web") is True
    assert await store.delete_object("destination", "web") is False
    assert await store.get_object("destination", "web") is None
    assert await store.get_object("app", "web") is not None  # other kinds untouched
    assert [d["name"] for d in await store.list_objects("destination")] == ["analytics", "zeta"]


@pytest.mark.parametrize("name", ["with space", "ünï", "a/b", "x" * 200])
async def test_object_names_are_opaque(store: Store, name: str) -> None:
    await store.put_object("replay", name, {"n": name})
    assert await store.get_object("replay", name) == {"n": name}
    assert await store.delete_object("replay", name) is True


async def test_a_replay_is_counted_by_its_id(store: Store) -> None:
    await append(store, *(event(f"r{i}", 1000 + i) for i in range(4)))
    assert await store.enqueue_replay(
        "s1", "dest", 0, 10**6, after_event_id=0, limit=10, now_ms=9000, replay_id="rp_1"
    ) == (4, 4)
    await store.enqueue_replay(
        "s1", "dest", 0, 1002, after_event_id=0, limit=10, now_ms=9000, replay_id="rp_2"
    )
    deliveries = await store.list_deliveries(DeliveryQuery(destination_id="dest"))
    assert sorted(d.replay_id or "" for d in deliveries) == ["rp_1"] * 4 + ["rp_2"] * 2
    assert all(d.replay for d in deliveries)
    assert await store.count_replay_deliveries("rp_1") == {"pending": 4}
    assert await store.count_replay_deliveries("rp_2") == {"pending": 2}
    assert await store.count_replay_deliveries("nope") == {}

    claimed = await store.claim_deliveries("w", 3, 9000, LEASE)
    await store.settle_deliveries(
        [Settlement(claimed[0].id, DeliveryState.SUCCEEDED)]
        + [Settlement(c.id, DeliveryState.DISCARDED, reason="discarded.400") for c in claimed[1:]],
        now_ms=9100,
    )
    one = await store.count_replay_deliveries("rp_1")
    two = await store.count_replay_deliveries("rp_2")
    assert sum(one.values()) == 4 and sum(two.values()) == 2
    merged: dict[str, int] = {}
    for counts in (one, two):
        for state, n in counts.items():
            merged[state] = merged.get(state, 0) + n
    assert merged == {"succeeded": 1, "discarded": 2, "pending": 3}


async def test_live_deliveries_have_no_replay_id(store: Store) -> None:
    await append(store, event("m", 1000, ("d",)))
    (delivery,) = await store.list_deliveries(DeliveryQuery())
    assert delivery.replay_id is None and delivery.replay is False


# -- a restarted worker hands back its leases -------------------------------------------------
async def test_release_leases_hands_back_only_that_workers_executing_deliveries(
    store: Store,
) -> None:
    await append(store, *(event(f"m{i}", 1000, ("d",)) for i in range(4)))
    mine = await store.claim_deliveries("node-a", 3, 2000, LEASE)
    theirs = await store.claim_deliveries("node-b", 10, 2000, LEASE)
    assert len(mine) == 3 and len(theirs) == 1
    await store.settle_deliveries([Settlement(mine[0].id, DeliveryState.SUCCEEDED)], now_ms=2100)

    assert await store.release_leases("node-a", now_ms=3000) == 2
    for c in mine[1:]:
        released = await store.get_delivery(c.id)
        assert released is not None
        assert released.state is DeliveryState.PENDING
        assert released.next_attempt_at_ms == 3000
        assert released.updated_at_ms == 3000
    done = await store.get_delivery(mine[0].id)
    assert done is not None and done.state is DeliveryState.SUCCEEDED
    other = await store.get_delivery(theirs[0].id)
    assert other is not None and other.state is DeliveryState.EXECUTING

    assert await store.release_leases("node-a", now_ms=3000) == 0
    assert await store.release_leases("nobody", now_ms=3000) == 0
    again = await store.claim_deliveries("node-a", 10, 3000, LEASE)
    assert {c.id for c in again} == {c.id for c in mine[1:]}  # at once, not after the lease


async def test_release_leases_after_a_takeover_belongs_to_the_new_owner(store: Store) -> None:
    await append(store, event("m", 1000, ("d",)))
    (first,) = await store.claim_deliveries("node-a", 10, 1000, 1000)
    (taken,) = await store.claim_deliveries("node-b", 10, 2001, LEASE)  # node-a's lease ran out
    assert taken.id == first.id
    assert await store.release_leases("node-a", now_ms=2500) == 0
    current = await store.get_delivery(first.id)
    assert current is not None and current.state is DeliveryState.EXECUTING
    assert await store.release_leases("node-b", now_ms=2500) == 1


async def test_get_events_by_id(store: Store) -> None:
    await append(store, *(event(f"m{i}", 1000 + i) for i in range(3)))
    listed = {e.message_id: e for e in await store.list_events(EventQuery())}
    ids = [listed["m2"].id, listed["m0"].id, 999_999, listed["m2"].id]
    found = await store.get_events(ids)
    assert set(found) == {listed["m0"].id, listed["m2"].id}
    assert found[listed["m2"].id] == listed["m2"]
    assert found[listed["m0"].id].payload == listed["m0"].payload
    assert await store.get_events([]) == {}
