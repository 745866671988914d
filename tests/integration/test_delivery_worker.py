"""The delivery worker against a real HTTP endpoint on 127.0.0.1, on every store backend.

The partner contract end to end: the status-code table, Retry-After, timeouts,
connection errors, the retry window, the byte-exact request, ``snake_case``,
``integrations`` routing, and what the debugger records. Time is a fake clock
(``DeliveryWorker(clock=...)``), so a 2 s backoff costs nothing: advance the clock
and call ``run_once()``.
"""

from __future__ import annotations

import asyncio
import base64
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from segue.delivery.attempt import Deliverer
from segue.delivery.egress import EgressPolicy
from segue.delivery.transport import HTTPTransport
from segue.delivery.webhook import MASK
from segue.delivery.worker import DeliveryWorker
from segue.destinations.catalog import Catalog
from segue.destinations.models import Destination
from segue.destinations.secrets import SecretBox
from segue.ingest.pipeline import Ingestor
from segue.spec import IngestContext
from segue.spec.casing import snake_case_keys
from segue.store import (
    Attempt,
    Delivery,
    DeliveryQuery,
    DeliveryState,
    EventQuery,
    NewEvent,
    RetryFilter,
    Source,
    Store,
)
from segue.timeutil import from_ms

T0 = 1_800_000_000_000  # the fake clock starts here (ms)
WINDOW = 24 * 3600 * 1000

Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- a scripted partner endpoint ----------------------------------------------------------
@dataclass(frozen=True)
class Received:
    method: str
    path: str
    version: str
    raw_headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def header(self, name: str) -> str:
        values = [v for k, v in self.raw_headers if k.lower() == name.lower().encode()]
        assert len(values) == 1, f"{name}: {values}"
        return values[0].decode("latin-1")


def status(
    code: int,
    body: bytes = b"",
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        extra = dict(headers or {})
        if content_type is not None:
            extra["Content-Type"] = content_type
        return web.Response(status=code, body=body, headers=extra)

    return reply


OK = status(200)


@dataclass
class Endpoint:
    """aiohttp on 127.0.0.1 (ephemeral port): records every request and connection."""

    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    delay_s: float = 0.0
    never: asyncio.Event = field(default_factory=asyncio.Event)
    _script: list[Reply] = field(default_factory=list)
    _then: Reply = OK
    _runner: web.AppRunner | None = None
    _server: asyncio.Server | None = None
    port: int = 0

    def script(self, *replies: Reply, then: Reply = OK) -> None:
        self._script, self._then = list(replies), then

    async def hang(self, request: web.Request) -> web.StreamResponse:
        await self.never.wait()  # set only at teardown
        return web.Response(status=200)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.2
        )
        await self._runner.setup()
        factory = self._runner.server
        assert factory is not None

        def protocol() -> asyncio.Protocol:
            self.connections += 1
            return factory()  # type: ignore[return-value]

        self._server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.never.set()
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Received(
                method=request.method,
                path=request.path_qs,
                version=f"HTTP/{request.version.major}.{request.version.minor}",
                raw_headers=tuple(request.raw_headers),
                body=body,
            )
        )
        reply = self._script.pop(0) if self._script else self._then
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)  # simulated work, to overlap requests
            return await reply(request)
        finally:
            self.in_flight -= 1


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@dataclass
class Harness:
    store: Store
    catalog: Catalog
    clock: Clock
    worker: DeliveryWorker
    source: Source
    endpoint: Endpoint

    async def destination(
        self,
        name: str = "hook",
        *,
        path: str = "/hook",
        url: str | None = None,
        settings: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        app: str | None = None,
        enabled: bool = True,
    ) -> Destination:
        body: dict[str, Any] = {
            "name": name,
            "sources": [self.source.name],
            "settings": {"apiKey": "sk_test_123"} if settings is None else settings,
            "enabled": enabled,
        }
        if app is not None:
            body["app"] = app
        else:
            body["endpoint"] = url or self.endpoint.url(path)
        if options is not None:
            body["options"] = options
        return await self.catalog.save_destination(body)

    async def send(
        self, destination: Destination | None, message_id: str = "m1", **fields: Any
    ) -> bytes:
        """Append one event routed to ``destination``; returns the stored payload."""
        event = {
            "type": "track",
            "event": "Order Completed",
            "userId": "u1",
            "messageId": message_id,
            "properties": {"orderId": "o1", "total": 30},
            **fields,
        }
        payload = orjson.dumps(event)
        stored = await self.store.append_events(
            [
                NewEvent(
                    source_id=self.source.id,
                    message_id=message_id,
                    type="track",
                    received_at_ms=self.clock.now,
                    payload=payload,
                    user_id="u1",
                    destinations=() if destination is None else (destination.id,),
                )
            ],
            dedup_window_ms=WINDOW,
        )
        assert stored == [True]
        return payload

    async def ingest(self, *items: dict[str, Any]) -> None:
        """Through the real ingest pipeline, routed by the catalog."""
        ingestor = Ingestor(self.store, dedup_window_ms=WINDOW, router=self.catalog.route)
        ctx = IngestContext(source_id=self.source.id, received_at=from_ms(self.clock.now))
        outcome = await ingestor.ingest(self.source, list(items), ctx)
        assert outcome.accepted == len(items), outcome.rejections

    async def deliveries(self, destination: Destination | None = None) -> list[Delivery]:
        query = DeliveryQuery(destination_id=destination.id if destination else None, limit=1000)
        return await self.store.list_deliveries(query)

    async def only_delivery(self) -> Delivery:
        (delivery,) = await self.deliveries()
        return delivery

    async def attempts(self, delivery: Delivery) -> list[Attempt]:
        return await self.store.list_attempts(delivery.id)

    async def run_at(self, now_ms: int) -> int:
        self.clock.now = now_ms
        return await self.worker.run_once()


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    server = Endpoint()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def transport() -> AsyncIterator[HTTPTransport]:
    http = HTTPTransport(EgressPolicy.from_config(["127.0.0.0/8"], allow_http=True))
    try:
        yield http
    finally:
        await http.close()


