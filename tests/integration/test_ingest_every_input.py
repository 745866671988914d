"""Issue 10, the Tracking API half: every input answered, over a real ``segue serve``.

Regression tests for inputs that were answered 500 or stored wrongly: deep nesting,
timestamps at the calendar's edges, big integers, the pixel's limits, gzip bodies with
more than one member or trailing garbage, lone surrogates. Each checks the answer, what
was stored, and (for numbers) the exact bytes a webhook destination receives.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.support.endpoint import Endpoint
from tests.support.server import LOOPBACK_CONFIG, WRITE_KEY, SegueProcess

YEAR_1 = "0001-01-01T00:00:00.000Z"
YEAR_9999 = "9999-12-31T23:59:59.999Z"
BIG = 123456789012345678901234567890  # 30 digits: a float would keep 17 of them


@pytest.fixture(scope="module")
def sink() -> Iterator[Endpoint]:
    with Endpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sink: Endpoint) -> Iterator[SegueProcess]:
    config = (
        LOOPBACK_CONFIG
        + f"""
[[apps]]
name = "sink"
endpoint = "{sink.url}/hook"

[[destinations]]
name = "sink"
app = "sink"
sources = ["test"]
"""
    )
    process = SegueProcess(tmp_path_factory.mktemp("every-input") / "data", config_text=config)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(server: SegueProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=(WRITE_KEY, ""), timeout=30.0) as http:
        yield http


def user() -> str:
    return f"every-{uuid.uuid4().hex}"


def stored(server: SegueProcess, user_id: str) -> list[dict[str, Any]]:
    """The user's stored events as the admin API shows them, oldest first."""
    return list(reversed(server.all_events(user_id=user_id)))


def assert_json_error(response: httpx.Response, code: str = "bad_request") -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False
    assert body["code"] == code
    assert body["message"]
    return body


def nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def pixel(client: httpx.Client, message: dict[str, Any], kind: str = "track") -> httpx.Response:
    data = base64.urlsafe_b64encode(json.dumps({**message, "writeKey": WRITE_KEY}).encode())
    response = client.get(f"/v1/pixel/{kind}", params={"data": data.decode()}, auth=None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    return response


# -- depth --------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [127, 128, 254, 300, 1023, 1024, 5000])
def test_deep_properties_are_stored_or_refused_never_500(
    depth: int, client: httpx.Client, server: SegueProcess
) -> None:
    """The event may nest 128 levels (itself the first): properties 127 more."""
    uid = user()
    deep = '{"a":' * depth + "1" + "}" * depth  # the stdlib cannot write it this deep
    body = f'{{"userId": "{uid}", "event": "Deep", "properties": {deep}}}'
    response = client.post("/v1/track", content=body.encode())
    if depth <= 127:
        assert response.status_code == 200, response.text
        assert len(stored(server, uid)) == 1
    else:
        assert_json_error(response)
        assert stored(server, uid) == []


def test_a_deep_item_costs_only_itself(client: httpx.Client, server: SegueProcess) -> None:
    uid = user()
    good = {"type": "track", "userId": uid, "event": "Good"}
    batch = [good, good, {**good, "properties": nest(600)}, good]
    body = assert_json_error(client.post("/v1/batch", json={"batch": batch}), "multi_user_error")
    assert body["accepted"] == 3
    assert [r["index"] for r in body["rejected"]] == [2]
    assert "128 levels" in body["rejected"][0]["message"]
    assert len(stored(server, uid)) == 3


# -- timestamps ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "sent_at", "expected"),
    [
        ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", YEAR_1),
        ("9999-12-31T23:59:59.999Z", "0001-01-01T00:00:00Z", YEAR_9999),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:10Z", None),  # a sane delay: corrected
    ],
)
def test_skew_correction_out_of_range_is_clamped(
    timestamp: str, sent_at: str, expected: str | None, client: httpx.Client, server: SegueProcess
) -> None:
    uid = user()
    event = {"userId": uid, "event": "Skewed", "timestamp": timestamp, "sentAt": sent_at}
    response = client.post("/v1/track", json=event)
    assert response.status_code == 200, response.text
    [row] = stored(server, uid)
    if expected is not None:
        assert row["event"]["timestamp"] == expected
    assert row["event"]["originalTimestamp"].startswith(timestamp[:19])  # as the client sent


def test_a_batch_with_an_extreme_timestamp_keeps_every_item(
    client: httpx.Client, server: SegueProcess
) -> None:
    uid = user()
    good = {"type": "track", "userId": uid, "event": "Good"}
    odd = {**good, "timestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z"}
    response = client.post("/v1/batch", json={"batch": [good, good, odd, good]})
    assert response.status_code == 200, response.text
    assert len(stored(server, uid)) == 4


def test_a_timestamp_out_of_range_in_utc_is_refused_with_a_reason(client: httpx.Client) -> None:
    event = {"userId": user(), "event": "E", "timestamp": "0001-01-01T00:30:00+01:00"}
    body = assert_json_error(client.post("/v1/track", json=event))
    assert "out of range" in body["message"]


# -- numbers ------------------------------------------------------------------------


