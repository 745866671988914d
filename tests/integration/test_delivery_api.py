"""The delivery half of the admin API over real sockets: apps, destinations, Send Test
Event and the suite, the delivery debugger, the Event Delivery summary (bulk retry
and replay: test_replay.py).

One ``segue serve`` per module with ``[[apps]]``/``[[destinations]]`` in its config,
and a real partner endpoint (tests/support/endpoint.py) that records every request
and answers as each test scripts it, per path. Every admin API response of the
module is recorded and searched for the sensitive setting values: they never appear.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.support.endpoint import Endpoint, ReceivedRequest, Reply
from tests.support.server import SegueProcess

MASK = "••••••"
API_KEY = "sk-live-1f2e3d4c5b6a"  # the destination's apiKey (sensitive)
SIGNING = "whsec-9a8b7c6d5e4f"  # a custom sensitive setting
TEST_KEY = "sk-test-0a1b2c3d"  # supplied to app test events
SECRETS = (API_KEY, SIGNING, TEST_KEY)
WAIT_S = 20.0
SAMPLE_TYPES = ("identify", "track", "page", "screen", "group", "alias", "delete")


def _config(url: str) -> str:
    return f"""
[[sources]]
name = "test"
write_key = "wk_test"

[egress]
allow = ["127.0.0.0/8"]
allow_http = true

[[apps]]
name = "acme"
endpoint = "{url}/acme"
settings = [
  {{ label = "API Key", key = "apiKey", required = true, sensitive = true }},
  {{ label = "Region", key = "region", description = "EU or US" }},
  {{ label = "Signing Secret", sensitive = true }},
]

[[destinations]]
name = "acme-prod"
app = "acme"
sources = ["test"]
settings = {{ apiKey = "{API_KEY}", region = "eu", signingSecret = "{SIGNING}" }}
"""


class Router:
    """The endpoint's answers, per first path segment; 200 unless a test says otherwise."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[ReceivedRequest], Reply]] = {}

    def __call__(self, request: ReceivedRequest) -> Reply:
        segment = request.path.strip("/").split("/", 1)[0].split("?", 1)[0]
        return self.routes.get(segment, lambda _r: Reply(200))(request)


@pytest.fixture(scope="module")
def router() -> Router:
    return Router()


@pytest.fixture(scope="module")
def endpoint(router: Router) -> Iterator[Endpoint]:
    with Endpoint(router) as sink:
        yield sink


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, endpoint: Endpoint) -> Iterator[SegueProcess]:
    data = tmp_path_factory.mktemp("delivery-api") / "data"
    process = SegueProcess(data, config_text=_config(endpoint.url)).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def seen() -> list[httpx.Response]:
    """Every admin API response of the module, to search for secrets."""
    return []


@pytest.fixture(scope="module")
def admin(server: SegueProcess, seen: list[httpx.Response]) -> Iterator[httpx.Client]:
    def record(response: httpx.Response) -> None:
        response.read()
        seen.append(response)

    with server.admin() as client:
        client.event_hooks["response"] = [record]
        yield client


@pytest.fixture(autouse=True)
def _no_secret_in_any_response(seen: list[httpx.Response]) -> Iterator[None]:
    yield
    for response in seen:
        assert_no_secrets(response.text, response.request.url)


def assert_no_secrets(text: str, where: object) -> None:
    """No plaintext secret, and no header that would carry one, in a response body."""
    haystacks = [text]
    try:
        document = json.loads(text) if text else None
    except ValueError:
        document = None
    for headers in _header_maps(document):
        for name, value in headers.items():
            if name.lower() == "authorization":
                assert value.endswith(MASK), (where, value)
            if name.lower() == "x-segment-settings":
                haystacks.append(base64.b64decode(value).decode())
    for haystack in haystacks:
        for secret in SECRETS:
            assert secret not in haystack, (where, secret)


