"""Every Tracking API route and auth style, over real sockets against ``segue serve``."""

from __future__ import annotations

import base64
import gzip
import json
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.support.server import WRITE_KEY, SegueProcess

SINGLE_ROUTES = {
    "identify": "identify",
    "track": "track",
    "page": "page",
    "screen": "screen",
    "group": "group",
    "alias": "alias",
    "i": "identify",
    "t": "track",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
}
SHORT_ROUTES = frozenset("itpsga")
BATCH_ROUTES = ("batch", "import", "b")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SegueProcess]:
    process = SegueProcess(tmp_path_factory.mktemp("ingest-routes") / "data").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(server: SegueProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=(WRITE_KEY, ""), timeout=30.0) as http:
        yield http


def new_user() -> str:
    return f"user-{uuid.uuid4().hex}"


def stored(server: SegueProcess, user_id: str) -> list[dict[str, Any]]:
    """Stored events of one user, oldest first."""
    return list(reversed(server.all_events(user_id=user_id)))


def only_event(server: SegueProcess, user_id: str) -> dict[str, Any]:
    events = stored(server, user_id)
    assert len(events) == 1, events
    return events[0]


def assert_ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    assert response.headers["access-control-allow-origin"] == "*"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def universal_body(user: str, wrong_type: str) -> dict[str, Any]:
    """Valid for every message type; ``type`` deliberately names another one."""
    return {
        "type": wrong_type,
        "userId": user,
        "previousId": f"{user}-previous",
        "groupId": "group-1",
        "event": "Signed Up",
        "name": "Home",
        "properties": {"plan": "pro"},
        "traits": {"email": "a@example.com"},
    }


