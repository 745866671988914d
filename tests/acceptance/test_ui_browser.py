"""Acceptance: the Developer Center's seed flow in a real browser (issue 6, item 1).

Playwright drives Debian's Chromium (headless, ``/usr/bin/chromium``; nothing is ever
downloaded) against a real ``segue serve``: sign in with the admin token → build an app
with two custom settings (one required, one sensitive) whose keys the page derives from
the labels → point it at a local endpoint → Send Test Event (track) and read the request
headers and the 200 → run the suite → configure the app as a destination on the source →
send events with the official ``segment-analytics-python`` client → watch them arrive in
Live events and as delivered on Event Delivery → the endpoint answers 503: retries show,
then expire → the endpoint recovers → "Retry failed deliveries" delivers them.

Full-page screenshots of every main page land in ``artifacts/screenshots/`` (git-ignored).
Every console error and uncaught page error fails the test.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from segment.analytics.client import Client
from tests.support.browser import CHROMIUM, SCREENSHOTS, shot
from tests.support.browser import browser_page as open_browser_page
from tests.support.endpoint import Endpoint, ReceivedRequest, Reply
from tests.support.server import ADMIN_TOKEN, WRITE_KEY, SegueProcess

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page


APP = "acme-browser"
DEST = "acme-browser-live"
APP_PATH = "/partners/acme"
API_KEY = "browser-secret-key"
SIGNING_SECRET = "whsec-browser-signing"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


def _config() -> str:
    return f"""
[[sources]]
name = "test"
write_key = "{WRITE_KEY}"

[egress]
allow = ["127.0.0.0/8"]
allow_http = true
"""


class Switch:
    """The endpoint's answer for event deliveries: 200, or 503 while ``failing``."""

    def __init__(self) -> None:
        self.failing = False

    def __call__(self, request: ReceivedRequest) -> Reply:
        if self.failing:
            return Reply.json(503, {"error": "acme is down for maintenance"})
        return Reply.json(200, {"ok": True})


@pytest.fixture
def endpoint() -> Iterator[tuple[Endpoint, Switch]]:
    switch = Switch()
    with Endpoint(switch) as sink:
        yield sink, switch


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SegueProcess]:
    process = SegueProcess(tmp_path / "data", config_text=_config())
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def browser_page() -> Iterator[tuple[Page, list[str]]]:
    with open_browser_page() as opened:
        yield opened


def _shot(page: Page, name: str) -> None:
    shot(page, name)


def _expected_status_error(problems: list[str], status: int, path: str) -> None:
    """Chromium logs a refused page (a 4xx document) as a console error: expected here."""
    wanted = f"the server responded with a status of {status}"
    expected = [p for p in problems if wanted in p and f"{path}'" in p]
    assert len(expected) == 1, problems
    problems.remove(expected[0])


