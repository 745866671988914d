"""Acceptance: function apps in the Developer Center, in a real browser (issue 6, item 2).

Playwright drives Debian's Chromium (headless, ``/usr/bin/chromium``; nothing is ever
downloaded) against a real ``segue serve``: sign in → New app → Function → write the code
in the highlighted code editor (Python, then JavaScript in the seed's style) → Create app
→ Send Test Event for track: "Callback Return" shows the returned value and "Log Output"
the printed line → Send Test Event for a type whose handler throws (alias in Python, group
in JavaScript): the error shows.

Screenshots land in ``artifacts/screenshots/`` as ``20-…`` (git-ignored).
Every console error and uncaught page error fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.support.browser import CHROMIUM, SCREENSHOTS, shot
from tests.support.browser import browser_page as open_browser_page
from tests.support.server import ADMIN_TOKEN, SegueProcess

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
if TYPE_CHECKING:
    from playwright.sync_api import Page


PYTHON_CODE = """\
from segue.functions import EventNotSupported


def on_track(event, settings):
    print("tracked", event["event"], "for", event.get("userId"))
    return {"ok": True, "event": event["event"]}


def on_alias(event, settings):
    raise EventNotSupported("alias is not supported here")
"""
# the seed's style: async handlers, console.log, Segment's error classes as globals
JAVASCRIPT_CODE = """\
async function onTrack(event, settings) {
  console.log("hi", event.event)
  return {ok: true}
}

async function onGroup(event, settings) {
  if (!event.company) {
    throw new InvalidEventPayload("company is required")
  }
}
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SegueProcess]:
    process = SegueProcess(tmp_path / "data")
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


def _create_function_app(
    page: Page, ui: str, name: str, runtime: str, code: str, shot: str
) -> None:
    """New app → Function → runtime → code typed into the editor → Create app."""
    page.goto(f"{ui}/apps/new")
    expect(page.get_by_role("heading", name="New app")).to_be_visible()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("radio", name=re.compile("^Function")).check()
    code_box = page.get_by_role("textbox", name="Code")
    expect(code_box).to_be_visible()
    expect(page.get_by_role("textbox", name="Endpoint URL")).to_be_hidden()
    page.get_by_label("Runtime").select_option(runtime)
    expect(code_box).to_have_attribute("data-language", runtime)
    # replace the starter: fill in the head of the program, then type its last lines
    # key by key at the end (typing all of it would be slow; the editor keeps both)
    lines = code.splitlines(keepends=True)
    head, tail = "".join(lines[:-3]), "".join(lines[-3:])
    code_box.fill(head)
    expect(code_box).to_have_value(head)
    code_box.press("ControlOrMeta+End")
    code_box.press_sequentially(tail)
    expect(code_box).to_have_value(code)
    # Tab indents inside the editor (it does not move the focus) and the text is kept
    page.keyboard.press("Tab")
    expect(code_box).to_be_focused()
    indent = "    " if runtime == "python" else "  "
    expect(code_box).to_have_value(code + indent)
    page.keyboard.press("Shift+Tab")
    expect(code_box).to_have_value(code)
    # the highlighted view behind the textarea shows the same text, coloured
    view = page.locator("[data-editor] .editor-view").first
    expect(view.locator(".tok-keyword").first).to_be_visible()
    expect(view).to_contain_text("InvalidEventPayload" if runtime == "javascript" else "on_alias")
    _shot(page, shot)
    page.get_by_role("button", name="Create app").click()
    expect(page).to_have_url(re.compile(rf"/ui/apps/{name}\?done=created$"))
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    expect(page.get_by_text(f"{runtime} function")).to_be_visible()


def _send(page: Page, type_: str) -> None:
    page.get_by_label("Event type").select_option(type_)
    expect(page.get_by_label("Event (JSON)")).to_have_value(re.compile(rf'"type": "{type_}"'))
    page.get_by_role("button", name="Send Test Event").click()
    expect(page.get_by_label("Event type")).to_have_value(type_)
    expect(page.locator("#result")).to_be_visible()


def test_function_apps_in_a_real_browser(
    server: SegueProcess, browser_page: tuple[Page, list[str]]
) -> None:
    page, problems = browser_page
    ui = f"{server.url}/ui"
    for old in SCREENSHOTS.glob("2?-fn-*.png"):
        old.unlink()

    page.goto(f"{ui}/apps")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/apps$"))

    # -- a Python function app ----------------------------------------------------------
    _create_function_app(page, ui, "fn-python", "python", PYTHON_CODE, "20-fn-python-editor")
    # the read-only code on the app page is what was typed
    expect(page.locator("textarea[readonly]")).to_have_value(PYTHON_CODE)

    _send(page, "track")
    result = page.locator("#result")
    expect(result.get_by_role("heading", name=re.compile("Result"))).to_contain_text("succeeded")
    expect(result).not_to_contain_text("Request from segue")
    callback = result.locator("h3", has_text="Callback Return").locator("+ pre")
    expect(callback).to_contain_text('"ok": true')
    expect(callback).to_contain_text('"event": "Order Completed"')
    logs = result.locator("h3", has_text="Log Output").locator("+ pre")
    expect(logs).to_contain_text(re.compile(r"tracked Order Completed for \S+"))
    _shot(page, "21-fn-python-track")

    _send(page, "alias")
    expect(result.get_by_role("heading", name=re.compile("Result"))).not_to_contain_text(
        "succeeded"
    )
    expect(result.locator(".alert")).to_contain_text("alias is not supported here")
    expect(result.locator(".alert")).to_contain_text(re.compile("EventNotSupported|not.supported"))
    _shot(page, "22-fn-python-alias-error")

    # -- a JavaScript function app (the seed's style) ------------------------------------
    _create_function_app(
        page, ui, "fn-javascript", "javascript", JAVASCRIPT_CODE, "23-fn-javascript-editor"
    )
    expect(page.locator("textarea[readonly]")).to_have_value(JAVASCRIPT_CODE)

    _send(page, "track")
    expect(result.get_by_role("heading", name=re.compile("Result"))).to_contain_text("succeeded")
    callback = result.locator("h3", has_text="Callback Return").locator("+ pre")
    expect(callback).to_contain_text('"ok": true')
    logs = result.locator("h3", has_text="Log Output").locator("+ pre")
    expect(logs).to_contain_text("hi Order Completed")
    _shot(page, "24-fn-javascript-track")

    _send(page, "group")
    expect(result.get_by_role("heading", name=re.compile("Result"))).not_to_contain_text(
        "succeeded"
    )
    expect(result.locator(".alert")).to_contain_text("company is required")
    _shot(page, "25-fn-javascript-group-error")

    assert not problems, "\n".join(problems)
