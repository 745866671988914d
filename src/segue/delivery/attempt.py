"""One delivery attempt to one destination, whatever its kind.

Workers and Send Test Event both come through here: a test event is a delivery
without the queue, so what the Developer Center shows is what workers do.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from segue.delivery.function_attempt import FunctionAttemptRecord, outcome_of_call
from segue.delivery.policy import AttemptOutcome, FailureKind
from segue.delivery.transport import Transport
from segue.delivery.webhook import AttemptRecord, WebhookRequest, build_request, send_webhook
from segue.destinations.catalog import Catalog
from segue.destinations.models import App, Destination
from segue.functions.result import CallError, CallResult


def replay_payload(payload: bytes, destination: Destination) -> bytes:
    """A replayed event goes to one destination only (Segment's replay semantics)."""
    event = orjson.loads(payload)
    event["integrations"] = {"All": False, destination.name: True}
    return orjson.dumps(event)


class FunctionCaller(Protocol):
    """What the Deliverer needs of the function sandbox (segue.functions.pool)."""

    async def call(
        self,
        runtime: str,
        source: str,
        version: str,
        filename: str,
        handler: str,
        payload: Any,
        settings: dict[str, Any],
        timeout_s: float | None = None,
    ) -> CallResult: ...


AnyAttemptRecord = AttemptRecord | FunctionAttemptRecord


class Deliverer:
    def __init__(
        self, catalog: Catalog, transport: Transport, functions: FunctionCaller | None = None
    ) -> None:
        self.catalog = catalog
        self.transport = transport
        self.functions = functions

    async def attempt(
        self,
        destination: Destination,
        event: bytes | dict[str, Any],
        *,
        settings: dict[str, Any] | None = None,
        replay: bool = False,
    ) -> AnyAttemptRecord:
        """Never raises: a destination that cannot be called is an outcome too."""
        payload = event if isinstance(event, bytes) else orjson.dumps(event)
        if replay:
            payload = replay_payload(payload, destination)
        values = destination.settings if settings is None else settings
        app = self.catalog.app(destination.app) if destination.app else None
        if app is not None and app.is_function:
            return await self._call_function(app, destination, orjson.loads(payload), values)
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

    async def _call_function(
        self,
        app: App,
        destination: Destination,
        event: dict[str, Any],
        settings: dict[str, Any],
    ) -> FunctionAttemptRecord:
        handler = str(event.get("type", ""))
        if self.functions is None:
            result = CallResult(
                ok=False, error=CallError.CRASH, message="functions are not running"
            )
        else:
            result = await self.functions.call(
                app.runtime or "python",
                app.code or "",
                app.version,
                app.function or f"{app.name}.{'js' if app.runtime == 'javascript' else 'py'}",
                handler,
                event,
                settings,
                timeout_s=destination.options.timeout_s,
            )
        return FunctionAttemptRecord(handler, event, settings, result, outcome_of_call(result))
