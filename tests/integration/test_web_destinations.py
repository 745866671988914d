"""The Developer Center's destination pages over a real server: configure an app on a
source, the Event Delivery page (counts, chart, errors by reason), bulk retry, replay.

httpx with a cookie jar stands in for the browser.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.support.endpoint import Endpoint, ReceivedRequest, Reply
from tests.support.server import ADMIN_TOKEN, WRITE_KEY, SegueProcess

SECRET = "sk-live-dest-5e4d3c2b1a09"  # the destination's apiKey: never in any HTML
MASK = "••••••"
WAIT_S = 10.0
DEST = "hook-prod"
PAGE = f"/ui/destinations/{DEST}"


class Switch:
    """The endpoint's answer, changed by the tests: 200, or a 400 with a JSON message."""

    def __init__(self) -> None:
        self.failing = False

    def __call__(self, request: ReceivedRequest) -> Reply:
        if self.failing:
            return Reply.json(400, {"message": "bad plan: unknown tier"})
        return Reply.json(200, {"ok": True})


@pytest.fixture(scope="module")
def switch() -> Switch:
    return Switch()


@pytest.fixture(scope="module")
def endpoint(switch: Switch) -> Iterator[Endpoint]:
    with Endpoint(switch) as sink:
        yield sink


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, endpoint: Endpoint) -> Iterator[SegueProcess]:
    config = f"""
[[sources]]
name = "test"
write_key = "{WRITE_KEY}"

[egress]
allow = ["127.0.0.0/8"]
allow_http = true

[[apps]]
name = "hook"
endpoint = "{endpoint.url}/hook"
settings = [
  {{ label = "API Key", key = "apiKey", required = true, sensitive = true }},
  {{ label = "Region", key = "region", required = true, description = "eu or us" }},
]
"""
    process = SegueProcess(tmp_path_factory.mktemp("web-dest") / "data", config_text=config)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def http(server: SegueProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0, follow_redirects=False) as client:
        response = client.post("/ui/sign-in", data={"token": ADMIN_TOKEN})
        assert response.status_code == 303, response.text
        yield client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def page(http: httpx.Client, path: str) -> httpx.Response:
    started = time.monotonic()
    response = http.get(path)
    assert time.monotonic() - started < 1.0, f"{path} took too long"
    assert response.status_code == 200, response.text
    assert SECRET not in response.text
    return response


def post(http: httpx.Client, path: str, csrf_page: str, data: dict[str, str]) -> httpx.Response:
    token = csrf_of(page(http, csrf_page).text)
    response = http.post(path, data={"csrf_token": token, **data})
    assert SECRET not in response.text
    return response


def send(server: SegueProcess, count: int, prefix: str) -> None:
    batch = [
        {
            "type": "track",
            "userId": f"u-{n}",
            "event": f"{prefix} {n}",
            "messageId": f"{prefix}-{n}",
        }
        for n in range(count)
    ]
    with httpx.Client(base_url=server.url, auth=(WRITE_KEY, ""), timeout=10.0) as client:
        for message in batch:
            assert client.post("/v1/track", json=message).status_code == 200


