"""Driving Debian's headless Chromium with Playwright (never a downloaded browser)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
WAIT_MS = 20_000


@contextmanager
def browser_page() -> Iterator[tuple[Page, list[str]]]:
    """A fresh page, and the list its console errors and page errors are collected into.

    confirm() dialogs (retry, rotate key) are accepted, as a user would.
    """
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(WAIT_MS)
            expect.set_options(timeout=WAIT_MS)
            page = context.new_page()
            page.on(
                "console",
                lambda msg: (
                    problems.append(f"console.{msg.type}: {msg.text} @ {msg.location}")
                    if msg.type == "error"
                    else None
                ),
            )
            page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
            page.on("dialog", lambda dialog: dialog.accept())
            yield page, problems
        finally:
            browser.close()


def shot(page: Page, name: str) -> None:
    """A full-page screenshot into artifacts/screenshots/ (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
