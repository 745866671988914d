"""Which SQLite and OS errors mean "the store cannot write" (segue.store.sqlite.errors)."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from segue.store import StoreUnavailableError, UnavailableReason
from segue.store.sqlite.errors import as_store_unavailable, unavailable_reason


def _raised(statements: list[str], *, max_pages: int | None = None) -> sqlite3.Error:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (x BLOB)")
    if max_pages is not None:
        conn.execute(f"PRAGMA max_page_count = {max_pages}")
    try:
        for statement in statements:
            conn.execute(statement)
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("nothing failed")


def test_a_full_database_is_disk_full() -> None:
    exc = _raised(["INSERT INTO t VALUES (zeroblob(100000))"], max_pages=3)
    assert str(exc) == "database or disk is full"
    assert unavailable_reason(exc) is UnavailableReason.DISK_FULL


def test_a_read_only_database_is_read_only() -> None:
    exc = _raised(["PRAGMA query_only = ON", "INSERT INTO t VALUES (1)"])
    assert str(exc) == "attempt to write a readonly database"
    assert unavailable_reason(exc) is UnavailableReason.READ_ONLY


def test_a_database_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError) as info:
        sqlite3.connect(tmp_path / "missing" / "segue.db")
    assert unavailable_reason(info.value) is UnavailableReason.CANNOT_OPEN


def test_extended_io_error_codes_are_io_errors() -> None:
    exc = sqlite3.OperationalError("disk I/O error")
    exc.sqlite_errorcode = 778  # SQLITE_IOERR_WRITE = SQLITE_IOERR | (3 << 8)
    assert unavailable_reason(exc) is UnavailableReason.IO_ERROR


@pytest.mark.parametrize(
    "statements",
    [
        ["INSERT INTO missing VALUES (1)"],  # a bug in a statement
        ["CREATE UNIQUE INDEX u ON t (x)", "INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (1)"],
    ],
)
def test_other_sqlite_errors_are_not_unavailability(statements: list[str]) -> None:
    exc = _raised(statements)
    assert unavailable_reason(exc) is None
    assert as_store_unavailable(exc) is None


def test_errors_without_a_code_are_not_unavailability() -> None:
    closed = sqlite3.ProgrammingError("Cannot operate on a closed database.")
    assert unavailable_reason(closed) is None
    assert unavailable_reason(sqlite3.OperationalError("no code")) is None


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        (errno.ENOSPC, UnavailableReason.DISK_FULL),
        (errno.EDQUOT, UnavailableReason.DISK_FULL),
        (errno.EROFS, UnavailableReason.READ_ONLY),
        (errno.EIO, UnavailableReason.IO_ERROR),
        (errno.ENOENT, None),
    ],
)
def test_os_errors(number: int, reason: UnavailableReason | None) -> None:
    assert unavailable_reason(OSError(number, "message")) is reason


def test_as_store_unavailable_keeps_the_cause_and_says_what_sqlite_said() -> None:
    exc = _raised(["INSERT INTO t VALUES (zeroblob(100000))"], max_pages=3)
    error = as_store_unavailable(exc)
    assert isinstance(error, StoreUnavailableError)
    assert error.reason is UnavailableReason.DISK_FULL
    assert error.__cause__ is exc
    assert str(error) == "the disk holding the database is full (database or disk is full)"
    assert as_store_unavailable(error) is error
    assert as_store_unavailable(ValueError("no")) is None
