"""One delivery attempt to one destination, whatever its kind.

Workers and Send Test Event both come through here: a test event is a delivery
without the queue, so what the Developer Center shows is what workers do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from segue.delivery.endpoint import EndpointError, normalized_endpoint
from segue.delivery.function_attempt import FunctionAttemptRecord, outcome_of_call
from segue.delivery.policy import AttemptOutcome, FailureKind
from segue.delivery.transport import Transport
from segue.delivery.webhook import AttemptRecord, WebhookRequest, build_request, send_webhook
from segue.destinations.catalog import Catalog
from segue.destinations.models import App, Destination
from segue.destinations.redaction import Redactor
from segue.functions.result import CallError, CallResult

log = logging.getLogger("segue.delivery")


def replay_payload(payload: bytes, destination: Destination) -> bytes:
    """A replayed event goes to one destination only (Segment's replay semantics)."""
    event = orjson.loads(payload)
    event["integrations"] = {"All": False, destination.name: True}
    return orjson.dumps(event)


class FunctionCaller(Protocol):
    """What the Deliverer needs of the function sandbox (segue.functions.pool).

    ``scope`` says whose call it is: workers never serve two scopes, so one
    destination's function never sees (or changes) another's events and settings.
    """

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
        *,
        scope: str,
        redact: Callable[[str], str] | None = None,
    ) -> CallResult: ...

    async def handlers(
        self, runtime: str, source: str, version: str, filename: str, *, scope: str
    ) -> set[str]: ...


AnyAttemptRecord = AttemptRecord | FunctionAttemptRecord


class Deliverer:
    def __init__(
        self, catalog: Catalog, transport: Transport, functions: FunctionCaller | None = None
    ) -> None:
        self.catalog = catalog
        self.transport = transport
        self.functions = functions
        self._batching: dict[str, bool] = {}  # "<destination id> <version>" -> has on_batch

    async def attempt(
        self,
        destination: Destination,
        event: bytes | dict[str, Any],
        *,
        settings: dict[str, Any] | None = None,
        replay: bool = False,
    ) -> AnyAttemptRecord:
        """Never raises: a destination that cannot be called is an outcome too.

        A defect of segue's own (an exception no check foresaw) is logged and becomes
        a retried ``INTERNAL_ERROR``, so that the delivery is settled, not stuck.
        """
        payload = event if isinstance(event, bytes) else orjson.dumps(event)
        try:
            return await self._attempt(destination, payload, settings, replay)
        except Exception as exc:
            log.exception("an attempt to %s failed inside segue", destination.name)
            message = f"segue could not make the attempt ({type(exc).__name__}: {exc})"
            outcome = AttemptOutcome(failure=FailureKind.INTERNAL, message=message)
            request = WebhookRequest(url="", headers=(), body=payload)
            return AttemptRecord(request, None, outcome, 0.0, error=message)

    async def _attempt(
        self,
        destination: Destination,
        payload: bytes,
        settings: dict[str, Any] | None,
        replay: bool,
    ) -> AnyAttemptRecord:
        if replay:
            payload = replay_payload(payload, destination)
        values = destination.settings if settings is None else settings
        app = self.catalog.app(destination.app) if destination.app else None
        if app is not None and app.is_function:
            return await self._call_function(app, destination, orjson.loads(payload), values)
        endpoint = self.catalog.endpoint_of(destination)
        try:
            if not endpoint:
                raise EndpointError("the destination has no endpoint")
            endpoint = normalized_endpoint(endpoint)
        except EndpointError as exc:
            request = WebhookRequest(url=endpoint or "", headers=(), body=payload)
            outcome = AttemptOutcome(failure=FailureKind.INVALID_SETTINGS, message=str(exc))
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
                _filename(app),
                handler,
                event,
                settings,
                timeout_s=destination.options.timeout_s,
                scope=destination.id,
                redact=Redactor.for_settings(
                    settings, self.catalog.sensitive_keys(destination)
                ).text,
            )
        return FunctionAttemptRecord(handler, event, settings, result, outcome_of_call(result))

    async def batch_function(self, destination: Destination) -> App | None:
        """The destination's function app when it defines ``on_batch`` / ``onBatch``."""
        app = self.catalog.app(destination.app) if destination.app else None
        if app is None or not app.is_function or self.functions is None:
            return None
        key = f"{destination.id} {app.version}"  # asked in the destination's own scope
        has_batch = self._batching.get(key)
        if has_batch is None:
            try:
                found = await self.functions.handlers(
                    app.runtime or "python",
                    app.code or "",
                    app.version,
                    _filename(app),
                    scope=destination.id,
                )
            except Exception:  # code that does not load: per-event calls report it
                found = set()
            has_batch = self._batching[key] = "batch" in found
        return app if has_batch else None

    async def attempt_batch(
        self, app: App, destination: Destination, events: list[dict[str, Any]]
    ) -> list[FunctionAttemptRecord]:
        """One ``on_batch`` call; a record per event (its own result, or the call's)."""
        assert self.functions is not None
        result = await self.functions.call(
            app.runtime or "python",
            app.code or "",
            app.version,
            _filename(app),
            "batch",
            events,
            destination.settings,
            timeout_s=destination.options.timeout_s,
            scope=destination.id,
            redact=self.catalog.redactor(destination).text,
        )
        per_event = {item.get("index"): item for item in result.batch_results or ()}
        records = []
        for index, event in enumerate(events):
            item = per_event.get(index)
            own = result if item is None else _item_result(item, result)
            records.append(
                FunctionAttemptRecord(
                    "batch", event, destination.settings, own, outcome_of_call(own)
                )
            )
        return records


def _filename(app: App) -> str:
    return app.function or f"{app.name}.{'js' if app.runtime == 'javascript' else 'py'}"


def _item_result(item: dict[str, Any], call: CallResult) -> CallResult:
    """One event's entry of an on_batch result, with the call's logs and timing."""
    error = item.get("error")
    return CallResult(
        ok=bool(item.get("ok")),
        value=item,  # what on_batch said of this event
        error=CallError(error) if error and not item.get("ok") else None,
        message=item.get("message"),
        logs=call.logs,
        duration_ms=call.duration_ms,
    )
