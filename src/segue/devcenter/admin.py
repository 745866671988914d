"""The admin API (``/api/v1``): sources, stored events, apps, destinations,
deliveries, test events and replays, as JSON.

Everything the Developer Center shows is available here, behind the admin token.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from segue.bootstrap import new_write_key
from segue.delivery.testing import SendTestEvent
from segue.devcenter.catalog_api import CatalogAPI
from segue.devcenter.delivery_api import DeliveryAPI
from segue.devcenter.openapi import openapi_document
from segue.devcenter.responses import (
    MAX_PAGE,
    JSONResponse,
    checked_body,
    decode_cursor,
    encode_cursor,
    error,
    grouped_routes,
    json_body,
    page_limit,
)
from segue.ingest.sources import SourceDirectory
from segue.store import EventQuery, Source, SourceExistsError, SourceKind, Store, StoredEvent

if TYPE_CHECKING:
    from segue.app import Segue
    from segue.devcenter.responses import Handler

log = logging.getLogger("segue.admin")

MAX_EVENT_PAGE = MAX_PAGE
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")

__all__ = ["AdminAPI", "JSONResponse", "error", "event_json", "json_body", "source_json"]


def source_json(source: Source, event_count: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": source.id,
        "name": source.name,
        "write_key": source.write_key,
        "kind": source.kind.value,
        "enabled": source.enabled,
        "rate_limit": source.rate_limit,
        "created_at_ms": source.created_at_ms,
    }
    if event_count is not None:
        data["event_count"] = event_count
    return data


def event_json(event: StoredEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "source_id": event.source_id,
        "type": event.type,
        "message_id": event.message_id,
        "user_id": event.user_id,
        "anonymous_id": event.anonymous_id,
        "received_at_ms": event.received_at_ms,
        "event": orjson.loads(event.payload),
    }


class AdminAPI:
    """Builds the Starlette app; handlers are methods so they share the store."""

    def __init__(self, store: Store, sources: SourceDirectory, segue: Segue | None = None) -> None:
        self.store = store
        self.sources = sources
        self.segue = segue  # the running Segue, for the delivery routes

    def app(self) -> Starlette:
        routes = grouped_routes(
            [
                ("/openapi.json", "GET", self.openapi),
                ("/sources", "GET", self.list_sources),
                ("/sources", "POST", self.create_source),
                ("/sources/{name}", "GET", self.get_source),
                ("/sources/{name}", "PATCH", self.update_source),
                ("/sources/{name}", "DELETE", self.delete_source),
                ("/events", "GET", self.list_events),
                *self._delivery_routes(),
            ]
        )
        return Starlette(
            routes=routes,
            exception_handlers={HTTPException: self._http_error},  # type: ignore[dict-item]
        )

    def _delivery_routes(self) -> list[tuple[str, str, Handler]]:
        """Apps, destinations, test events, deliveries, stats, retry and replays."""
        if self.segue is None:
            return []
        segue = self.segue
        catalog_api = CatalogAPI(segue.catalog, SendTestEvent(segue.deliverer, segue.catalog))
        delivery_api = DeliveryAPI(segue.store, segue.catalog, segue.replays, segue.wake_worker)
        return [*catalog_api.routes(), *delivery_api.routes()]

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        """Starlette's own errors (404, 405 with its ``Allow``) as JSON with a message."""
        headers = dict(exc.headers or {})
        if "Allow" in headers:  # Starlette joins a set: name the methods in one order
            headers["Allow"] = ", ".join(sorted(m.strip() for m in headers["Allow"].split(",")))
        return error(exc.status_code, exc.detail, headers)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def list_sources(self, request: Request) -> Response:
        sources = await self.store.list_sources()
        counts = [await self.store.count_events(s.id) for s in sources]
        return JSONResponse(
            {"sources": [source_json(s, n) for s, n in zip(sources, counts, strict=True)]}
        )

    async def create_source(self, request: Request) -> Response:
        body = await checked_body(request, "SourceCreate")
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            return error(400, "`enabled` must be true or false")
        name = body.get("name")
        if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS:
            return error(400, "`name` is required: lower-case letters, digits, - and _")
        write_key = body.get("write_key") or new_write_key()
        if not isinstance(write_key, str):
            return error(400, "`write_key` must be a non-empty string")
        try:
            kind = SourceKind(body.get("kind", "standard"))
        except ValueError:
            return error(400, "`kind` must be standard or stream")
        rate_limit = _rate_limit(body)
        try:
            source = await self.store.create_source(name, write_key, kind, rate_limit)
        except SourceExistsError as exc:
            return error(409, str(exc))
        if not enabled:
            source = await self.store.update_source(name, enabled=False) or source
        self.sources.invalidate()
        return JSONResponse(source_json(source, 0), status_code=201)

    async def get_source(self, request: Request) -> Response:
        source = await self.store.get_source(request.path_params["name"])
        if source is None:
            return error(404, f"no source named {request.path_params['name']!r}")
        return JSONResponse(source_json(source, await self.store.count_events(source.id)))

    async def update_source(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await checked_body(request, "SourcePatch")
        enabled = body.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            return error(400, "`enabled` must be true or false")
        write_key = body.get("write_key")
        if body.get("rotate_write_key") is True:
            write_key = new_write_key()
        if write_key is not None and (not isinstance(write_key, str) or not write_key):
            return error(400, "`write_key` must be a non-empty string")
        kind = None
        if "kind" in body:
            try:
                kind = SourceKind(body["kind"])
            except ValueError:
                return error(400, "`kind` must be standard or stream")
        rate_limit = (_rate_limit(body) or 0.0) if "rate_limit" in body else None
        try:
            source = await self.store.update_source(
                name, enabled=enabled, write_key=write_key, kind=kind, rate_limit=rate_limit
            )
        except SourceExistsError as exc:
            return error(409, str(exc))
        if source is None:
            return error(404, f"no source named {name!r}")
        self.sources.invalidate()
        return JSONResponse(source_json(source, await self.store.count_events(source.id)))

    async def delete_source(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not await self.store.delete_source(name):
            return error(404, f"no source named {name!r}")
        self.sources.invalidate()
        return Response(status_code=204)

    async def list_events(self, request: Request) -> Response:
        params = request.query_params
        limit = page_limit(request)
        source_id = None
        if name := params.get("source"):
            source = await self.store.get_source(name)
            if source is None:
                return error(404, f"no source named {name!r}")
            source_id = source.id
        before = decode_cursor(params.get("cursor"))
        query = EventQuery(
            source_id=source_id,
            user_id=params.get("user_id") or None,
            type=params.get("type") or None,
            limit=limit,
            before=before,
        )
        events = await self.store.list_events(query)
        cursor = encode_cursor(events[-1].id) if len(events) == limit else None
        return JSONResponse({"events": [event_json(e) for e in events], "next_cursor": cursor})


def _rate_limit(body: dict[str, Any]) -> float | None:
    value = body.get("rate_limit")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise HTTPException(400, "`rate_limit` must be a number of requests per second (0 = none)")
    return float(value)


def _nothing() -> None:
    return None
