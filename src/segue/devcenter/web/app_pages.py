"""Developer Center pages for apps: edit, settings builder, Send Test Event, suite."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import Route

if TYPE_CHECKING:
    from segue.devcenter.web.app import WebUI


def routes(ui: WebUI) -> list[Route]:
    """The app pages' routes (mounted by WebUI.app)."""
    return []
