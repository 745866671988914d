"""The egress guard end to end: a blocked destination is refused before any socket opens.

Only 127.0.0.1 ever receives traffic here. Every test runs under a tripwire that
refuses (and records) any connection the event loop would open to another address,
so even a broken guard cannot send a packet to 10.0.0.1 or 169.254.169.254; the
tests then fail on the tripwire's record instead.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from segue.delivery.attempt import Deliverer
from segue.delivery.egress import EgressPolicy
from segue.delivery.policy import FailureKind
from segue.delivery.transport import HTTPTransport
from segue.delivery.webhook import build_request, send_webhook
from segue.delivery.worker import DeliveryWorker
from segue.destinations.catalog import Catalog, CatalogError
from segue.destinations.models import DESTINATION, Destination
from segue.destinations.secrets import SecretBox
from segue.store import Delivery, DeliveryQuery, DeliveryState, NewEvent, Source, Store

T0 = 1_800_000_000_000
WINDOW = 24 * 3600 * 1000


# -- the safety net ------------------------------------------------------------------------
@pytest.fixture(autouse=True)
async def tripwire(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address the loop is asked to connect to; anything but 127.0.0.1 is refused."""
    loop = asyncio.get_running_loop()
    seen: list[Any] = []
    real_sock_connect = loop.sock_connect
    real_create_connection = loop.create_connection

    async def sock_connect(sock: socket.socket, address: Any) -> None:
        seen.append(address)
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(f"tripwire: no traffic to {address[0]}")
        await real_sock_connect(sock, address)

    async def create_connection(*args: Any, **kwargs: Any) -> Any:
        host = args[1] if len(args) > 1 else kwargs.get("host")
        if kwargs.get("sock") is None and host is not None:
            seen.append((host, kwargs.get("port")))
            if host != "127.0.0.1":
                raise ConnectionRefusedError(f"tripwire: no traffic to {host}")
        return await real_create_connection(*args, **kwargs)

    monkeypatch.setattr(loop, "sock_connect", sock_connect)
    monkeypatch.setattr(loop, "create_connection", create_connection)
    return seen


