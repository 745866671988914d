"""The SQLite store when it cannot write: real SQLite errors, no restart to recover.

``PRAGMA max_page_count`` makes SQLite answer ``database or disk is full`` exactly as
a full disk does, and ``PRAGMA query_only`` gives ``attempt to write a readonly
database``; both on the writer thread's own connection. (A real full disk, where the
commit itself fails, is tests/acceptance/test_full_disk.py.)
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from segue.store import NewEvent, StoreUnavailableError, UnavailableReason
from segue.store.sqlite import SQLiteStore
from segue.store.sqlite.connection import connect
from segue.store.sqlite.health import MIB, WriteHealthProbe
from segue.store.sqlite.writer import GroupCommitWriter


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    backend = SQLiteStore(tmp_path / "segue.db")
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


def _events(source_id: str, tag: str, count: int, size: int = 200) -> list[NewEvent]:
    return [
        NewEvent(
            source_id=source_id,
            message_id=f"{tag}-{i}",
            type="track",
            received_at_ms=1_800_000_000_000,
            payload=orjson.dumps({"event": tag, "padding": "x" * size}),
        )
        for i in range(count)
    ]


def _cap_pages(conn: sqlite3.Connection) -> None:
    """No more pages than now: a write that needs a new page fails as on a full disk."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def _uncap_pages(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA max_page_count = 1073741823")


async def test_a_full_database_fails_every_request_of_the_group_and_nothing_else(
    store: SQLiteStore,
) -> None:
    source = await store.create_source("web", "wk")
    assert await store.append_events(_events(source.id, "before", 10), dedup_window_ms=1000)
    await store._write(_cap_pages)

    # queued together: they share commits, and every one of them fails
    appends = [
        store.append_events(_events(source.id, f"full{i}", 5, size=20_000), dedup_window_ms=1000)
        for i in range(20)
    ]
    results = await asyncio.gather(*appends, return_exceptions=True)
    assert all(isinstance(r, StoreUnavailableError) for r in results), results
    error = results[0]
    assert isinstance(error, StoreUnavailableError)
    assert error.reason is UnavailableReason.DISK_FULL
    assert isinstance(error.__cause__, sqlite3.OperationalError)
    assert await store.count_events() == 10  # nothing of the failed groups landed

    health = await store.health()
    assert not health.ok and health.reason is UnavailableReason.DISK_FULL
    assert health.since_ms is not None

    await store._write(_uncap_pages)  # room again: same thread, same connection
    stored = await store.append_events(_events(source.id, "after", 5), dedup_window_ms=1000)
    assert stored == [True] * 5
    assert await store.count_events() == 15
    # the failed events were never stored, so sending them again stores them
    again = await store.append_events(_events(source.id, "full0", 5), dedup_window_ms=1000)
    assert again == [True] * 5


async def test_a_read_only_database_is_unavailable_until_it_is_writable_again(
    store: SQLiteStore,
) -> None:
    await store._write(lambda c: c.execute("PRAGMA query_only = ON"))
    with pytest.raises(StoreUnavailableError) as info:
        await store.create_source("web", "wk")
    assert info.value.reason is UnavailableReason.READ_ONLY
    assert "attempt to write a readonly database" in str(info.value)
    assert (await store.list_sources()) == []  # reads work

    health = await store.health()
    assert (health.ok, health.reason) == (False, UnavailableReason.READ_ONLY)

    # writable again (no job can do it: every job starts with BEGIN IMMEDIATE, refused now);
    # the writer thread is idle, waiting for work
    conn = store._writer._conn
    assert conn is not None
    conn.execute("PRAGMA query_only = OFF")
    assert (await store.create_source("web", "wk")).name == "web"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[tuple[GroupCommitWriter, Clock]]:
    def setup() -> sqlite3.Connection:
        conn = connect(tmp_path / "w.db")
        conn.execute("CREATE TABLE IF NOT EXISTS t (x BLOB)")
        return conn

    clock = Clock()
    writer = GroupCommitWriter(setup, clock=clock)
    await asyncio.to_thread(writer.start)
    try:
        yield writer, clock
    finally:
        await asyncio.to_thread(writer.stop)


class Probe(WriteHealthProbe):
    """Free space as the test says; test writes counted."""

    free = 100 * MIB

    def free_bytes(self) -> int | None:
        return self.free


async def test_health_probe_after_a_full_disk(
    writer: tuple[GroupCommitWriter, Clock], tmp_path: Path
) -> None:
    commits, clock = writer
    test_writes: list[float] = []

    async def test_write() -> None:
        test_writes.append(clock())
        await commits.submit(lambda c: c.execute("INSERT INTO t VALUES (1)"))

    probe = Probe(commits, test_write, tmp_path)
    assert (await probe.check()).ok and len(test_writes) == 1
    clock.now += 0.5
    assert (await probe.check()).ok and len(test_writes) == 1  # cached

    await commits.submit(_cap_pages)
    with pytest.raises(StoreUnavailableError):
        await commits.submit(lambda c: c.execute("INSERT INTO t VALUES (zeroblob(50000))"))
    health = await probe.check()  # a new failure: the cache does not count
    assert (health.ok, health.reason) == (False, UnavailableReason.DISK_FULL)
    assert len(test_writes) == 1  # the writer's failure was enough

    clock.now += 5  # the failure is not recent any more, but the disk is still full
    probe.free = 1 * MIB
    health = await probe.check()
    assert not health.ok and "waiting for 8 MiB free" in health.message
    assert health.free_bytes == 1 * MIB
    assert len(test_writes) == 1

    clock.now += 5
    probe.free = 100 * MIB  # space was freed: a test write decides (a small one fits)
    assert (await probe.check()).ok and len(test_writes) == 2
    clock.now += 5
    probe.free = 1 * MIB  # that failure is over: low space alone is not unhealthy
    assert (await probe.check()).ok


async def test_health_probe_when_the_test_write_fails(
    writer: tuple[GroupCommitWriter, Clock], tmp_path: Path
) -> None:
    commits, clock = writer

    async def test_write() -> None:
        await commits.submit(lambda c: c.execute("INSERT INTO t VALUES (1)"))

    probe = Probe(commits, test_write, tmp_path)
    await commits.submit(lambda c: c.execute("PRAGMA query_only = ON"))
    clock.now += 5  # no recent commit: the probe writes, and that fails
    health = await probe.check()
    assert (health.ok, health.reason) == (False, UnavailableReason.READ_ONLY)
    assert health.since_ms is not None


async def test_health_of_a_closed_store(tmp_path: Path) -> None:
    closed = SQLiteStore(tmp_path / "segue.db")
    health = await closed.health()
    assert (health.ok, health.reason) == (False, UnavailableReason.CLOSED)
