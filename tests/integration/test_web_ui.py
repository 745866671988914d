"""The Developer Center's web UI over a real server: sessions, CSRF, sources, live events.

httpx with a cookie jar stands in for the browser (Playwright tests come later).
"""

from __future__ import annotations

import html
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.support.server import ADMIN_TOKEN, WRITE_KEY, SegueProcess

SECRET = "sk-live-ui-9f8e7d6c5b4a3"  # a destination's sensitive apiKey: never in any HTML
EVENTS = 3000
TIMINGS: dict[str, float] = {}

UI_PAGES = ["/ui/sources", "/ui/sources/test", "/ui/sources/test/live", "/ui/apps",
            "/ui/destinations", "/ui/live"]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SegueProcess]:
    process = SegueProcess(tmp_path_factory.mktemp("web-ui") / "data").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def seeded(server: SegueProcess) -> SegueProcess:
    """A few thousand events on `test` and a destination with a sensitive setting."""
    with httpx.Client(base_url=server.url, auth=(WRITE_KEY, ""), timeout=30.0) as http:
        for start in range(0, EVENTS, 500):
            batch = [
                {"type": "track", "userId": f"user-{n}", "event": f"Order {n}",
                 "properties": {"n": n}, "messageId": f"seed-{n}"}
                for n in range(start, start + 500)
            ]  # fmt: skip
            assert http.post("/v1/batch", json={"batch": batch}).status_code == 200
    with server.admin() as admin:
        app = {
            "name": "ui-app",
            "endpoint": "http://127.0.0.1:9/ui",
            "settings": [{"label": "Signing Secret", "sensitive": True}],
        }
        assert admin.post("/apps", json=app).status_code == 201, admin.post("/apps", json=app)
        destination = {
            "name": "ui-dest",
            "app": "ui-app",
            "sources": ["test"],
            "settings": {"apiKey": SECRET, "signingSecret": SECRET + "-2"},
            "enabled": False,
        }
        response = admin.post("/destinations", json=destination)
        assert response.status_code == 201, response.text
    deadline = time.monotonic() + 10
    while len(server.all_events(source="test")) < EVENTS and time.monotonic() < deadline:
        time.sleep(0.1)
    return server


def browser(server: SegueProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30.0, follow_redirects=False)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(http: httpx.Client) -> httpx.Response:
    response = http.post("/ui/sign-in", data={"token": ADMIN_TOKEN})
    assert response.status_code == 303, response.text
    return response


@pytest.fixture
def signed_in(seeded: SegueProcess) -> Iterator[httpx.Client]:
    with browser(seeded) as http:
        sign_in(http)
        yield http


def test_root_serves_json_to_api_clients_and_the_ui_to_browsers(server: SegueProcess) -> None:
    with browser(server) as http:
        assert http.get("/").json()["name"] == "segue"
        response = http.get("/", headers={"Accept": "text/html"})
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/sign-in"


def test_wrong_token_does_not_sign_in(server: SegueProcess) -> None:
    with browser(server) as http:
        page = http.get("/ui/sign-in")
        assert page.status_code == 200
        assert 'for="token"' in page.text  # a labelled field
        response = http.post("/ui/sign-in", data={"token": "not-the-token"})
        assert response.status_code == 401
        assert "not this server" in response.text
        assert "segue_session" not in response.headers.get("set-cookie", "")
        assert http.get("/ui/sources").status_code == 303


def test_right_token_sets_a_safe_cookie_and_lands_on_sources(seeded: SegueProcess) -> None:
    with browser(seeded) as http:
        response = sign_in(http)
        cookie = response.headers["set-cookie"].lower()
        assert "segue_session=" in cookie
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert "secure" not in cookie  # plain http here; https gets Secure
        assert response.headers["location"] == "/ui/sources"
        page = http.get("/ui/sources")
        assert page.status_code == 200
        assert "<h1>Sources</h1>" in page.text
        assert re.search(r">test</a>.*?3,0\d\d</td>", page.text, re.S)  # the event count
        assert "content-security-policy" in page.headers