def test_integer_ids_of_any_size_keep_their_digits(
    client: httpx.Client, server: SegueProcess
) -> None:
    marker = uuid.uuid4().int % 10**12
    user_id = BIG * 10**12 + marker  # unique per run, 42 digits
    message_id = 2**70 + marker
    response = client.post(
        "/v1/track", json={"userId": user_id, "event": "Big Ids", "messageId": message_id}
    )
    assert response.status_code == 200, response.text
    [row] = stored(server, str(user_id))
    assert row["user_id"] == str(user_id)
    assert row["message_id"] == str(message_id)
    assert row["event"]["userId"] == str(user_id)


def test_big_integers_in_properties_reach_the_destination_exactly(
    client: httpx.Client, sink: Endpoint
) -> None:
    uid = user()
    properties = {"order": BIG, "negative": -(2**64), "u64": 2**64 - 1, "list": [10**25]}
    response = client.post(
        "/v1/track", json={"userId": uid, "event": "Big Numbers", "properties": properties}
    )
    assert response.status_code == 200, response.text
    [request] = [
        r
        for r in sink.wait_until(lambda rs: any(uid.encode() in r.body for r in rs), 30, uid)
        if uid.encode() in r.body
    ]
    delivered = json.loads(request.body)  # the stdlib keeps big integers exact
    assert delivered["properties"] == properties
    assert str(BIG).encode() in request.body


# -- the pixel ----------------------------------------------------------------------


def test_pixel_with_extreme_timestamps_answers_its_gif_and_stores(
    client: httpx.Client, server: SegueProcess
) -> None:
    uid = user()
    pixel(
        client,
        {"userId": uid, "event": "Opened", "timestamp": "0001-01-01", "sentAt": "9999-12-31"},
    )
    [row] = stored(server, uid)
    assert row["event"]["timestamp"] == YEAR_1
    assert row["event"]["channel"] == "browser"


@pytest.mark.parametrize(
    "extra",
    [
        {"properties": {"pad": "x" * (40 * 1024)}},  # over the 32 KB a POST may carry
        {"properties": nest(400)},
        {"timestamp": "0001-01-01T00:30:00+01:00"},
        {"userId": True},
    ],
    ids=["40kb", "deep", "timestamp-out-of-range", "bad-id"],
)
def test_pixel_refuses_what_a_post_refuses_and_still_answers_its_gif(
    extra: dict[str, Any], client: httpx.Client, server: SegueProcess
) -> None:
    uid = user()
    pixel(client, {"userId": uid, "event": "Opened", **extra})
    assert stored(server, uid) == []


@pytest.mark.parametrize("query", ["data=%%%", "data=", "", "data=bm90IGpzb24", "data=W10"])
def test_pixel_garbage_answers_its_gif(query: str, client: httpx.Client) -> None:
    response = client.get(f"/v1/pixel/track?{query}", auth=None)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"


# -- gzip and text ------------------------------------------------------------------


def test_gzip_with_trailing_garbage_is_refused(client: httpx.Client, server: SegueProcess) -> None:
    uid = user()
    body = gzip.compress(json.dumps({"userId": uid, "event": "E"}).encode()) + b"garbage"
    response = client.post("/v1/track", content=body, headers={"Content-Encoding": "gzip"})
    assert "trailing data" in assert_json_error(response)["message"]
    assert stored(server, uid) == []


def test_deflate_with_trailing_garbage_is_refused(client: httpx.Client) -> None:
    body = zlib.compress(json.dumps({"userId": user(), "event": "E"}).encode()) + b"\x00"
    response = client.post("/v1/track", content=body, headers={"Content-Encoding": "deflate"})
    assert "trailing data" in assert_json_error(response)["message"]


def test_gzip_members_are_inflated_one_after_the_other(
    client: httpx.Client, server: SegueProcess
) -> None:
    uid = user()
    text = json.dumps({"userId": uid, "event": "Two Members"}).encode()
    body = gzip.compress(text[:10]) + gzip.compress(text[10:])
    response = client.post("/v1/track", content=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert len(stored(server, uid)) == 1


def test_more_than_64_gzip_members_are_refused(client: httpx.Client) -> None:
    text = json.dumps({"userId": user(), "event": "Many Members"}).encode()
    body = b"".join(gzip.compress(text[i : i + 1]) for i in range(len(text)))
    assert len(text) > 64
    response = client.post("/v1/track", content=body, headers={"Content-Encoding": "gzip"})
    assert "members" in assert_json_error(response)["message"]


def test_a_lone_surrogate_becomes_a_replacement_character(
    client: httpx.Client, server: SegueProcess
) -> None:
    """What JSON.stringify writes for a string cut in the middle of an emoji."""
    uid = user()
    body = '{"userId": "UID", "event": "Cut", "properties": {"title": "ab\\ud83d"}}'
    body = body.replace("UID", uid)
    response = client.post("/v1/t", content=body.encode(), headers={"Content-Type": "text/plain"})
    assert response.status_code == 200, response.text
    [row] = stored(server, uid)
    assert row["event"]["properties"]["title"] == "ab\ufffd"
