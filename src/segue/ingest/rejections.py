"""A bounded in-memory log of recent ingest rejections, for the UI's live page.

The log is **per process and not durable**: it lives in this server's memory only,
is empty after a restart, and each node of a cluster sees only the requests it
answered. It keeps the newest ``per_source`` rejections of each source, plus as
many for requests that named no known source (a missing or unknown write key, or
a request refused before its write key was read).

Nothing is recorded for accepted requests: the Tracking API only calls
:meth:`RejectionLog.record` on its 4xx path. Previews never carry a write key:
``writeKey`` fields are dropped (at any depth) and headers are never looked at.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from segue.spec import wire

PER_SOURCE = 200
PREVIEW_CHARS = 500
_MAX_ITEMS = 50
_SECRET_KEYS = frozenset({"writekey", "write_key", "authorization"})


@dataclass(frozen=True, slots=True)
class RejectionEntry:
    seq: int  # increases with every entry in this process: a polling cursor
    time_ms: int
    source_id: str | None
    source_name: str | None
    route: str
    status: int
    code: str
    message: str
    index: int | None  # the item's index in a batch; None for a whole request
    preview: str

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time_ms": self.time_ms,
            "source": self.source_name,
            "route": self.route,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "index": self.index,
            "preview": self.preview,
        }


@dataclass(frozen=True, slots=True)
class Rejected:
    """One rejection to record: a whole request (``index`` None) or one batch item."""

    code: str
    message: str
    index: int | None = None
    payload: Any = None  # the offending event (or body), if it was parsed


class RejectionLog:
    """The newest rejections per source (and for no known source), in memory only."""

    def __init__(self, per_source: int = PER_SOURCE) -> None:
        self.per_source = per_source
        self._by_source: dict[str, deque[RejectionEntry]] = {}
        self._unknown: deque[RejectionEntry] = deque(maxlen=per_source)
        self._seq = itertools.count(1)

    def record(
        self,
        *,
        route: str,
        status: int,
        rejected: Iterable[Rejected],
        source_id: str | None = None,
        source_name: str | None = None,
        now_ms: int | None = None,
    ) -> None:
        if source_id is None:
            log = self._unknown
        elif source_id in self._by_source:
            log = self._by_source[source_id]
        else:
            log = self._by_source[source_id] = deque(maxlen=self.per_source)
        at = int(time.time() * 1000) if now_ms is None else now_ms
        # a 2500-item batch of bad events keeps only what fits in the log
        for item in itertools.islice(rejected, self.per_source):
            log.append(
                RejectionEntry(
                    seq=next(self._seq),
                    time_ms=at,
                    source_id=source_id,
                    source_name=source_name,
                    route=route,
                    status=status,
                    code=item.code,
                    message=item.message,
                    index=item.index,
                    preview=preview(item.payload),
                )
            )

    @property
    def last_seq(self) -> int:
        """The newest entry's cursor (0 before any): poll for entries after it."""
        newest = [log[-1].seq for log in (*self._by_source.values(), self._unknown) if log]
        return max(newest, default=0)

    def for_source(self, source_id: str, after: int = 0) -> list[RejectionEntry]:
        """The source's rejections newer than the ``after`` cursor, newest first."""
        return _newest_first(self._by_source.get(source_id, ()), after)

    def unknown_source(self, after: int = 0) -> list[RejectionEntry]:
        """Rejections of requests without a known source, newest first."""
        return _newest_first(self._unknown, after)

    def forget(self, source_id: str) -> None:
        self._by_source.pop(source_id, None)


def _newest_first(entries: Iterable[RejectionEntry], after: int) -> list[RejectionEntry]:
    return [e for e in reversed(list(entries)) if e.seq > after]


def preview(payload: Any, limit: int = PREVIEW_CHARS) -> str:
    """The first ``limit`` characters of the payload's JSON, without any write key."""
    if payload is None:
        return ""
    scrubbed = _scrub(payload)  # at most 21 levels, 50 items each: safe to print
    try:
        text = orjson.dumps(scrubbed, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        try:  # integers beyond 64 bits
            text = wire.encode(scrubbed).decode()
        except wire.JSONError:
            text = repr(scrubbed)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return "…"
    # a preview shows 500 characters: big bodies are cut short before encoding
    if isinstance(value, dict):
        return {
            k: _scrub(v, depth + 1)
            for k, v in itertools.islice(value.items(), _MAX_ITEMS)
            if not (isinstance(k, str) and k.lower() in _SECRET_KEYS)
        }
    if isinstance(value, list):
        return [_scrub(v, depth + 1) for v in value[:_MAX_ITEMS]]
    if isinstance(value, str) and len(value) > PREVIEW_CHARS:
        return value[:PREVIEW_CHARS]
    return value