@pytest.fixture
async def h(store: Store, endpoint: Endpoint, transport: HTTPTransport) -> Harness:
    source = await store.create_source("web", "wk_web")
    catalog = Catalog(store, SecretBox("worker test key"))
    await catalog.refresh()
    clock = Clock()
    worker = DeliveryWorker(
        store,
        catalog,
        Deliverer(catalog, transport),
        clock=clock,
        rng=random.Random(7),
        idle_poll_s=0.01,
    )
    return Harness(store, catalog, clock, worker, source, endpoint)


def reasons(attempts: list[Attempt]) -> list[str]:
    return [a.record["reason"] for a in attempts]


# -- the status-code table ---------------------------------------------------------------
async def test_503_twice_then_200_is_delivered_on_the_third_attempt(h: Harness) -> None:
    h.endpoint.script(status(503), status(503), then=OK)
    destination = await h.destination()
    await h.send(destination)
    states = [(await h.only_delivery()).state]

    assert await h.run_at(T0) == 1
    first = await h.only_delivery()
    states.append(first.state)
    assert first.next_attempt_at_ms is not None
    assert T0 + 1000 <= first.next_attempt_at_ms <= T0 + 2000  # about 2 s, randomised
    assert first.reason == "awaiting-retry.503"
    assert await h.run_at(first.next_attempt_at_ms - 1) == 0  # not before it is due

    assert await h.run_at(first.next_attempt_at_ms) == 1
    second = await h.only_delivery()
    states.append(second.state)
    assert second.next_attempt_at_ms is not None
    wait = second.next_attempt_at_ms - first.next_attempt_at_ms
    assert 2000 <= wait <= 4000  # doubled

    assert await h.run_at(second.next_attempt_at_ms) == 1
    done = await h.only_delivery()
    states.append(done.state)
    assert states == [
        DeliveryState.PENDING,
        DeliveryState.AWAITING_RETRY,
        DeliveryState.AWAITING_RETRY,
        DeliveryState.SUCCEEDED,
    ]
    assert done.attempts == 3
    assert done.completed_at_ms == second.next_attempt_at_ms
    attempts = await h.attempts(done)
    assert [a.number for a in attempts] == [1, 2, 3]
    assert [a.state for a in attempts] == states[1:]
    assert reasons(attempts) == ["503", "503", "200"]
    assert [a.record["response"]["status"] for a in attempts] == [503, 503, 200]
    assert len(h.endpoint.requests) == 3
    assert len({r.body for r in h.endpoint.requests}) == 1  # the same event each time
    assert await h.run_at(T0 + WINDOW) == 0  # and never again


