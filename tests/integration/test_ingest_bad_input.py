"""Bad input on the Tracking API, over real sockets against a real ``segue serve``.

Every rejection must carry the documented status and a JSON body
``{"success": false, "code": ..., "message": ...}`` (what Segment's SDKs parse), and
the server must keep answering good requests afterwards.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.support.server import WRITE_KEY, SegueProcess

GOOD_TRACK = {"userId": "still-alive", "event": "Health Checked"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SegueProcess]:
    process = SegueProcess(tmp_path_factory.mktemp("ingest-bad-input") / "data").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(server: SegueProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=(WRITE_KEY, ""), timeout=30.0) as http:
        yield http


@pytest.fixture(scope="module")
def admin(server: SegueProcess) -> Iterator[httpx.Client]:
    with server.admin() as http:
        yield http


def assert_error(response: httpx.Response, status: int, code: str | None) -> dict[str, Any]:
    """The documented status and a JSON body Segment's clients understand."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert isinstance(body["code"], str)
    assert body["code"]
    assert isinstance(body["message"], str)
    assert body["message"]
    if code is not None:
        assert body["code"] == code, body
    return body


def assert_still_serving(client: httpx.Client) -> None:
    response = client.post("/v1/track", json=GOOD_TRACK)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}


def stored(server: SegueProcess, user_id: str) -> list[dict[str, Any]]:
    return server.all_events(user_id=user_id)


def _track(**fields: Any) -> dict[str, Any]:
    return {"userId": "u1", "event": "Order Completed", **fields}


def _batch_bytes(size: int) -> bytes:
    """A JSON batch of valid events just over ``size`` bytes."""
    item = {"type": "track", "userId": "big", "event": "E", "properties": {"pad": "x" * 900}}
    count = size // len(json.dumps(item)) + 1
    return json.dumps({"batch": [item] * count}).encode()


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


# Each case: (method, path, request kwargs for httpx, status, code).
Case = tuple[str, str, Callable[[], dict[str, Any]], int, str | None]

