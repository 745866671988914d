"""Ingest rejections on the UI's live page, over a real server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from tests.support.server import ADMIN_TOKEN, WRITE_KEY, SegueProcess

BAD_KEY = "wk_not_a_real_key_42"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SegueProcess]:
    process = SegueProcess(tmp_path_factory.mktemp("web-live-rejections") / "data").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def rejected(server: SegueProcess) -> dict[str, httpx.Response]:
    """A track without `event`, a batch with one bad item, and an unknown write key."""
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        no_event = http.post(
            "/v1/track", json={"userId": "u-1", "properties": {"plan": "pro"}}, auth=(WRITE_KEY, "")
        )
        batch = [
            {"type": "track", "userId": "u-2", "event": "Fine"},
            {"type": "identify", "traits": {"name": "nobody"}},  # no userId nor anonymousId
            {"type": "track", "userId": "u-3", "event": "Also fine"},
        ]
        mixed = http.post("/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""))
        unknown = http.post(
            "/v1/track",
            json={"userId": "u-4", "event": "Who am I", "writeKey": BAD_KEY},
        )
        basic = http.post("/v1/identify", json={"userId": "u-5"}, auth=(BAD_KEY, ""))
        fine = http.post("/v1/track", json={"userId": "u-6", "event": "Ok"}, auth=(WRITE_KEY, ""))
    assert no_event.status_code == 400 and no_event.json()["code"] == "event_not_defined"
    assert mixed.status_code == 400 and mixed.json()["accepted"] == 2
    assert unknown.status_code == 401 and basic.status_code == 401
    assert fine.status_code == 200
    return {"no_event": no_event, "mixed": mixed, "unknown": unknown}


@pytest.fixture
def ui(server: SegueProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0, follow_redirects=False) as http:
        assert http.post("/ui/sign-in", data={"token": ADMIN_TOKEN}).status_code == 303
        yield http


def test_live_json_lists_the_rejections_with_codes_and_messages(
    ui: httpx.Client, rejected: dict[str, httpx.Response]
) -> None:
    body = ui.get("/ui/sources/test/live.json").json()
    assert {e["name"] for e in body["events"]} >= {"Fine", "Also fine", "Ok"}
    rows = body["rejections"]
    assert len(rows) == 2  # the unknown write keys belong to no source
    batch_item, single = rows  # newest first
    bad_item = rejected["mixed"].json()["rejected"][0]
    assert batch_item["code"] == bad_item["code"] and batch_item["message"] == bad_item["message"]
    assert batch_item["route"] == "/v1/batch" and batch_item["index"] == 1
    assert batch_item["status"] == 400 and '"nobody"' in batch_item["preview"]
    assert single["code"] == "event_not_defined"
    assert single["message"] == rejected["no_event"].json()["message"]
    assert single["route"] == "/v1/track" and single["index"] is None
    assert '"plan":"pro"' in single["preview"] and single["time"].endswith("UTC")
    for row in rows:
        assert WRITE_KEY not in row["preview"] and "writeKey" not in row["preview"]

    # the polling cursor: nothing newer, then only what came after
    cursor = batch_item["seq"]
    again = ui.get(f"/ui/sources/test/live.json?after=999999999&rejected_after={cursor}").json()
    assert again == {"events": [], "rejections": []}
    httpx.post(f"{ui.base_url}/v1/batch", json={"batch": []}, auth=(WRITE_KEY, ""))
    newer = ui.get(f"/ui/sources/test/live.json?after=999999999&rejected_after={cursor}")
    assert [r["code"] for r in newer.json()["rejections"]] == ["empty_batch"]


def test_the_live_page_renders_rejections_and_the_unknown_key_note(
    ui: httpx.Client, rejected: dict[str, httpx.Response]
) -> None:
    page = ui.get("/ui/sources/test/live")
    assert page.status_code == 200
    html = page.text
    assert 'id="live-rejections"' in html and ">Rejected<" in html
    assert "event_not_defined" in html and "track requires an `event` name" in html.replace(
        "&#96;", "`"
    )
    assert rejected["mixed"].json()["rejected"][0]["code"] in html
    note = re.search(r'<p class="alert" id="unknown-keys"[^>]*>(.*?)</p>', html, re.S)
    assert note, "no note on unknown write keys"
    assert re.search(r"\b2 requests with a missing or unknown write key", note.group(1))
    assert "unknown_source" in note.group(1) and "unknown write key" in note.group(1)
    assert BAD_KEY not in html and WRITE_KEY not in html
    assert "innerHTML" not in ui.get("/ui/static/segue.js").text


def test_the_feed_still_needs_a_session(server: SegueProcess) -> None:
    assert httpx.get(f"{server.url}/ui/sources/test/live.json").status_code == 401
