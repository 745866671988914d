"""Developer Center pages for destinations: configure, Event Delivery, retry, replay."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import Route

if TYPE_CHECKING:
    from segue.devcenter.web.app import WebUI


def routes(ui: WebUI) -> list[Route]:
    """The destination pages' routes (mounted by WebUI.app)."""
    return []
