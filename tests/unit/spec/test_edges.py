"""The Spec at its edges: years 1 and 9999, ids of any size, values too big to quote."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from segue.spec import IngestContext, RejectionCode, corrected_timestamp, normalize, validate
from segue.spec.timestamps import EARLIEST, LATEST, format_timestamp, out_of_range, parse_timestamp

RECEIVED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
CTX = IngestContext(source_id="src_1", received_at=RECEIVED)
EDGES = [
    None,
    "0001-01-01T00:00:00Z",
    "0001-01-01",
    "9999-12-31T23:59:59.999999Z",
    "2024-05-01T11:59:59Z",
    "9999-12-31T23:59:59+00:00",
]


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u1", "event": "E", **fields}


def test_earliest_and_latest_format_as_segue_writes_timestamps() -> None:
    assert format_timestamp(EARLIEST) == "0001-01-01T00:00:00.000Z"
    assert format_timestamp(LATEST) == "9999-12-31T23:59:59.999Z"


@pytest.mark.parametrize(
    ("original", "sent_at", "expected"),
    [
        ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", EARLIEST),
        ("9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z", LATEST),
        ("2024-05-01T11:59:50Z", "2024-05-01T12:00:00Z", datetime(2024, 5, 1, 11, 59, 50, 123456)),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:10Z", datetime(2024, 5, 1, 11, 59, 50, 123456)),
    ],
)
def test_the_skew_correction_is_clamped_to_what_can_be_stored(
    original: str, sent_at: str, expected: datetime
) -> None:
    parsed_original, parsed_sent = parse_timestamp(original), parse_timestamp(sent_at)
    assert parsed_original is not None
    assert parsed_sent is not None
    result = corrected_timestamp(parsed_original, parsed_sent, RECEIVED)
    assert result == expected.replace(tzinfo=UTC)


def test_every_combination_of_edge_timestamps_normalises() -> None:
    """timestamp, originalTimestamp, sentAt and a batch sentAt: 6**4 combinations."""
    for ts, original, sent, batch_sent in itertools.product(EDGES, repeat=4):
        fields = {"timestamp": ts, "originalTimestamp": original, "sentAt": sent}
        message = track(**{k: v for k, v in fields.items() if v is not None})
        assert validate(message) is None
        out = normalize(message, CTX, batch_sent_at=batch_sent)
        for key in ("timestamp", "originalTimestamp", "receivedAt"):
            assert len(out[key]) == 24
            assert out[key].endswith("Z")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0001-01-01T00:30:00+01:00", True),
        ("9999-12-31T23:30:00-01:00", True),
        (" 0001-01-01T00:30:00+01:00 ", True),
        ("0001-01-01T00:30:00Z", False),
        ("yesterday", False),
        (5, False),
    ],
)
def test_out_of_range_tells_dates_outside_utc_from_non_dates(value: object, expected: bool) -> None:
    assert parse_timestamp(value) is None or not expected
    assert out_of_range(value) is expected


def test_a_timestamp_out_of_range_is_refused_saying_so() -> None:
    problem = validate(track(sentAt="9999-12-31T23:30:00-01:00"))
    assert problem is not None
    assert problem.code is RejectionCode.BAD_REQUEST
    assert problem.message == "`sentAt` is out of range: in UTC it must fall in the years 1 to 9999"
    problem = validate(track(timestamp="soon"))
    assert problem is not None
    assert problem.message == "`timestamp` is not an ISO-8601 date-time"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("userId", 123456789012345678901234567890, "123456789012345678901234567890"),
        ("anonymousId", -(2**64), "-18446744073709551616"),
        ("messageId", 2**70, "1180591620717411303424"),
        ("userId", 10**99, "1" + "0" * 99),
    ],
)
def test_integer_ids_become_their_exact_digits(key: str, value: int, expected: str) -> None:
    message = track(**{key: value})
    assert validate(message) is None
    assert normalize(message, CTX)[key] == expected


def test_an_integer_message_id_of_100_digits_is_too_long() -> None:
    problem = validate(track(messageId=10**99))
    assert problem is not None
    assert "shorter than 100" in problem.message


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        ("x" * 5000, "'" + "x" * 40 + "'…"),
        ([[[[]]]], "(an array)"),
        ({"a": 1}, "(an object)"),
        (7, "(a number)"),
        (None, "None"),
        ("nope", "'nope'"),
    ],
)
def test_an_unsupported_type_is_quoted_briefly(kind: object, shown: str) -> None:
    problem = validate({"type": kind, "userId": "u"})
    assert problem is not None
    assert problem.message.startswith(f"unsupported type {shown}; expected one of")
    assert len(problem.message) < 200


def test_a_deeply_nested_type_is_named_not_printed() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    problem = validate({"type": deep, "userId": "u"})
    assert problem is not None
    assert "(an array)" in problem.message
