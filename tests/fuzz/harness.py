"""The Tracking API in-process, on a fresh SQLite store, and an oracle for its answers.

``TrackingHarness`` calls the ASGI app directly (no sockets, its own event loop), so a
property-based test can send hundreds of requests a second. ``check_answer`` holds a
response to the documented contract: no 5xx, every 4xx a JSON body with a ``message``,
and every event the answer says was kept is stored with exactly what the client sent.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segue.ingest.app import TrackingAPI
from segue.ingest.pipeline import Ingestor
from segue.ingest.sources import SourceDirectory
from segue.metrics import Metrics
from segue.store import EventQuery, StoredEvent
from segue.store.factory import open_store, sqlite_url

WRITE_KEY = "wk_fuzz"
BASIC = b"Basic " + base64.b64encode(f"{WRITE_KEY}:".encode())
SINGLE_ROUTES = {
    **{name: name for name in ("identify", "track", "page", "screen", "group", "alias")},
    **dict(zip("itpsga", ("identify", "track", "page", "screen", "group", "alias"), strict=True)),
}
BATCH_ROUTES = ("batch", "import", "b")
MAX_EVENT = 32 * 1024
# fields segue sets or rewrites; every other field of an event is stored as sent
MANAGED = frozenset(
    {"type", "messageId", "userId", "anonymousId", "groupId", "previousId", "context"}
    | {"integrations", "timestamp", "originalTimestamp", "sentAt", "receivedAt"}
    | {"channel", "projectId", "writeKey"}
)
ID_KEYS = ("userId", "anonymousId", "groupId", "previousId")


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    query: bytes = b""
    chunk: int = 0  # >0: the body arrives in pieces of this size
    pixel_json: bytes | None = None  # the JSON text the pixel's data= carries


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class TrackingHarness:
    """A TrackingAPI on its own loop and SQLite file; ``send`` runs one request."""

    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        url = sqlite_url(data_dir / "segue.db") + "?synchronous=normal"
        self.store = open_store(url)
        self.seen_ids: set[str] = set()  # messageIds stored so far (dedup)
        self.last_id = 0
        self.app = self.loop.run_until_complete(self._build())

    async def _build(self) -> TrackingAPI:
        await self.store.open()
        await self.store.create_source("fuzz", WRITE_KEY)
        sources = SourceDirectory(self.store)
        await sources.refresh()
        ingestor = Ingestor(self.store, dedup_window_ms=86_400_000, metrics=Metrics())
        return TrackingAPI(ingestor, sources, metrics=Metrics())

    def close(self) -> None:
        self.loop.run_until_complete(self.store.close())
        self.loop.close()

    def send(self, request: Request) -> Response:
        return self.loop.run_until_complete(self._send(request))

    async def _send(self, request: Request) -> Response:
        scope = {
            "type": "http",
            "method": request.method,
            "path": request.path,
            "raw_path": request.path.encode(),
            "query_string": request.query,
            "headers": request.headers,
            "client": ("127.0.0.1", 50000),
        }
        pieces = list(_pieces(request.body, request.chunk))

        async def receive() -> dict[str, Any]:
            if not pieces:
                await asyncio.sleep(3600)  # the app must not read past the body
            body = pieces.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(pieces)}

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await asyncio.wait_for(self.app(scope, receive, send), 10)
        return Response(start["status"], dict(start.get("headers", [])), b"".join(chunks))

    def new_events(self) -> list[StoredEvent]:
        """Events stored since the last call, oldest first."""
        events = self.loop.run_until_complete(self.store.list_events(EventQuery(limit=100)))
        fresh = sorted((e for e in events if e.id > self.last_id), key=lambda e: e.id)
        if fresh:
            self.last_id = fresh[-1].id
        return fresh


def _pieces(body: bytes, chunk: int) -> Iterator[bytes]:
    if chunk <= 0 or not body:
        yield body
        return
    for start in range(0, len(body), chunk):
        yield body[start : start + chunk]


# -- the oracle -------------------------------------------------------------------


def check_answer(harness: TrackingHarness, request: Request, response: Response) -> int:
    """Everything the contract promises about one answer; returns how many were stored."""
    stored = harness.new_events()
    try:
        assert response.status < 500, (response.status, response.body[:300])
        name = request.path.removeprefix("/v1/")
        if request.method == "GET" and name.startswith("pixel/"):
            _check_pixel(request, response, stored)
        elif response.status >= 400:
            _check_error_body(response)
        if request.method != "POST" or response.status not in (200, 400):
            assert stored == [] or name.startswith("pixel/"), "a non-200/400 stored events"
        else:
            _check_post(harness, request, response, stored, name)
    finally:
        harness.seen_ids.update(e.message_id for e in stored)
    return len(stored)


def _check_error_body(response: Response) -> None:
    assert response.headers[b"content-type"] == b"application/json", response.headers
    body = response.json()
    assert body["success"] is False
    assert isinstance(body["code"], str)
    assert body["code"]
    assert isinstance(body["message"], str)
    assert body["message"]


def _check_pixel(request: Request, response: Response, stored: list[StoredEvent]) -> None:
    assert response.status == 200
    assert response.headers[b"content-type"] == b"image/gif"
    assert len(stored) <= 1
    if stored:
        assert request.pixel_json is not None
        assert len(request.pixel_json) <= MAX_EVENT  # the same 32 KB as a POST
        message = json.loads(request.pixel_json)
        pixel_type = request.path.rsplit("/", 1)[1]
        event = json.loads(stored[0].payload)
        assert event["channel"] in ("browser", message.get("channel"))
        assert_stored_as_sent(message, event, SINGLE_ROUTES[pixel_type])


def _check_post(
    harness: TrackingHarness,
    request: Request,
    response: Response,
    stored: list[StoredEvent],
    name: str,
) -> None:
    body = response.json()
    if response.status == 200:
        assert body == {"success": True}
    elif "rejected" not in body:
        assert stored == [], "a request-level 400 stored events"
        return
    items, route_type = sent_items(request, name)
    rejected = {r["index"] for r in body.get("rejected", [])}
    for item in body.get("rejected", []):
        assert item["message"]
        assert isinstance(item["code"], str)
        assert 0 <= item["index"] < len(items)
    accepted = [i for i in range(len(items)) if i not in rejected]
    if response.status == 400:
        assert body["accepted"] == len(accepted)
        if accepted:
            assert body["code"] == "multi_user_error"
    expected = _not_duplicates(harness.seen_ids, [items[i] for i in accepted])
    assert len(stored) == len(expected), (len(stored), len(expected))
    for item, event in zip(expected, stored, strict=True):
        assert_stored_as_sent(item, json.loads(event.payload), route_type or item["type"])


def sent_items(request: Request, name: str) -> tuple[list[Any], str | None]:
    """The messages a POST carried, decoded independently of segue (stdlib json)."""
    encoding = dict(request.headers).get(b"content-encoding", b"").strip().lower()
    raw = request.body
    if encoding in (b"gzip", b"x-gzip"):
        raw = gzip.decompress(raw)
    elif encoding == b"deflate":
        raw = zlib.decompress(raw)
    data = json.loads(raw)
    if name in BATCH_ROUTES:
        return data["batch"], None
    return [data], SINGLE_ROUTES[name]


def message_id(item: dict[str, Any]) -> str | None:
    value = item.get("messageId")
    if value is None or value == "":
        return None
    return repaired(value) if isinstance(value, str) else str(value)


def _not_duplicates(seen: set[str], items: list[Any]) -> list[Any]:
    fresh, ids = [], set(seen)
    for item in items:
        mid = message_id(item)
        if mid is not None:
            if mid in ids:
                continue
            ids.add(mid)
        fresh.append(item)
    return fresh


def assert_stored_as_sent(item: dict[str, Any], event: dict[str, Any], type_: str) -> None:
    assert event["type"] == type_
    assert "writeKey" not in event
    for key in ID_KEYS:
        if item.get(key) is not None:
            expected = id_text(repaired(item[key]))
            assert event[key] == expected, (key, item[key], event[key])
    mid = message_id(item)
    if mid is None:
        assert event["messageId"].startswith("segue-")
    else:
        assert event["messageId"] == mid
    # Managed fields are not compared (nor repaired: a `writeKey` segue dropped may be
    # nested deeper than anything it stores). Keys equal once repaired: the last wins.
    fields = {repaired(key): value for key, value in item.items()}
    for key, value in fields.items():
        if key not in MANAGED:
            assert event[key] == repaired(value), key
    for key in ("timestamp", "originalTimestamp", "receivedAt"):
        assert len(event[key]) == 24
        assert event[key].endswith("Z")
    assert isinstance(event["context"], dict)
    assert isinstance(event["integrations"], dict)


def id_text(value: Any) -> Any:
    """Ids given as JSON numbers are stored as their digits; other values as they are."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def repaired(value: Any) -> Any:
    """``value`` as segue stores it: lone UTF-16 surrogates become U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, dict):
        return {repaired(k): repaired(v) for k, v in value.items()}
    if isinstance(value, list):
        return [repaired(v) for v in value]
    return value
