"""Turn a validated client message into the message segue stores and delivers.

Runs once per event on the ingest hot path: no deepcopy, no regexes, and the
per-request values (receivedAt, a batch-level sentAt) are formatted once and reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import uuid4

from segue.spec.timestamps import (
    corrected_timestamp,
    format_parsed,
    format_timestamp,
    parse_timestamp,
)

CHANNELS: frozenset[str] = frozenset({"server", "browser", "mobile"})
_ID_KEYS = ("userId", "anonymousId", "groupId", "previousId")
_BROWSER_HINTS = ("analytics.js", "analytics-next", "analytics-browser")
_MOBILE_HINTS = ("ios", "android", "react-native", "flutter", "swift", "kotlin", "xamarin")
_CACHE_LIMIT = 256
_CACHEABLE_TEXT = 64  # longer "timestamps" are junk; don't let them pin memory


@dataclass(frozen=True, slots=True)
class IngestContext:
    """What the ingest layer knows about the request an event arrived in."""

    source_id: str
    received_at: datetime  # aware UTC
    client_ip: str | None = None
    channel: str | None = None  # "server" | "browser" | "mobile"; None = infer


# Batch-shared values repeat for every item of a request; small bounded memos
# turn N parses/formats into one. Races between threads only cost a recompute.
_formatted: dict[datetime, str] = {}
_parsed: dict[str, datetime | None] = {}


def _format_shared(dt: datetime) -> str:
    text = _formatted.get(dt)
    if text is None:
        if len(_formatted) >= _CACHE_LIMIT:
            _formatted.clear()
        text = _formatted[dt] = format_timestamp(dt)
    return text


def _parse_shared(value: object) -> datetime | None:
    if type(value) is not str or len(value) > _CACHEABLE_TEXT:
        return parse_timestamp(value)
    try:
        return _parsed[value]
    except KeyError:
        if len(_parsed) >= _CACHE_LIMIT:
            _parsed.clear()
        dt = _parsed[value] = parse_timestamp(value)
        return dt


@lru_cache(maxsize=512)
def _channel_for_library(name: str) -> str:
    """Library names are few and repeat endlessly, hence the cache."""
    lowered = name.lower()
    if any(hint in lowered for hint in _BROWSER_HINTS):
        return "browser"
    if any(hint in lowered for hint in _MOBILE_HINTS):
        return "mobile"
    return "server"


def infer_channel(message: dict[str, Any]) -> str:
    """Guess server/browser/mobile from ``context.library.name``; unknown means server."""
    context = message.get("context")
    if isinstance(context, dict):
        library = context.get("library")
        if isinstance(library, dict):
            name = library.get("name")
            if isinstance(name, str):
                return _channel_for_library(name)
    return "server"


def _merged(batch: dict[str, Any] | None, item: object) -> dict[str, Any]:
    """Batch-level object under the item's own (item keys win); always a fresh dict."""
    if isinstance(item, dict):
        return {**batch, **item} if batch else dict(item)
    return dict(batch) if batch else {}


def normalize(
    message: dict[str, Any],
    ctx: IngestContext,
    *,
    batch_sent_at: object = None,
    batch_context: dict[str, Any] | None = None,
    batch_integrations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the stored/delivered form of a validated message; ``message`` is not modified.

    Copies are shallow: nested values (properties, traits, ...) are shared with the
    input. ``batch_sent_at`` may be a string or an already-parsed datetime.
    """
    out = dict(message)
    out.pop("writeKey", None)
    context = _merged(batch_context, message.get("context"))
    out["context"] = context
    out["integrations"] = _merged(batch_integrations, message.get("integrations"))

    for key in _ID_KEYS:
        value = out.get(key)
        if (
            value is not None
            and type(value) is not str
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            out[key] = str(value)

    message_id = out.get("messageId")
    if message_id is None or message_id == "":
        out["messageId"] = "segue-" + uuid4().hex
    elif type(message_id) is not str:
        out["messageId"] = str(message_id)

    _set_timestamps(out, ctx.received_at, batch_sent_at)

    channel = out.get("channel")
    if type(channel) is not str or channel not in CHANNELS:
        channel = ctx.channel or infer_channel(out)
        out["channel"] = channel

    client_ip = ctx.client_ip
    if (
        client_ip
        and not context.get("ip")
        and (channel != "server" or context.get("direct") is True)
    ):
        context["ip"] = client_ip

    out["projectId"] = ctx.source_id
    return out


def _set_timestamps(out: dict[str, Any], received_at: datetime, batch_sent_at: object) -> None:
    """sentAt, originalTimestamp, timestamp (skew-corrected) and receivedAt, all canonical."""
    sent_at: datetime | None = None
    raw_sent = out.get("sentAt")
    if raw_sent is not None:
        sent_at = parse_timestamp(raw_sent)
        if sent_at is not None:
            out["sentAt"] = format_parsed(raw_sent, sent_at)
    if sent_at is None and batch_sent_at is not None:
        sent_at = _parse_shared(batch_sent_at)
        if sent_at is not None:
            out["sentAt"] = _format_shared(sent_at)

    raw_original = out.get("originalTimestamp")
    original = None if raw_original is None else parse_timestamp(raw_original)
    if original is None:
        raw_original = out.get("timestamp")
        original = None if raw_original is None else parse_timestamp(raw_original)

    received = _format_shared(received_at)
    out["receivedAt"] = received
    if original is None:
        # No client time at all: the arrival time is the best (and only) answer.
        out["originalTimestamp"] = received
        out["timestamp"] = received
        return
    original_text = format_parsed(raw_original, original)
    out["originalTimestamp"] = original_text
    if sent_at is None:
        out["timestamp"] = original_text
    else:
        out["timestamp"] = format_timestamp(corrected_timestamp(original, sent_at, received_at))