async def test_429_with_retry_after_is_not_retried_before_two_seconds(h: Harness) -> None:
    h.endpoint.script(status(429, headers={"Retry-After": "2"}), then=OK)
    await h.send(await h.destination())
    assert await h.run_at(T0) == 1
    waiting = await h.only_delivery()
    assert waiting.state is DeliveryState.AWAITING_RETRY
    assert waiting.reason == "awaiting-retry.429"
    assert waiting.next_attempt_at_ms == T0 + 2000

    assert await h.run_at(T0 + 1900) == 0
    assert len(h.endpoint.requests) == 1
    assert await h.run_at(T0 + 2000) == 1
    assert (await h.only_delivery()).state is DeliveryState.SUCCEEDED
    assert len(h.endpoint.requests) == 2


async def test_retry_after_longer_than_the_backoff_wins(h: Harness) -> None:
    h.endpoint.script(status(503, headers={"Retry-After": "120"}), then=OK)
    await h.send(await h.destination())
    await h.run_at(T0)
    assert (await h.only_delivery()).next_attempt_at_ms == T0 + 120_000
    assert await h.run_at(T0 + 119_999) == 0
    assert await h.run_at(T0 + 120_000) == 1


async def test_400_json_message_is_recorded_and_the_event_discarded(h: Harness) -> None:
    body = orjson.dumps({"message": "Missing email address"})
    h.endpoint.script(status(400, body, "application/json"))
    await h.send(await h.destination())
    assert await h.run_at(T0) == 1
    delivery = await h.only_delivery()
    assert delivery.state is DeliveryState.DISCARDED
    assert delivery.reason == "discarded.400"
    assert delivery.last_error == "Missing email address"
    assert delivery.attempts == 1
    (attempt,) = await h.attempts(delivery)
    assert attempt.record["message"] == "Missing email address"
    assert attempt.record["status"] == 400
    assert attempt.record["response"]["body"] == body.decode()
    assert attempt.state is DeliveryState.DISCARDED
    assert await h.run_at(T0 + WINDOW) == 0  # not retried
    assert len(h.endpoint.requests) == 1


async def test_the_same_body_as_text_plain_records_no_message(h: Harness) -> None:
    body = orjson.dumps({"message": "Missing email address"})
    h.endpoint.script(status(400, body, "text/plain"))
    await h.send(await h.destination())
    await h.run_at(T0)
    delivery = await h.only_delivery()
    assert delivery.state is DeliveryState.DISCARDED
    assert delivery.last_error is None
    (attempt,) = await h.attempts(delivery)
    assert attempt.record["message"] is None
    assert attempt.record["response"]["body"] == body.decode()  # still shown, as a body


@pytest.mark.parametrize("code", [401, 403, 404])
async def test_other_client_errors_are_discarded_after_one_attempt(h: Harness, code: int) -> None:
    h.endpoint.script(status(code, b'{"message":"API token expired"}', "application/json"))
    await h.send(await h.destination())
    await h.run_at(T0)
    delivery = await h.only_delivery()
    assert (delivery.state, delivery.reason) == (DeliveryState.DISCARDED, f"discarded.{code}")
    assert delivery.last_error == "API token expired"
    assert await h.run_at(T0 + WINDOW) == 0


async def test_501_is_discarded_as_an_unsupported_type(h: Harness) -> None:
    h.endpoint.script(status(501))
    await h.send(await h.destination())
    await h.run_at(T0)
    delivery = await h.only_delivery()
    assert delivery.state is DeliveryState.DISCARDED
    assert delivery.reason is not None and "unsupported" in delivery.reason
    assert await h.run_at(T0 + WINDOW) == 0
    assert len(h.endpoint.requests) == 1