def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(server: SegueProcess) -> None:
    with browser(server) as http:
        redirect = http.get("/ui/apps")
        assert redirect.status_code == 303
        assert redirect.headers["location"] == "/ui/sign-in?next=/ui/apps"
        back = http.post("/ui/sign-in", data={"token": ADMIN_TOKEN, "next": "/ui/apps"})
        assert back.headers["location"] == "/ui/apps"
    with browser(server) as http:
        away = http.post("/ui/sign-in", data={"token": ADMIN_TOKEN, "next": "//evil.example/"})
        assert away.headers["location"] == "/ui/sources"
    with browser(server) as http:
        cross = http.post(
            "/ui/sign-in", data={"token": ADMIN_TOKEN}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403


@pytest.mark.parametrize("path", [*UI_PAGES, "/ui", "/ui/sources/nope"])
def test_every_page_without_a_session_redirects_to_sign_in(path: str, server: SegueProcess) -> None:
    with browser(server) as http:
        response = http.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/sign-in")
    with browser(server) as http:
        http.cookies.set("segue_session", "forged.cookie")
        assert http.get(path).status_code == 303


def test_the_live_feed_without_a_session_is_401(server: SegueProcess) -> None:
    with browser(server) as http:
        assert http.get("/ui/sources/test/live.json").status_code == 401


@pytest.mark.parametrize(
    "path",
    ["/ui/sources", "/ui/sources/test/rotate", "/ui/sources/test/enabled", "/ui/sign-out"],
)
def test_posts_without_a_session_or_csrf_token_are_refused(path: str, seeded: SegueProcess) -> None:
    with browser(seeded) as http:
        assert http.post(path, data={"name": "x"}).status_code == 403  # no session
        sign_in(http)
        assert http.post(path, data={"name": "x", "enabled": "false"}).status_code == 403
        wrong = {"csrf_token": "forged", "name": "x", "enabled": "false"}
        assert http.post(path, data=wrong).status_code == 403
        # nothing happened
        assert http.get("/ui/sources/test").status_code == 200
        assert http.get("/ui/sources/x").status_code == 404
    with seeded.admin() as admin:
        source = admin.get("/sources/test").json()
        assert source["write_key"] == WRITE_KEY and source["enabled"] is True


def test_create_a_source_rotate_its_key_and_disable_it(signed_in: httpx.Client) -> None:
    http = signed_in
    name = f"web-{uuid.uuid4().hex[:8]}"
    token = csrf_of(http.get("/ui/sources").text)
    bad = http.post("/ui/sources", data={"csrf_token": token, "name": "Not Valid"})
    assert bad.status_code == 400 and "lower-case letters" in bad.text

    created = http.post("/ui/sources", data={"csrf_token": token, "name": name, "kind": "standard"})
    assert created.status_code == 303
    assert created.headers["location"] == f"/ui/sources/{name}?done=created"
    page = http.get(f"/ui/sources/{name}")
    assert page.status_code == 200
    old_key = re.search(r'id="write-key" class="key">([A-Za-z0-9]{32})<', page.text)
    assert old_key
    key = old_key.group(1)
    # the snippets point at this server with this key, and nothing at Segment's CDN
    text = html.unescape(page.text)
    url = f"http://{http.base_url.host}:{http.base_url.port}"
    assert f'analytics.write_key = "{key}"' in text
    assert f'var segue = "{url}";' in text and f'var writeKey = "{key}";' in text
    assert 'segue + "/analytics.js/v1/" + key + "/analytics.min.js"' in text
    assert "analytics._cdn = segue;" in text and f'cdnURL: "{url}"' in text
    assert "cdn.segment.com" not in text

    def track(write_key: str) -> int:
        body = {"userId": "u1", "event": "Web UI"}
        return httpx.post(f"{http.base_url}/v1/track", json=body, auth=(write_key, "")).status_code

    assert track(key) == 200
    rotated = http.post(f"/ui/sources/{name}/rotate", data={"csrf_token": csrf_of(page.text)})
    assert rotated.status_code == 303
    page = http.get(rotated.headers["location"])
    assert "Write key rotated" in page.text
    match = re.search(r'id="write-key" class="key">([A-Za-z0-9]{32})<', page.text)
    assert match
    new_key = match.group(1)
    assert new_key != key
    assert track(key) == 401
    assert track(new_key) == 200

    disabled = http.post(
        f"/ui/sources/{name}/enabled", data={"csrf_token": csrf_of(page.text), "enabled": "false"}
    )
    assert disabled.status_code == 303
    assert "badge off" in http.get(f"/ui/sources/{name}").text
    assert track(new_key) != 200
    enabled = {"csrf_token": csrf_of(page.text), "enabled": "true"}
    assert http.post(f"/ui/sources/{name}/enabled", data=enabled).status_code == 303
    assert track(new_key) == 200

    again = http.post("/ui/sources", data={"csrf_token": token, "name": name})
    assert again.status_code == 409


def test_live_events_page_and_feed(signed_in: httpx.Client, seeded: SegueProcess) -> None:
    http = signed_in
    page = http.get("/ui/sources/test/live")
    assert page.status_code == 200
    assert 'data-feed="/ui/sources/test/live.json"' in page.text
    assert "Order 2999" in page.text  # the newest first
    assert '<pre class="json">' in page.text
    latest = int(re.search(r'data-latest="(\d+)"', page.text).group(1))  # type: ignore[union-attr]
    assert http.get(f"/ui/sources/test/live.json?after={latest}").json() == {"events": []}

    event = {"userId": "<b>alice</b>", "event": "Live <script>", "properties": {"x": 1}}
    response = httpx.post(f"{seeded.url}/v1/track", json=event, auth=(WRITE_KEY, ""))
    assert response.status_code == 200
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while not rows and time.monotonic() < deadline:
        rows = http.get(f"/ui/sources/test/live.json?after={latest}").json()["events"]
    assert [(r["type"], r["name"], r["user"], r["user_kind"]) for r in rows] == [
        ("track", "Live <script>", "<b>alice</b>", "userId")
    ]
    assert '"properties"' in rows[0]["json"] and rows[0]["time"].endswith("UTC")
    html = http.get("/ui/sources/test/live").text
    assert "Live &lt;script&gt;" in html and "<b>alice</b>" not in html  # autoescaped


def test_apps_and_destinations_pages_list_the_catalog(signed_in: httpx.Client) -> None:
    apps = signed_in.get("/ui/apps").text
    assert "ui-app" in apps and "signingSecret" in apps and "ui-dest" in apps
    destinations = signed_in.get("/ui/destinations").text
    assert "ui-dest" in destinations and "badge off" in destinations


def test_no_page_ever_shows_a_sensitive_setting_value(signed_in: httpx.Client) -> None:
    for path in [*UI_PAGES, "/ui/sign-in", "/ui/sources/test/live.json"]:
        response = signed_in.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        assert SECRET not in response.text, path
        assert ADMIN_TOKEN not in response.text, path


def test_pages_are_fast_with_thousands_of_events(signed_in: httpx.Client) -> None:
    for path in UI_PAGES:
        signed_in.get(path)  # warm up
        started = time.perf_counter()
        for _ in range(5):
            assert signed_in.get(path).status_code in (200, 303)
        TIMINGS[path] = (time.perf_counter() - started) / 5
    print("\nUI page times (ms):", {p: round(t * 1000, 1) for p, t in TIMINGS.items()})
    assert max(TIMINGS.values()) < 1.0, TIMINGS


def test_static_assets_are_served_locally(server: SegueProcess) -> None:
    with browser(server) as http:
        css = http.get("/ui/static/segue.css")
        assert css.status_code == 200 and "text/css" in css.headers["content-type"]
        assert http.get("/ui/static/segue.js").status_code == 200
        assert http.get("/ui/static/../app.py").status_code == 404
        page = http.get("/ui/sign-in").text
        assert "http://" not in page and "https://" not in page  # no CDN, no external asset


def test_sign_out_ends_the_session(seeded: SegueProcess) -> None:
    with browser(seeded) as http:
        sign_in(http)
        cookie = http.cookies["segue_session"]
        page = http.get("/ui/sources")
        out = http.post("/ui/sign-out", data={"csrf_token": csrf_of(page.text)})
        assert out.status_code == 303 and out.headers["location"] == "/ui/sign-in"
        assert "segue_session" not in http.cookies
        assert http.get("/ui/sources").status_code == 303
    with browser(seeded) as replay:  # the old cookie, kept by an attacker, no longer works
        replay.cookies.set("segue_session", cookie)
        assert replay.get("/ui/sources").status_code == 303


def test_the_api_keeps_its_bearer_auth(signed_in: httpx.Client) -> None:
    # a UI session is not an API credential
    assert signed_in.get("/api/v1/sources").status_code == 401
