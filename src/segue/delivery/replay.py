"""Replay: re-send the stored events of a time range to one destination.

A replay is a JSON document in the store (kind ``replay``) and an asyncio task that
pages :meth:`Store.enqueue_replay` until it returns 0, saving its progress after
each page and waking the worker. The worker sends replayed events with
``integrations = {"All": false, "<destination>": true}`` (Segment's replay
semantics). A replay interrupted by a restart resumes from its last page
(``resume_unfinished``); a page cut short by a crash may be queued twice
(at-least-once, like every delivery).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from segue.spec.timestamps import format_timestamp, parse_timestamp
from segue.store import DeliveryState, Store
from segue.timeutil import from_ms, now_ms, to_ms

log = logging.getLogger("segue.replay")

REPLAY = "replay"
PAGE_SIZE = 1000
RUNNING, FINISHED, FAILED = "running", "finished", "failed"


class ReplayError(ValueError):
    """A replay request that does not hold (a 400 for the API)."""


def parse_time(value: object, what: str) -> int | None:
    """ISO-8601 text or epoch milliseconds (number or digits) → epoch ms; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ReplayError(f"`{what}` must be an ISO-8601 time or epoch milliseconds")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        parsed = parse_timestamp(text)
        if parsed is not None:
            return to_ms(parsed)
    raise ReplayError(f"`{what}` must be an ISO-8601 time or epoch milliseconds, not {value!r}")


def iso(ms: int | None) -> str | None:
    return None if ms is None else format_timestamp(from_ms(ms))


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """The API's view of a replay document."""
    return {
        "id": doc["id"],
        "source": doc["source"],
        "destination": doc["destination"],
        "since": iso(doc["since_ms"]),
        "until": iso(doc["until_ms"]),
        "since_ms": doc["since_ms"],
        "until_ms": doc["until_ms"],
        "queued": doc["queued"],
        "state": doc["state"],
        "error": doc.get("error"),
        "created_at": iso(doc["created_at_ms"]),
        "created_at_ms": doc["created_at_ms"],
        "finished_at": iso(doc.get("finished_at_ms")),
        "finished_at_ms": doc.get("finished_at_ms"),
    }


class ReplayRunner:
    """Starts, resumes and reports replays; one asyncio task per running replay."""

    def __init__(
        self,
        store: Store,
        wake: Callable[[], None] = lambda: None,
        *,
        page_size: int = PAGE_SIZE,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.wake = wake
        self.page_size = page_size
        self.clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(
        self,
        *,
        source: tuple[str, str],
        destination: tuple[str, str],
        since_ms: int | None,
        until_ms: int | None,
    ) -> dict[str, Any]:
        """``source`` and ``destination`` are (name, id); the range defaults to all time."""
        created = self.clock()
        since = 0 if since_ms is None else since_ms
        until = created + 1 if until_ms is None else until_ms
        if since >= until:
            raise ReplayError("`since` must be before `until`")
        doc: dict[str, Any] = {
            "id": f"rpl_{uuid.uuid4().hex[:16]}",
            "source": source[0],
            "source_id": source[1],
            "destination": destination[0],
            "destination_id": destination[1],
            "since_ms": since,
            "until_ms": until,
            "queued": 0,
            "last_event_id": 0,
            "state": RUNNING,
            "error": None,
            "created_at_ms": created,
            "finished_at_ms": None,
        }
        await self.store.put_object(REPLAY, doc["id"], doc)
        self._spawn(doc)
        return doc

    async def get(self, replay_id: str) -> dict[str, Any] | None:
        return await self.store.get_object(REPLAY, replay_id)

    async def list_replays(self) -> list[dict[str, Any]]:
        docs = await self.store.list_objects(REPLAY)
        return sorted(docs, key=lambda d: d.get("created_at_ms", 0), reverse=True)

    async def resume_unfinished(self) -> int:
        """Pick up replays a previous process left running; returns how many."""
        resumed = 0
        for doc in await self.store.list_objects(REPLAY):
            if doc.get("state") == RUNNING and doc["id"] not in self._tasks:
                self._spawn(doc)
                resumed += 1
        return resumed

    async def close(self) -> None:
        """Stop queueing (on shutdown); running replays resume at the next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait(self, replay_id: str) -> None:
        """Until the replay's queueing task is over (tests)."""
        task = self._tasks.get(replay_id)
        if task is not None:
            await asyncio.shield(task)

    def _spawn(self, doc: dict[str, Any]) -> None:
        replay_id = doc["id"]
        task = asyncio.create_task(self._run(doc), name=f"replay-{replay_id}")
        self._tasks[replay_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(replay_id, None))

    async def _run(self, doc: dict[str, Any]) -> None:
        try:
            while True:
                queued, last_id = await self.store.enqueue_replay(
                    doc["source_id"],
                    doc["destination_id"],
                    doc["since_ms"],
                    doc["until_ms"],
                    after_event_id=doc["last_event_id"],
                    limit=self.page_size,
                    now_ms=self.clock(),
                    replay_id=doc["id"],
                )
                if queued == 0:
                    break
                doc["queued"] += queued
                doc["last_event_id"] = last_id
                await self.store.put_object(REPLAY, doc["id"], doc)
                self.wake()
            doc["state"] = FINISHED
        except asyncio.CancelledError:
            raise  # shutting down: the document says running, resume_unfinished goes on
        except Exception as exc:
            log.exception("replay %s failed", doc["id"])
            doc["state"], doc["error"] = FAILED, f"{type(exc).__name__}: {exc}"
        doc["finished_at_ms"] = self.clock()
        try:
            await self.store.put_object(REPLAY, doc["id"], doc)
        except Exception:
            log.exception("saving replay %s failed", doc["id"])

    async def progress(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Where the replay's deliveries stand: counts per state, and whether all are done."""
        counts = {"succeeded": 0, "discarded": 0, "expired": 0, "retrying": 0, "pending": 0}
        for state, count in (await self.store.count_replay_deliveries(doc["id"])).items():
            counts[_bucket(DeliveryState(state))] += count
        done = counts["succeeded"] + counts["discarded"] + counts["expired"]
        return {
            **counts,
            "done": done,
            "complete": doc["state"] != RUNNING and done >= int(doc.get("queued", 0)),
        }


def _bucket(state: DeliveryState) -> str:
    if state is DeliveryState.AWAITING_RETRY:
        return "retrying"
    if state in (DeliveryState.PENDING, DeliveryState.EXECUTING):
        return "pending"
    return state.value