@pytest.mark.parametrize("code", [200, 201, 202, 204])
async def test_2xx_succeeds(h: Harness, code: int) -> None:
    h.endpoint.script(status(code))
    await h.send(await h.destination())
    await h.run_at(T0 + 5)
    delivery = await h.only_delivery()
    assert delivery.state is DeliveryState.SUCCEEDED
    assert delivery.completed_at_ms == T0 + 5
    (attempt,) = await h.attempts(delivery)
    assert attempt.record["status"] == code  # 202: accepted, shown as such


@pytest.mark.parametrize("code", [408, 423, 500, 502, 504, 511])
async def test_retryable_statuses_wait(h: Harness, code: int) -> None:
    h.endpoint.script(status(code))
    await h.send(await h.destination())
    await h.run_at(T0)
    delivery = await h.only_delivery()
    assert (delivery.state, delivery.reason) == (
        DeliveryState.AWAITING_RETRY,
        f"awaiting-retry.{code}",
    )


async def test_a_redirect_is_not_followed(h: Harness) -> None:
    h.endpoint.script(status(302, headers={"Location": h.endpoint.url("/elsewhere")}))
    await h.send(await h.destination())
    await h.run_at(T0)
    assert h.endpoint.paths() == ["/hook"]
    delivery = await h.only_delivery()
    assert (delivery.state, delivery.reason) == (DeliveryState.DISCARDED, "discarded.302")


async def test_a_hanging_endpoint_times_out_and_is_retried(h: Harness) -> None:
    h.endpoint.script(h.endpoint.hang, then=OK)
    await h.send(await h.destination(options={"timeout_s": 0.2}))
    started = time.monotonic()
    assert await h.run_at(T0) == 1
    assert time.monotonic() - started < 3.0  # the destination's 0.2 s, not the 5 s default
    delivery = await h.only_delivery()
    assert delivery.state is DeliveryState.AWAITING_RETRY
    assert delivery.reason == "awaiting-retry.ETIMEDOUT"
    assert delivery.last_error is not None and "0.2" in delivery.last_error
    (attempt,) = await h.attempts(delivery)
    assert attempt.record["reason"] == "ETIMEDOUT"
    assert attempt.record["response"] is None

    assert delivery.next_attempt_at_ms is not None
    assert await h.run_at(delivery.next_attempt_at_ms) == 1
    assert (await h.only_delivery()).state is DeliveryState.SUCCEEDED
    assert len(h.endpoint.requests) == 2


async def test_past_the_retry_window_a_delivery_expires(h: Harness) -> None:
    h.endpoint.script(then=status(503))
    options = {"retry_window_s": 10, "first_backoff_s": 2}
    await h.send(await h.destination(options=options))
    await h.run_at(T0)
    waiting = await h.only_delivery()
    assert waiting.state is DeliveryState.AWAITING_RETRY

    assert await h.run_at(T0 + 60_000) == 1  # well past the 10 s window
    expired = await h.only_delivery()
    assert expired.state is DeliveryState.EXPIRED
    assert expired.reason == "expired.503"
    assert expired.completed_at_ms == T0 + 60_000
    assert expired.attempts == 2
    assert [a.state for a in await h.attempts(expired)] == [
        DeliveryState.AWAITING_RETRY,
        DeliveryState.EXPIRED,
    ]
    assert await h.run_at(T0 + 10 * WINDOW) == 0
    assert len(h.endpoint.requests) == 2


async def test_the_window_expires_even_while_backing_off(h: Harness) -> None:
    h.endpoint.script(then=status(500))
    options = {"retry_window_s": 5, "first_backoff_s": 2, "max_backoff_s": 2}
    await h.send(await h.destination(options=options))
    now, states = T0, []
    for _ in range(10):
        await h.run_at(now)
        delivery = await h.only_delivery()
        states.append(delivery.state)
        if delivery.state is not DeliveryState.AWAITING_RETRY:
            break
        assert delivery.next_attempt_at_ms is not None
        now = delivery.next_attempt_at_ms
    assert states[-1] is DeliveryState.EXPIRED
    assert 2 <= len(states) <= 6  # 1-2 s waits inside a 5 s window
    assert now <= T0 + 5000