def stats(server: SegueProcess) -> dict[str, Any]:
    with server.admin() as admin:
        response = admin.get(f"/destinations/{DEST}/stats", params={"window": "1h"})
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def wait_stats(server: SegueProcess, predicate: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        current = stats(server)
        if predicate(current):
            return current
        assert time.monotonic() < deadline, f"{what} not reached: {current}"
        time.sleep(0.1)


FORM = {"name": DEST, "app": "hook", "source:test": "on", "enabled": "true"}


def test_configure_a_destination_through_the_form(http: httpx.Client, server: SegueProcess) -> None:
    listing = page(http, "/ui/destinations").text
    assert 'href="/ui/destinations/new"' in listing and "Configure app" in listing
    form = page(http, "/ui/destinations/new?app=hook").text
    assert 'type="password"' in form and 'name="setting:apiKey"' in form
    assert 'for="setting-region"' in form and 'name="source:test"' in form

    missing = post(
        http, "/ui/destinations/new", "/ui/destinations/new?app=hook",
        {**FORM, "setting:apiKey": SECRET, "setting:region": ""},
    )  # fmt: skip
    assert missing.status_code == 400
    assert "missing required setting(s): Region" in missing.text
    assert 'aria-invalid="true"' in missing.text

    saved = post(
        http, "/ui/destinations/new", "/ui/destinations/new?app=hook",
        {**FORM, "setting:apiKey": SECRET, "setting:region": "eu"},
    )  # fmt: skip
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"{PAGE}?done=created"

    with server.admin() as admin:
        (destination,) = admin.get("/destinations").json()["destinations"]
    assert destination["name"] == DEST and destination["enabled"] is True
    assert destination["sources"] == ["test"]
    assert destination["settings"] == {"apiKey": MASK, "region": "eu"}

    edit = page(http, f"{PAGE}/edit").text
    assert f'value="{MASK}"' in edit and 'type="password"' in edit
    # the mask posted back keeps the stored secret; the region changes
    changed = post(
        http, f"{PAGE}/edit", f"{PAGE}/edit",
        {"source:test": "on", "enabled": "true", "setting:apiKey": MASK, "setting:region": "us"},
    )  # fmt: skip
    assert changed.status_code == 303, changed.text
    with server.admin() as admin:
        assert admin.get(f"/destinations/{DEST}").json()["settings"] == {
            "apiKey": MASK,
            "region": "us",
        }


def test_delivered_events_show_on_the_event_delivery_page(
    http: httpx.Client, server: SegueProcess, endpoint: Endpoint
) -> None:
    send(server, 5, "ok")
    requests = endpoint.wait_for_requests(5, WAIT_S)
    auth = base64.b64encode(f"{SECRET}:".encode()).decode()
    assert requests[0].header("authorization") == f"Basic {auth}"  # the mask kept the key
    wait_stats(server, lambda s: s["delivered"] >= 5, "5 delivered")
    html = page(http, PAGE).text
    assert re.search(r'id="count-delivered">\s*5<', html)
    assert "<svg" in html and 'class="ok"' in html
    assert re.search(r"<title>[^<]*5 delivered, 0 failed</title>", html)
    assert "p95 latency" in html and "ms</dd>" in html
    for window in ("5m", "24h", "7d"):
        assert "<rect" in page(http, f"{PAGE}?window={window}").text


def test_errors_by_reason_then_bulk_retry(
    http: httpx.Client, server: SegueProcess, endpoint: Endpoint, switch: Switch
) -> None:
    switch.failing = True
    before = endpoint.count
    send(server, 3, "bad")
    endpoint.wait_for_requests(before + 3, WAIT_S)
    wait_stats(server, lambda s: s["discarded"] >= 3, "3 discarded")
    html = page(http, PAGE).text
    assert re.search(r'id="count-not-delivered">\s*3<', html)
    assert "bad plan: unknown tier" in html
    for pane in ("You sent", "Request to destination", "Response from destination"):
        assert pane in html
    assert 'class="failed"' in html

    switch.failing = False
    retried = post(http, f"{PAGE}/retry", PAGE, {"window": "1h"})
    assert retried.status_code == 303
    assert "retried=3" in retried.headers["location"]
    assert "3 failed deliveries queued" in page(http, retried.headers["location"]).text
    wait_stats(server, lambda s: s["delivered"] >= 8 and s["discarded"] == 0, "retried")


def test_a_replay_from_the_ui_finishes(
    http: httpx.Client, server: SegueProcess, endpoint: Endpoint
) -> None:
    before = endpoint.count
    started = post(http, f"{PAGE}/replays", PAGE, {"source": "test", "since": "", "until": ""})
    assert started.status_code == 303
    location = started.headers["location"]
    match = re.search(r"replay=(rpl_[0-9a-f]+)", location)
    assert match, location
    html = page(http, location.split("#")[0]).text
    assert "<progress" in html and "delivery.js" in html
    poll = f"{PAGE}/replays/{match.group(1)}.json"
    deadline = time.monotonic() + WAIT_S
    while True:
        doc = http.get(poll).json()
        if doc["state"] == "finished" and doc["progress"]["complete"]:
            break
        assert time.monotonic() < deadline, doc
        time.sleep(0.1)
    assert doc["queued"] == 8 and doc["progress"]["succeeded"] == 8
    assert endpoint.count >= before + 8
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get(poll).status_code == 401
    bad = post(http, f"{PAGE}/replays", PAGE, {"source": "test", "since": "yesterday"})
    assert "replay_error" in bad.headers["location"]
    assert "ISO-8601" in page(http, bad.headers["location"].split("#")[0]).text


def test_posts_without_csrf_or_session_are_refused(
    http: httpx.Client, server: SegueProcess
) -> None:
    for path in ("/ui/destinations/new", f"{PAGE}/edit", f"{PAGE}/retry", f"{PAGE}/replays"):
        assert http.post(path, data={"name": "x"}).status_code == 403
        assert http.post(path, data={"csrf_token": "forged"}).status_code == 403
        with httpx.Client(base_url=server.url) as anonymous:
            assert anonymous.post(path, data={}).status_code == 403
    with httpx.Client(base_url=server.url) as anonymous:
        for path in ("/ui/destinations/new", PAGE, f"{PAGE}/edit"):
            assert anonymous.get(path).status_code == 303


def test_the_secret_is_in_no_page(http: httpx.Client) -> None:
    for path in ("/ui/destinations", PAGE, f"{PAGE}/edit", "/ui/destinations/new?app=hook",
                 "/ui/sources", "/ui/sources/test", "/ui/apps"):  # fmt: skip
        page(http, path)
    assert http.get("/ui/destinations/nope").status_code == 404