CASES: dict[str, Case] = {
    "malformed-json": (
        "POST",
        "/v1/track",
        lambda: {"content": b'{"userId": "u1", "event": '},
        400,
        "bad_request",
    ),
    "malformed-json-batch": (
        "POST",
        "/v1/batch",
        lambda: {"content": b"{batch"},
        400,
        "bad_request",
    ),
    "single-event-33kb": (
        "POST",
        "/v1/track",
        lambda: {"json": _track(properties={"pad": "x" * (33 * 1024)})},
        400,
        "bad_request",
    ),
    "batch-600kb": ("POST", "/v1/batch", lambda: {"content": _batch_bytes(600 * 1024)}, 400, None),
    "batch-600kb-chunked-no-content-length": (
        "POST",
        "/v1/batch",
        lambda: {"content": _chunks(_batch_bytes(600 * 1024))},
        400,
        None,
    ),
    "batch-2501-events": (
        "POST",
        "/v1/batch",
        lambda: {"json": {"batch": [{"type": "track", "userId": "u", "event": "E"}] * 2501}},
        400,
        "bad_request",
    ),
    "unknown-write-key": (
        "POST",
        "/v1/track",
        lambda: {"json": _track(), "auth": ("wk_does_not_exist", "")},
        401,
        "unknown_source",
    ),
    "unknown-write-key-in-body": (
        "POST",
        "/v1/track",
        lambda: {"json": _track(writeKey="wk_nope"), "auth": None},
        401,
        "unknown_source",
    ),
    "missing-write-key": (
        "POST",
        "/v1/track",
        lambda: {"json": _track(), "auth": None},
        401,
        "unknown_source",
    ),
    "bearer-without-body-key": (
        "POST",
        "/v1/track",
        lambda: {"json": _track(), "auth": None, "headers": {"Authorization": "Bearer tok"}},
        401,
        "unknown_source",
    ),
    "track-without-event": (
        "POST",
        "/v1/track",
        lambda: {"json": {"userId": "u1"}},
        400,
        "event_not_defined",
    ),
    "track-event-not-string": (
        "POST",
        "/v1/track",
        lambda: {"json": _track(event=42)},
        400,
        "event_not_string",
    ),
    "alias-without-previous-id": (
        "POST",
        "/v1/alias",
        lambda: {"json": {"userId": "u1"}},
        400,
        None,
    ),
    "no-user-or-anonymous-id": (
        "POST",
        "/v1/identify",
        lambda: {"json": {"traits": {"a": 1}}},
        400,
        "no_user_anon_id",
    ),
    "group-without-group-id": (
        "POST",
        "/v1/group",
        lambda: {"json": {"userId": "u1"}},
        400,
        "bad_request",
    ),
    "invalid-gzip": (
        "POST",
        "/v1/batch",
        lambda: {"content": b"this is not gzip at all", "headers": {"Content-Encoding": "gzip"}},
        400,
        "bad_request",
    ),
    "unsupported-content-encoding": (
        "POST",
        "/v1/track",
        lambda: {"content": json.dumps(_track()).encode(), "headers": {"Content-Encoding": "br"}},
        400,
        "bad_request",
    ),
    "body-is-array": ("POST", "/v1/track", lambda: {"json": [_track()]}, 400, "bad_request"),
    "body-is-string": ("POST", "/v1/batch", lambda: {"json": "batch"}, 400, "bad_request"),
    "empty-body": ("POST", "/v1/track", lambda: {"content": b""}, 400, "bad_request"),
    "empty-batch": ("POST", "/v1/batch", lambda: {"json": {"batch": []}}, 400, "empty_batch"),
    "batch-not-array": (
        "POST",
        "/v1/batch",
        lambda: {"json": {"batch": {"type": "track"}}},
        400,
        "bad_request",
    ),
    "batch-missing": ("POST", "/v1/import", lambda: {"json": {}}, 400, "bad_request"),
    "batch-item-not-object": ("POST", "/v1/batch", lambda: {"json": {"batch": [1]}}, 400, None),
    "batch-item-unknown-type": (
        "POST",
        "/v1/batch",
        lambda: {"json": {"batch": [{"type": "purchase", "userId": "u"}]}},
        400,
        "bad_request",
    ),
    "user-id-object": (
        "POST",
        "/v1/track",
        lambda: {"json": _track(userId={"id": 1})},
        400,
        "id_not_string",
    ),
    "anonymous-id-bool": (
        "POST",
        "/v1/track",
        lambda: {"json": _track(anonymousId=True)},
        400,
        "id_not_string",
    ),
    "properties-list": (
        "POST",
        "/v1/track",
        lambda: {"json": _track(properties=[1, 2])},
        400,
        "properties_not_object",
    ),
    "traits-string": (
        "POST",
        "/v1/identify",
        lambda: {"json": {"userId": "u1", "traits": "vip"}},
        400,
        "traits_not_object",
    ),
    "page-name-number": (
        "POST",
        "/v1/page",
        lambda: {"json": {"userId": "u1", "name": 404}},
        400,
        "name_not_string",
    ),
    "screen-category-number": (
        "POST",
        "/v1/screen",
        lambda: {"json": {"userId": "u1", "category": 7}},
        400,
        "category_not_string",
    ),
    "message-id-100-chars": (
        "POST",
        "/v1/track",
        lambda: {"json": _track(messageId="m" * 100)},
        400,
        "bad_request",
    ),
    "timestamp-not-a-date": (
        "POST",
        "/v1/track",
        lambda: {"json": _track(timestamp="yesterday")},
        400,
        "bad_request",
    ),
    "get-on-track": ("GET", "/v1/track", dict, 405, None),
    "get-on-batch": ("GET", "/v1/batch", dict, 405, None),
    "unknown-route-post": ("POST", "/v1/foo", lambda: {"json": _track()}, 404, None),
    "unknown-route-get": ("GET", "/v1/foo", dict, 404, None),
    "unknown-pixel-type-is-not-a-route-for-post": (
        "POST",
        "/v1/pixel/track",
        lambda: {"json": _track()},
        404,
        None,
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_rejected_and_server_keeps_serving(
    case: str, client: httpx.Client, server: SegueProcess
) -> None:
    method, path, make_kwargs, status, code = CASES[case]
    kwargs = make_kwargs()
    response = client.request(method, path, **kwargs)
    assert_error(response, status, code)
    assert response.headers["access-control-allow-origin"] == "*"
    assert_still_serving(client)


def test_rejected_single_event_is_not_stored(client: httpx.Client, server: SegueProcess) -> None:
    user = f"rejected-{uuid.uuid4().hex}"
    body = assert_error(
        client.post("/v1/track", json={"userId": user, "properties": []}), 400, None
    )
    # the first problem found is reported, with the per-item detail
    assert body["code"] in {"event_not_defined", "properties_not_object"}
    assert body["accepted"] == 0
    assert body["rejected"][0]["index"] == 0
    assert stored(server, user) == []


def test_gzip_bomb_is_refused_quickly(client: httpx.Client) -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100 * 1024  # small on the wire: under the batch cap
    started = time.monotonic()
    response = client.post("/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"})
    elapsed = time.monotonic() - started
    assert_error(response, 400, "bad_request")
    assert elapsed < 1.0, f"the bomb took {elapsed:.2f} s to refuse"
    assert_still_serving(client)


def test_gzip_bomb_on_single_route(client: httpx.Client) -> None:
    bomb = gzip.compress(b" " * (5 * 1024 * 1024))
    response = client.post("/v1/track", content=bomb, headers={"Content-Encoding": "gzip"})
    assert_error(response, 400, "bad_request")
    assert_still_serving(client)


def test_batch_with_some_bad_items_keeps_the_good_ones(
    client: httpx.Client, server: SegueProcess
) -> None:
    user = f"multi-{uuid.uuid4().hex}"
    batch = [
        {"type": "track", "userId": user, "event": "Good One", "messageId": f"{user}-0"},
        {"type": "track", "userId": user},  # no event
        {"type": "identify", "userId": user, "traits": {"plan": "pro"}, "messageId": f"{user}-2"},
        {"type": "page", "userId": user, "properties": "nope"},
        {"type": "identify", "userId": {"nested": True}},
        "not an object",
    ]
    body = assert_error(client.post("/v1/batch", json={"batch": batch}), 400, "multi_user_error")
    assert body["accepted"] == 2
    rejected = {item["index"]: item for item in body["rejected"]}
    assert set(rejected) == {1, 3, 4, 5}
    assert rejected[1]["code"] == "event_not_defined"
    assert rejected[3]["code"] == "properties_not_object"
    assert rejected[4]["code"] == "id_not_string"
    assert rejected[5]["code"] == "bad_request"
    assert all(item["message"] for item in rejected.values())

    events = stored(server, user)
    assert sorted(e["message_id"] for e in events) == [f"{user}-0", f"{user}-2"]
    assert_still_serving(client)


def test_batch_item_over_32kb_is_rejected_alone(client: httpx.Client, server: SegueProcess) -> None:
    user = f"bigitem-{uuid.uuid4().hex}"
    batch = [
        {"type": "track", "userId": user, "event": "Small"},
        {"type": "track", "userId": user, "event": "Huge", "properties": {"p": "x" * 33_000}},
        {"type": "track", "userId": user, "event": "Small Too"},
    ]
    body = assert_error(client.post("/v1/batch", json={"batch": batch}), 400, "multi_user_error")
    assert body["accepted"] == 2
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(1, "bad_request")]
    assert "32 KB" in body["rejected"][0]["message"]
    assert sorted(e["event"]["event"] for e in stored(server, user)) == ["Small", "Small Too"]