async def test_connection_refused_is_retried(h: Harness) -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        port = closed.getsockname()[1]
        await h.send(await h.destination(url=f"http://127.0.0.1:{port}/hook"))
        assert await h.run_at(T0) == 1
        delivery = await h.only_delivery()
    finally:
        closed.close()
    assert delivery.state is DeliveryState.AWAITING_RETRY
    assert delivery.reason == "awaiting-retry.ECONNREFUSED"
    assert delivery.last_error
    (attempt,) = await h.attempts(delivery)
    assert attempt.record["reason"] == "ECONNREFUSED"
    assert attempt.record["response"] is None
    assert attempt.record["request"]["url"] == f"http://127.0.0.1:{port}/hook"


# -- the request, byte for byte ------------------------------------------------------------
EXPECTED_ORDER = [
    "Accept",
    "Authorization",
    "Cache-Control",
    "Connection",
    "Content-Length",
    "Content-Type",
    "User-Agent",
    "X-Segment-Settings",
]


async def acme(h: Harness) -> Destination:
    await h.catalog.save_app(
        {
            "name": "acme",
            "endpoint": h.endpoint.url("/acme"),
            "settings": [
                {"label": "Region", "required": True},
                {"label": "Secret Token", "sensitive": True},
                {"label": "Custom Setting"},
            ],
        }
    )
    return await h.destination(
        "acme-prod",
        app="acme",
        settings={
            "apiKey": "sk_live_abc123",
            "region": "eu",
            "secretToken": "tok_s3cr3t",
            "customSetting": "custom setting value",
        },
    )


async def test_the_request_is_byte_exact(h: Harness) -> None:
    destination = await acme(h)
    await h.ingest(
        {
            "type": "identify",
            "userId": "5678",
            "anonymousId": "1234",
            "traits": {"name": "John Doe", "email": "john.doe@email.com", "plan": "premium"},
            "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0"},
        }
    )
    assert len(await h.deliveries(destination)) == 1
    assert await h.run_at(T0) == 1

    (request,) = h.endpoint.requests
    (stored,) = await h.store.list_events(EventQuery())
    assert request.method == "POST"
    assert request.version == "HTTP/1.1"
    assert request.path == "/acme"
    assert request.body == stored.payload  # the stored event JSON, unchanged

    names = [k.decode() for k, _ in request.raw_headers]
    assert names.count("Host") == 1
    assert [n for n in names if n != "Host"] == EXPECTED_ORDER  # nothing else was sent
    assert request.header("Accept") == "*/*"
    assert request.header("Authorization") == "Basic " + base64.b64encode(
        b"sk_live_abc123:"
    ).decode("ascii")
    scheme, encoded = request.header("Authorization").split(" ")
    assert scheme == "Basic" and base64.b64decode(encoded) == b"sk_live_abc123:"
    assert request.header("Cache-Control") == "no-cache"
    assert request.header("Connection") == "Keep-Alive"
    assert request.header("Content-Length") == str(len(request.body))
    assert request.header("Content-Type") == "application/json"
    assert request.header("User-Agent") == "Segment.io/1.0"
    settings = orjson.loads(base64.b64decode(request.header("X-Segment-Settings")))
    assert settings == {
        "region": "eu",
        "secretToken": "tok_s3cr3t",
        "customSetting": "custom setting value",
    }
    event = orjson.loads(request.body)
    assert event["type"] == "identify" and event["userId"] == "5678"
    assert event["traits"]["email"] == "john.doe@email.com"
    assert event["context"]["userAgent"] == "Mozilla/5.0"  # the client's casing is kept
    assert event["messageId"] and event["receivedAt"]