def _header_maps(node: Any) -> Iterator[dict[str, str]]:
    if isinstance(node, dict):
        headers = node.get("headers")
        if isinstance(headers, dict):
            yield headers
        for value in node.values():
            yield from _header_maps(value)
    elif isinstance(node, list):
        for value in node:
            yield from _header_maps(value)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def message(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    text = response.json()["message"]
    assert isinstance(text, str)
    assert text
    return text


def decode_basic(value: str) -> str:
    scheme, _, encoded = value.partition(" ")
    assert scheme == "Basic"
    return base64.b64decode(encoded).decode()


def decode_settings(value: str) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(value)))


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
    """Call ``fetch`` until ``done(result)``, for at most WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while True:
        result = fetch()
        if done(result):
            return result
        assert time.monotonic() < deadline, f"{what}: not reached within {WAIT_S} s: {result}"
        time.sleep(0.05)


def requests_to(endpoint: Endpoint, segment: str) -> list[ReceivedRequest]:
    return [r for r in endpoint.requests if r.path.strip("/").split("/")[0] == segment]


def new_source(admin: httpx.Client) -> dict[str, Any]:
    return dict(ok(admin.post("/sources", json={"name": unique("src")}), 201))


def new_destination(
    admin: httpx.Client, endpoint: Endpoint, segment: str, source: str, **fields: Any
) -> dict[str, Any]:
    body = {
        "name": unique(segment),
        "endpoint": f"{endpoint.url}/{segment}",
        "sources": [source],
        "settings": {"apiKey": API_KEY},
        "options": {"allow_http": True, "first_backoff_s": 0.05, "max_backoff_s": 0.1},
        **fields,
    }
    return dict(ok(admin.post("/destinations", json=body), 201))


def send_tracks(server: SegueProcess, write_key: str, properties: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        for props in properties:
            body = {"userId": "u-1", "event": "Order Completed", "properties": props}
            response = http.post("/v1/track", json=body, auth=(write_key, ""))
            assert response.status_code == 200, response.text


def deliveries(admin: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    return list(ok(admin.get("/deliveries", params=params))["deliveries"])


# -- the settings builder and apps -----------------------------------------------


@pytest.mark.parametrize(
    ("label", "key"),
    [
        ("API Key", "apiKey"),
        ("Custom Setting", "customSetting"),
        ("publishable API key", "publishableApiKey"),
    ],
)
def test_settings_key_from_label(admin: httpx.Client, label: str, key: str) -> None:
    assert ok(admin.post("/settings/key", json={"label": label}))["key"] == key


def test_settings_key_needs_a_label(admin: httpx.Client) -> None:
    message(admin.post("/settings/key", json={}), 400)
    message(admin.post("/settings/key", json={"label": "!!!"}), 400)


def test_app_from_config_is_listed(admin: httpx.Client, endpoint: Endpoint) -> None:
    apps = {a["name"]: a for a in ok(admin.get("/apps"))["apps"]}
    acme = apps["acme"]
    assert acme["endpoint"] == f"{endpoint.url}/acme"
    assert [f["key"] for f in acme["settings"]] == ["apiKey", "region", "signingSecret"]
    assert acme["destinations"] == ["acme-prod"]
    assert ok(admin.get("/apps/acme")) == acme


def test_app_crud(admin: httpx.Client, endpoint: Endpoint) -> None:
    name = unique("app")
    body = {
        "name": name,
        "endpoint": f"{endpoint.url}/crud",
        "settings": [{"label": "Custom Setting", "description": "from the settings page"}],
    }
    created = ok(admin.post("/apps", json=body), 201)
    assert created["name"] == name
    # the API key field is always there; the key is generated from the label
    assert [(f["key"], f["sensitive"]) for f in created["settings"]] == [
        ("apiKey", True),
        ("customSetting", False),
    ]
    assert created["settings"][1]["description"] == "from the settings page"
    assert name in [a["name"] for a in ok(admin.get("/apps"))["apps"]]
    message(admin.post("/apps", json=body), 409)

    patched = ok(
        admin.patch(
            f"/apps/{name}",
            json={"settings": [{"label": "Workspace", "key": "ws", "required": True}]},
        )
    )
    assert [f["key"] for f in patched["settings"]] == ["apiKey", "ws"]
    assert patched["settings"][1]["required"] is True
    assert ok(admin.get(f"/apps/{name}")) == patched
    message(admin.patch(f"/apps/{name}", json={"name": "other"}), 400)

    assert admin.delete(f"/apps/{name}").status_code == 204
    message(admin.get(f"/apps/{name}"), 404)
    message(admin.delete(f"/apps/{name}"), 404)
    message(admin.patch(f"/apps/{name}", json={}), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"endpoint": "https://acme.example/segment"},  # no name
        {"name": "Bad Name", "endpoint": "https://acme.example/segment"},
        {"name": "no-endpoint"},
        {"name": "ftp", "endpoint": "ftp://acme.example/"},
        {"name": "bad-settings", "endpoint": "https://a.example/", "settings": {"x": 1}},
        {"name": "no-label", "endpoint": "https://a.example/", "settings": [{"key": "k"}]},
        {
            "name": "dup-keys",
            "endpoint": "https://a.example/",
            "settings": [{"label": "A B"}, {"label": "a b"}],
        },
        {"name": "unknown-field", "endpoint": "https://a.example/", "colour": "red"},
    ],
)
def test_invalid_app_is_a_400(admin: httpx.Client, body: dict[str, Any]) -> None:
    message(admin.post("/apps", json=body), 400)


def test_app_used_by_a_destination_cannot_be_deleted(admin: httpx.Client) -> None:
    assert "acme-prod" in message(admin.delete("/apps/acme"), 409)


def test_bad_json_is_a_400(admin: httpx.Client) -> None:
    message(admin.post("/apps", content=b"{not json"), 400)
    message(admin.post("/destinations", content=b"[]"), 400)


# -- destinations ----------------------------------------------------------------


def test_destination_from_config_is_masked(admin: httpx.Client, endpoint: Endpoint) -> None:
    shown = ok(admin.get("/destinations/acme-prod"))
    assert shown["settings"] == {"apiKey": MASK, "region": "eu", "signingSecret": MASK}
    assert [f["key"] for f in shown["fields"]] == ["apiKey", "region", "signingSecret"]
    assert shown["app"] == "acme"
    assert shown["endpoint"] is None
    assert shown["effective_endpoint"] == f"{endpoint.url}/acme"
    assert shown["sources"] == ["test"]
    assert shown["enabled"] is True
    assert shown["options"]["timeout_s"] == 5.0
    listed = {d["name"]: d for d in ok(admin.get("/destinations"))["destinations"]}
    assert listed["acme-prod"] == shown


def test_destination_crud(admin: httpx.Client, endpoint: Endpoint) -> None:
    name = unique("dst")
    body = {
        "name": name,
        "app": "acme",
        "sources": ["test"],
        "settings": {"apiKey": API_KEY, "region": "us", "signingSecret": SIGNING},
        "enabled": False,
        "options": {"timeout_s": 2, "snake_case": True, "retry_window_s": 60},
    }
    created = ok(admin.post("/destinations", json=body), 201)
    assert created["settings"] == {"apiKey": MASK, "region": "us", "signingSecret": MASK}
    assert created["enabled"] is False
    assert created["options"]["timeout_s"] == 2.0
    assert created["options"]["snake_case"] is True
    assert created["options"]["retry_window_s"] == 60.0
    message(admin.post("/destinations", json=body), 409)

    # the masked value sent back means "unchanged"
    patched = ok(
        admin.patch(
            f"/destinations/{name}",
            json={"settings": {"apiKey": MASK, "region": "eu", "signingSecret": MASK}},
        )
    )
    assert patched["settings"] == {"apiKey": MASK, "region": "eu", "signingSecret": MASK}
    result = ok(admin.post(f"/destinations/{name}/test", json={"type": "track"}))
    assert result["status"] == 200
    received = requests_to(endpoint, "acme")[-1]
    assert decode_basic(received.header("Authorization")) == f"{API_KEY}:"
    assert decode_settings(received.header("X-Segment-Settings")) == {
        "region": "eu",
        "signingSecret": SIGNING,
    }

    inline = ok(admin.patch(f"/destinations/{name}", json={"endpoint": f"{endpoint.url}/inline"}))
    assert inline["effective_endpoint"] == f"{endpoint.url}/inline"
    assert admin.delete(f"/destinations/{name}").status_code == 204
    message(admin.get(f"/destinations/{name}"), 404)
    message(admin.delete(f"/destinations/{name}"), 404)


def test_missing_required_setting_is_named(admin: httpx.Client) -> None:
    body = {"name": unique("dst"), "app": "acme", "sources": ["test"], "settings": {"region": "eu"}}
    assert "API Key" in message(admin.post("/destinations", json=body), 400)
    patch = {"settings": {"apiKey": "", "region": "eu"}}
    assert "API Key" in message(admin.patch("/destinations/acme-prod", json=patch), 400)


@pytest.mark.parametrize(
    "body",
    [
        {"app": "acme", "sources": ["test"], "settings": {"apiKey": "k"}},  # no name
        {"name": "no-target", "sources": ["test"]},
        {"name": "ghost-app", "app": "nope", "sources": ["test"]},
        {"name": "bad-url", "endpoint": "not a url", "sources": ["test"]},
        {"name": "ghost-src", "app": "acme", "sources": ["nope"], "settings": {"apiKey": "k"}},
        {"name": "bad-src", "app": "acme", "sources": "test", "settings": {"apiKey": "k"}},
        {"name": "unknown-key", "app": "acme", "settings": {"apiKey": "k", "colour": "red"}},
        {"name": "bad-enabled", "app": "acme", "settings": {"apiKey": "k"}, "enabled": "yes"},
        {"name": "bad-option", "app": "acme", "settings": {"apiKey": "k"}, "options": {"x": 1}},
        {
            "name": "bad-timeout",
            "app": "acme",
            "settings": {"apiKey": "k"},
            "options": {"timeout_s": -1},
        },
    ],
)
def test_invalid_destination_is_a_400(admin: httpx.Client, body: dict[str, Any]) -> None:
    message(admin.post("/destinations", json=body), 400)


# -- Send Test Event ---------------------------------------------------------------


def _contract_headers(received: ReceivedRequest) -> None:
    assert received.method == "POST"
    assert received.header("Accept") == "*/*"
    assert received.header("Cache-Control") == "no-cache"
    assert received.header("Connection") == "Keep-Alive"
    assert received.header("Content-Type") == "application/json"
    assert received.header("User-Agent") == "Segment.io/1.0"
    assert int(received.header("Content-Length")) == len(received.body)


def test_send_test_event_to_an_app(admin: httpx.Client, endpoint: Endpoint) -> None:
    settings = {"apiKey": TEST_KEY, "region": "us", "signingSecret": SIGNING}
    result = ok(admin.post("/apps/acme/test", json={"type": "track", "settings": settings}))
    assert result["status"] == 200
    assert result["outcome"] == "succeeded"
    assert result["response"]["status"] == 200
    assert result["duration_ms"] >= 0

    received = requests_to(endpoint, "acme")[-1]
    _contract_headers(received)
    assert decode_basic(received.header("Authorization")) == f"{TEST_KEY}:"
    assert decode_settings(received.header("X-Segment-Settings")) == {
        "region": "us",
        "signingSecret": SIGNING,
    }
    assert received.json() == result["event"]
    assert received.json()["type"] == "track"
    # what segue shows it sent: the same request, credentials masked
    shown = result["request"]
    assert shown["method"] == "POST"
    assert shown["url"] == f"{endpoint.url}/acme"
    assert json.loads(shown["body"]) == received.json()
    assert shown["headers"]["Authorization"] == f"Basic {MASK}"
    assert decode_settings(shown["headers"]["X-Segment-Settings"]) == {
        "region": "us",
        "signingSecret": MASK,
    }
    assert shown["headers"]["Content-Length"] == received.header("Content-Length")
    assert shown["headers"]["User-Agent"] == "Segment.io/1.0"


def test_send_test_event_with_a_given_event(admin: httpx.Client, endpoint: Endpoint) -> None:
    event = {"type": "identify", "userId": "u-42", "traits": {"email": "ada@example.com"}}
    body = {"event": event, "settings": {"apiKey": TEST_KEY}}
    result = ok(admin.post("/apps/acme/test", json=body))
    assert result["status"] == 200
    received = requests_to(endpoint, "acme")[-1]
    assert received.json() == event
    assert decode_settings(received.header("X-Segment-Settings")) == {}


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"type": "track", "settings": {"region": "eu"}}, 400, "API Key"),
        ({"type": "track"}, 400, "API Key"),
        ({"type": "track", "settings": {"apiKey": "k", "nope": 1}}, 400, "nope"),
        ({"type": "purchase", "settings": {"apiKey": "k"}}, 400, "type"),
        ({"settings": {"apiKey": "k"}}, 400, "type"),
        ({"event": [1], "settings": {"apiKey": "k"}}, 400, "event"),
        ({"type": "track", "settings": {"apiKey": "k"}, "extra": 1}, 400, "extra"),
    ],
)
def test_invalid_app_test_request(
    admin: httpx.Client, body: dict[str, Any], status: int, words: str
) -> None:
    assert words in message(admin.post("/apps/acme/test", json=body), status)


def test_send_test_event_to_unknown_targets_is_a_404(admin: httpx.Client) -> None:
    message(admin.post("/apps/nope/test", json={"type": "track"}), 404)
    message(admin.post("/destinations/nope/test", json={"type": "track"}), 404)
    message(admin.post("/apps/nope/test/suite", json={}), 404)
    message(admin.post("/destinations/nope/test/suite"), 404)


def test_send_test_event_to_a_destination(admin: httpx.Client, endpoint: Endpoint) -> None:
    result = ok(admin.post("/destinations/acme-prod/test", json={"type": "identify"}))
    assert result["status"] == 200
    assert result["outcome"] == "succeeded"
    received = requests_to(endpoint, "acme")[-1]
    _contract_headers(received)
    assert decode_basic(received.header("Authorization")) == f"{API_KEY}:"
    assert decode_settings(received.header("X-Segment-Settings")) == {
        "region": "eu",
        "signingSecret": SIGNING,
    }
    assert received.json()["type"] == "identify"
    headers = result["request"]["headers"]
    assert headers["Authorization"] == f"Basic {MASK}"
    assert decode_settings(headers["X-Segment-Settings"]) == {
        "region": "eu",
        "signingSecret": MASK,
    }

    # settings given for a test override the destination's (masked = unchanged)
    body = {"type": "page", "settings": {"apiKey": MASK, "region": "us"}}
    assert ok(admin.post("/destinations/acme-prod/test", json=body))["status"] == 200
    received = requests_to(endpoint, "acme")[-1]
    assert decode_basic(received.header("Authorization")) == f"{API_KEY}:"
    assert decode_settings(received.header("X-Segment-Settings"))["region"] == "us"
    # ... and are not saved
    assert ok(admin.get("/destinations/acme-prod"))["settings"]["region"] == "eu"


def test_test_event_shows_the_error_message(
    admin: httpx.Client, endpoint: Endpoint, router: Router
) -> None:
    router.routes["reject-test"] = lambda _r: Reply.json(401, {"message": "API token expired"})
    destination = new_destination(admin, endpoint, "reject-test", "test")
    result = ok(admin.post(f"/destinations/{destination['name']}/test", json={"type": "track"}))
    assert result["status"] == 401
    assert result["message"] == "API token expired"
    assert result["outcome"] == "discarded"
    assert result["response"]["body"] == '{"message": "API token expired"}'
    admin.delete(f"/destinations/{destination['name']}")


def test_suite_runs_every_type(admin: httpx.Client, endpoint: Endpoint, router: Router) -> None:
    def no_alias(request: ReceivedRequest) -> Reply:
        if request.json().get("type") == "alias":
            return Reply.json(501, {"message": "alias is not supported"})
        return Reply(200)

    router.routes["suite"] = no_alias
    name = unique("suite-app")
    app = {"name": name, "endpoint": f"{endpoint.url}/suite"}
    ok(admin.post("/apps", json=app), 201)
    before = len(requests_to(endpoint, "suite"))

    rows = ok(admin.post(f"/apps/{name}/test/suite", json={"settings": {"apiKey": TEST_KEY}}))
    rows = rows["results"]
    assert [r["type"] for r in rows] == list(SAMPLE_TYPES)
    by_type = {r["type"]: r for r in rows}
    assert by_type["alias"]["passed"] is False
    assert by_type["alias"]["status"] == 501
    assert by_type["alias"]["message"] == "alias is not supported"
    assert by_type["alias"]["outcome"] == "discarded"
    for type_ in SAMPLE_TYPES:
        row = by_type[type_]
        assert json.loads(row["request"]["body"])["type"] == type_
        assert row["response"]["status"] == row["status"]
        assert row["duration_ms"] >= 0
        if type_ != "alias":
            assert row["passed"] is True, row
            assert row["status"] == 200
    received = requests_to(endpoint, "suite")[before:]
    assert sorted(r.json()["type"] for r in received) == sorted(SAMPLE_TYPES)
    assert {decode_basic(r.header("Authorization")) for r in received} == {f"{TEST_KEY}:"}

    # the same suite against a destination of the app, with its own settings
    destination = {"name": unique("suite-dst"), "app": name, "settings": {"apiKey": API_KEY}}
    ok(admin.post("/destinations", json=destination), 201)
    rows = ok(admin.post(f"/destinations/{destination['name']}/test/suite"))["results"]
    assert len(rows) == 7
    assert [r["passed"] for r in rows] == [t != "alias" for t in SAMPLE_TYPES]
    admin.delete(f"/destinations/{destination['name']}")
    admin.delete(f"/apps/{name}")


# -- the delivery debugger and the Event Delivery summary --------------------------


def test_deliveries_show_attempts_and_the_error_message(
    admin: httpx.Client, server: SegueProcess, endpoint: Endpoint, router: Router
) -> None:
    router.routes["reject"] = lambda _r: Reply.json(400, {"message": "Missing email address"})
    source = new_source(admin)
    destination = new_destination(admin, endpoint, "reject", source["name"])
    send_tracks(server, source["write_key"], [{"n": 1}, {"n": 2}])

    found = poll(
        lambda: deliveries(admin, destination=destination["name"], state="discarded"),
        lambda rows: len(rows) == 2,
        "two discarded deliveries",
    )
    assert [d["event"]["properties"]["n"] for d in found] == [2, 1]  # newest first
    delivery = found[0]
    assert delivery["destination"] == destination["name"]
    assert delivery["state"] == "discarded"
    assert delivery["reason"] == "discarded.400"
    assert delivery["message"] == "Missing email address"
    assert delivery["attempt_count"] == 1
    assert delivery["event"]["event"] == "Order Completed"
    (attempt,) = delivery["attempts"]
    assert attempt["number"] == 1
    assert attempt["status"] == 400
    assert attempt["message"] == "Missing email address"
    assert attempt["state"] == "discarded"
    assert attempt["duration_ms"] >= 0
    assert attempt["response"]["status"] == 400
    assert json.loads(attempt["response"]["body"]) == {"message": "Missing email address"}
    assert attempt["request"]["headers"]["Authorization"] == f"Basic {MASK}"
    assert json.loads(attempt["request"]["body"])["messageId"] == delivery["event"]["messageId"]

    assert ok(admin.get(f"/deliveries/{delivery['id']}")) == delivery
    by_reason = deliveries(admin, destination=destination["name"], reason="discarded.400")
    assert [d["id"] for d in by_reason] == [d["id"] for d in found]
    assert deliveries(admin, destination=destination["name"], reason="discarded.401") == []

    first = ok(admin.get("/deliveries", params={"destination": destination["name"], "limit": 1}))
    assert [d["id"] for d in first["deliveries"]] == [found[0]["id"]]
    cursor = first["next_cursor"]
    assert cursor
    second = ok(
        admin.get(
            "/deliveries",
            params={"destination": destination["name"], "limit": 1, "cursor": cursor},
        )
    )
    assert [d["id"] for d in second["deliveries"]] == [found[1]["id"]]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"state": "lost"}, 400),
        ({"limit": "0"}, 400),
        ({"limit": "many"}, 400),
        ({"cursor": "!!"}, 400),
        ({"destination": "nope"}, 404),
    ],
)
def test_invalid_delivery_queries(admin: httpx.Client, params: dict[str, str], status: int) -> None:
    message(admin.get("/deliveries", params=params), status)


def test_unknown_delivery_is_a_404(admin: httpx.Client) -> None:
    message(admin.get("/deliveries/999999999"), 404)


def test_stats_count_outcomes_and_reasons(
    admin: httpx.Client, server: SegueProcess, endpoint: Endpoint, router: Router
) -> None:
    def mixed(request: ReceivedRequest) -> Reply:
        if request.json()["properties"].get("ok"):
            return Reply(200)
        return Reply.json(403, {"message": "Plan does not allow this"})

    router.routes["mixed"] = mixed
    source = new_source(admin)
    destination = new_destination(admin, endpoint, "mixed", source["name"])
    name = destination["name"]
    send_tracks(server, source["write_key"], [{"ok": True}] * 3 + [{"ok": False}] * 2)
    poll(
        lambda: deliveries(admin, destination=name),
        lambda rows: len(rows) == 5 and all(d["state"] != "pending" for d in rows),
        "five settled deliveries",
    )
    stats = poll(
        lambda: ok(admin.get(f"/destinations/{name}/stats", params={"window": "1h"})),
        lambda s: s["delivered"] == 3 and s["discarded"] == 2,
        "stats",
    )
    assert stats["retrying"] == 0
    assert stats["expired"] == 0
    assert stats["pending"] == 0
    assert stats["p50_latency_ms"] is not None
    assert stats["p95_latency_ms"] >= stats["p50_latency_ms"] >= 0
    assert sum(b["succeeded"] for b in stats["buckets"]) == 3
    assert sum(b["discarded"] for b in stats["buckets"]) == 2
    assert 1 <= len(stats["buckets"]) <= 61
    (reason,) = stats["reasons"]
    assert (reason["reason"], reason["state"], reason["count"]) == ("discarded.403", "discarded", 2)
    sample = reason["sample"]
    assert sample["you_sent"]["properties"] == {"ok": False}
    assert sample["response"]["status"] == 403
    assert sample["message"] == "Plan does not allow this"
    assert sample["request"]["headers"]["Authorization"] == f"Basic {MASK}"

    for window in ("5m", "24h", "7d"):
        assert (
            ok(admin.get(f"/destinations/{name}/stats", params={"window": window}))["delivered"]
            == 3
        )
    message(admin.get(f"/destinations/{name}/stats", params={"window": "soon"}), 400)
    message(admin.get(f"/destinations/{name}/stats", params={"window": "0h"}), 400)
    message(admin.get("/destinations/nope/stats"), 404)


def test_openapi_documents_the_delivery_api(server: SegueProcess) -> None:
    document = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=10.0).json()
    paths = document["paths"]
    expected = {
        "/apps": "get post",
        "/apps/{name}": "get patch delete",
        "/apps/{name}/test": "post",
        "/apps/{name}/test/suite": "post",
        "/settings/key": "post",
        "/destinations": "get post",
        "/destinations/{name}": "get patch delete",
        "/destinations/{name}/test": "post",
        "/destinations/{name}/test/suite": "post",
        "/destinations/{name}/stats": "get",
        "/deliveries": "get",
        "/deliveries/{id}": "get",
        "/deliveries/retry": "post",
        "/replays": "get post",
        "/replays/{id}": "get",
    }
    for path, methods in expected.items():
        assert set(methods.split()) <= set(paths[path]), path
    schemas = document["components"]["schemas"]
    for name in ("App", "Destination", "Delivery", "Attempt", "TestResult", "Stats", "Replay"):
        assert name in schemas


def test_the_secret_detector_itself() -> None:
    """The module-wide check would catch a leak, plain or base64 in a header."""
    leaked = base64.b64encode(json.dumps({"signingSecret": SIGNING}).encode()).decode()
    shown = {"request": {"headers": {"Authorization": f"Basic {MASK}"}}}
    assert_no_secrets(json.dumps(shown), "ok")
    for body in (
        {"settings": {"apiKey": API_KEY}},
        {"request": {"headers": {"X-Segment-Settings": leaked}}},
        {"request": {"headers": {"Authorization": "Basic c2VnbWVudDo="}}},
    ):
        with pytest.raises(AssertionError):
            assert_no_secrets(json.dumps(body), "leak")


@pytest.mark.parametrize("url", ["http://[::1", "https://hooks.example:99999/"])
def test_a_malformed_endpoint_is_a_400_not_a_500(admin: httpx.Client, url: str) -> None:
    message(admin.post("/apps", json={"name": unique("bad-url"), "endpoint": url}), 400)
    body = {"name": unique("bad-url"), "endpoint": url, "settings": {"apiKey": "k"}}
    message(admin.post("/destinations", json=body), 400)


_GUARDED = (
    "GET /apps, POST /apps, GET /apps/acme, DELETE /apps/acme, POST /apps/acme/test,"
    " POST /apps/acme/test/suite, POST /settings/key, GET /destinations,"
    " PATCH /destinations/acme-prod, POST /destinations/acme-prod/test,"
    " GET /destinations/acme-prod/stats, GET /deliveries, GET /deliveries/1,"
    " POST /deliveries/retry, GET /replays, POST /replays, GET /replays/rpl_x"
)


@pytest.mark.parametrize("route", _GUARDED.split(", "))
def test_every_route_needs_the_admin_token(server: SegueProcess, route: str) -> None:
    method, path = route.split()
    response = httpx.request(method, f"{server.url}/api/v1{path}", json={}, timeout=10.0)
    message(response, 401)