# -- a local endpoint that counts connections ---------------------------------------------------
@dataclass
class Endpoint:
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            self.requests.append(await request.read())
            return web.Response(status=200)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.2
        )
        await self._runner.setup()
        factory = self._runner.server
        assert factory is not None

        def protocol() -> asyncio.Protocol:
            self.connections += 1
            return factory()  # type: ignore[return-value]

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(protocol, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    server = Endpoint()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class Guarded:
    store: Store
    catalog: Catalog
    source: Source
    endpoint: Endpoint
    transports: list[HTTPTransport] = field(default_factory=list)

    async def destination(
        self, url: str, *, name: str = "hook", allow_http: bool = True
    ) -> Destination:
        return await self.catalog.save_destination(
            {
                "name": name,
                "endpoint": url,
                "sources": [self.source.name],
                "settings": {"apiKey": "k"},
                "options": {"allow_http": allow_http},
            }
        )

    async def deliver(self, destination: Destination, policy: EgressPolicy) -> Delivery:
        """One event to ``destination`` through a worker whose transport has ``policy``."""
        await self.store.append_events(
            [
                NewEvent(
                    source_id=self.source.id,
                    message_id=f"m-{destination.name}",
                    type="track",
                    received_at_ms=T0,
                    payload=b'{"type":"track","event":"E","userId":"u1"}',
                    destinations=(destination.id,),
                )
            ],
            dedup_window_ms=WINDOW,
        )
        transport = HTTPTransport(policy)
        self.transports.append(transport)
        worker = DeliveryWorker(
            self.store,
            self.catalog,
            Deliverer(self.catalog, transport),
            clock=lambda: T0,
            rng=random.Random(1),
        )
        assert await worker.run_once() == 1
        (delivery,) = await self.store.list_deliveries(DeliveryQuery(destination_id=destination.id))
        return delivery


@pytest.fixture
async def g(store: Store, endpoint: Endpoint) -> AsyncIterator[Guarded]:
    source = await store.create_source("web", "wk_web")
    catalog = Catalog(store, SecretBox("egress test key"))
    await catalog.refresh()
    guarded = Guarded(store, catalog, source, endpoint)
    try:
        yield guarded
    finally:
        for transport in guarded.transports:
            await transport.close()


DEFAULT = EgressPolicy()  # nothing allowed, https only
LOOPBACK = EgressPolicy.from_config(["127.0.0.0/8"])


async def assert_blocked(
    g: Guarded,
    delivery: Delivery,
    tripwire: list[Any],
    *words: str,
    reason: str = "EGRESS_BLOCKED",
) -> dict[str, Any]:
    assert delivery.state is DeliveryState.DISCARDED  # never retried: it cannot get better
    assert delivery.reason == f"discarded.{reason}"
    assert delivery.last_error is not None
    for word in words:
        assert word in delivery.last_error, delivery.last_error
    (attempt,) = await g.store.list_attempts(delivery.id)
    assert attempt.record["reason"] == reason
    assert attempt.record["response"] is None
    assert attempt.record["error"] == delivery.last_error
    assert g.endpoint.connections == 0  # nothing reached the local server
    assert g.endpoint.requests == []
    assert tripwire == []  # and no connection was even tried
    return attempt.record


# -- blocked by default -------------------------------------------------------------------------
async def test_a_loopback_literal_is_refused_before_connecting(
    g: Guarded, tripwire: list[Any]
) -> None:
    destination = await g.destination(f"http://127.0.0.1:{g.endpoint.port}/hook")
    started = time.monotonic()
    delivery = await g.deliver(destination, DEFAULT)
    assert time.monotonic() - started < 1.0  # fails fast, not after the 5 s timeout
    await assert_blocked(g, delivery, tripwire, "127.0.0.1", "loopback", "[egress] allow")


async def test_a_name_resolving_to_loopback_is_refused_after_dns(
    g: Guarded, tripwire: list[Any]
) -> None:
    destination = await g.destination(f"http://localhost:{g.endpoint.port}/hook")
    started = time.monotonic()
    delivery = await g.deliver(destination, DEFAULT)
    assert time.monotonic() - started < 1.0
    await assert_blocked(g, delivery, tripwire, "localhost", "blocked", "loopback")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://169.254.169.254/latest/meta-data/", ("169.254.169.254", "metadata")),
        ("https://169.254.169.254/latest/meta-data/", ("metadata",)),
        ("http://10.0.0.1/hook", ("10.0.0.1", "private")),
        ("http://192.168.1.1:8080/hook", ("private",)),
        ("http://100.64.0.1/hook", ("100.64.0.1",)),
        ("http://0.0.0.0:{port}/hook", ("0.0.0.0",)),
        ("http://[::1]:{port}/hook", ("::1", "loopback")),
        ("http://[::ffff:127.0.0.1]:{port}/hook", ("127.0.0.1", "loopback")),
        ("http://[fe80::1]/hook", ("link-local",)),
    ],
)
async def test_blocked_addresses_are_refused_with_a_clear_reason(
    g: Guarded, tripwire: list[Any], url: str, words: tuple[str, ...]
) -> None:
    destination = await g.destination(url.format(port=g.endpoint.port))
    started = time.monotonic()
    delivery = await g.deliver(destination, DEFAULT)
    assert time.monotonic() - started < 1.0
    await assert_blocked(g, delivery, tripwire, *words)


async def test_a_numeric_host_that_resolves_to_loopback_is_refused(
    g: Guarded, tripwire: list[Any]
) -> None:
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo("0x7f000001", 80)}
    except socket.gaierror:
        pytest.skip("this resolver does not read 0x7f000001 as an address")
    assert resolved == {"127.0.0.1"}
    destination = await g.destination(f"http://0x7f000001:{g.endpoint.port}/hook")
    delivery = await g.deliver(destination, DEFAULT)
    await assert_blocked(g, delivery, tripwire, "loopback")


async def test_loopback_stays_blocked_when_only_another_network_is_allowed(
    g: Guarded, tripwire: list[Any]
) -> None:
    destination = await g.destination(f"http://127.0.0.1:{g.endpoint.port}/hook")
    delivery = await g.deliver(destination, EgressPolicy.from_config(["10.0.0.0/8"]))
    await assert_blocked(g, delivery, tripwire, "loopback")


async def test_allowing_ipv4_loopback_does_not_allow_ipv6_loopback(
    g: Guarded, tripwire: list[Any]
) -> None:
    destination = await g.destination(f"http://[::1]:{g.endpoint.port}/hook")
    delivery = await g.deliver(destination, LOOPBACK)
    await assert_blocked(g, delivery, tripwire, "::1")


# -- http and schemes ----------------------------------------------------------------------------
async def test_plain_http_is_refused_unless_allowed(g: Guarded, tripwire: list[Any]) -> None:
    url = f"http://127.0.0.1:{g.endpoint.port}/hook"
    destination = await g.destination(url, allow_http=False)
    delivery = await g.deliver(destination, LOOPBACK)  # address allowed, http not
    await assert_blocked(g, delivery, tripwire, "plain http", "allow_http")