async def test_the_debugger_record_masks_the_secrets(h: Harness) -> None:
    destination = await acme(h)
    await h.send(destination)
    await h.run_at(T0)
    (attempt,) = await h.attempts(await h.only_delivery())
    shown = attempt.record["request"]["headers"]
    assert shown["Authorization"] == f"Basic {MASK}"
    settings = orjson.loads(base64.b64decode(shown["X-Segment-Settings"]))
    assert settings == {
        "region": "eu",
        "secretToken": MASK,
        "customSetting": "custom setting value",
    }
    encoded = orjson.dumps(attempt.record)
    assert b"sk_live_abc123" not in encoded
    assert b"tok_s3cr3t" not in encoded
    assert base64.b64encode(b"sk_live_abc123:") not in encoded
    assert attempt.record["request"]["url"] == h.endpoint.url("/acme")
    assert attempt.record["request"]["body"] == h.endpoint.requests[0].body.decode()
    assert attempt.record["response"]["status"] == 200
    assert attempt.record["duration_ms"] >= 0


async def test_a_numeric_sensitive_setting_is_masked_too(h: Harness) -> None:
    await h.catalog.save_app(
        {
            "name": "pin",
            "endpoint": h.endpoint.url("/pin"),
            "settings": [{"label": "Account PIN", "sensitive": True}],
        }
    )
    destination = await h.destination(
        "pin-prod", app="pin", settings={"apiKey": "k", "accountPin": 987654}
    )
    await h.send(destination)
    await h.run_at(T0)
    (attempt,) = await h.attempts(await h.only_delivery())
    shown = attempt.record["request"]["headers"]["X-Segment-Settings"]
    assert orjson.loads(base64.b64decode(shown)) == {"accountPin": MASK}


async def test_a_missing_api_key_still_sends_basic_with_a_colon(h: Harness) -> None:
    await h.send(await h.destination(settings={}))
    await h.run_at(T0)
    (request,) = h.endpoint.requests
    assert base64.b64decode(request.header("Authorization").split(" ")[1]) == b":"
    assert orjson.loads(base64.b64decode(request.header("X-Segment-Settings"))) == {}


async def test_snake_case_option_sends_every_key_in_snake_case(h: Harness) -> None:
    destination = await h.destination(options={"snake_case": True})
    payload = await h.send(
        destination,
        anonymousId="a1",
        context={"userAgent": "UA", "library": {"name": "analytics-ruby", "libVersion": "2"}},
        properties={"orderId": "o1", "productList": [{"productId": "p1", "unitPrice": 2.5}]},
        receivedAt="2015-02-23T22:28:55.387Z",
    )
    await h.run_at(T0)
    (request,) = h.endpoint.requests
    sent = orjson.loads(request.body)
    assert sent == snake_case_keys(orjson.loads(payload))
    assert sent["user_id"] == "u1" and sent["anonymous_id"] == "a1"
    assert sent["message_id"] == "m1" and sent["received_at"] == "2015-02-23T22:28:55.387Z"
    assert sent["context"] == {
        "user_agent": "UA",
        "library": {"name": "analytics-ruby", "lib_version": "2"},
    }
    assert sent["properties"]["product_list"] == [{"product_id": "p1", "unit_price": 2.5}]

    def keys(value: object) -> list[str]:
        if isinstance(value, dict):
            return list(value) + [k for v in value.values() for k in keys(v)]
        if isinstance(value, list):
            return [k for item in value for k in keys(item)]
        return []

    assert all(k == k.lower() for k in keys(sent))
    assert request.header("Content-Length") == str(len(request.body))


# -- routing -----------------------------------------------------------------------------------
async def test_integrations_choose_the_destinations(h: Harness) -> None:
    alpha = await h.destination("alpha", path="/alpha")
    beta = await h.destination("beta", path="/beta")
    gamma = await h.destination("gamma", path="/gamma", enabled=False)
    await h.ingest(
        {"type": "track", "event": "Only Alpha", "userId": "u1", "messageId": "only-alpha",
         "integrations": {"All": False, "alpha": True}},
        {"type": "track", "event": "Not Beta", "userId": "u1", "messageId": "not-beta",
         "integrations": {"beta": False}},
        {"type": "track", "event": "Everyone", "userId": "u1", "messageId": "everyone"},
        {"type": "track", "event": "Nobody", "userId": "u1", "messageId": "nobody",
         "integrations": {"All": False}},
    )  # fmt: skip
    assert len(await h.deliveries(gamma)) == 0  # a disabled destination gets nothing
    assert await h.run_at(T0) == 4
    received: dict[str, set[str]] = {}
    for request in h.endpoint.requests:
        received.setdefault(request.path, set()).add(orjson.loads(request.body)["messageId"])
    assert received == {
        "/alpha": {"only-alpha", "not-beta", "everyone"},
        "/beta": {"everyone"},
    }
    assert len(await h.deliveries(alpha)) == 3
    assert len(await h.deliveries(beta)) == 1


