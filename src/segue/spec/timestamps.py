"""ISO-8601 parsing/formatting and Segment's clock-skew correction.

Everything here sits on the ingest hot path, so it leans on the C-implemented
``datetime.fromisoformat`` and avoids ``strptime``/``strftime``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EARLIEST = datetime.min.replace(tzinfo=UTC)
"""0001-01-01T00:00:00.000Z: the earliest time segue can store."""
LATEST = datetime.max.replace(tzinfo=UTC)
"""9999-12-31T23:59:59.999Z (as formatted): the latest time segue can store."""
_NO_DELAY = timedelta(0)


def parse_timestamp(value: object) -> datetime | None:
    """Parse an ISO-8601 string (or pass a datetime through) into an aware UTC datetime.

    Accepts 'Z'/'z', numeric offsets, any fractional precision and date-only
    strings; naive values are taken as UTC. Returns None for anything else, so
    callers can treat "absent" and "unparseable" the same way.
    """
    if type(value) is str:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            dt_or_none = _parse_lenient(value)
            if dt_or_none is None:
                return None
            dt = dt_or_none
    elif isinstance(value, datetime):
        dt = value
    else:
        return None
    tz = dt.tzinfo
    if tz is UTC:
        return dt
    if tz is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def out_of_range(value: object) -> bool:
    """A date-time that parses but falls before year 1 or after 9999 once moved to UTC.

    ``parse_timestamp`` returns None for these too; this tells them from non-dates.
    """
    if type(value) is not str:
        return False
    try:
        dt: datetime | None = datetime.fromisoformat(value)
    except ValueError:
        dt = _parse_lenient(value)
    return dt is not None and parse_timestamp(dt) is None


def _parse_lenient(text: str) -> datetime | None:
    """Second chance for inputs fromisoformat refuses: surrounding spaces, lowercase 'z'."""
    fixed = text.strip()
    if fixed.endswith("z"):
        fixed = fixed[:-1] + "Z"
    if fixed == text or not fixed:
        return None
    try:
        return datetime.fromisoformat(fixed)
    except ValueError:
        return None


def format_timestamp(dt: datetime) -> str:
    """Render as Segment does: UTC, millisecond precision (truncated), trailing 'Z'."""
    tz = dt.tzinfo
    if tz is not None and tz is not UTC and dt.utcoffset():
        dt = dt.astimezone(UTC)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 - fastest on 3.11
        dt.year,
        dt.month,
        dt.day,
        dt.hour,
        dt.minute,
        dt.second,
        dt.microsecond // 1000,
    )


def format_parsed(raw: object, dt: datetime) -> str:
    """Format ``dt`` (parsed from ``raw``), reusing ``raw`` when it is already canonical.

    analytics.js sends ``...T22:28:55.387Z`` and analytics-python ``...T22:28:55.387+00:00``;
    recognising those shapes skips a format call per event. ``raw`` must be the
    value ``dt`` was parsed from (its digits are then known to be valid).
    """
    if type(raw) is str:
        text = raw
        n = len(text)
        if ((n == 24 and text[23] == "Z") or (n == 29 and text.endswith("+00:00"))) and (
            text[4] == "-"
            and text[7] == "-"
            and text[10] == "T"
            and text[13] == ":"
            and text[16] == ":"
            and text[19] == "."
        ):
            return text if n == 24 else text[:23] + "Z"
    return format_timestamp(dt)


def corrected_timestamp(
    original: datetime, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """Undo client clock skew: ``received_at - (sent_at - original)``.

    The client's own clock measured how long the event waited before sending;
    applying that delay to the server's arrival time removes the client's offset.
    Without ``sent_at`` there is nothing to correct with, so ``original`` stands.
    A result before year 1 or after year 9999 (a client clock centuries off) is
    clamped to :data:`EARLIEST` or :data:`LATEST`.
    """
    if sent_at is None:
        return original
    delay = sent_at - original  # years 1-9999 apart at most: always a valid timedelta
    try:
        return received_at - delay
    except OverflowError:
        return EARLIEST if delay > _NO_DELAY else LATEST
