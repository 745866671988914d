"""The in-memory log of recent ingest rejections: bounded, per source, no secrets."""

from __future__ import annotations

from segue.ingest.rejections import PREVIEW_CHARS, Rejected, RejectionLog, preview


def _one(code: str = "bad_request", payload: object = None, index: int | None = None) -> Rejected:
    return Rejected(code, f"{code} happened", index, payload)


def test_each_source_keeps_only_its_newest_entries() -> None:
    log = RejectionLog(per_source=3)
    for n in range(5):
        log.record(route="/v1/track", status=400, rejected=[_one(f"c{n}")], source_id="s1")
    log.record(route="/v1/track", status=400, rejected=[_one("other")], source_id="s2")
    assert [e.code for e in log.for_source("s1")] == ["c4", "c3", "c2"]  # newest first
    assert [e.code for e in log.for_source("s2")] == ["other"]
    assert log.for_source("nope") == []
    assert log.unknown_source() == []


def test_a_huge_batch_of_bad_items_stays_bounded() -> None:
    log = RejectionLog(per_source=10)
    items = (_one("event_not_defined", {"type": "track"}, n) for n in range(2500))
    log.record(route="/v1/batch", status=400, rejected=items, source_id="s1")
    entries = log.for_source("s1")
    assert len(entries) == 10
    assert all(e.index is not None for e in entries)


def test_requests_without_a_source_have_their_own_bounded_log() -> None:
    log = RejectionLog(per_source=2)
    for _ in range(4):
        log.record(route="/v1/track", status=401, rejected=[_one("unknown_source")])
    unknown = log.unknown_source()
    assert len(unknown) == 2 and {e.status for e in unknown} == {401}
    assert all(e.source_id is None and e.source_name is None for e in unknown)


def test_cursor_returns_only_newer_entries() -> None:
    log = RejectionLog()
    log.record(route="/v1/track", status=400, rejected=[_one("a")], source_id="s1")
    cursor = log.last_seq
    assert log.for_source("s1", cursor) == []
    log.record(route="/v1/track", status=400, rejected=[_one("b")], source_id="s1")
    assert [e.code for e in log.for_source("s1", cursor)] == ["b"]
    assert log.last_seq > cursor


def test_entries_carry_what_the_ui_shows() -> None:
    log = RejectionLog()
    log.record(
        route="/v1/batch",
        status=400,
        rejected=[_one("event_not_defined", {"type": "track", "userId": "u"}, 3)],
        source_id="s1",
        source_name="web",
        now_ms=1_700_000_000_000,
    )
    row = log.for_source("s1")[0].as_json()
    assert row["time_ms"] == 1_700_000_000_000 and row["source"] == "web"
    assert row["route"] == "/v1/batch" and row["status"] == 400 and row["index"] == 3
    assert row["code"] == "event_not_defined" and row["message"] == "event_not_defined happened"
    assert '"userId":"u"' in row["preview"]


def test_previews_never_hold_a_write_key() -> None:
    secret = "wk_supersecret_123"
    payload = {
        "writeKey": secret,
        "batch": [{"type": "track", "writeKey": secret, "context": {"write_key": secret}}],
        "Authorization": f"Basic {secret}",
    }
    log = RejectionLog()
    log.record(route="/v1/batch", status=401, rejected=[_one("unknown_source", payload)])
    text = log.unknown_source()[0].preview
    assert secret not in text and "writeKey" not in text and '"type":"track"' in text


def test_previews_are_short() -> None:
    big = {"properties": {f"k{n}": "x" * 100 for n in range(1000)}, "list": list(range(10_000))}
    text = preview(big)
    assert len(text) <= PREVIEW_CHARS and text.endswith("…")
    assert preview(None) == ""
    assert preview({"a": 1}) == '{"a":1}'
