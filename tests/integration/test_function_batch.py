"""on_batch through the delivery engine: one call per claimed group, per-event outcomes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from segue.delivery.attempt import Deliverer
from segue.delivery.egress import EgressPolicy
from segue.delivery.transport import HTTPTransport
from segue.delivery.worker import DeliveryWorker
from segue.destinations.catalog import Catalog
from segue.destinations.secrets import SecretBox
from segue.functions.pool import FunctionPool
from segue.functions.proxy import FetchProxy
from segue.store import DeliveryQuery, DeliveryState, NewEvent, Store

BATCH_FUNCTION = """
calls = []

def on_batch(events, settings):
    print(f"batch of {len(events)}")
    results = []
    for event in events:
        kind = event["properties"]["outcome"]
        if kind == "ok":
            results.append({"status": 200})
        elif kind == "retry":
            results.append({"status": 503, "errormessage": "try later"})
        else:
            results.append({"status": 400, "errormessage": "bad event"})
    return results

def on_track(event, settings):
    return "single"
"""


@pytest.fixture
async def pool() -> AsyncIterator[FunctionPool]:
    policy = EgressPolicy.from_config([], allow_http=False)
    functions = FunctionPool(size=1, timeout_s=5.0, fetch=FetchProxy(HTTPTransport(policy)))
    await functions.start()
    try:
        yield functions
    finally:
        await functions.close()


async def test_on_batch_settles_each_event_by_its_own_result(
    store: Store, pool: FunctionPool, tmp_path: Path
) -> None:
    source = await store.create_source("web", "wk_web")
    catalog = Catalog(store, SecretBox("test-key"))
    await catalog.refresh()
    await catalog.save_app({"name": "batcher", "code": BATCH_FUNCTION, "runtime": "python"})
    destination = await catalog.save_destination(
        {"name": "batcher-prod", "app": "batcher", "sources": ["web"]}
    )
    outcomes = ["ok", "retry", "bad", "ok"]
    await store.append_events(
        [
            NewEvent(
                source_id=source.id,
                message_id=f"m{i}",
                type="track",
                received_at_ms=1_000,
                payload=orjson.dumps(
                    {"type": "track", "messageId": f"m{i}", "properties": {"outcome": kind}}
                ),
                destinations=(destination.id,),
            )
            for i, kind in enumerate(outcomes)
        ],
        dedup_window_ms=10**9,
    )
    deliverer = Deliverer(catalog, HTTPTransport(EgressPolicy()), pool)
    worker = DeliveryWorker(store, catalog, deliverer, clock=lambda: 2_000)
    assert await worker.run_once() == 4

    deliveries = await store.list_deliveries(DeliveryQuery(destination_id=destination.id))
    by_message = {}
    for delivery in deliveries:
        (event,) = (await store.get_events([delivery.event_id])).values()
        by_message[orjson.loads(event.payload)["messageId"]] = delivery
    assert by_message["m0"].state is DeliveryState.SUCCEEDED
    assert by_message["m3"].state is DeliveryState.SUCCEEDED
    assert by_message["m1"].state is DeliveryState.AWAITING_RETRY  # only this one is retried
    assert by_message["m2"].state is DeliveryState.DISCARDED
    assert "bad event" in (by_message["m2"].last_error or "")
    attempts = await store.list_attempts(by_message["m0"].id)
    assert attempts[0].record["request"]["handler"] == "batch"
    assert "batch of 4" in attempts[0].record["logs"]  # one call for the whole group
