"""Opening SQLite connections with the pragmas segue relies on, and migrating."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from segue.store.queries import load_migrations

SYNCHRONOUS_MODES = ("full", "normal", "extra")


def connect(path: Path | str, *, synchronous: str = "full") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) on a WAL database.

    ``synchronous=full`` makes each commit survive a power loss; ``normal`` survives
    a crash of segue (kill -9) but not of the machine, and is faster.
    """
    if synchronous not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB
    return conn


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply migrations not yet applied; returns the versions applied now."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in load_migrations("sqlite"):
        if version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)",
                (version, name, int(time.time() * 1000)),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def _split(script: str) -> list[str]:
    """Statements of a migration script (``;`` at a line end ends a statement)."""
    statements, current = [], []
    for line in script.splitlines():
        if line.strip().startswith("--") or not line.strip():
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current))
            current = []
    if current:
        statements.append("\n".join(current))
    return statements