def test_batch_where_every_item_is_bad_reports_the_first_reason(
    client: httpx.Client, server: SegueProcess
) -> None:
    user = f"allbad-{uuid.uuid4().hex}"
    batch = [{"type": "track", "userId": user}, {"type": "track", "userId": user, "event": 1}]
    body = assert_error(client.post("/v1/batch", json={"batch": batch}), 400, "event_not_defined")
    assert body["accepted"] == 0
    assert [item["code"] for item in body["rejected"]] == ["event_not_defined", "event_not_string"]
    assert stored(server, user) == []


def test_disabled_source_is_refused(
    client: httpx.Client, admin: httpx.Client, server: SegueProcess
) -> None:
    created = admin.post("/sources", json={"name": "to-disable"})
    assert created.status_code == 201, created.text
    key = created.json()["write_key"]
    event = {"userId": "u-disabled", "event": "Before"}
    assert client.post("/v1/track", json=event, auth=(key, "")).status_code == 200

    patched = admin.patch("/sources/to-disable", json={"enabled": False})
    assert patched.status_code == 200
    assert patched.json()["enabled"] is False
    response = client.post("/v1/track", json=event, auth=(key, ""))
    assert_error(response, 403, "source_disabled")
    # the key in the body gets the same answer
    response = client.post("/v1/batch", json={"writeKey": key, "batch": [event]}, auth=None)
    assert_error(response, 403, "source_disabled")
    assert_still_serving(client)

    assert admin.patch("/sources/to-disable", json={"enabled": True}).status_code == 200
    assert client.post("/v1/track", json=event, auth=(key, "")).status_code == 200


def test_rate_limited_source_gets_429_with_retry_after(
    client: httpx.Client, admin: httpx.Client
) -> None:
    created = admin.post("/sources", json={"name": "limited", "rate_limit": 2})
    assert created.status_code == 201, created.text
    assert created.json()["rate_limit"] == 2
    key = created.json()["write_key"]

    accepted = 0
    limited: httpx.Response | None = None
    for _ in range(50):  # bounded: a 2 req/s bucket must run dry long before this
        response = client.post("/v1/track", json=_track(), auth=(key, ""))
        if response.status_code == 429:
            limited = response
            break
        assert response.status_code == 200, response.text
        accepted += 1
    assert limited is not None, "no 429 after 50 requests to a source limited to 2 req/s"
    assert accepted >= 1  # the burst is let through first
    assert_error(limited, 429, "rate_limited")
    retry_after = limited.headers["retry-after"]
    assert retry_after.isdigit(), retry_after
    assert int(retry_after) >= 1
    # other sources are not affected
    assert_still_serving(client)


def test_405_names_the_allowed_method(client: httpx.Client) -> None:
    response = client.get("/v1/track")
    assert_error(response, 405, None)
    assert "POST" in response.json()["message"]


def test_405_has_allow_header(client: httpx.Client) -> None:
    response = client.get("/v1/track")
    assert response.status_code == 405
    assert "POST" in response.headers.get("allow", "")
