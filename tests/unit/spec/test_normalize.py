"""normalize(): the stored/delivered shape, batch merging, timestamps, channel and ip."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from segue.spec import IngestContext, infer_channel, normalize

RECEIVED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
RECEIVED_TEXT = "2024-05-01T12:00:00.123Z"
CTX = IngestContext(source_id="src_1", received_at=RECEIVED)


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Signed Up", "userId": "u1", **fields}


def lib(name: str) -> dict[str, Any]:
    return {"library": {"name": name, "version": "1.0.0"}}


def test_analytics_python_track_event() -> None:
    item = {
        "integrations": {},
        "anonymousId": None,
        "properties": {"plan": "pro"},
        "timestamp": "2024-05-01T11:59:58.769+00:00",
        "type": "track",
        "userId": "97980cfea0067",
        "event": "Signed Up",
        "context": lib("analytics-python"),
        "messageId": "0f4d2c5e-8a0b-4f3c-9d2e-1a2b3c4d5e6f",
    }
    out = normalize(item, CTX, batch_sent_at="2024-05-01T11:59:59.767+00:00")
    assert out == {
        **item,
        "sentAt": "2024-05-01T11:59:59.767Z",
        "originalTimestamp": "2024-05-01T11:59:58.769Z",
        # 12:00:00.123456 - (59.767 - 58.769)
        "timestamp": "2024-05-01T11:59:59.125Z",
        "receivedAt": RECEIVED_TEXT,
        "channel": "server",
        "projectId": "src_1",
    }


def test_write_key_is_dropped_and_everything_else_kept() -> None:
    item = track(writeKey="wk_secret", Custom={"Casing": 1}, version=2, user_id="x")
    out = normalize(item, CTX)
    assert "writeKey" not in out
    assert out["Custom"] == {"Casing": 1}
    assert out["version"] == 2
    assert out["user_id"] == "x"
    assert out["type"] == "track"
    assert out["event"] == "Signed Up"
    assert out["projectId"] == "src_1"


def test_input_is_not_mutated() -> None:
    item = track(
        writeKey="wk",
        userId=5,
        context={"library": {"name": "analytics.js"}, "page": {"url": "https://x"}},
        integrations={"Mixpanel": False},
        properties={"a": [1, 2]},
        timestamp="2024-05-01T11:59:58.000Z",
    )
    batch_context = {"direct": True, "locale": "en-US"}
    batch_integrations = {"All": True}
    before = copy.deepcopy((item, batch_context, batch_integrations))
    ctx = IngestContext(source_id="s", received_at=RECEIVED, client_ip="203.0.113.9")
    out = normalize(
        item,
        ctx,
        batch_sent_at="2024-05-01T11:59:59.000Z",
        batch_context=batch_context,
        batch_integrations=batch_integrations,
    )
    assert out["context"]["ip"] == "203.0.113.9"
    assert (item, batch_context, batch_integrations) == before
    assert out["context"] is not item["context"]
    assert out["integrations"] is not item["integrations"]


def test_batch_context_and_integrations_merge_item_wins() -> None:
    item = track(
        context={"locale": "de-DE", "page": {"path": "/a"}},
        integrations={"Mixpanel": False},
    )
    out = normalize(
        item,
        CTX,
        batch_context={"locale": "en-US", "timezone": "Europe/Berlin", "page": {"path": "/b"}},
        batch_integrations={"All": True, "Mixpanel": True},
    )
    assert out["context"] == {
        "locale": "de-DE",
        "timezone": "Europe/Berlin",
        "page": {"path": "/a"},
    }
    assert out["integrations"] == {"All": True, "Mixpanel": False}


@pytest.mark.parametrize(
    ("batch_context", "item_context", "expected"),
    [
        (None, None, {}),
        ({"a": 1}, None, {"a": 1}),
        (None, {"b": 2}, {"b": 2}),
        ({}, {}, {}),
    ],
)
def test_context_defaults(
    batch_context: dict[str, Any] | None,
    item_context: dict[str, Any] | None,
    expected: dict[str, Any],
) -> None:
    item = track() if item_context is None else track(context=item_context)
    out = normalize(item, CTX, batch_context=batch_context)
    assert out["context"] == expected
    assert out["integrations"] == {}


def test_batch_context_is_copied_not_shared() -> None:
    batch_context = {"locale": "en-US"}
    out = normalize(track(), CTX, batch_context=batch_context)
    assert out["context"] == batch_context
    assert out["context"] is not batch_context


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("userId", 5, "5"),
        ("userId", 5.0, "5.0"),
        ("anonymousId", 12345678901234567890, "12345678901234567890"),
        ("groupId", 7, "7"),
        ("previousId", 3.25, "3.25"),
        ("userId", "already", "already"),
    ],
)
def test_numeric_ids_become_strings(field: str, value: object, expected: str) -> None:
    assert normalize(track(**{field: value}), CTX)[field] == expected


def test_absent_ids_stay_absent() -> None:
    out = normalize({"type": "track", "event": "E", "anonymousId": "a"}, CTX)
    assert "userId" not in out
    assert "groupId" not in out
    assert "previousId" not in out


def test_message_id_kept_or_stringified() -> None:
    assert normalize(track(messageId="ajs-1"), CTX)["messageId"] == "ajs-1"
    assert normalize(track(messageId=42), CTX)["messageId"] == "42"


@pytest.mark.parametrize("fields", [{}, {"messageId": None}, {"messageId": ""}])
def test_message_id_generated_when_missing(fields: dict[str, Any]) -> None:
    message_id = normalize(track(**fields), CTX)["messageId"]
    assert re.fullmatch(r"segue-[0-9a-f]{32}", message_id)


def test_generated_message_ids_are_unique() -> None:
    item = track()
    ids = {normalize(item, CTX)["messageId"] for _ in range(2000)}
    assert len(ids) == 2000


def test_skew_correction_with_item_sent_at() -> None:
    # Client clock 1 h slow; event queued 2.5 s before sending.
    item = track(timestamp="2024-05-01T10:59:55.000Z", sentAt="2024-05-01T10:59:57.500Z")
    out = normalize(item, CTX)
    assert out["originalTimestamp"] == "2024-05-01T10:59:55.000Z"
    assert out["sentAt"] == "2024-05-01T10:59:57.500Z"
    assert out["timestamp"] == "2024-05-01T11:59:57.623Z"
    assert out["receivedAt"] == RECEIVED_TEXT


def test_item_sent_at_beats_batch_sent_at() -> None:
    item = track(timestamp="2024-05-01T12:00:00.000Z", sentAt="2024-05-01T12:00:01.000Z")
    out = normalize(item, CTX, batch_sent_at="2024-05-01T12:00:30.000Z")
    assert out["sentAt"] == "2024-05-01T12:00:01.000Z"
    assert out["timestamp"] == "2024-05-01T11:59:59.123Z"


@pytest.mark.parametrize(
    "batch_sent_at",
    ["2024-05-01T14:00:10+02:00", datetime(2024, 5, 1, 12, 0, 10, tzinfo=UTC)],
)
def test_batch_sent_at_string_or_datetime(batch_sent_at: object) -> None:
    item = track(timestamp="2024-05-01T12:00:00Z")
    out = normalize(item, CTX, batch_sent_at=batch_sent_at)
    assert out["sentAt"] == "2024-05-01T12:00:10.000Z"
    assert out["timestamp"] == "2024-05-01T11:59:50.123Z"


def test_original_timestamp_preferred_over_timestamp() -> None:
    item = track(
        originalTimestamp="2024-05-01T11:00:00.000Z",
        timestamp="2024-05-01T11:30:00.000Z",
        sentAt="2024-05-01T11:00:01.000Z",
    )
    out = normalize(item, CTX)
    assert out["originalTimestamp"] == "2024-05-01T11:00:00.000Z"
    assert out["timestamp"] == "2024-05-01T11:59:59.123Z"


def test_without_sent_at_client_timestamp_is_kept() -> None:
    out = normalize(track(timestamp="2024-05-01T13:04:05.678+01:00"), CTX)
    assert out["originalTimestamp"] == "2024-05-01T12:04:05.678Z"
    assert out["timestamp"] == "2024-05-01T12:04:05.678Z"
    assert "sentAt" not in out


@pytest.mark.parametrize("sent_at", [None, "2024-05-01T09:00:00.000Z"])
def test_without_client_timestamp_everything_is_received_at(sent_at: str | None) -> None:
    out = normalize(track(), CTX, batch_sent_at=sent_at)
    assert out["timestamp"] == RECEIVED_TEXT
    assert out["originalTimestamp"] == RECEIVED_TEXT
    assert out["receivedAt"] == RECEIVED_TEXT


def test_client_received_at_and_project_id_are_overwritten() -> None:
    out = normalize(track(receivedAt="1999-01-01T00:00:00Z", projectId="spoofed"), CTX)
    assert out["receivedAt"] == RECEIVED_TEXT
    assert out["projectId"] == "src_1"


@pytest.mark.parametrize(
    ("library", "channel"),
    [
        ("analytics.js", "browser"),
        ("analytics-next", "browser"),
        ("@segment/analytics-browser", "browser"),
        ("Analytics.JS", "browser"),
        ("analytics-ios", "mobile"),
        ("analytics-android", "mobile"),
        ("@segment/analytics-react-native", "mobile"),
        ("analytics_flutter", "mobile"),
        ("analytics-swift", "mobile"),
        ("analytics-kotlin", "mobile"),
        ("Analytics.Xamarin", "mobile"),
        ("analytics-python", "server"),
        ("analytics-node", "server"),
        ("analytics-go", "server"),
        ("", "server"),
    ],
)
def test_infer_channel_from_library(library: str, channel: str) -> None:
    assert infer_channel({"context": lib(library)}) == channel
    assert normalize(track(context=lib(library)), CTX)["channel"] == channel


@pytest.mark.parametrize(
    "message",
    [{}, {"context": None}, {"context": {}}, {"context": {"library": "x"}}, {"context": lib(5)}],  # type: ignore[arg-type]
)
def test_infer_channel_defaults_to_server(message: dict[str, Any]) -> None:
    assert infer_channel(message) == "server"


def test_channel_from_batch_context_library() -> None:
    out = normalize(track(), CTX, batch_context=lib("analytics-ios"))
    assert out["channel"] == "mobile"


def test_channel_precedence() -> None:
    browser_lib = lib("analytics.js")
    assert normalize(track(channel="mobile", context=browser_lib), CTX)["channel"] == "mobile"
    forced = IngestContext(source_id="s", received_at=RECEIVED, channel="server")
    assert normalize(track(context=browser_lib), forced)["channel"] == "server"
    assert normalize(track(channel="web", context=browser_lib), CTX)["channel"] == "browser"
    assert normalize(track(channel="web", context=browser_lib), forced)["channel"] == "server"


def ip_ctx(channel: str | None = None, ip: str | None = "203.0.113.7") -> IngestContext:
    return IngestContext(source_id="s", received_at=RECEIVED, client_ip=ip, channel=channel)


@pytest.mark.parametrize(
    ("item", "ctx", "expected"),
    [
        (track(context=lib("analytics.js")), ip_ctx(), "203.0.113.7"),
        (track(), ip_ctx("browser"), "203.0.113.7"),
        (track(context={"direct": True}), ip_ctx(), "203.0.113.7"),
        (track(context={"ip": ""}), ip_ctx("browser"), "203.0.113.7"),
        (track(), ip_ctx(), None),
        (track(context=lib("analytics-ios")), ip_ctx(), "203.0.113.7"),
        (track(context={"direct": "true"}), ip_ctx(), None),
        (track(context={"ip": "8.8.8.8"}), ip_ctx("browser"), "8.8.8.8"),
        (track(context={"direct": True}), ip_ctx(ip=None), None),
    ],
)
def test_context_ip_rules(item: dict[str, Any], ctx: IngestContext, expected: str | None) -> None:
    assert normalize(item, ctx)["context"].get("ip") == expected


def test_direct_from_batch_context_fills_ip() -> None:
    out = normalize(track(), ip_ctx(), batch_context={"direct": True})
    assert out["context"]["ip"] == "203.0.113.7"


def test_many_distinct_request_times_stay_correct() -> None:
    # More distinct receivedAt/sentAt values than the internal memo holds.
    base = datetime(2024, 5, 1, tzinfo=UTC)
    for second in range(0, 3000, 5):
        received = base.replace(minute=second // 60, second=second % 60)
        ctx = IngestContext(source_id="s", received_at=received)
        sent = f"2024-05-01T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
        out = normalize(track(), ctx, batch_sent_at=sent)
        assert out["receivedAt"] == received.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        assert out["sentAt"] == sent.replace("Z", ".000Z")
