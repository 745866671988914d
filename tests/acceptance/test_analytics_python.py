"""Acceptance: Segment's official ``segment-analytics-python`` client against a real segue.

The client runs as in production (background consumer thread, default batch size,
``/v1/batch`` with Basic auth); every event it sends must be stored exactly once,
in the normalised form Segment delivers.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from segment.analytics.client import Client
from tests.support.server import WRITE_KEY, SegueProcess

PER_TYPE = 400  # 6 types x 400 = 2,400 events per client run
TYPES = ("identify", "track", "page", "screen", "group", "alias")
ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TIMESTAMP_FIELDS = ("receivedAt", "timestamp", "originalTimestamp", "sentAt")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _properties(tag: str, i: int) -> dict[str, Any]:
    """Varied JSON: nesting, unicode, floats, booleans, nulls, arrays."""
    return {
        "tag": tag,
        "index": i,
        "price": 19.99 + i / 100,
        "currency": "EUR",
        "in_stock": i % 2 == 0,
        "coupon": None,
        "tags": ["a", "b", str(i)],
        "nested": {"level": {"deeper": [1, 2.5, {"k": "ü✓ 漢字"}]}},
    }


def _traits(tag: str, i: int) -> dict[str, Any]:
    return {
        "email": f"user{i}@{tag}.example",
        "name": f"Ünïcødé Person {i}",
        "plan": "premium" if i % 3 else "free",
        "logins": i,
        "address": {"city": "Zürich", "postalCode": f"80{i:02d}"},
    }


def _send_all(client: Client, tag: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Send PER_TYPE calls of each type; returns messageId -> (type, message as sent)."""
    sent: dict[str, tuple[str, dict[str, Any]]] = {}

    def keep(kind: str, result: tuple[bool, dict[str, Any]]) -> None:
        queued, msg = result
        assert queued, f"the client refused to queue a {kind} call"
        assert msg["messageId"] not in sent
        sent[msg["messageId"]] = (kind, msg)

    for i in range(PER_TYPE):
        keep("identify", client.identify(f"{tag}-identify-{i}", _traits(tag, i)))
        keep(
            "track",
            client.track(f"{tag}-track-{i}", "Order Completed", _properties(tag, i)),
        )
        keep(
            "page",
            client.page(f"{tag}-page-{i}", "Docs", f"Page {i}", _properties(tag, i)),
        )
        keep(
            "screen",
            client.screen(f"{tag}-screen-{i}", "Onboarding", f"Screen {i}", _properties(tag, i)),
        )
        keep(
            "group",
            client.group(f"{tag}-group-{i}", f"{tag}-org-{i}", _traits(tag, i)),
        )
        keep("alias", client.alias(f"{tag}-anon-{i}", f"{tag}-alias-{i}"))
    return sent


def _check_event(stored: dict[str, Any], kind: str, msg: dict[str, Any], source_id: str) -> None:
    event = stored["event"]
    assert stored["type"] == kind
    assert event["type"] == kind
    assert event["messageId"] == msg["messageId"] == stored["message_id"]
    assert event["projectId"] == source_id
    assert stored["source_id"] == source_id
    assert event["channel"] == "server"
    assert event["context"]["library"]["name"] == "analytics-python"
    assert event["userId"] == msg["userId"]

    for name in TIMESTAMP_FIELDS:
        value = event.get(name)
        assert isinstance(value, str), f"{name} missing in {event}"
        assert ISO_MS_Z.match(value), f"{name}={value!r} is not ISO-8601 with ms and Z"
    # the client's own call time survives as originalTimestamp
    sent_ts = _parse(msg["timestamp"])
    assert _parse(event["originalTimestamp"]) == sent_ts.replace(
        microsecond=sent_ts.microsecond // 1000 * 1000
    )
    received = _parse(event["receivedAt"])
    corrected = _parse(event["timestamp"])
    assert corrected <= received + timedelta(milliseconds=1)
    # same clock on both ends: the skew correction must stay close to the call time
    assert abs(corrected - sent_ts) < timedelta(seconds=10)
    assert _parse(event["sentAt"]) <= received + timedelta(milliseconds=1)

    if kind in ("track", "page", "screen"):
        assert event["properties"] == msg["properties"]
    if kind in ("identify", "group"):
        assert event["traits"] == msg["traits"]
    if kind == "track":
        assert event["event"] == msg["event"]
    if kind in ("page", "screen"):
        assert event["name"] == msg["name"]
        assert event["category"] == msg["category"]
    if kind == "group":
        assert event["groupId"] == msg["groupId"]
    if kind == "alias":
        assert event["previousId"] == msg["previousId"]


@pytest.mark.slow
@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_official_python_client_events_arrive_exactly_once(
    segue_server: SegueProcess, caplog: pytest.LogCaptureFixture, gzip: bool
) -> None:
    errors: list[tuple[Exception, list[Any]]] = []
    tag = f"py{uuid.uuid4().hex[:8]}"
    caplog.set_level(logging.WARNING, logger="segment")

    client = Client(
        write_key=WRITE_KEY,
        host=segue_server.url,
        sync_mode=False,
        gzip=gzip,
        on_error=lambda error, batch: errors.append((error, batch)),
        max_retries=2,
    )
    started = datetime.now(UTC)
    try:
        sent = _send_all(client, tag)
        client.flush()
    finally:
        client.join()

    assert errors == [], f"the client reported errors: {errors[:3]}"
    segment_logs = [r for r in caplog.records if r.name.startswith("segment")]
    assert segment_logs == [], [r.getMessage() for r in segment_logs]
    assert len(sent) == PER_TYPE * len(TYPES) >= 2000

    with segue_server.admin() as admin:
        response = admin.get("/sources/test")
        assert response.status_code == 200
        source_id = response.json()["id"]

    stored = segue_server.all_events()
    stored_ids = [e["message_id"] for e in stored]
    duplicates = [mid for mid, n in Counter(stored_ids).items() if n > 1]
    assert duplicates == [], f"{len(duplicates)} messageIds stored more than once"
    assert set(stored_ids) == set(sent), (
        f"missing {len(set(sent) - set(stored_ids))}, unexpected {len(set(stored_ids) - set(sent))}"
    )
    assert len(stored) == len(sent)
    assert Counter(e["type"] for e in stored) == Counter(kind for kind, _ in sent.values())
    assert Counter(e["type"] for e in stored) == dict.fromkeys(TYPES, PER_TYPE)

    for event in stored:
        kind, msg = sent[event["message_id"]]
        _check_event(event, kind, msg, source_id)
        assert _parse(event["event"]["receivedAt"]) >= started - timedelta(milliseconds=1)
