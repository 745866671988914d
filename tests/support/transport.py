"""A webhook transport that answers 200 in-process: nothing leaves the test."""

from __future__ import annotations

from segue.delivery.webhook import WebhookRequest, WebhookResponse


class AlwaysOK:
    """Every POST answered ``200 {"ok": true}`` at once; the requests are kept."""

    def __init__(self) -> None:
        self.requests: list[WebhookRequest] = []

    async def post(
        self, request: WebhookRequest, *, timeout_s: float, allow_http: bool = False
    ) -> WebhookResponse:
        self.requests.append(request)
        return WebhookResponse(200, (("content-type", "application/json"),), b'{"ok":true}')

    async def close(self) -> None:
        return None