async def test_integrations_can_name_the_app(h: Harness) -> None:
    destination = await acme(h)
    other = await h.destination("other", path="/other")
    await h.ingest(
        {
            "type": "track",
            "event": "E",
            "userId": "u1",
            "integrations": {"All": False, "acme": True},
        }
    )
    await h.run_at(T0)
    assert h.endpoint.paths() == ["/acme"]
    assert len(await h.deliveries(destination)) == 1
    assert await h.deliveries(other) == []


async def test_a_destination_disabled_after_ingest_gets_nothing(h: Harness) -> None:
    destination = await h.destination()
    await h.send(destination)
    await h.catalog.save_destination({"enabled": False}, replace="hook")
    assert await h.run_at(T0) == 1
    delivery = await h.only_delivery()
    assert delivery.state is DeliveryState.DISCARDED
    assert delivery.reason == "discarded.DESTINATION_DISABLED"
    assert h.endpoint.requests == []


async def test_a_deleted_destination_gets_nothing(h: Harness) -> None:
    await h.send(await h.destination())
    await h.catalog.delete_destination("hook")
    await h.run_at(T0)
    delivery = await h.only_delivery()
    assert delivery.state is DeliveryState.DISCARDED
    assert delivery.reason == "discarded.DESTINATION_REMOVED"
    assert h.endpoint.requests == []


# -- the engine ------------------------------------------------------------------------------
async def test_one_keep_alive_connection_carries_many_deliveries(h: Harness) -> None:
    destination = await h.destination(options={"concurrency": 1})
    for i in range(5):
        await h.send(destination, f"m{i}")
    assert await h.run_at(T0) == 5
    await h.send(destination, "later")
    assert await h.run_at(T0 + 1000) == 1
    assert len(h.endpoint.requests) == 6
    assert h.endpoint.connections == 1
    assert all(d.state is DeliveryState.SUCCEEDED for d in await h.deliveries())


async def test_per_destination_concurrency_is_limited(h: Harness) -> None:
    h.endpoint.delay_s = 0.05
    limited = await h.destination("limited", path="/limited", options={"concurrency": 2})
    for i in range(6):
        await h.send(limited, f"m{i}")
    assert await h.run_at(T0) == 6
    assert len(h.endpoint.requests) == 6
    assert h.endpoint.max_in_flight == 2
    assert all(d.state is DeliveryState.SUCCEEDED for d in await h.deliveries())


async def test_bulk_retry_redelivers_with_a_fresh_window(h: Harness) -> None:
    h.endpoint.script(status(400), then=OK)
    options = {"retry_window_s": 10}
    destination = await h.destination(options=options)
    await h.send(destination)
    await h.run_at(T0)
    assert (await h.only_delivery()).state is DeliveryState.DISCARDED

    later = T0 + 3600_000  # an hour later: far outside the original 10 s window
    assert await h.store.retry_deliveries(RetryFilter(destination.id), later) == 1
    assert await h.run_at(later) == 1
    delivery = await h.only_delivery()
    assert delivery.state is DeliveryState.SUCCEEDED
    assert delivery.attempts == 2
    assert len(h.endpoint.requests) == 2


