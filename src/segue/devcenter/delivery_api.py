"""Admin API for what happened to events on their way out: the delivery debugger
(every attempt's request and response), the Event Delivery summary, bulk retry
and replays.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from segue.delivery.replay import ReplayError, ReplayRunner, iso, parse_time, public
from segue.delivery.webhook import masked_headers
from segue.destinations.catalog import Catalog
from segue.destinations.models import Destination
from segue.devcenter.responses import (
    Handler,
    JSONResponse,
    checked_body,
    decode_cursor,
    encode_cursor,
    error,
    page_limit,
    path_id,
)
from segue.store import (
    Attempt,
    Delivery,
    DeliveryQuery,
    DeliveryState,
    RetryFilter,
    Store,
)
from segue.timeutil import now_ms

_WINDOW = re.compile(r"0*([0-9]{1,12})([smhd])")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_WINDOW_MS = 90 * 86_400_000
# Bucket sizes for the summary chart: the smallest that gives at most 60 buckets.
_BUCKETS_MS = (
    1000,
    5000,
    10_000,
    30_000,
    60_000,
    300_000,
    600_000,
    1_800_000,
    3_600_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
)
_RETRYABLE_STATES = {"discarded": DeliveryState.DISCARDED, "expired": DeliveryState.EXPIRED}


def parse_window(text: str) -> int:
    """``5m``, ``1h``, ``24h``, ``7d`` (and ``30s``) → milliseconds."""
    match = _WINDOW.fullmatch(text)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"`window` must look like 5m, 1h, 24h or 7d, not {text[:40]!r}")
    window = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if window > MAX_WINDOW_MS:
        raise ValueError("`window` can be at most 90d")
    return window


def bucket_for(window_ms: int) -> int:
    return next((b for b in _BUCKETS_MS if window_ms // b <= 60), _BUCKETS_MS[-1])


def percentile(values: list[int], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return float(ordered[rank - 1])


class DeliveryAPI:
    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        replays: ReplayRunner,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.replays = replays
        self.wake = wake

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("/deliveries", "GET", self.list_deliveries),
            ("/deliveries/retry", "POST", self.retry),
            ("/deliveries/{id:int}", "GET", self.get_delivery),
            ("/destinations/{name}/stats", "GET", self.stats),
            ("/replays", "GET", self.list_replays),
            ("/replays", "POST", self.create_replay),
            ("/replays/{id}", "GET", self.get_replay),
        ]

    # -- the debugger ----------------------------------------------------------
    async def list_deliveries(self, request: Request) -> Response:
        params = request.query_params
        limit = page_limit(request)
        destination_id = None
        if name := params.get("destination"):
            destination = self.catalog.destination(name)
            if destination is None:
                return error(404, f"no destination named {name!r}")
            destination_id = destination.id
        state = None
        if (value := params.get("state")) is not None:
            try:
                state = DeliveryState(value)
            except ValueError:
                states = ", ".join(s.value for s in DeliveryState)
                return error(400, f"`state` must be one of {states}")
        query = DeliveryQuery(
            destination_id=destination_id,
            state=state,
            reason=params.get("reason") or None,
            limit=limit,
            before=decode_cursor(params.get("cursor")),
        )
        deliveries = await self.store.list_deliveries(query)
        stored = await self.store.get_events([d.event_id for d in deliveries])
        events: dict[int, Any] = {i: orjson.loads(e.payload) for i, e in stored.items()}
        shown = [await self._delivery_json(d, events) for d in deliveries]
        cursor = encode_cursor(deliveries[-1].id) if len(deliveries) == limit else None
        return JSONResponse({"deliveries": shown, "next_cursor": cursor})

    async def get_delivery(self, request: Request) -> Response:
        delivery_id = path_id(request)
        delivery = await self.store.get_delivery(delivery_id)
        if delivery is None:
            return error(404, f"no delivery {delivery_id}")
        return JSONResponse(await self._delivery_json(delivery, {}))

    async def _delivery_json(self, delivery: Delivery, events: dict[int, Any]) -> dict[str, Any]:
        destination = self.catalog.destination_by_id(delivery.destination_id)
        secrets = self.catalog.sensitive_keys(destination) if destination else _ALL_SETTINGS
        attempts = await self.store.list_attempts(delivery.id)
        if delivery.event_id not in events:
            events[delivery.event_id] = await self._event(delivery.event_id)
        latency = (
            delivery.completed_at_ms - delivery.created_at_ms
            if delivery.completed_at_ms is not None and delivery.state is DeliveryState.SUCCEEDED
            else None
        )
        return {
            "id": delivery.id,
            "event_id": delivery.event_id,
            "destination": destination.name if destination else None,
            "destination_id": delivery.destination_id,
            "state": delivery.state.value,
            "reason": delivery.reason,
            "message": delivery.last_error,
            "attempt_count": delivery.attempts,
            "replay": delivery.replay,
            "created_at_ms": delivery.created_at_ms,
            "updated_at_ms": delivery.updated_at_ms,
            "next_attempt_at_ms": delivery.next_attempt_at_ms
            if delivery.state in (DeliveryState.PENDING, DeliveryState.AWAITING_RETRY)
            else None,
            "completed_at_ms": delivery.completed_at_ms,
            "latency_ms": latency,
            "event": events[delivery.event_id],
            "attempts": [attempt_json(a, secrets) for a in attempts],
        }

    async def _event(self, event_id: int) -> Any:
        """The stored payload: what "You sent"."""
        found = (await self.store.get_events([event_id])).get(event_id)
        return None if found is None else orjson.loads(found.payload)

    # -- the Event Delivery summary ----------------------------------------------
    async def stats(self, request: Request) -> Response:
        name = request.path_params["name"]
        destination = self.catalog.destination(name)
        if destination is None:
            return error(404, f"no destination named {name!r}")
        try:
            doc = await self.stats_doc(destination, request.query_params.get("window", "1h"))
        except ValueError as exc:
            return error(400, str(exc))
        return JSONResponse(doc)

    async def stats_doc(self, destination: Destination, window_text: str) -> dict[str, Any]:
        """The Event Delivery summary (the API's document, and what the UI draws)."""
        window_ms = parse_window(window_text)
        bucket_ms = bucket_for(window_ms)
        now = now_ms()
        since = now - window_ms
        stats = await self.store.delivery_stats(destination.id, since, bucket_ms)
        by_state = stats.by_state
        reasons = []
        for reason, state, count in stats.reasons:
            sample = await self._sample(destination.id, reason, state)
            reasons.append({"reason": reason, "state": state, "count": count, "sample": sample})
        return {
            "destination": destination.name,
            "window": window_text,
            "since_ms": since,
            "until_ms": now,
            "bucket_ms": bucket_ms,
            "delivered": by_state.get("succeeded", 0),
            "discarded": by_state.get("discarded", 0),
            "retrying": by_state.get("awaiting_retry", 0),
            "expired": by_state.get("expired", 0),
            "pending": by_state.get("pending", 0) + by_state.get("executing", 0),
            "p50_latency_ms": percentile(stats.latencies_ms, 0.50),
            "p95_latency_ms": percentile(stats.latencies_ms, 0.95),
            "buckets": _buckets(stats.buckets, since, now, bucket_ms),
            "reasons": reasons,
        }

    async def _sample(self, destination_id: str, reason: str, state: str) -> Any:
        """One recent delivery of a failure reason: what was sent and what came back."""
        try:
            wanted = DeliveryState(state)
        except ValueError:
            wanted = None
        found = await self.store.list_deliveries(
            DeliveryQuery(destination_id=destination_id, state=wanted, reason=reason, limit=1)
        )
        if not found:
            return None
        shown = await self._delivery_json(found[0], {})
        last = shown["attempts"][-1] if shown["attempts"] else {}
        return {
            "delivery_id": shown["id"],
            "you_sent": shown["event"],
            "request": last.get("request"),
            "response": last.get("response"),
            "message": shown["message"],
        }

    # -- bulk retry ------------------------------------------------------------------
    async def retry(self, request: Request) -> Response:
        body = await checked_body(request, "RetryRequest")
        name = body.get("destination")
        if not isinstance(name, str) or not name:
            return error(400, "`destination` is required: the destination's name")
        destination = self.catalog.destination(name)
        if destination is None:
            return error(404, f"no destination named {name!r}")
        states = body.get("states", list(_RETRYABLE_STATES))
        if (
            not isinstance(states, list)
            or not states
            or not all(isinstance(s, str) and s in _RETRYABLE_STATES for s in states)
        ):
            return error(400, "`states` must be a list of discarded and/or expired")
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            return error(400, "`reason` must be a reason as the summary shows it")
        try:
            since = parse_time(body.get("since"), "since")
        except ReplayError as exc:
            return error(400, str(exc))
        retried = await self.store.retry_deliveries(
            RetryFilter(
                destination_id=destination.id,
                states=tuple(_RETRYABLE_STATES[s] for s in dict.fromkeys(states)),
                reason=reason or None,
                since_ms=since,
            ),
            now_ms(),
        )
        if retried:
            self.wake()
        return JSONResponse({"retried": retried})

    # -- replays ---------------------------------------------------------------------
    async def create_replay(self, request: Request) -> Response:
        body = await checked_body(request, "ReplayCreate")
        source_name, destination_name = body.get("source"), body.get("destination")
        if not isinstance(source_name, str) or not source_name:
            return error(400, "`source` is required: the name of the source to replay")
        if not isinstance(destination_name, str) or not destination_name:
            return error(400, "`destination` is required: the name of the destination")
        source = await self.store.get_source(source_name)
        if source is None:
            return error(400, f"no source named {source_name!r}")
        destination = self.catalog.destination(destination_name)
        if destination is None:
            return error(400, f"no destination named {destination_name!r}")
        if source.name not in destination.sources:
            return error(
                400, f"destination {destination.name!r} does not subscribe to {source.name!r}"
            )
        if not destination.enabled:
            return error(400, f"destination {destination.name!r} is disabled")
        try:
            doc = await self.replays.start(
                source=(source.name, source.id),
                destination=(destination.name, destination.id),
                since_ms=parse_time(body.get("since"), "since"),
                until_ms=parse_time(body.get("until"), "until"),
            )
        except ReplayError as exc:
            return error(400, str(exc))
        return JSONResponse(public(doc), status_code=202)

    async def list_replays(self, request: Request) -> Response:
        return JSONResponse({"replays": [public(d) for d in await self.replays.list_replays()]})

    async def get_replay(self, request: Request) -> Response:
        replay_id = request.path_params["id"]
        doc = await self.replays.get(replay_id)
        if doc is None:
            return error(404, f"no replay {replay_id!r}")
        return JSONResponse({**public(doc), "progress": await self.replays.progress(doc)})


class _Everything(frozenset[str]):
    """Every key counts as sensitive (the destination is gone: its schema is unknown)."""

    def __contains__(self, key: object) -> bool:
        return True


_ALL_SETTINGS = _Everything({"*"})


def attempt_json(attempt: Attempt, secrets: frozenset[str]) -> dict[str, Any]:
    """A stored attempt for the debugger, its headers masked again with today's secrets."""
    record = dict(attempt.record)
    request = record.get("request")
    if isinstance(request, dict) and isinstance(request.get("headers"), dict):
        headers = tuple((str(k), str(v)) for k, v in request["headers"].items())
        record["request"] = {**request, "headers": masked_headers(headers, secrets)}
    return {
        **record,
        "number": attempt.number,
        "at_ms": attempt.at_ms,
        "at": iso(attempt.at_ms),
        "state": attempt.state.value,
        "reason": attempt.reason,
        "outcome_reason": record.get("reason"),
    }


def _buckets(
    rows: list[tuple[int, str, int]], since: int, now: int, bucket_ms: int
) -> list[dict[str, Any]]:
    """Every bucket of the window, empty ones too, so a chart needs no gap logic."""
    first = since // bucket_ms * bucket_ms
    counts: dict[int, dict[str, int]] = {
        start: {"succeeded": 0, "discarded": 0, "expired": 0}
        for start in range(first, now + 1, bucket_ms)
    }
    for start, state, count in rows:
        bucket = counts.get(start)
        if bucket is not None and state in bucket:
            bucket[state] += count
    return [{"start": iso(start), "start_ms": start, **n} for start, n in counts.items()]
