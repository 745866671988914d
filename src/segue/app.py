"""The one ASGI app on segue's one port: Tracking API, admin API, health, metrics.

Requests are dispatched by path prefix without a framework in between, so the
Tracking API's hot path costs no more than its own work.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path

from segue.asgi import ASGIApp, Receive, Scope, Send, header, send_bytes, send_json
from segue.bootstrap import (
    BootReport,
    admin_token,
    apply_catalog,
    apply_sources,
    ensure_data_dir,
    node_id,
)
from segue.config import ServerConfig
from segue.delivery.attempt import Deliverer
from segue.delivery.egress import EgressPolicy
from segue.delivery.replay import ReplayRunner
from segue.delivery.transport import HTTPTransport, Transport
from segue.delivery.worker import DeliveryWorker
from segue.destinations.catalog import Catalog
from segue.destinations.secrets import SecretBox
from segue.devcenter.admin import AdminAPI
from segue.devcenter.auth import BearerTokenGuard
from segue.devcenter.web import WebUI
from segue.functions.pool import FunctionPool
from segue.functions.proxy import FetchProxy
from segue.ingest.analytics_js import is_analytics_js_path, serve_analytics_js
from segue.ingest.app import IngestSettings, TrackingAPI
from segue.ingest.pipeline import Ingestor
from segue.ingest.sources import SourceDirectory
from segue.metrics import CONTENT_TYPE_LATEST, Metrics
from segue.store import Store
from segue.store.factory import open_store
from segue.timeutil import now_ms
from segue.unavailable import AnswerUnavailable, health_response, tracking_body

log = logging.getLogger("segue")

DEDUP_PRUNE_INTERVAL_S = 3600.0


@dataclass
class Segue:
    """A running segue: its store and the ASGI app in front of it."""

    config: ServerConfig
    store: Store
    metrics: Metrics
    sources: SourceDirectory
    ingestor: Ingestor
    tracking: TrackingAPI
    catalog: Catalog
    transport: Transport
    deliverer: Deliverer
    worker: DeliveryWorker | None
    replays: ReplayRunner
    functions: FunctionPool
    report: BootReport | None = None
    _admin: ASGIApp | None = None
    _web: ASGIApp | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _worker_task: asyncio.Task[None] | None = None
    _v1: ASGIApp = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # a store that cannot write (a full disk) answers 503, not 500: segue.unavailable
        self._v1 = AnswerUnavailable(self.tracking, tracking_body)

    @classmethod
    def build(
        cls,
        config: ServerConfig,
        store: Store | None = None,
        transport: Transport | None = None,
    ) -> Segue:
        metrics = Metrics()
        if store is None:
            store = open_store(config.database(), on_commit=metrics.observe_commit)
        sources = SourceDirectory(store)
        catalog = Catalog(store, SecretBox.from_environment(config.data_dir))
        policy = EgressPolicy.from_config(
            config.egress.allow,
            config.egress.allow_http,
            own_ports=[config.port],
            own_addresses=_own_addresses(config.host),
        )
        if transport is None:
            transport = HTTPTransport(policy)
        http = transport if isinstance(transport, HTTPTransport) else HTTPTransport(policy)
        functions = FunctionPool(
            size=config.functions.workers,
            memory_mb=config.functions.memory_mb,
            cpu_s=config.functions.cpu_s,
            sandbox=config.functions.sandbox,
            hidden_paths=_private_paths(config),
            fetch=FetchProxy(http),
            max_workers=config.functions.max_workers,
            idle_timeout_s=config.functions.idle_timeout_s,
            max_processes=config.functions.processes,
            cpu_cores=config.functions.cpu_cores,
        )
        deliverer = Deliverer(catalog, transport, functions)
        worker = None
        if config.role in ("all", "deliver"):
            worker = DeliveryWorker(
                store,
                catalog,
                deliverer,
                metrics=metrics,
                name=node_id(config),
                lease_ms=config.lease_s * 1000,
            )
        ingestor = Ingestor(
            store,
            dedup_window_ms=config.dedup_window_s * 1000,
            metrics=metrics,
            router=catalog.route,
            on_enqueued=worker.wake if worker else None,
        )
        tracking = TrackingAPI(
            ingestor,
            sources,
            metrics=metrics,
            settings=IngestSettings(trust_forwarded_for=config.trust_forwarded_for),
        )
        replays = ReplayRunner(store, worker.wake if worker else lambda: None)
        return cls(
            config,
            store,
            metrics,
            sources,
            ingestor,
            tracking,
            catalog,
            transport,
            deliverer,
            worker,
            replays,
            functions,
        )

    def wake_worker(self) -> None:
        """New deliveries are due (a bulk retry, a replay page): deliver them now."""
        if self.worker is not None:
            self.worker.wake()

    async def startup(self) -> BootReport:
        if self.config.database_url is None or not self.config.admin_token:
            ensure_data_dir(self.config.data_dir)  # the database and/or the admin token live here
        token, created = admin_token(self.config)
        await self.store.open()
        report = BootReport(admin_token=token, token_created=created)
        await apply_sources(self.config, self.store, report)
        await self.sources.refresh()
        await self.catalog.refresh()
        await apply_catalog(self.config, self.catalog)
        if any(app.is_function for app in self.catalog.apps()):
            await self.functions.start()  # otherwise on the first function call
        admin = AdminAPI(self.store, self.sources, self).app()
        self._admin = AnswerUnavailable(
            BearerTokenGuard(admin, token, public=frozenset({"/api/v1/openapi.json"}))
        )
        self._web = AnswerUnavailable(WebUI(self, token).app())
        self._tasks.append(asyncio.create_task(self._prune_dedup_forever()))
        self._tasks.append(asyncio.create_task(self._refresh_catalog_forever()))
        if self.worker is not None:
            # this node restarted: what it had leased before is orphaned, take it back now
            await self.store.release_leases(self.worker.name, now_ms())
            self._worker_task = asyncio.create_task(self.worker.run())
            # replays a previous run left unfinished go on (one delivering node should
            # own them: with several, each would queue the rest of the replay again)
            if resumed := await self.replays.resume_unfinished():
                log.info("resumed %d unfinished replay(s)", resumed)
        self.report = report
        return report

    async def shutdown(self) -> None:
        await self.replays.close()
        if self.worker is not None and self._worker_task is not None:
            await self.worker.stop()  # in-flight attempts finish and are settled
            await asyncio.gather(self._worker_task, return_exceptions=True)
        await self.functions.close()
        await self.transport.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.store.close()

    async def _refresh_catalog_forever(self) -> None:
        """Other nodes may change apps and destinations: re-read them now and then."""
        while True:
            await asyncio.sleep(5.0)
            try:
                await self.catalog.refresh_if_stale()
            except Exception:
                log.exception("refreshing the catalog failed")

    async def _prune_dedup_forever(self) -> None:
        window_ms = self.config.dedup_window_s * 1000
        while True:
            await asyncio.sleep(DEDUP_PRUNE_INTERVAL_S)
            try:
                await self.store.prune_dedup(now_ms() - window_ms)
            except Exception:  # keep pruning on the next tick; never kill the server
                log.exception("pruning the dedup window failed")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith("/v1/"):
                if self.config.role == "deliver":
                    await send_json(
                        send, 404, {"message": "this node only delivers (--role deliver)"}
                    )
                    return
                await self._v1(scope, receive, send)
            elif path.startswith("/api/v1/") or path == "/api/v1":
                await self._admin_app(scope, receive, send)
            elif is_analytics_js_path(path):  # analytics.js from an installed npm package
                await serve_analytics_js(scope, send)
            elif path == "/health":
                await self._health(send)
            elif path == "/metrics":
                await send_bytes(send, 200, self.metrics.render(), CONTENT_TYPE_LATEST.encode())
            elif path.startswith("/ui/") or path == "/ui" or (path == "/" and _wants_html(scope)):
                await self._web_app(scope, receive, send)
            elif path == "/":
                await send_json(
                    send,
                    200,
                    {"name": "segue", "tracking_api": "/v1/", "admin_api": "/api/v1/openapi.json"},
                )
            else:
                await send_json(send, 404, {"message": f"nothing at {path}"})
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _health(self, send: Send) -> None:
        """200 while the store can write; 503 with the reason when it cannot."""
        status, body, headers = health_response(await self.store.health(), _dialect(self.store))
        await send_json(send, status, body, headers)

    async def _admin_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._admin is None:
            await send_json(send, 503, {"message": "segue is starting"})
            return
        # Starlette routes on path minus root_path: mount the admin app at /api/v1
        await self._admin({**scope, "root_path": "/api/v1"}, receive, send)

    async def _web_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._web is None:
            await send_json(send, 503, {"message": "segue is starting"})
            return
        await self._web(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.report is None:
                        await self.startup()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _own_addresses(host: str) -> list[str]:
    """Where segue listens besides loopback: the bound address, or every address of this
    host when it listens on all of them (found through its name, as well as it can)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        names = [host]
    else:
        if host not in ("0.0.0.0", "::"):
            return [host]
        names = [socket.gethostname()]
    found = set()
    for name in names:
        with contextlib.suppress(OSError):
            found |= {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    return sorted(a.split("%", 1)[0] for a in found)


def _private_paths(config: ServerConfig) -> tuple[Path, ...]:
    """What a function's sandbox must not see: the data dir, the database file and the
    config file (the admin token, plaintext settings)."""
    paths = [config.data_dir.resolve()]
    if config.config_path is not None:
        paths.append(config.config_path)
    url = config.database()
    if url.startswith("sqlite:"):
        from segue.store.factory import sqlite_path_and_mode

        paths.append(Path(sqlite_path_and_mode(url)[0]).resolve().parent)
    return tuple(dict.fromkeys(paths))


def _wants_html(scope: Scope) -> bool:
    """A browser asking for ``/`` gets the Developer Center; API clients get JSON."""
    return "text/html" in (header(scope, b"accept") or "")


def _dialect(store: Store) -> str:
    return str(getattr(store, "dialect", type(store).__name__))
