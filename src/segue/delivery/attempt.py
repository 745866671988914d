"""One delivery attempt to one destination, whatever its kind.

Workers and Send Test Event both come through here: a test event is a delivery
without the queue, so what the Developer Center shows is what workers do.
"""

from __future__ import annotations

from typing import Any

import orjson

from segue.delivery.policy import AttemptOutcome, FailureKind
from segue.delivery.transport import Transport
from segue.delivery.webhook import AttemptRecord, WebhookRequest, build_request, send_webhook
from segue.destinations.catalog import Catalog
from segue.destinations.models import Destination


def replay_payload(payload: bytes, destination: Destination) -> bytes:
    """A replayed event goes to one destination only (Segment's replay semantics)."""
    event = orjson.loads(payload)
    event["integrations"] = {"All": False, destination.name: True}
    return orjson.dumps(event)


class Deliverer:
    def __init__(self, catalog: Catalog, transport: Transport) -> None:
        self.catalog = catalog
        self.transport = transport

    async def attempt(
        self,
        destination: Destination,
        event: bytes | dict[str, Any],
        *,
        settings: dict[str, Any] | None = None,
        replay: bool = False,
    ) -> AttemptRecord:
        """Never raises: a destination that cannot be called is an outcome too."""
        payload = event if isinstance(event, bytes) else orjson.dumps(event)
        if replay:
            payload = replay_payload(payload, destination)
        values = destination.settings if settings is None else settings
        endpoint = self.catalog.endpoint_of(destination)
        if not endpoint:
            request = WebhookRequest(url="", headers=(), body=payload)
            outcome = AttemptOutcome(
                failure=FailureKind.INVALID_SETTINGS, message="the destination has no endpoint"
            )
            return AttemptRecord(request, None, outcome, 0.0, error=outcome.message)
        request = build_request(
            endpoint, payload, values, snake_case=destination.options.snake_case
        )
        return await send_webhook(
            self.transport,
            request,
            timeout_s=destination.options.timeout_s,
            allow_http=destination.options.allow_http,
        )
