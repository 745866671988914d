"""Timestamp parsing/formatting and the clock-skew correction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from segue.spec import corrected_timestamp, format_timestamp, parse_timestamp
from segue.spec.timestamps import format_parsed


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-02-23T22:28:55.387Z", utc(2015, 2, 23, 22, 28, 55, 387000)),
        ("2015-02-23T22:28:55.387z", utc(2015, 2, 23, 22, 28, 55, 387000)),
        ("2015-02-23T22:28:55Z", utc(2015, 2, 23, 22, 28, 55)),
        ("2015-02-23T22:28:55.387+00:00", utc(2015, 2, 23, 22, 28, 55, 387000)),
        ("2015-02-24T03:58:55.387+05:30", utc(2015, 2, 23, 22, 28, 55, 387000)),
        ("2015-02-23T14:28:55-0800", utc(2015, 2, 23, 22, 28, 55)),
        ("2015-02-23T22:28:55.1Z", utc(2015, 2, 23, 22, 28, 55, 100000)),
        ("2015-02-23T22:28:55.123456789Z", utc(2015, 2, 23, 22, 28, 55, 123456)),
        ("2015-02-23T22:28:55", utc(2015, 2, 23, 22, 28, 55)),
        ("2015-02-23 22:28:55", utc(2015, 2, 23, 22, 28, 55)),
        ("2024-01-02", utc(2024, 1, 2)),
        ("  2024-01-02T03:04:05Z ", utc(2024, 1, 2, 3, 4, 5)),
    ],
)
def test_parse_accepts_iso8601_and_returns_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "yesterday",
        "2024-13-01",
        "2024-01-02T25:00:00Z",
        "1700000000",
        1700000000,
        1.5,
        True,
        None,
        [],
        {},
    ],
)
def test_parse_returns_none_for_anything_unparseable(value: object) -> None:
    assert parse_timestamp(value) is None


def test_parse_passes_datetimes_through_as_utc() -> None:
    assert parse_timestamp(datetime(2024, 1, 2, 3, 4, 5)) == utc(2024, 1, 2, 3, 4, 5)
    plus_two = datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    parsed = parse_timestamp(plus_two)
    assert parsed == utc(2024, 1, 2, 3, 4, 5)
    assert parsed is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        (utc(2015, 2, 23, 22, 28, 55, 387000), "2015-02-23T22:28:55.387Z"),
        (utc(2015, 2, 23, 22, 28, 55), "2015-02-23T22:28:55.000Z"),
        (utc(2015, 2, 23, 22, 28, 55, 999999), "2015-02-23T22:28:55.999Z"),
        (utc(2015, 2, 23, 22, 28, 55, 1999), "2015-02-23T22:28:55.001Z"),
        (datetime(2015, 2, 23, 22, 28, 55, 387000), "2015-02-23T22:28:55.387Z"),
        (
            datetime(2015, 2, 24, 1, 28, 55, 387000, tzinfo=timezone(timedelta(hours=3))),
            "2015-02-23T22:28:55.387Z",
        ),
        (utc(5, 1, 2, 3, 4, 5), "0005-01-02T03:04:05.000Z"),
    ],
)
def test_format_is_utc_millisecond_z(dt: datetime, expected: str) -> None:
    assert format_timestamp(dt) == expected


@pytest.mark.parametrize(
    "text", ["2015-02-23T22:28:55.387Z", "1999-12-31T23:59:59.999Z", "2024-02-29T00:00:00.000Z"]
)
def test_canonical_strings_round_trip(text: str) -> None:
    parsed = parse_timestamp(text)
    assert parsed is not None
    assert format_timestamp(parsed) == text


@pytest.mark.parametrize(
    "raw",
    [
        "2015-02-23T22:28:55.387Z",
        "2015-02-23T22:28:55.387+00:00",
        "2015-02-23T22:28:55.387-00:00",
        "2015-02-23T22:28:55.387+01:00",
        "2015-02-23T22:28:55.387456Z",
        "2015-02-23T22:28:55,387Z",
        "2015-W09-1T22:28:55.387Z",
        "20150223T222855.387Z",
        "2015-02-23",
    ],
)
def test_format_parsed_matches_format_timestamp(raw: str) -> None:
    parsed = parse_timestamp(raw)
    assert parsed is not None
    assert format_parsed(raw, parsed) == format_timestamp(parsed)


def test_format_parsed_reuses_canonical_string() -> None:
    raw = "2015-02-23T22:28:55.387Z"
    parsed = parse_timestamp(raw)
    assert parsed is not None
    assert format_parsed(raw, parsed) is raw


def test_corrected_timestamp_removes_client_clock_skew() -> None:
    # The client's clock is 2 h ahead; the event waited 5 s in its queue.
    original = utc(2024, 5, 1, 14, 0, 0)
    sent_at = utc(2024, 5, 1, 14, 0, 5)
    received_at = utc(2024, 5, 1, 12, 0, 7, 250000)
    assert corrected_timestamp(original, sent_at, received_at) == utc(2024, 5, 1, 12, 0, 2, 250000)


def test_corrected_timestamp_with_slow_client_clock() -> None:
    original = utc(2024, 5, 1, 11, 59, 0, 500000)
    sent_at = utc(2024, 5, 1, 11, 59, 1)
    received_at = utc(2024, 5, 1, 12, 0, 0)
    assert corrected_timestamp(original, sent_at, received_at) == utc(
        2024, 5, 1, 11, 59, 59, 500000
    )


def test_corrected_timestamp_without_sent_at_keeps_original() -> None:
    original = utc(2024, 5, 1, 11, 0, 0)
    assert corrected_timestamp(original, None, utc(2024, 5, 1, 12, 0, 0)) is original
