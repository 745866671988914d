"""sample(): realistic normalised events that pass segue's own validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segue.spec import (
    DELIVERABLE_TYPES,
    MESSAGE_TYPES,
    SAMPLE_TYPES,
    format_timestamp,
    parse_timestamp,
    sample,
    validate,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
CLIENT_TYPES = [t for t in SAMPLE_TYPES if t != "delete"]


def test_sample_types_cover_every_deliverable_type() -> None:
    assert SAMPLE_TYPES == ("identify", "track", "page", "screen", "group", "alias", "delete")
    assert set(SAMPLE_TYPES) == DELIVERABLE_TYPES


@pytest.mark.parametrize("kind", CLIENT_TYPES)
@pytest.mark.parametrize("seed", [None, 0, 1, 2, 3, 42])
def test_client_samples_validate_clean(kind: str, seed: int | None) -> None:
    event = sample(kind, seed=seed)
    assert event["type"] == kind
    assert kind in MESSAGE_TYPES
    assert validate(event) is None


@pytest.mark.parametrize("kind", CLIENT_TYPES)
def test_client_samples_are_fully_normalised(kind: str) -> None:
    event = sample(kind, now=NOW, seed=7)
    assert event["receivedAt"] == format_timestamp(NOW)
    assert event["projectId"]
    assert event["version"] == 2
    assert event["channel"] in {"server", "browser", "mobile"}
    assert event["userId"]
    assert event["messageId"]
    assert isinstance(event["integrations"], dict)
    assert event["context"]["library"]["name"]
    for key in ("receivedAt", "sentAt", "originalTimestamp", "timestamp"):
        parsed = parse_timestamp(event[key])
        assert parsed is not None
        assert format_timestamp(parsed) == event[key]


@pytest.mark.parametrize("kind", CLIENT_TYPES)
def test_sample_timestamp_is_skew_corrected(kind: str) -> None:
    event = sample(kind, now=NOW, seed=11)
    received, sent, original, corrected = (
        parse_timestamp(event[key])
        for key in ("receivedAt", "sentAt", "originalTimestamp", "timestamp")
    )
    assert received is not None
    assert sent is not None
    assert original is not None
    assert corrected is not None
    expected = received - (sent - original)
    assert abs(corrected - expected) <= timedelta(milliseconds=1)
    assert corrected <= received


@pytest.mark.parametrize("kind", ["identify", "track", "page", "group"])
def test_browser_samples_carry_web_context(kind: str) -> None:
    event = sample(kind, seed=3)
    assert event["channel"] == "browser"
    assert event["anonymousId"]
    context = event["context"]
    assert context["ip"]
    assert context["userAgent"].startswith("Mozilla/5.0")
    assert context["page"]["url"].startswith("https://")


def test_screen_sample_is_mobile() -> None:
    event = sample("screen", seed=3)
    assert event["channel"] == "mobile"
    assert {"app", "device", "os", "network", "screen"} <= event["context"].keys()


def test_track_sample_is_order_completed_with_consistent_money() -> None:
    for seed in range(20):
        properties = sample("track", seed=seed)["properties"]
        assert sample("track", seed=seed)["event"] == "Order Completed"
        products = properties["products"]
        assert products
        subtotal = sum(p["price"] * p["quantity"] for p in products)
        assert properties["subtotal"] == pytest.approx(subtotal)
        assert properties["revenue"] == pytest.approx(subtotal - properties["discount"])
        total = properties["revenue"] + properties["tax"] + properties["shipping"]
        assert properties["total"] == pytest.approx(total)
        assert properties["currency"] == "USD"
        assert properties["order_id"]


def test_alias_sample_links_previous_id() -> None:
    event = sample("alias", seed=5)
    assert event["previousId"]
    assert event["previousId"] != event["userId"]
    assert event["channel"] == "server"


def test_group_sample_has_group_id_and_traits() -> None:
    event = sample("group", seed=5)
    assert event["groupId"]
    assert event["traits"]["name"]


def test_delete_sample_matches_the_partner_shape() -> None:
    event = sample("delete", now=NOW, seed=1)
    assert set(event) == {
        "type",
        "channel",
        "messageId",
        "projectId",
        "userId",
        "context",
        "integrations",
        "receivedAt",
        "sentAt",
        "originalTimestamp",
        "timestamp",
    }
    assert event["type"] == "delete"
    assert event["channel"] == "server"
    assert event["messageId"].startswith("delete-")
    assert event["receivedAt"] == event["timestamp"] == event["originalTimestamp"]
    assert event["receivedAt"] == "2024-05-01T12:00:00.123Z"
    assert validate(event) is not None  # clients may not send delete


@pytest.mark.parametrize("kind", SAMPLE_TYPES)
def test_same_seed_and_now_give_the_same_event(kind: str) -> None:
    assert sample(kind, now=NOW, seed=9) == sample(kind, now=NOW, seed=9)
    assert sample(kind, now=NOW, seed=9) != sample(kind, now=NOW, seed=10)


def test_naive_now_is_taken_as_utc() -> None:
    event = sample("page", now=datetime(2024, 5, 1, 12, 0, 0), seed=1)
    assert event["receivedAt"] == "2024-05-01T12:00:00.000Z"


def test_default_now_is_current_time() -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    received = parse_timestamp(sample("track")["receivedAt"])
    assert received is not None
    assert before <= received <= datetime.now(UTC)


@pytest.mark.parametrize("kind", ["purchase", "", "Track"])
def test_unknown_type_raises(kind: str) -> None:
    with pytest.raises(ValueError, match="unknown sample type"):
        sample(kind)