def metric(client: httpx.Client, name: str, label: str, value: str) -> float:
    text = client.get("/metrics").text
    match = re.search(rf'^{name}{{{label}="{value}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def received_total(client: httpx.Client, source: str = "test") -> float:
    return metric(client, "segue_events_received_total", "source", source)


# -- routes ----------------------------------------------------------------


@pytest.mark.parametrize("route", list(SINGLE_ROUTES))
def test_single_route_sets_type_from_the_route(
    route: str, client: httpx.Client, server: SegueProcess
) -> None:
    user = new_user()
    expected = SINGLE_ROUTES[route]
    wrong = "alias" if expected != "alias" else "track"
    assert_ok(client.post(f"/v1/{route}", json=universal_body(user, wrong)))

    event = only_event(server, user)
    assert event["type"] == expected
    message = event["event"]
    assert message["type"] == expected
    assert message["userId"] == user
    assert message["messageId"]
    assert message["projectId"] == event["source_id"]
    assert isinstance(message["integrations"], dict)
    assert message["channel"] == ("browser" if route in SHORT_ROUTES else "server")
    for key in ("receivedAt", "timestamp", "originalTimestamp"):
        parse_time(message[key])


@pytest.mark.parametrize("route", BATCH_ROUTES)
def test_batch_routes_store_every_item_with_its_own_type(
    route: str, client: httpx.Client, server: SegueProcess
) -> None:
    user = new_user()
    batch = [
        {"type": "identify", "userId": user, "traits": {"plan": "pro"}},
        {"type": "track", "userId": user, "event": "Order Completed"},
        {"type": "page", "userId": user, "name": "Checkout"},
        {"type": "screen", "userId": user, "name": "Cart"},
        {"type": "group", "userId": user, "groupId": "acme"},
        {"type": "alias", "userId": user, "previousId": "anon-1"},
    ]
    assert_ok(client.post(f"/v1/{route}", json={"batch": batch}))
    events = stored(server, user)
    assert [e["type"] for e in events] == [item["type"] for item in batch]


def test_b_route_with_write_key_in_body_corrects_clock_skew(
    client: httpx.Client, server: SegueProcess
) -> None:
    user = new_user()
    # the client's clock runs 10 minutes (and 250 ms) behind the server's... or anywhere:
    # only the difference sentAt - timestamp matters
    original = "2020-03-01T12:00:00.000Z"
    sent_at = "2020-03-01T12:05:30.250Z"
    body = {
        "writeKey": WRITE_KEY,
        "sentAt": sent_at,
        "batch": [
            {"type": "track", "userId": user, "event": "Skewed", "timestamp": original},
            {"type": "track", "userId": user, "event": "No Time"},
        ],
    }
    assert_ok(client.post("/v1/b", json=body, auth=None))

    skewed, untimed = (e["event"] for e in stored(server, user))
    assert "writeKey" not in skewed
    assert parse_time(skewed["originalTimestamp"]) == parse_time(original)
    assert parse_time(skewed["sentAt"]) == parse_time(sent_at)
    received = parse_time(skewed["receivedAt"])
    expected = received - (parse_time(sent_at) - parse_time(original))
    assert abs(parse_time(skewed["timestamp"]) - expected) <= timedelta(milliseconds=3)
    # receivedAt is the server's clock now, not the client's
    assert abs(received - datetime.now(received.tzinfo)) < timedelta(minutes=1)
    # an item without a time of its own happened when it was received
    assert parse_time(untimed["sentAt"]) == parse_time(sent_at)
    assert abs(parse_time(untimed["timestamp"]) - parse_time(untimed["receivedAt"])) <= timedelta(
        milliseconds=3
    )


def test_batch_context_and_integrations_merge_into_items(
    client: httpx.Client, server: SegueProcess
) -> None:
    user = new_user()
    body = {
        "context": {"library": {"name": "analytics-ios", "version": "4.1"}, "locale": "en-US"},
        "integrations": {"All": False, "Mixpanel": True},
        "batch": [
            {
                "type": "track",
                "userId": user,
                "event": "Own Context",
                "context": {"locale": "fr-FR", "timezone": "Europe/Paris"},
                "integrations": {"Mixpanel": False, "Amplitude": True},
            },
            {"type": "track", "userId": user, "event": "Batch Context"},
        ],
    }
    assert_ok(client.post("/v1/batch", json=body))
    own, inherited = (e["event"] for e in stored(server, user))

    assert own["context"]["locale"] == "fr-FR"  # the item wins
    assert own["context"]["timezone"] == "Europe/Paris"
    assert own["context"]["library"] == {"name": "analytics-ios", "version": "4.1"}
    assert own["integrations"] == {"All": False, "Mixpanel": False, "Amplitude": True}

    assert inherited["context"]["locale"] == "en-US"
    assert inherited["context"]["library"]["name"] == "analytics-ios"
    assert inherited["integrations"] == {"All": False, "Mixpanel": True}
    assert inherited["channel"] == "mobile"  # inferred from the merged library name


# -- auth ------------------------------------------------------------------


def test_write_key_as_basic_auth_username(client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()
    token = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    response = client.post(
        "/v1/track",
        json={"userId": user, "event": "Basic"},
        auth=None,
        headers={"Authorization": f"Basic {token}"},
    )
    assert_ok(response)
    assert only_event(server, user)["event"]["event"] == "Basic"


def test_write_key_as_basic_auth_without_colon(client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()
    token = base64.b64encode(WRITE_KEY.encode()).decode()
    response = client.post(
        "/v1/track",
        json={"userId": user, "event": "Basic"},
        auth=None,
        headers={"Authorization": f"Basic {token}"},
    )
    assert_ok(response)
    only_event(server, user)


def test_write_key_in_body(client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()
    response = client.post(
        "/v1/track", json={"writeKey": WRITE_KEY, "userId": user, "event": "Body"}, auth=None
    )
    assert_ok(response)
    message = only_event(server, user)["event"]
    assert "writeKey" not in message  # never stored or forwarded


def test_write_key_in_body_with_bearer_token(client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()
    response = client.post(
        "/v1/identify",
        json={"writeKey": WRITE_KEY, "userId": user, "traits": {"a": 1}},
        auth=None,
        headers={"Authorization": "Bearer some-oauth-access-token"},
    )
    assert_ok(response)
    assert only_event(server, user)["type"] == "identify"


def test_basic_auth_wins_over_body_key(client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()
    response = client.post(
        "/v1/track", json={"writeKey": "wk_unknown", "userId": user, "event": "Both"}
    )
    assert_ok(response)
    assert "writeKey" not in only_event(server, user)["event"]


# -- content ---------------------------------------------------------------


def test_text_plain_body_is_parsed_as_json(client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()
    response = client.post(
        "/v1/t",
        content=json.dumps({"writeKey": WRITE_KEY, "userId": user, "event": "Plain"}),
        headers={"Content-Type": "text/plain"},
        auth=None,
    )
    assert_ok(response)
    assert only_event(server, user)["event"]["event"] == "Plain"


def test_form_content_type_is_still_json(client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()
    response = client.post(
        "/v1/track",
        content=json.dumps({"userId": user, "event": "Form"}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_ok(response)
    only_event(server, user)


@pytest.mark.parametrize("route", ["batch", "import"])
def test_gzipped_batch_is_accepted(route: str, client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()
    batch = [{"type": "track", "userId": user, "event": f"Zipped {i}"} for i in range(50)]
    body = gzip.compress(json.dumps({"batch": batch}).encode())
    response = client.post(
        f"/v1/{route}",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert_ok(response)
    assert len(stored(server, user)) == 50


def test_gzipped_single_event_is_accepted(client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()
    body = gzip.compress(json.dumps({"userId": user, "event": "Zipped"}).encode())
    assert_ok(client.post("/v1/track", content=body, headers={"Content-Encoding": "gzip"}))
    only_event(server, user)


def test_batch_just_under_the_limits_is_accepted(
    client: httpx.Client, server: SegueProcess
) -> None:
    user = new_user()
    batch = [{"type": "track", "userId": user, "event": "E"} for _ in range(2500)]
    assert_ok(client.post("/v1/batch", json={"batch": batch}))
    assert len(stored(server, user)) == 2500


def test_single_event_just_under_32kb_is_accepted(
    client: httpx.Client, server: SegueProcess
) -> None:
    user = new_user()
    body = {"userId": user, "event": "Big", "properties": {"pad": ""}}
    body["properties"]["pad"] = "x" * (32 * 1024 - len(json.dumps(body)) - 10)
    assert_ok(client.post("/v1/track", content=json.dumps(body).encode()))
    only_event(server, user)


# -- pixel -----------------------------------------------------------------


def _pixel_data(payload: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


def test_pixel_stores_the_event_and_returns_a_gif(
    client: httpx.Client, server: SegueProcess
) -> None:
    user = new_user()
    data = _pixel_data({"writeKey": WRITE_KEY, "userId": user, "event": "Email Opened"})
    response = client.get("/v1/pixel/track", params={"data": data}, auth=None)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF8")
    event = only_event(server, user)
    assert event["type"] == "track"
    assert event["event"]["event"] == "Email Opened"
    assert "writeKey" not in event["event"]


def test_pixel_accepts_url_safe_base64_without_padding(
    client: httpx.Client, server: SegueProcess
) -> None:
    user = new_user()
    payload = {"writeKey": WRITE_KEY, "userId": user, "traits": {"note": "??>>~~"}}
    data = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    response = client.get("/v1/pixel/identify", params={"data": data}, auth=None)
    assert response.status_code == 200
    assert only_event(server, user)["type"] == "identify"


@pytest.mark.parametrize(
    "query",
    [
        {"data": "!!!not base64!!!"},
        {"data": base64.b64encode(b"not json").decode()},
        {"data": base64.b64encode(b"[1, 2]").decode()},
        {"data": _pixel_data({"writeKey": "wk_unknown", "userId": "u", "event": "E"})},
        {"data": _pixel_data({"writeKey": WRITE_KEY, "userId": "u"})},  # no event
        {},
    ],
    ids=["garbage", "not-json", "not-object", "unknown-key", "invalid-event", "no-data"],
)
def test_garbage_pixel_still_returns_a_gif(query: dict[str, str], client: httpx.Client) -> None:
    response = client.get("/v1/pixel/track", params=query, auth=None)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF8")


def test_pixel_of_unknown_type_is_a_gif_and_stores_nothing(
    client: httpx.Client, server: SegueProcess
) -> None:
    user = new_user()
    data = _pixel_data({"writeKey": WRITE_KEY, "userId": user, "event": "E"})
    response = client.get("/v1/pixel/purchase", params={"data": data}, auth=None)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert stored(server, user) == []


def _data_with_plus(user: str) -> str:
    for n in range(1000):
        payload = {"writeKey": WRITE_KEY, "userId": user, "event": "Email Opened", "n": n}
        data = _pixel_data({**payload, "properties": {"subject": ">>>?" * (n % 7 + 1)}})
        if "+" in data:
            return data
    raise AssertionError("no base64 with a '+' found")


def test_pixel_with_raw_plus_in_base64_is_stored(server: SegueProcess) -> None:
    user = new_user()
    data = _data_with_plus(user)
    # written into the URL as-is, the way an email template embeds it
    response = httpx.get(f"{server.url}/v1/pixel/track?data={data}", timeout=10.0)
    assert response.status_code == 200
    assert len(stored(server, user)) == 1


# -- context.ip --------------------------------------------------------------


def test_context_ip_set_for_browser_short_route(client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()
    assert_ok(client.post("/v1/t", json={"userId": user, "event": "Clicked"}))
    message = only_event(server, user)["event"]
    assert message["channel"] == "browser"
    assert message["context"]["ip"] == "127.0.0.1"


def test_context_ip_set_for_direct_events(client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()
    body = {"userId": user, "event": "Direct", "context": {"direct": True}}
    assert_ok(client.post("/v1/track", json=body))
    assert only_event(server, user)["event"]["context"]["ip"] == "127.0.0.1"


def test_context_ip_not_set_for_server_library(client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()
    body = {
        "userId": user,
        "event": "Server Side",
        "context": {"library": {"name": "analytics-python", "version": "2.3.2"}},
    }
    assert_ok(client.post("/v1/track", json=body))
    message = only_event(server, user)["event"]
    assert message["channel"] == "server"
    assert "ip" not in message["context"]


def test_client_supplied_context_ip_is_kept(client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()
    body = {"userId": user, "event": "Forwarded", "context": {"ip": "203.0.113.7"}}
    assert_ok(client.post("/v1/t", json=body))
    assert only_event(server, user)["event"]["context"]["ip"] == "203.0.113.7"


def test_forwarded_for_is_not_trusted_by_default(
    client: httpx.Client, server: SegueProcess
) -> None:
    user = new_user()
    response = client.post(
        "/v1/t",
        json={"userId": user, "event": "Spoofed"},
        headers={"X-Forwarded-For": "198.51.100.1"},
    )
    assert_ok(response)
    assert only_event(server, user)["event"]["context"]["ip"] == "127.0.0.1"


# -- dedup -----------------------------------------------------------------


def test_duplicate_message_id_is_acknowledged_and_stored_once(
    client: httpx.Client, server: SegueProcess
) -> None:
    user = new_user()
    body = {"userId": user, "event": "Once", "messageId": f"msg-{user}"}
    assert_ok(client.post("/v1/track", json=body))
    assert_ok(client.post("/v1/track", json=body))
    # also through another route (a retried batch)
    assert_ok(client.post("/v1/batch", json={"batch": [{**body, "type": "track"}]}))
    assert only_event(server, user)["message_id"] == f"msg-{user}"


def test_duplicate_within_one_batch_is_stored_once(
    client: httpx.Client, server: SegueProcess
) -> None:
    user = new_user()
    item = {"type": "track", "userId": user, "event": "Twice", "messageId": f"dup-{user}"}
    other = {"type": "track", "userId": user, "event": "Other"}
    assert_ok(client.post("/v1/batch", json={"batch": [item, item, other]}))
    assert len(stored(server, user)) == 2


def test_same_message_id_on_another_source_is_not_a_duplicate(
    client: httpx.Client, server: SegueProcess
) -> None:
    with server.admin() as admin:
        created = admin.post("/sources", json={"name": "other-source"})
        assert created.status_code == 201, created.text
    other_key = created.json()["write_key"]
    user = new_user()
    body = {"userId": user, "event": "Shared Id", "messageId": f"shared-{user}"}
    assert_ok(client.post("/v1/track", json=body))
    assert_ok(client.post("/v1/track", json=body, auth=(other_key, "")))
    assert len(stored(server, user)) == 2


# -- CORS, health, metrics -------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/t", "/v1/batch", "/v1/b"])
def test_options_preflight(path: str, client: httpx.Client) -> None:
    response = client.options(
        path,
        auth=None,
        headers={
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed
    assert "authorization" in allowed


def test_health(client: httpx.Client) -> None:
    response = client.get("/health", auth=None)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_metrics_count_received_events_exactly(client: httpx.Client) -> None:
    before = received_total(client)
    user = new_user()
    batch = [{"type": "track", "userId": user, "event": f"Counted {i}"} for i in range(7)]
    assert_ok(client.post("/v1/batch", json={"batch": batch}))
    assert_ok(client.post("/v1/identify", json={"userId": user, "messageId": f"m-{user}"}))
    # neither a duplicate nor a rejected event counts as received
    assert_ok(client.post("/v1/identify", json={"userId": user, "messageId": f"m-{user}"}))
    assert client.post("/v1/track", json={"userId": user}).status_code == 400
    assert received_total(client) - before == 8

    metrics = client.get("/metrics", auth=None)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert "segue_events_received" in text
    assert "segue_store_commit_seconds" in text
    assert re.search(r'^segue_events_duplicate_total\{source="test"\} [1-9]', text, re.M)
    assert re.search(r'^segue_events_rejected_total\{code="event_not_defined"\} [1-9]', text, re.M)


def test_rejected_items_of_a_batch_are_counted_once(client: httpx.Client) -> None:
    before = metric(client, "segue_events_rejected_total", "code", "event_not_string")
    batch = [
        {"type": "track", "userId": "u", "event": 1},
        {"type": "track", "userId": "u", "event": "Fine"},
    ]
    assert client.post("/v1/batch", json={"batch": batch}).status_code == 400
    after = metric(client, "segue_events_rejected_total", "code", "event_not_string")
    assert after - before == 1


def test_a_single_rejected_event_is_counted_once(client: httpx.Client) -> None:
    before = metric(client, "segue_events_rejected_total", "code", "category_not_string")
    response = client.post("/v1/page", json={"userId": "u", "category": 5})
    assert response.status_code == 400
    after = metric(client, "segue_events_rejected_total", "code", "category_not_string")
    assert after - before == 1


def test_concurrent_requests_are_all_stored(client: httpx.Client, server: SegueProcess) -> None:
    user = new_user()

    def send(worker: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=server.url, auth=(WRITE_KEY, ""), timeout=30.0) as own:
            for i in range(10):
                body = {"userId": user, "event": "Parallel", "messageId": f"{user}-{worker}-{i}"}
                statuses.append(own.post("/v1/track", json=body).status_code)
        return statuses

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = [status for result in pool.map(send, range(16)) for status in result]
    assert statuses == [200] * 160
    events = stored(server, user)
    assert len(events) == 160
    assert len({e["message_id"] for e in events}) == 160
