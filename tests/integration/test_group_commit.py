"""The group-commit writer: shared commits, and one failing job spoils nothing else."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from segue.store.sqlite.connection import connect
from segue.store.sqlite.writer import GroupCommitWriter


def _writer(path: Path, commits: list[int]) -> GroupCommitWriter:
    def setup() -> sqlite3.Connection:
        conn = connect(path)
        conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        return conn

    return GroupCommitWriter(setup, on_commit=lambda _s, jobs: commits.append(jobs))


def _insert(value: int):  # type: ignore[no-untyped-def]
    return lambda conn: conn.execute("INSERT INTO t VALUES (?)", (value,)).rowcount


def _fail(conn: sqlite3.Connection) -> int:
    conn.execute("INSERT INTO t VALUES (-1)")
    raise ValueError("this job fails after writing")


async def test_a_failing_job_is_isolated_from_its_group(tmp_path: Path) -> None:
    commits: list[int] = []
    writer = _writer(tmp_path / "w.db", commits)
    await asyncio.to_thread(writer.start)
    try:
        # queued without awaiting in between: they share commits
        futures = [writer.submit(_insert(i)) for i in range(50)]
        futures.insert(25, writer.submit(_fail))
        results = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        await asyncio.to_thread(writer.stop)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], ValueError)
    assert results.count(1) == 50
    assert sum(commits) == 51 and len(commits) < 51  # grouped
    rows = sqlite3.connect(tmp_path / "w.db").execute("SELECT x FROM t ORDER BY x").fetchall()
    assert [r[0] for r in rows] == list(range(50))  # the failed job's own write is gone


async def test_a_closed_writer_refuses_work(tmp_path: Path) -> None:
    writer = _writer(tmp_path / "w.db", [])
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(_insert(1))
