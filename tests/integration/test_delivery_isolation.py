"""A destination's trouble stays its own: fair claims, bounded leases, whole-request timeouts.

The real worker loop (real clock) on every store backend, against real endpoints on
127.0.0.1: one that accepts and never answers, one that trickles its answer a byte at
a time, and a healthy one. The healthy destination must get all of its events while the
bad neighbours, queued first with a backlog, still hold theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

from segue.delivery.attempt import Deliverer
from segue.delivery.egress import EgressPolicy
from segue.delivery.transport import HTTPTransport
from segue.delivery.worker import PREFETCH, DeliveryWorker
from segue.destinations.catalog import Catalog
from segue.destinations.models import Destination
from segue.destinations.secrets import SecretBox
from segue.store import DeliveryQuery, DeliveryState, NewEvent, Source, Store
from segue.timeutil import now_ms

WAIT_S = 20.0


class Healthy:
    """Answers 200 at once; wakes waiters on every request."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.arrived = asyncio.Condition()

    async def handle(self, request: web.Request) -> web.Response:
        message_id = orjson.loads(await request.read())["messageId"]
        async with self.arrived:
            self.ids.append(message_id)
            self.arrived.notify_all()
        return web.Response(status=200)

    async def wait_for(self, count: int) -> None:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.ids) >= count), WAIT_S)


class Hanging:
    """Reads the request, then never answers (until the test ends)."""

    def __init__(self) -> None:
        self.received = 0
        self.in_flight = 0
        self.peak = 0
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.received += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return web.Response(status=200)


async def serve(handler: Callable[[web.Request], Any]) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


async def trickle_server(first: bytes, rest: bytes, every_s: float) -> tuple[asyncio.Server, int]:
    """Reads a request, sends ``first`` at once, then ``rest`` one byte per ``every_s``."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(first)
            for byte in rest:
                await writer.drain()
                await asyncio.sleep(every_s)
                writer.write(bytes([byte]))
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def transport() -> AsyncIterator[HTTPTransport]:
    http = HTTPTransport(EgressPolicy.from_config(["127.0.0.0/8"], allow_http=True))
    yield http
    await http.close()


@pytest.fixture
async def catalog(store: Store) -> Catalog:
    await store.create_source("web", "wk_web")
    catalog = Catalog(store, SecretBox("isolation test key"))
    await catalog.refresh()
    return catalog


async def destination(catalog: Catalog, name: str, url: str, **options: Any) -> Destination:
    return await catalog.save_destination(
        {"name": name, "endpoint": url, "sources": ["web"], "options": options}
    )


async def enqueue(store: Store, target: Destination, count: int, prefix: str) -> None:
    source = await store.get_source("web")
    assert isinstance(source, Source)
    events = [
        NewEvent(
            source_id=source.id,
            message_id=f"{prefix}-{i}",
            type="track",
            received_at_ms=now_ms(),
            payload=orjson.dumps({"type": "track", "messageId": f"{prefix}-{i}", "userId": "u"}),
            user_id="u",
            destinations=(target.id,),
        )
        for i in range(count)
    ]
    for start in range(0, count, 500):
        await store.append_events(events[start : start + 500], dedup_window_ms=3_600_000)


async def executing(store: Store, target: Destination) -> int:
    query = DeliveryQuery(destination_id=target.id, state=DeliveryState.EXECUTING, limit=10_000)
    return len(await store.list_deliveries(query))


@contextlib.asynccontextmanager
async def running(worker: DeliveryWorker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 30)


async def test_a_hanging_backlog_does_not_delay_a_healthy_destination(
    store: Store, catalog: Catalog, transport: HTTPTransport
) -> None:
    hanging, healthy = Hanging(), Healthy()
    runners = [await serve(hanging.handle), await serve(healthy.handle)]
    try:
        stuck = await destination(
            catalog, "stuck", f"http://127.0.0.1:{runners[0][1]}/", concurrency=4, timeout_s=60
        )
        fine = await destination(catalog, "fine", f"http://127.0.0.1:{runners[1][1]}/")
        await enqueue(store, stuck, 1500, "backlog")  # queued first, all due first
        worker = DeliveryWorker(store, catalog, Deliverer(catalog, transport), idle_poll_s=0.05)
        async with running(worker):
            await enqueue(store, fine, 300, "live")
            await healthy.wait_for(300)
            # the neighbour still holds its backlog: nothing of it was answered
            assert hanging.received == hanging.in_flight
            assert hanging.peak <= 4  # its own concurrency
            assert await executing(store, stuck) <= PREFETCH * 4  # and its own share of leases
            hanging.release.set()
        assert sorted(healthy.ids) == sorted(f"live-{i}" for i in range(300))
    finally:
        hanging.release.set()
        for runner, _ in runners:
            await runner.cleanup()


async def test_a_trickling_answer_is_cut_at_the_timeout_headers_or_body(
    store: Store, catalog: Catalog, transport: HTTPTransport
) -> None:
    """The time limit covers the whole request: a 1-byte-a-second answer is not waited out."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"
    slow_head, head_port = await trickle_server(b"", head, 0.2)
    slow_body, body_port = await trickle_server(head, b"x" * 40, 0.2)
    try:
        deliverer = Deliverer(catalog, transport)
        for port in (head_port, body_port):
            target = await destination(
                catalog, f"trickle-{port}", f"http://127.0.0.1:{port}/", timeout_s=1
            )
            started = time.monotonic()
            record = await deliverer.attempt(target, {"type": "track", "messageId": "t"})
            took = time.monotonic() - started
            assert record.outcome.reason == "ETIMEDOUT", record.outcome
            assert took < 2.5, f"the attempt took {took:.1f} s for a 1 s limit"
    finally:
        for server in (slow_head, slow_body):
            server.close()


async def test_many_destinations_share_a_small_claim(
    store: Store, catalog: Catalog, transport: HTTPTransport
) -> None:
    healthy = Healthy()
    runner, port = await serve(healthy.handle)
    try:
        targets = [
            await destination(catalog, f"d{i}", f"http://127.0.0.1:{port}/d{i}") for i in range(6)
        ]
        for target in targets:
            await enqueue(store, target, 50, target.name)
        worker = DeliveryWorker(
            store, catalog, Deliverer(catalog, transport), batch_size=12, max_in_flight=12
        )
        await worker._claim(12)  # one claim of 12 among 6 destinations with due work
        leased = [await executing(store, target) for target in targets]
        assert leased == [2] * 6
    finally:
        await runner.cleanup()


class Exploding(Deliverer):
    async def attempt(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a defect in a destination kind")


async def test_an_attempt_that_raises_is_settled_not_stuck(
    store: Store, catalog: Catalog, transport: HTTPTransport
) -> None:
    target = await destination(catalog, "boom", "http://127.0.0.1:9/")
    await enqueue(store, target, 3, "boom")
    worker = DeliveryWorker(store, catalog, Exploding(catalog, transport))
    assert await worker.run_once() == 3
    deliveries = await store.list_deliveries(DeliveryQuery(destination_id=target.id))
    assert {d.state for d in deliveries} == {DeliveryState.AWAITING_RETRY}
    assert {d.reason for d in deliveries} == {"awaiting-retry.INTERNAL_ERROR"}
    assert all("a defect in a destination kind" in (d.last_error or "") for d in deliveries)
    assert worker._leased == {}  # nothing left leased: no lease renewed forever