async def test_a_retried_delivery_that_fails_again_gets_a_new_window(h: Harness) -> None:
    h.endpoint.script(then=status(503))
    destination = await h.destination(options={"retry_window_s": 10})
    await h.send(destination)
    await h.run_at(T0)
    await h.run_at(T0 + 60_000)
    assert (await h.only_delivery()).state is DeliveryState.EXPIRED
    later = T0 + 3600_000
    assert await h.store.retry_deliveries(RetryFilter(destination.id), later) == 1
    await h.run_at(later)
    again = await h.only_delivery()
    assert again.state is DeliveryState.AWAITING_RETRY  # not instantly expired again
    assert again.window_start_ms == later


async def test_a_replay_goes_to_that_destination_only(h: Harness) -> None:
    destination = await h.destination("target", path="/target")
    payload = await h.send(None, "old", integrations={"All": True, "target": False})
    queued, _ = await h.store.enqueue_replay(
        h.source.id, destination.id, T0 - 1, T0 + 1, after_event_id=0, limit=10, now_ms=T0
    )
    assert queued == 1
    assert await h.run_at(T0) == 1
    (request,) = h.endpoint.requests
    sent = orjson.loads(request.body)
    assert sent["integrations"] == {"All": False, "target": True}
    original = orjson.loads(payload)
    assert {k: v for k, v in sent.items() if k != "integrations"} == {
        k: v for k, v in original.items() if k != "integrations"
    }
    assert request.header("Content-Length") == str(len(request.body))


async def test_big_responses_are_recorded_truncated(h: Harness) -> None:
    h.endpoint.script(status(500, b"e" * 200_000, "text/plain"))
    await h.send(await h.destination())
    await h.run_at(T0)
    (attempt,) = await h.attempts(await h.only_delivery())
    body = attempt.record["response"]["body"]
    assert body.startswith("eeee") and body.endswith("…")
    assert len(body) <= 4097


# -- bugs found --------------------------------------------------------------------------------
async def test_a_json_error_sent_in_chunks_still_shows_its_message(h: Harness) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=400, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"message": ')
        await asyncio.sleep(0.05)  # a slow partner: the rest comes in a second packet
        await response.write(b'"Missing email address"}')
        await response.write_eof()
        return response

    h.endpoint.script(chunked)
    await h.send(await h.destination())
    await h.run_at(T0)
    delivery = await h.only_delivery()
    assert delivery.state is DeliveryState.DISCARDED
    assert delivery.last_error == "Missing email address"


async def test_deliveries_waiting_for_their_turn_are_not_claimed_twice(
    h: Harness, transport: HTTPTransport
) -> None:
    arrived = {i: asyncio.Event() for i in range(3)}
    release = {i: asyncio.Event() for i in range(3)}

    def gated(i: int) -> Reply:
        async def reply(request: web.Request) -> web.StreamResponse:
            arrived[i].set()
            await release[i].wait()
            return web.Response(status=200)

        return reply

    destination = await h.destination(options={"concurrency": 1})
    for i in range(3):
        await h.send(destination, f"m{i}")
    h.endpoint.script(gated(0), gated(1), then=OK)

    def worker() -> DeliveryWorker:
        deliverer = Deliverer(h.catalog, transport)
        return DeliveryWorker(h.store, h.catalog, deliverer, clock=h.clock, lease_ms=10_000)

    first, second = worker(), worker()
    first.idle_poll_s = 0.01
    running = asyncio.create_task(first.run())  # claims m0, m1, m2 until T0 + 10 s
    try:
        await asyncio.wait_for(arrived[0].wait(), 5)
        h.clock.now = T0 + 6_000  # m0 answered in 6 s: inside its lease
        await first.extend_leases()  # the heartbeat the first worker runs every lease/3
        release[0].set()
        await asyncio.wait_for(arrived[1].wait(), 5)
        m0 = (await h.deliveries())[-1]
        for _ in range(500):  # the settler commits m0 right after its answer
            if (await h.store.get_delivery(m0.id)).state is DeliveryState.SUCCEEDED:  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.01)
        h.clock.now = T0 + 11_000  # m1 is being sent, m2 still waits: their first lease is over
        await second.run_once()  # another node
    finally:
        for event in release.values():
            event.set()
        await first.stop()
        await running
    delivered = [orjson.loads(r.body)["messageId"] for r in h.endpoint.requests]
    assert sorted(delivered) == ["m0", "m1", "m2"]