def _reload_until(
    page: Page, locator_of: Callable[[Page], Locator], timeout_s: float = 20.0
) -> None:
    """Reload ``page`` until ``locator_of(page)`` is visible (server-rendered counts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            expect(locator_of(page)).to_be_visible(timeout=1_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            page.reload()


def test_seed_flow_in_a_real_browser(
    server: SegueProcess,
    endpoint: tuple[Endpoint, Switch],
    browser_page: tuple[Page, list[str]],
) -> None:
    sink, switch = endpoint
    page, problems = browser_page
    ui = f"{server.url}/ui"
    for old in SCREENSHOTS.glob("[01][0-9]-*.png"):  # this test's own, from a past run
        old.unlink()

    # -- security: a page loaded without a session lands on the sign-in page -----------
    page.goto(f"{ui}/apps")
    expect(page).to_have_url(re.compile(r"/ui/sign-in\?next=(/|%2F)ui(/|%2F)apps$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
    _shot(page, "01-sign-in")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#token-error")).to_be_visible()
    expect(page).not_to_have_url(re.compile(r"/ui/apps$"))
    _expected_status_error(problems, 401, "/ui/sign-in")

    # -- sign in: back to the page asked for ------------------------------------------
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/apps$"))
    expect(page.get_by_role("heading", name="Apps", exact=True)).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Sources").click()
    expect(page.get_by_role("link", name="test", exact=True)).to_be_visible()
    _shot(page, "02-sources")
    page.get_by_role("link", name="test", exact=True).click()
    expect(page.locator("#write-key")).to_have_text(WRITE_KEY)
    expect(page.locator("#snippet-python")).to_contain_text(server.url)
    _shot(page, "03-source")

    # -- the app builder: labels typed, keys generated by the page's script ---------------
    page.goto(f"{ui}/apps")
    page.get_by_role("link", name="New app").click()
    expect(page.get_by_role("heading", name="New app")).to_be_visible()
    page.get_by_label("Name", exact=True).fill(APP)
    page.get_by_role("radio", name="Endpoint URL").check()
    page.get_by_role("textbox", name="Endpoint URL").fill(f"{sink.url}{APP_PATH}")

    row0 = page.locator("[data-row]").nth(0)
    row0.locator("[data-label]").press_sequentially("Workspace Region")
    expect(row0.locator("[data-key]")).to_have_value("workspaceRegion")
    row0.locator("[data-description]").fill("eu or us")
    row0.get_by_label("Required").check()

    page.get_by_role("button", name="Add setting").click()
    expect(page.locator("[data-row]")).to_have_count(2)
    row1 = page.locator("[data-row]").nth(1)
    expect(row1.locator("[data-label]")).to_be_focused()
    page.keyboard.type("Signing secret (v2)")
    expect(row1.locator("[data-key]")).to_have_value("signingSecretV2")
    row1.get_by_label("Sensitive").check()
    # the live preview: API Key + the two settings, the sensitive one as a password
    preview = page.locator("#settings-preview")
    expect(preview.locator(".field")).to_have_count(3)
    expect(preview).to_contain_text("Workspace Region")
    expect(preview.locator("abbr.req")).to_have_count(1)
    expect(preview.locator("input[type=password]")).to_have_count(2)
    _shot(page, "04-app-builder")
    page.get_by_role("button", name="Create app").click()
    expect(page).to_have_url(re.compile(rf"/ui/apps/{APP}\?done=created$"))
    schema = page.get_by_role("region", name="Settings schema")
    expect(schema).to_contain_text("workspaceRegion")
    expect(schema).to_contain_text("signingSecretV2")

    # -- Send Test Event (track): request headers and the 200 ---------------------------
    expect(page.get_by_label("Event type")).to_have_value("track")
    page.get_by_label("API Key").fill(API_KEY)
    page.get_by_label("Workspace Region").fill("eu")
    page.get_by_label("Signing secret (v2)").fill(SIGNING_SECRET)
    page.get_by_role("button", name="Send Test Event").click()
    result = page.locator("#result")
    expect(result.get_by_role("heading", name=re.compile("Result"))).to_contain_text("succeeded")
    expect(result).to_contain_text("Request from segue")
    expect(result).to_contain_text("Response from destination")
    request_headers = result.get_by_role("table").nth(0)
    auth = base64.b64encode(f"{API_KEY}:".encode()).decode()
    # the API key is sensitive: the page shows the header, masked
    expect(request_headers.get_by_role("row", name=re.compile("^Authorization"))).to_contain_text(
        re.compile(r"Basic \S+")
    )
    settings_row = request_headers.get_by_role("row", name=re.compile("^X-Segment-Settings"))
    expect(settings_row).to_be_visible()
    # X-Segment-Settings as sent, but with the sensitive value masked
    shown = settings_row.get_by_role("cell").inner_text().strip()
    shown_settings = json.loads(base64.b64decode(shown))
    assert shown_settings["workspaceRegion"] == "eu"
    assert shown_settings["signingSecretV2"] not in ("", SIGNING_SECRET)
    expect(result.get_by_text(re.compile(r"^HTTP 200$"))).to_be_visible()
    html = page.content()
    assert auth not in html and API_KEY not in html and SIGNING_SECRET not in html
    _shot(page, "05-app-test-result")
    test_request = sink.wait_for_requests(1)[-1]
    assert test_request.path == APP_PATH
    assert test_request.json()["type"] == "track"
    assert test_request.header("Authorization") == f"Basic {auth}"  # the real key went out
    sent_settings = json.loads(base64.b64decode(test_request.header("X-Segment-Settings")))
    assert sent_settings == {"workspaceRegion": "eu", "signingSecretV2": SIGNING_SECRET}

    # -- Run suite: one row per type, all passing ---------------------------------------
    page.get_by_label("API Key").fill(API_KEY)
    page.get_by_label("Signing secret (v2)").fill(SIGNING_SECRET)
    page.get_by_role("button", name="Run suite").click()
    suite = page.locator("#suite")
    expect(suite.locator("tbody tr")).to_have_count(7)
    expect(suite.get_by_role("heading")).to_have_text("Suite: 7 of 7 passed")
    _shot(page, "06-suite")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Apps").click()
    expect(page.get_by_role("link", name=APP)).to_be_visible()
    _shot(page, "07-apps")

    # -- configure the app as a destination on the source ---------------------------------
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Destinations").click()
    page.get_by_role("link", name="Configure app").first.click()
    page.get_by_label("App", exact=True).select_option(APP)
    page.get_by_role("button", name=re.compile("(Choose|Switch) app")).click()
    form = page.locator("form.dest-form")
    form.get_by_label("Name").fill(DEST)
    form.get_by_label("test").check()
    form.get_by_label(re.compile("^API Key")).fill(API_KEY)
    form.get_by_label(re.compile("^Signing secret")).fill(SIGNING_SECRET)
    # the required setting left empty: refused, and said so
    form.get_by_role("button", name="Save destination").click()
    expect(page.locator("#form-error")).to_be_visible()
    expect(page.locator("[aria-invalid=true]")).to_have_count(1)
    _expected_status_error(problems, 400, "/ui/destinations/new")
    form = page.locator("form.dest-form")
    form.get_by_label(re.compile("^Workspace Region")).fill("eu")
    form.get_by_label(re.compile("^API Key")).fill(API_KEY)
    form.get_by_label(re.compile("^Signing secret")).fill(SIGNING_SECRET)
    expect(form.get_by_role("checkbox", name=re.compile("Enabled"))).to_be_checked()
    _shot(page, "08-destination-form")
    form.get_by_role("button", name="Save destination").click()
    expect(page).to_have_url(re.compile(rf"/ui/destinations/{DEST}\?done=created$"))
    expect(page.get_by_role("heading", name=f"Event Delivery: {DEST}")).to_be_visible()
    assert SIGNING_SECRET not in page.content() and API_KEY not in page.content()

    # short retries, so that the 503 phase shows within seconds (not a form field)
    with server.admin() as admin:
        patched = admin.patch(
            f"/destinations/{DEST}",
            json={"options": {"first_backoff_s": 0.2, "max_backoff_s": 0.5, "retry_window_s": 4}},
        )
        assert patched.status_code == 200, patched.text

    # -- Live events: open first, then send; the page's polling shows them ---------------
    page.goto(f"{ui}/sources/test/live")
    events = page.locator("#live-events > li")
    expect(page.locator("#live-empty")).to_be_visible()
    client = Client(write_key=WRITE_KEY, host=server.url, sync_mode=True)
    for i in range(3):
        client.track(user_id=f"browser-u{i}", event="Order Completed", properties={"i": i})
    expect(events).to_have_count(3)
    expect(page.locator("#live-empty")).to_be_hidden()
    expect(events.first).to_contain_text("Order Completed")
    events.first.locator("summary").click()
    expect(events.first.locator("pre.json")).to_contain_text('"browser-u2"')
    _shot(page, "09-live-events")

    # -- Event Delivery: delivered ------------------------------------------------------
    sink.wait_until(
        lambda rs: sum(1 for r in rs if r.json().get("event") == "Order Completed") >= 3,
        what="3 deliveries",
    )
    page.goto(f"{ui}/destinations/{DEST}")
    _reload_until(page, lambda p: p.locator("#count-delivered", has_text=re.compile(r"^3$")))
    expect(page.locator("svg.chart rect.ok")).not_to_have_count(0)
    expect(page.locator("#p95")).to_contain_text("ms")
    _shot(page, "10-event-delivery")

    # -- the endpoint answers 503: retrying, then expired ---------------------------------
    switch.failing = True
    before = sink.count
    for i in range(2):
        client.track(user_id=f"browser-down{i}", event="Checkout Failed", properties={"i": i})
    sink.wait_for_requests(before + 4)  # both events, each tried at least twice
    page.reload()
    # still inside the retry window: the 503s show as retrying (state awaiting_retry)
    _reload_until(page, lambda p: p.locator("#count-retrying", has_text=re.compile(r"^[1-9]")))
    expect(page.locator("table.reasons tbody tr", has_text="503").first).to_be_visible()
    _shot(page, "11-event-delivery-retrying")
    # the 4 s retry window passes: the deliveries expire (failed, in the chart)
    _reload_until(page, lambda p: p.locator("#count-expired", has_text=re.compile(r"^2$")))
    expect(page.locator("#count-retrying")).to_have_text("0")
    expect(page.locator("svg.chart rect.failed")).not_to_have_count(0)
    sample = page.locator("table.reasons details").first
    sample.locator("summary").click()
    for pane in ("You sent", "Request to destination", "Response from destination"):
        expect(sample.get_by_role("region", name=pane)).to_be_visible()
    expect(sample.get_by_role("region", name="Response from destination")).to_contain_text(
        "acme is down"
    )
    _shot(page, "12-event-delivery-errors")

    # -- the endpoint recovers: bulk retry delivers them ---------------------------------
    switch.failing = False
    page.get_by_role("button", name="Retry failed deliveries").click()
    expect(page.get_by_role("status")).to_contain_text("2 failed deliveries queued for retry")
    _reload_until(page, lambda p: p.locator("#count-delivered", has_text=re.compile(r"^5$")))
    expect(page.locator("#count-expired")).to_have_text("0")
    _shot(page, "13-event-delivery-after-retry")
    delivered = {
        r.json()["userId"]
        for r in sink.requests
        if r.json().get("event") == "Checkout Failed" and r.path == APP_PATH
    }
    assert delivered == {"browser-down0", "browser-down1"}

    assert not sink.errors, sink.errors
    assert not problems, "\n".join(problems)
