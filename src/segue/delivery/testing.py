"""Send Test Event and the test suite: one delivery right away, without the queue.

The Developer Center's "Send Test Event" button and the "Test" tab of a component
(seeds: subscription-http-endpoint) call the same :class:`Deliverer` the workers
call, so what a partner sees here is what the workers do. Nothing is stored.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

from segue.delivery.attempt import AnyAttemptRecord, Deliverer
from segue.delivery.policy import RetryPolicy
from segue.destinations.catalog import Catalog
from segue.destinations.models import App, Destination
from segue.destinations.settings import MASK, SettingField, SettingsError, check_values
from segue.spec.samples import SAMPLE_TYPES, sample
from segue.store import DeliveryState
from segue.timeutil import now_ms


class SendTestError(ValueError):
    """The test request itself is wrong (a 400 for the API)."""


def pick_test_event(body: dict[str, Any]) -> dict[str, Any]:
    """``{"type": "track"}`` → a realistic sample; ``{"event": {...}}`` → that event."""
    event, type_ = body.get("event"), body.get("type")
    if event is not None:
        if not isinstance(event, dict):
            raise SendTestError("`event` must be a JSON object (a Segment message)")
        return event
    if type_ is None:
        raise SendTestError(
            f"give `type` (one of {', '.join(SAMPLE_TYPES)}) or `event` (a Segment message)"
        )
    if type_ not in SAMPLE_TYPES:
        raise SendTestError(f"`type` must be one of {', '.join(SAMPLE_TYPES)}, not {type_!r}")
    return sample(str(type_))


def app_test_destination(app: App, settings: object) -> Destination:
    """An ephemeral destination of ``app`` with the supplied values (validated)."""
    try:
        values = check_values(app.settings, settings, strict=True)
    except SettingsError as exc:
        raise SendTestError(str(exc)) from None
    return Destination(
        id=f"test_{uuid.uuid4().hex[:16]}",
        name=app.name,
        app=app.name,
        settings=values,
        enabled=True,
    )


def destination_with_settings(
    destination: Destination, fields: tuple[SettingField, ...], settings: object
) -> Destination:
    """The destination itself, or a copy with ``settings`` laid over its own values.

    A masked value sent back (``"••••••"``) means "keep the stored one", as in forms.
    """
    if settings is None:
        return destination
    if not isinstance(settings, dict):
        raise SendTestError("`settings` must be an object of setting values")
    old = destination.settings
    merged = {**old, **{k: (old.get(k) if v == MASK else v) for k, v in settings.items()}}
    try:
        values = check_values(fields, merged, strict=destination.app is not None)
    except SettingsError as exc:
        raise SendTestError(str(exc)) from None
    return replace(destination, settings=values)


def outcome_of(record: AnyAttemptRecord, policy: RetryPolicy) -> str:
    """``succeeded``, ``discarded`` or ``retry``: what a worker would do with this answer."""
    now = now_ms()
    decision = policy.decide(record.outcome, attempts=1, created_at_ms=now, now_ms=now)
    if decision.state is DeliveryState.SUCCEEDED:
        return "succeeded"
    if decision.state is DeliveryState.DISCARDED:
        return "discarded"
    return "retry"


class SendTestEvent:
    """Runs test events and suites against one destination (real or ephemeral)."""

    def __init__(self, deliverer: Deliverer, catalog: Catalog) -> None:
        self.deliverer = deliverer
        self.catalog = catalog

    async def send(self, destination: Destination, event: dict[str, Any]) -> dict[str, Any]:
        record = await self.deliverer.attempt(destination, event)
        result = record.as_json(
            self.catalog.sensitive_keys(destination), self.catalog.redactor(destination)
        )
        result["outcome"] = outcome_of(record, destination.options.retry)
        result["event"] = event
        return result

    async def suite(self, destination: Destination) -> list[dict[str, Any]]:
        """Every sample type, concurrently; one row per type, in SAMPLE_TYPES order."""
        results = await asyncio.gather(
            *(self.send(destination, sample(type_)) for type_ in SAMPLE_TYPES)
        )
        rows = []
        for type_, result in zip(SAMPLE_TYPES, results, strict=True):
            status = result["status"]
            rows.append(
                {
                    "type": type_,
                    "passed": result["outcome"] == "succeeded",
                    "status": status,
                    "reason": result["reason"],
                    "message": result["message"],
                    "error": result["error"],
                    "outcome": result["outcome"],
                    "duration_ms": result["duration_ms"],
                    "request": result["request"],
                    "response": result["response"],
                    **(
                        {"callback_return": result["callback_return"], "logs": result["logs"]}
                        if result.get("kind") == "function"
                        else {}
                    ),
                }
            )
        return rows
