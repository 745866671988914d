"""The whole app over the in-memory store made to refuse writes (``fail_writes``).

The Tracking API and the admin API answer 503 with JSON and Retry-After, ``/health``
is 503 with the reason, reads keep working, the delivery worker keeps its
settlements until the store takes them, and everything is back to normal as soon as
writes succeed again: no restart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from segue.app import Segue
from segue.config import EgressConfig, ServerConfig, SourceConfig
from segue.delivery.transport import FakeTransport
from segue.delivery.webhook import WebhookRequest, WebhookResponse
from segue.store import DeliveryQuery, DeliveryState, Settlement, UnavailableReason
from segue.store.memory import InMemoryStore

TOKEN = "admin-token"
WRITE_KEY = "wk_test"


@dataclass
class Running:
    segue: Segue
    store: InMemoryStore
    transport: FakeTransport
    gate: asyncio.Event  # the endpoint answers once this is set
    client: httpx.AsyncClient

    async def track(self, event: str = "Clicked") -> httpx.Response:
        body = {"userId": "u1", "event": event}
        return await self.client.post("/v1/track", json=body, auth=(WRITE_KEY, ""))

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    config = replace(
        ServerConfig(),
        data_dir=tmp_path,
        database_url="memory://",
        admin_token=TOKEN,
        sources=(SourceConfig("test", write_key=WRITE_KEY),),
        destinations=(
            {"name": "sink", "endpoint": "http://127.0.0.1:9/hook", "sources": ["test"]},
        ),
        egress=EgressConfig(allow=("127.0.0.0/8",), allow_http=True),
    )
    gate = asyncio.Event()
    gate.set()

    async def respond(request: WebhookRequest) -> WebhookResponse:
        await gate.wait()
        return WebhookResponse(200, (), b"")

    store, transport = InMemoryStore(), FakeTransport(respond)
    segue = Segue.build(config, store=store, transport=transport)
    await segue.startup()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=segue), base_url="http://segue.test")
    try:
        yield Running(segue, store, transport, gate, http)
    finally:
        await http.aclose()
        gate.set()
        await segue.shutdown()


def _assert_503(response: httpx.Response, words: str) -> dict[str, object]:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert words in body["message"], body
    return dict(body)


async def test_tracking_api_answers_503_while_the_store_cannot_write(running: Running) -> None:
    assert (await running.track()).status_code == 200
    running.store.fail_writes(UnavailableReason.DISK_FULL)

    body = _assert_503(await running.track("Lost"), "the disk holding the database is full")
    assert body["success"] is False and body["code"] == "store_unavailable"
    batch = {"batch": [{"type": "track", "userId": "u", "event": "Lost"}]}
    response = await running.client.post("/v1/batch", json=batch, auth=(WRITE_KEY, ""))
    _assert_503(response, "Nothing from this request was stored")
    assert response.headers["access-control-allow-origin"] == "*"

    running.store.allow_writes()
    assert (await running.track("Back")).status_code == 200
    stored = [e.payload for e in running.store.events]
    assert [b'"Lost"' in p for p in stored] == [False, False]


async def test_admin_api_writes_answer_503_and_reads_still_work(running: Running) -> None:
    running.store.fail_writes(UnavailableReason.READ_ONLY)
    client, headers = running.client, running.admin()

    response = await client.post("/api/v1/sources", json={"name": "web"}, headers=headers)
    body = _assert_503(response, "the database is read-only")
    assert set(body) == {"message"}
    listed = await client.get("/api/v1/sources", headers=headers)
    assert listed.status_code == 200 and [s["name"] for s in listed.json()["sources"]] == ["test"]
    assert (await client.get("/ui/sign-in")).status_code == 200

    running.store.allow_writes()
    response = await client.post("/api/v1/sources", json={"name": "web"}, headers=headers)
    assert response.status_code == 201, response.text


async def test_health_says_why_and_recovers(running: Running) -> None:
    ok = await running.client.get("/health")
    assert ok.status_code == 200
    assert ok.json() == {"status": "ok", "store": "memory", "checks": {"store": {"writable": True}}}

    running.store.fail_writes(UnavailableReason.DISK_FULL)
    sick = await running.client.get("/health")
    assert sick.status_code == 503 and sick.headers["retry-after"]
    assert sick.json()["status"] == "unavailable"
    assert sick.json()["checks"]["store"]["reason"] == "disk_full"

    running.store.allow_writes()
    assert (await running.client.get("/health")).status_code == 200


async def _eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 5.0
    while not await condition():
        assert time.monotonic() < deadline, f"{what}: not within 5 s"
        await asyncio.sleep(0.01)


async def test_worker_keeps_a_settlement_the_store_refused_and_stores_it_later(
    running: Running,
) -> None:
    store = running.store
    settle_calls: list[int] = []
    settle = store.settle_deliveries

    async def counted(settlements: Sequence[Settlement], now_ms: int) -> None:
        settle_calls.append(len(settlements))
        await settle(settlements, now_ms)

    store.settle_deliveries = counted  # type: ignore[method-assign]
    running.gate.clear()  # the endpoint holds the attempt
    assert (await running.track()).status_code == 200

    async def attempted() -> bool:
        return len(running.transport.requests) == 1

    await _eventually(attempted, "the delivery was claimed and attempted")
    store.fail_writes()
    running.gate.set()  # the attempt succeeds; its settlement cannot be stored

    async def refused_twice() -> bool:
        return len(settle_calls) >= 2

    await _eventually(refused_twice, "the refused settlement was tried again")
    task = running.segue._worker_task
    assert task is not None and not task.done()  # the worker carries on
    [delivery] = await store.list_deliveries(DeliveryQuery())
    assert delivery.state is DeliveryState.EXECUTING  # not settled, not handed to anyone

    store.allow_writes()

    async def settled() -> bool:
        [current] = await store.list_deliveries(DeliveryQuery())
        return current.state is DeliveryState.SUCCEEDED

    await _eventually(settled, "the kept settlement was stored")
    assert len(running.transport.requests) == 1  # delivered once, not again
    [attempt] = await store.list_attempts(delivery.id)
    assert attempt.state is DeliveryState.SUCCEEDED