async def test_plain_http_allowed_by_the_destination(g: Guarded, tripwire: list[Any]) -> None:
    destination = await g.destination(f"http://127.0.0.1:{g.endpoint.port}/hook", allow_http=True)
    delivery = await g.deliver(destination, LOOPBACK)
    assert delivery.state is DeliveryState.SUCCEEDED
    assert len(g.endpoint.requests) == 1
    assert tripwire == [("127.0.0.1", g.endpoint.port)]  # the safety net sees real connects


async def test_plain_http_allowed_by_the_policy(g: Guarded) -> None:
    destination = await g.destination(f"http://127.0.0.1:{g.endpoint.port}/hook", allow_http=False)
    policy = EgressPolicy.from_config(["127.0.0.0/8"], allow_http=True)
    delivery = await g.deliver(destination, policy)
    assert delivery.state is DeliveryState.SUCCEEDED
    assert len(g.endpoint.requests) == 1


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1:{port}/hook", "file:///etc/passwd", "gopher://127.0.0.1:{port}/"]
)
async def test_a_non_http_scheme_is_refused_by_the_catalog(g: Guarded, url: str) -> None:
    with pytest.raises(CatalogError, match=r"http\(s\)"):
        await g.destination(url.format(port=g.endpoint.port))


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1:{port}/hook", "file:///etc/passwd", "ws://127.0.0.1:{port}/"]
)
async def test_a_non_http_scheme_is_refused_by_the_guard_too(
    g: Guarded, tripwire: list[Any], url: str
) -> None:
    # a document that skipped the catalog's validation (edited store, older version…)
    doc = {
        "id": "dst_raw",
        "name": "raw",
        "app": None,
        "endpoint": url.format(port=g.endpoint.port),
        "sources": ["web"],
        "settings": {},
        "enabled": True,
        "options": {"allow_http": True},
        "created_at_ms": 0,
    }
    await g.store.put_object(DESTINATION, "raw", doc)
    await g.catalog.refresh()
    destination = g.catalog.destination("raw")
    assert destination is not None
    everything = EgressPolicy.from_config(["127.0.0.0/8"], allow_http=True)
    delivery = await g.deliver(destination, everything)
    # the endpoint check before the send refuses it (the guard would too: test_egress.py)
    await assert_blocked(g, delivery, tripwire, "http(s)", reason="INVALID_SETTINGS")


# -- allowed when configured -----------------------------------------------------------------------
async def test_allowed_when_the_allow_list_includes_the_network(
    g: Guarded, tripwire: list[Any]
) -> None:
    destination = await g.destination(f"http://127.0.0.1:{g.endpoint.port}/hook")
    delivery = await g.deliver(destination, LOOPBACK)
    assert delivery.state is DeliveryState.SUCCEEDED
    assert g.endpoint.connections == 1
    assert len(g.endpoint.requests) == 1


async def test_a_name_is_allowed_when_its_address_is(g: Guarded) -> None:
    destination = await g.destination(f"http://localhost:{g.endpoint.port}/hook")
    delivery = await g.deliver(destination, LOOPBACK)
    assert delivery.state is DeliveryState.SUCCEEDED
    assert len(g.endpoint.requests) == 1
    body = orjson.loads(g.endpoint.requests[0])
    assert body["type"] == "track"


# -- the same guard for Send Test Event and the transport itself --------------------------------
async def test_send_test_event_is_guarded_too(g: Guarded, tripwire: list[Any]) -> None:
    destination = await g.destination("http://169.254.169.254/latest/meta-data/")
    transport = HTTPTransport(DEFAULT)
    g.transports.append(transport)
    record = await Deliverer(g.catalog, transport).attempt(
        destination, {"type": "track", "event": "Test"}
    )
    assert record.outcome.failure is FailureKind.BLOCKED
    assert record.response is None
    assert record.error is not None and "metadata" in record.error
    assert tripwire == []


async def test_the_transport_refuses_without_a_worker(g: Guarded, tripwire: list[Any]) -> None:
    transport = HTTPTransport(DEFAULT)
    g.transports.append(transport)
    request = build_request(f"https://127.0.0.1:{g.endpoint.port}/x", b"{}", {"apiKey": "k"})
    started = time.monotonic()
    record = await send_webhook(transport, request, timeout_s=5.0)
    assert time.monotonic() - started < 1.0
    assert record.outcome.reason == "EGRESS_BLOCKED"
    assert g.endpoint.connections == 0
    assert tripwire == []


async def test_a_url_aiohttp_cannot_use_is_discarded_not_retried(
    g: Guarded, tripwire: list[Any]
) -> None:
    destination = await g.destination(f"http://2130706433:{g.endpoint.port}/hook")
    delivery = await g.deliver(destination, DEFAULT)
    assert tripwire == [] and g.endpoint.connections == 0  # never sent, either way
    assert delivery.state is DeliveryState.DISCARDED
