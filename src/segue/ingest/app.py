"""The Tracking API as a lean ASGI app: ``/v1/*`` routes, write keys, limits.

Everything Segment's SDKs send lands here. The answer is 200 only after the events
are committed; bad input gets a 4xx with Segment's rejection code and a message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from segue.asgi import Receive, Scope, Send, header, send_bytes, send_json
from segue.ingest.auth import resolve_write_key
from segue.ingest.body import (
    BadEncodingError,
    BodyTooLargeError,
    ClientDisconnectedError,
    decode_content,
    read_body,
)
from segue.ingest.browser import is_browser_route, serve_browser_route
from segue.ingest.cors import CORS, PREFLIGHT
from segue.ingest.pipeline import BatchFields, Ingestor, IngestOutcome, ItemRejection
from segue.ingest.pixel import PIXEL_GIF, PixelDataError, pixel_message
from segue.ingest.ratelimit import RateLimiter
from segue.ingest.rejections import Rejected, RejectionLog
from segue.ingest.sources import SourceDirectory
from segue.metrics import Metrics
from segue.spec import IngestContext, RejectionCode, wire
from segue.store import Source

MAX_SINGLE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2500

log = logging.getLogger("segue.ingest")

_SINGLE_ROUTES = {
    "identify": ("identify", None),
    "track": ("track", None),
    "page": ("page", None),
    "screen": ("screen", None),
    "group": ("group", None),
    "alias": ("alias", None),
    # analytics.js short routes
    "i": ("identify", "browser"),
    "t": ("track", "browser"),
    "p": ("page", "browser"),
    "s": ("screen", "browser"),
    "g": ("group", "browser"),
    "a": ("alias", "browser"),
}
_BATCH_ROUTES = frozenset({"batch", "import", "b"})

_OK = orjson.dumps({"success": True})
_CORS = CORS
_PREFLIGHT = PREFLIGHT


class IngestError(Exception):
    """A rejected request: becomes a JSON error response."""

    def __init__(
        self,
        status: int,
        code: RejectionCode,
        message: str,
        extra: dict[str, Any] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        counted: bool = False,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.extra = extra or {}
        self.headers = headers or []
        self.counted = counted  # the pipeline already counted its rejected events
        # for the rejection log, filled in on the way out (never on the success path)
        self.items: list[ItemRejection] = []  # per-item rejections, if that is what this is
        self.source: Source | None = None
        self.payload: dict[str, Any] | None = None
        self.batch = False

    def body(self) -> dict[str, Any]:
        return {"success": False, "code": self.code.value, "message": self.message, **self.extra}


@dataclass(frozen=True, slots=True)
class IngestSettings:
    trust_forwarded_for: bool = False


class TrackingAPI:
    """ASGI app for ``/v1/...``; mount it at the root path."""

    def __init__(
        self,
        ingestor: Ingestor,
        sources: SourceDirectory,
        *,
        metrics: Metrics | None = None,
        settings: IngestSettings | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.sources = sources
        self.limiter = RateLimiter()
        self.metrics = metrics
        self.settings = settings or IngestSettings()
        self.rejections = RejectionLog()  # recent 4xx answers, per process (not durable)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "OPTIONS":
            await send_bytes(send, 204, b"", extra=_PREFLIGHT)
            return
        name = path[4:] if path.startswith("/v1/") else ""
        try:
            if method == "GET" and name.startswith("pixel/"):
                await self._pixel(scope, send, name[6:])
                return
            if is_browser_route(name):  # analytics.js: settings, telemetry
                trust = self.settings.trust_forwarded_for
                await serve_browser_route(
                    scope, receive, send, name, self.sources, trust_forwarded=trust
                )
                return
            if name in _BATCH_ROUTES or name in _SINGLE_ROUTES:
                if method != "POST":
                    raise IngestError(
                        405,
                        RejectionCode.BAD_REQUEST,
                        f"use POST for {path}",
                        headers=[(b"allow", b"POST, OPTIONS")],
                    )
                await self._post(scope, receive, send, name)
                return
            raise IngestError(404, RejectionCode.BAD_REQUEST, f"no Tracking API route {path}")
        except IngestError as error:
            if self.metrics is not None and not error.counted:
                self.metrics.events_rejected.labels(error.code.value).inc()
            self._log_rejection(path, error)
            await send_json(send, error.status, error.body(), [*_CORS, *error.headers])
        except ClientDisconnectedError:
            return

    async def _post(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        is_batch = name in _BATCH_ROUTES
        limit = MAX_BATCH_BYTES if is_batch else MAX_SINGLE_BYTES
        data, size = await _read_json(scope, receive, limit)
        try:
            source = await self._authenticate(scope, data)
        except IngestError as error:
            error.payload = data
            raise
        received_at = datetime.now(UTC)
        try:
            if is_batch:
                # no item can be over the per-event cap if the whole body is not
                check_size = size > MAX_SINGLE_BYTES
                outcome = await self._ingest_batch(scope, source, data, received_at, check_size)
            else:
                route_type, channel = _SINGLE_ROUTES[name]
                data["type"] = route_type
                ctx = self._context(scope, source, received_at, channel)
                outcome = await self.ingestor.ingest(source, [data], ctx)
            _raise_for_rejections(outcome)
        except IngestError as error:
            error.source, error.payload, error.batch = source, data, is_batch
            raise
        await send_bytes(send, 200, _OK, extra=_CORS)

    async def _ingest_batch(
        self,
        scope: Scope,
        source: Source,
        data: dict[str, Any],
        received_at: datetime,
        check_size: bool,
    ) -> IngestOutcome:
        items = data.get("batch")
        if not isinstance(items, list):
            raise IngestError(400, RejectionCode.BAD_REQUEST, "`batch` must be an array of events")
        if not items:
            raise IngestError(400, RejectionCode.EMPTY_BATCH, "the batch has no events")
        if len(items) > MAX_BATCH_EVENTS:
            raise IngestError(
                400,
                RejectionCode.BAD_REQUEST,
                f"a batch holds at most {MAX_BATCH_EVENTS} events; this one has {len(items)}",
            )
        context, integrations = data.get("context"), data.get("integrations")
        batch = BatchFields(
            sent_at=data.get("sentAt"),
            context=context if isinstance(context, dict) else None,
            integrations=integrations if isinstance(integrations, dict) else None,
        )
        ctx = self._context(scope, source, received_at, None)
        return await self.ingestor.ingest(source, items, ctx, batch, check_item_size=check_size)

    async def _pixel(self, scope: Scope, send: Send, type_: str) -> None:
        """``GET /v1/pixel/track?data=<base64 JSON>``: always a GIF, events stored if valid.

        A pixel never fails, whatever it carries: the browser can do nothing with an
        error. Refused events only show in ``segue_events_rejected_total``.
        """
        try:
            await self._pixel_event(scope, type_)
        except IngestError as error:
            if self.metrics is not None and not error.counted:
                self.metrics.events_rejected.labels(error.code.value).inc()
        except Exception:  # the GIF goes out all the same
            log.exception("a pixel event could not be ingested")
        await send_bytes(send, 200, PIXEL_GIF, b"image/gif", _CORS)

    async def _pixel_event(self, scope: Scope, type_: str) -> None:
        route = _SINGLE_ROUTES.get(type_)
        if route is None:
            raise IngestError(404, RejectionCode.BAD_REQUEST, f"no pixel type {type_[:40]!r}")
        try:
            data = pixel_message(scope.get("query_string", b""), MAX_SINGLE_BYTES)
        except PixelDataError as exc:
            raise IngestError(400, RejectionCode.BAD_REQUEST, str(exc)) from None
        source = await self._authenticate(scope, data)
        data["type"] = route[0]
        ctx = self._context(scope, source, datetime.now(UTC), "browser")
        await self.ingestor.ingest(source, [data], ctx)  # counts what it refuses

    async def _authenticate(self, scope: Scope, data: dict[str, Any]) -> Source:
        key = resolve_write_key(header(scope, b"authorization"), data.pop("writeKey", None))
        if key is None:
            raise IngestError(
                401,
                RejectionCode.UNKNOWN_SOURCE,
                "no write key: send it as the Basic auth username or as `writeKey` in the body",
            )
        source = await self.sources.by_write_key(key)
        if source is None:
            raise IngestError(401, RejectionCode.UNKNOWN_SOURCE, "unknown write key")
        if not source.enabled:
            error = IngestError(
                403, RejectionCode.SOURCE_DISABLED, f"the source {source.name!r} is disabled"
            )
            error.source = source
            raise error
        retry_after = self.limiter.check(source.id, source.rate_limit)
        if retry_after:
            error = IngestError(
                429,
                RejectionCode.RATE_LIMITED,
                f"the source {source.name!r} is limited to {source.rate_limit:g} requests/s",
                headers=[(b"retry-after", str(retry_after).encode())],
            )
            error.source = source
            raise error
        return source

    def _log_rejection(self, route: str, error: IngestError) -> None:
        """Keep a 4xx answer in :attr:`rejections`: each rejected item, or the request."""
        data = error.payload
        rejected: list[Rejected]
        if error.items:
            items = data.get("batch") if error.batch and data is not None else None
            rejected = [
                Rejected(
                    r.code.value,
                    r.message,
                    r.index if error.batch else None,
                    _item(items, r.index) if error.batch else data,
                )
                for r in error.items
            ]
        else:
            rejected = [Rejected(error.code.value, error.message, None, data)]
        source = error.source
        self.rejections.record(
            route=route,
            status=error.status,
            rejected=rejected,
            source_id=source.id if source else None,
            source_name=source.name if source else None,
        )

    def _context(
        self, scope: Scope, source: Source, received_at: datetime, channel: str | None
    ) -> IngestContext:
        return IngestContext(
            source_id=source.id,
            received_at=received_at,
            client_ip=self._client_ip(scope),
            channel=channel,
        )

    def _client_ip(self, scope: Scope) -> str | None:
        if self.settings.trust_forwarded_for:
            forwarded = header(scope, b"x-forwarded-for")
            if forwarded:
                return forwarded.split(",")[0].strip()
        client = scope.get("client")
        return str(client[0]) if client else None


async def _read_json(scope: Scope, receive: Receive, limit: int) -> tuple[dict[str, Any], int]:
    """The body as a JSON object, whatever the Content-Type (analytics.js sends text/plain)."""
    length = header(scope, b"content-length")
    if length is not None and _declares_more_than(length.strip(), limit):
        raise _too_large(limit)
    try:
        body = decode_content(
            await read_body(receive, limit), header(scope, b"content-encoding"), limit
        )
    except BodyTooLargeError:
        raise _too_large(limit) from None
    except BadEncodingError as exc:
        raise IngestError(400, RejectionCode.BAD_REQUEST, str(exc)) from None
    try:
        data = wire.decode(body)  # integers of any size stay exact
    except wire.JSONError as exc:
        raise IngestError(
            400, RejectionCode.BAD_REQUEST, f"the body is not valid JSON: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise IngestError(400, RejectionCode.BAD_REQUEST, "the body must be a JSON object")
    return data, len(body)


def _too_large(limit: int) -> IngestError:
    kind = "batch" if limit == MAX_BATCH_BYTES else "event"
    return IngestError(
        400, RejectionCode.BAD_REQUEST, f"the {kind} request is larger than {limit // 1024} KB"
    )


def _item(items: object, index: int) -> object:
    return items[index] if isinstance(items, list) and 0 <= index < len(items) else None


def _declares_more_than(length: str, limit: int) -> bool:
    """A Content-Length over ``limit``; ASCII digits only (``"²".isdigit()`` is true)."""
    if not (length.isascii() and length.isdigit()):
        return False  # not a length: the body is read under the cap all the same
    return len(length) > len(str(limit)) or int(length) > limit


def _raise_for_rejections(outcome: IngestOutcome) -> None:
    rejected = outcome.rejections
    if not rejected:
        return
    kept = outcome.accepted + outcome.duplicates
    if kept == 0:  # nothing was kept: answer with the first reason
        first = rejected[0]
        error = IngestError(
            400,
            first.code,
            first.message,
            {"accepted": 0, "rejected": [r.as_json() for r in rejected]},
            counted=True,
        )
        error.items = rejected
        raise error
    error = IngestError(
        400,
        RejectionCode.MULTI_USER_ERROR,
        f"{len(rejected)} of {len(rejected) + kept} events were rejected;"
        f" {kept} {'was' if kept == 1 else 'were'} accepted",
        {"accepted": kept, "rejected": [r.as_json() for r in rejected]},
        counted=True,
    )
    error.items = rejected
    raise error
