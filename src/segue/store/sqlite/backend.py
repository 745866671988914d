"""The embedded default store: SQLite in WAL mode, one writer thread, group commit."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from segue.store.availability import StoreHealth
from segue.store.claims import ClaimQuotas, allot
from segue.store.protocol import SourceExistsError
from segue.store.queries import load_queries
from segue.store.records import (
    FINAL_STATES,
    Attempt,
    ClaimedDelivery,
    Delivery,
    DeliveryQuery,
    DeliveryState,
    DeliveryStats,
    EventQuery,
    NewEvent,
    RetryFilter,
    Settlement,
    Source,
    SourceKind,
    StoredEvent,
)
from segue.store.sqlite.connection import connect, migrate
from segue.store.sqlite.errors import as_store_unavailable
from segue.store.sqlite.health import WriteHealthProbe
from segue.store.sqlite.writer import CommitObserver, GroupCommitWriter
from segue.timeutil import now_ms

T = TypeVar("T")
Q = load_queries("sqlite")
_PRUNE_PAGE = 5000
_HEALTH_PROBE_KEY = "health_probe"


class SQLiteStore:
    """Store backed by one SQLite file (see ``segue.store.protocol.Store``)."""

    dialect = "sqlite"

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: str = "full",
        readers: int = 2,
        on_commit: CommitObserver | None = None,
    ) -> None:
        self.path = Path(path)
        self._synchronous = synchronous
        self._writer = GroupCommitWriter(self._connect_writer, on_commit=on_commit)
        self._readers = ThreadPoolExecutor(
            max_workers=readers, thread_name_prefix="segue-sqlite-read"
        )
        self._local = threading.local()
        self._read_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._health = WriteHealthProbe(self._writer, self._test_write, self.path.parent)

    def _connect_writer(self) -> sqlite3.Connection:
        conn = connect(self.path, synchronous=self._synchronous)
        migrate(conn)
        return conn

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._writer.start)

    async def close(self) -> None:
        await asyncio.to_thread(self._writer.stop)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._read_connections:
                conn.close()
            self._read_connections.clear()

    async def health(self) -> StoreHealth:
        """Whether writes succeed now (cached for a second; see ``sqlite.health``)."""
        return await self._health.check()

    async def _test_write(self) -> None:
        await self._write(lambda c: c.execute(Q["upsert_meta"], (_HEALTH_PROBE_KEY, str(now_ms()))))

    # -- plumbing ----------------------------------------------------------
    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._writer.submit(fn)  # store errors arrive as StoreUnavailableError

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, self._with_reader, fn)
        except (sqlite3.Error, OSError) as exc:
            unavailable = as_store_unavailable(exc)
            if unavailable is None:
                raise
            raise unavailable from exc

    def _with_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, synchronous=self._synchronous)
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._lock:
                self._read_connections.append(conn)
        return fn(conn)

    # -- sources -----------------------------------------------------------
    async def create_source(
        self,
        name: str,
        write_key: str,
        kind: SourceKind = SourceKind.STANDARD,
        rate_limit: float | None = None,
    ) -> Source:
        source = Source(
            id=f"src_{uuid.uuid4().hex[:20]}",
            name=name,
            write_key=write_key,
            kind=kind,
            rate_limit=rate_limit or None,
            created_at_ms=now_ms(),
        )

        def insert(conn: sqlite3.Connection) -> Source:
            try:
                conn.execute(
                    Q["insert_source"],
                    (
                        source.id,
                        name,
                        write_key,
                        kind.value,
                        source.rate_limit,
                        source.created_at_ms,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise SourceExistsError(
                    f"a source named {name!r} or with that write key exists"
                ) from exc
            return source

        return await self._write(insert)

    async def get_source(self, name: str) -> Source | None:
        row = await self._read(lambda c: c.execute(Q["select_source_by_name"], (name,)).fetchone())
        return _source(row) if row else None

    async def list_sources(self) -> list[Source]:
        rows = await self._read(lambda c: c.execute(Q["select_sources"]).fetchall())
        return [_source(row) for row in rows]

    async def update_source(
        self,
        name: str,
        *,
        enabled: bool | None = None,
        write_key: str | None = None,
        kind: SourceKind | None = None,
        rate_limit: float | None = None,
    ) -> Source | None:
        def update(conn: sqlite3.Connection) -> Source | None:
            row = conn.execute(Q["select_source_by_name"], (name,)).fetchone()
            if row is None:
                return None
            current = _source(row)
            new_limit = current.rate_limit if rate_limit is None else (rate_limit or None)
            values = (
                int(current.enabled if enabled is None else enabled),
                current.write_key if write_key is None else write_key,
                (current.kind if kind is None else kind).value,
                new_limit,
                name,
            )
            try:
                conn.execute(Q["update_source"], values)
            except sqlite3.IntegrityError as exc:
                raise SourceExistsError("another source has that write key") from exc
            return _source(conn.execute(Q["select_source_by_name"], (name,)).fetchone())

        return await self._write(update)

    async def delete_source(self, name: str) -> bool:
        return await self._write(lambda c: c.execute(Q["delete_source"], (name,)).rowcount > 0)

    # -- events ------------------------------------------------------------
    async def append_events(
        self, events: Sequence[NewEvent], *, dedup_window_ms: int
    ) -> list[bool]:
        return await self._write(lambda conn: _append(conn, events, dedup_window_ms))

    async def list_events(self, query: EventQuery) -> list[StoredEvent]:
        sql, params = _event_query(query)
        rows = await self._read(lambda c: c.execute(sql, params).fetchall())
        return [StoredEvent(*row) for row in rows]

    async def get_events(self, ids: Sequence[int]) -> dict[int, StoredEvent]:
        def fetch(c: sqlite3.Connection) -> dict[int, StoredEvent]:
            found = {}
            for event_id in dict.fromkeys(ids):
                row = c.execute(Q["select_event_by_id"], (event_id,)).fetchone()
                if row is not None:
                    found[event_id] = StoredEvent(*row)
            return found

        return await self._read(fetch)

    async def count_events(self, source_id: str | None = None) -> int:
        if source_id is None:
            row = await self._read(lambda c: c.execute(Q["count_events"]).fetchone())
        else:
            row = await self._read(
                lambda c: c.execute(Q["count_events_of_source"], (source_id,)).fetchone()
            )
        return int(row[0])

    async def prune_dedup(self, older_than_ms: int) -> int:
        """Walk the dedup keys on a reader, page by page, and delete the old ones.

        Whether a messageId is a duplicate is decided by its age at insert time, not by
        pruning, so this only reclaims space and may run rarely.
        """
        total, after = 0, ("", "")
        while True:
            params = (*after, _PRUNE_PAGE)
            page = await self._read(
                lambda c, p=params: c.execute(Q["dedup_key_page"], p).fetchall()  # type: ignore[misc]
            )
            if not page:
                return total
            old = [(source, message) for source, message, seen in page if seen < older_than_ms]
            if old:
                await self._write(lambda c, o=old: c.executemany(Q["forget_message"], o))  # type: ignore[misc]
                total += len(old)
            after = (page[-1][0], page[-1][1])

    # -- delivery queue ----------------------------------------------------
    async def claim_deliveries(
        self,
        worker: str,
        limit: int,
        now_ms: int,
        lease_ms: int,
        quotas: ClaimQuotas | None = None,
    ) -> list[ClaimedDelivery]:
        # look first on a reader: an idle queue costs no write transaction (no fsync)
        due = await self._read(
            lambda c: [r[0] for r in c.execute(Q["destinations_with_due_work"], (now_ms,))]
        )
        plan = allot(due, limit, quotas)
        if not plan:
            return []
        return await self._write(lambda c: _claim(c, worker, plan, now_ms, lease_ms))

    async def extend_leases(self, worker: str, ids: Sequence[int], until_ms: int) -> int:
        encoded = json.dumps(list(ids))
        return await self._write(
            lambda c: c.execute(Q["extend_leases"], (until_ms, until_ms, worker, encoded)).rowcount
        )

    async def release_leases(self, worker: str, now_ms: int) -> int:
        return await self._write(
            lambda c: c.execute(Q["release_leases"], (now_ms, now_ms, worker)).rowcount
        )

    async def settle_deliveries(self, settlements: Sequence[Settlement], now_ms: int) -> None:
        def settle(conn: sqlite3.Connection) -> None:
            conn.executemany(
                Q["settle_delivery"],
                [
                    (
                        s.state.value,
                        s.next_attempt_at_ms or now_ms,
                        s.error,
                        s.reason,
                        now_ms if s.state in FINAL_STATES else None,
                        now_ms,
                        1 if s.attempted else 0,
                        s.delivery_id,
                    )
                    for s in settlements
                ],
            )
            conn.executemany(
                Q["insert_attempt"],
                [
                    (
                        s.delivery_id,
                        s.attempt_number,
                        now_ms,
                        s.state.value,
                        s.reason,
                        orjson.dumps(s.attempt).decode(),
                    )
                    for s in settlements
                    if s.attempt is not None
                ],
            )

        await self._write(settle)

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        row = await self._read(lambda c: c.execute(Q["select_delivery"], (delivery_id,)).fetchone())
        return None if row is None else _delivery(row)

    async def list_deliveries(self, query: DeliveryQuery) -> list[Delivery]:
        sql, params = _delivery_query(query)
        rows = await self._read(lambda c: c.execute(sql, params).fetchall())
        return [_delivery(row) for row in rows]

    async def list_attempts(self, delivery_id: int) -> list[Attempt]:
        rows = await self._read(
            lambda c: c.execute(Q["select_attempts"], (delivery_id,)).fetchall()
        )
        return [
            Attempt(r[0], r[1], r[2], DeliveryState(r[3]), r[4], orjson.loads(r[5])) for r in rows
        ]

    async def delivery_stats(
        self, destination_id: str, since_ms: int, bucket_ms: int
    ) -> DeliveryStats:
        def stats(c: sqlite3.Connection) -> DeliveryStats:
            by_state = dict(c.execute(Q["count_deliveries_by_state"], (destination_id, since_ms)))
            latencies = [
                r[0] for r in c.execute(Q["completed_latencies"], (destination_id, since_ms))
            ]
            buckets = c.execute(
                Q["completed_buckets"], (bucket_ms, bucket_ms, destination_id, since_ms)
            ).fetchall()
            reasons = c.execute(Q["failure_reasons"], (destination_id, since_ms)).fetchall()
            return DeliveryStats(
                by_state=by_state,
                latencies_ms=latencies,
                buckets=[(int(b), str(s), int(n)) for b, s, n in buckets],
                reasons=[(str(r or "unknown"), str(s), int(n)) for r, s, n in reasons],
            )

        return await self._read(stats)

    async def retry_deliveries(self, retry: RetryFilter, now_ms: int) -> int:
        states = json.dumps([s.value for s in retry.states])
        params = (
            now_ms,
            now_ms,
            now_ms,
            retry.destination_id,
            states,
            retry.reason,
            retry.reason,
            retry.since_ms,
            retry.since_ms,
        )
        return await self._write(lambda c: c.execute(Q["retry_deliveries"], params).rowcount)

    async def enqueue_replay(
        self,
        source_id: str,
        destination_id: str,
        since_ms: int,
        until_ms: int,
        *,
        after_event_id: int,
        limit: int,
        now_ms: int,
        replay_id: str | None = None,
    ) -> tuple[int, int]:
        replay_id = replay_id or "replay"

        def enqueue(c: sqlite3.Connection) -> tuple[int, int]:
            ids = [
                r[0]
                for r in c.execute(
                    Q["select_events_in_range"],
                    (source_id, since_ms, until_ms, after_event_id, limit),
                )
            ]
            c.executemany(
                Q["insert_replay_delivery"],
                [(i, destination_id, now_ms, now_ms, now_ms, now_ms, replay_id) for i in ids],
            )
            return len(ids), (ids[-1] if ids else after_event_id)

        return await self._write(enqueue)

    async def count_replay_deliveries(self, replay_id: str) -> dict[str, int]:
        rows = await self._read(
            lambda c: c.execute(Q["count_replay_deliveries"], (replay_id,)).fetchall()
        )
        return {str(state): int(count) for state, count in rows}

    # -- configuration objects ---------------------------------------------
    async def put_object(self, kind: str, name: str, doc: dict[str, Any]) -> None:
        encoded = orjson.dumps(doc).decode()
        await self._write(lambda c: c.execute(Q["put_object"], (kind, name, encoded, now_ms())))

    async def get_object(self, kind: str, name: str) -> dict[str, Any] | None:
        row = await self._read(lambda c: c.execute(Q["get_object"], (kind, name)).fetchone())
        return None if row is None else dict(orjson.loads(row[0]))

    async def list_objects(self, kind: str) -> list[dict[str, Any]]:
        rows = await self._read(lambda c: c.execute(Q["list_objects"], (kind,)).fetchall())
        return [dict(orjson.loads(row[0])) for row in rows]

    async def delete_object(self, kind: str, name: str) -> bool:
        return await self._write(lambda c: c.execute(Q["delete_object"], (kind, name)).rowcount > 0)

    # -- settings ----------------------------------------------------------
    async def get_meta(self, key: str) -> str | None:
        row = await self._read(lambda c: c.execute(Q["select_meta"], (key,)).fetchone())
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._write(lambda c: c.execute(Q["upsert_meta"], (key, value)))


def _source(row: Sequence[Any]) -> Source:
    return Source(
        id=row[0],
        name=row[1],
        write_key=row[2],
        kind=SourceKind(row[3]),
        enabled=bool(row[4]),
        rate_limit=row[5],
        created_at_ms=row[6],
    )


def _append(conn: sqlite3.Connection, events: Sequence[NewEvent], window_ms: int) -> list[bool]:
    remember, insert, enqueue = Q["remember_message"], Q["insert_event"], Q["insert_delivery"]
    stored: list[bool] = []
    for event in events:
        cutoff = event.received_at_ms - window_ms
        fresh = conn.execute(
            remember, (event.source_id, event.message_id, event.received_at_ms, cutoff)
        ).rowcount
        if not fresh:
            stored.append(False)
            continue
        cursor = conn.execute(
            insert,
            (
                event.source_id,
                event.message_id,
                event.type,
                event.user_id,
                event.anonymous_id,
                event.received_at_ms,
                event.payload,
            ),
        )
        if event.destinations:
            at = event.received_at_ms
            conn.executemany(
                enqueue, [(cursor.lastrowid, dest, at, at, at, at) for dest in event.destinations]
            )
        stored.append(True)
    return stored


def _newest_first(
    select: str, filters: dict[str, Any], before: int | None, limit: int
) -> tuple[str, list[Any]]:
    """``select`` + the filters that are set + the id cursor, newest first.

    The filters are optional, so the statement is assembled here; column names come
    from the code, values are always bound parameters.
    """
    clauses = [f"{column} = ?" for column, value in filters.items() if value is not None]
    params: list[Any] = [value for value in filters.values() if value is not None]
    if before is not None:
        clauses.append("id < ?")
        params.append(before)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"{select}{where} ORDER BY id DESC LIMIT ?", [*params, limit]


def _event_query(query: EventQuery) -> tuple[str, list[Any]]:
    return _newest_first(
        "SELECT id, source_id, message_id, type, received_at_ms, payload, user_id, anonymous_id"
        " FROM events",
        {"source_id": query.source_id, "user_id": query.user_id, "type": query.type},
        query.before,
        query.limit,
    )


def _claim(
    conn: sqlite3.Connection, worker: str, plan: list[tuple[str, int]], now: int, lease_ms: int
) -> list[ClaimedDelivery]:
    until = now + lease_ms
    rows = []
    for destination_id, count in plan:
        rows += conn.execute(
            Q["lease_due_deliveries"], (worker, until, until, now, destination_id, now, now, count)
        ).fetchall()
    if not rows:
        return []
    event_ids = json.dumps(sorted({row[1] for row in rows}))
    payloads = dict(conn.execute(Q["select_event_payloads"], (event_ids,)).fetchall())
    claimed = [
        ClaimedDelivery(
            id=row[0],
            event_id=row[1],
            destination_id=row[2],
            attempts=row[3] + 1,  # this attempt: counted once it is settled
            created_at_ms=row[4],
            payload=payloads.get(row[1], b"{}"),
            window_start_ms=row[5],
            replay=row[6] is not None,
        )
        for row in rows
    ]
    claimed.sort(key=lambda c: c.id)  # RETURNING gives no order: oldest first
    return claimed


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=row[0],
        event_id=row[1],
        destination_id=row[2],
        state=DeliveryState(row[3]),
        attempts=row[4],
        created_at_ms=row[5],
        updated_at_ms=row[6],
        next_attempt_at_ms=row[7],
        last_error=row[8],
        reason=row[9],
        completed_at_ms=row[10],
        window_start_ms=row[11],
        replay_id=row[12],
    )


def _delivery_query(query: DeliveryQuery) -> tuple[str, list[Any]]:
    return _newest_first(
        "SELECT id, event_id, destination_id, state, attempts, created_at_ms, updated_at_ms,"
        " next_attempt_at_ms, last_error, reason, completed_at_ms, window_start_ms, replay_id"
        " FROM deliveries",
        {
            "destination_id": query.destination_id,
            "state": query.state.value if query.state else None,
            "reason": query.reason,
        },
        query.before,
        query.limit,
    )
