"""Which SQLite (and OS) errors mean "the store cannot write right now".

Those become :class:`~segue.store.availability.StoreUnavailableError`: a full disk,
a read-only file or file system, an I/O error, a database file that cannot be
opened. Everything else (a constraint, a bug in a statement) stays what it is.
"""

from __future__ import annotations

import errno
import sqlite3

from segue.store.availability import StoreUnavailableError, UnavailableReason

# SQLite's primary result codes (the low byte of an extended code)
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14

_BY_SQLITE_CODE = {
    SQLITE_FULL: UnavailableReason.DISK_FULL,
    SQLITE_READONLY: UnavailableReason.READ_ONLY,
    SQLITE_IOERR: UnavailableReason.IO_ERROR,
    SQLITE_CANTOPEN: UnavailableReason.CANNOT_OPEN,
}
_BY_ERRNO = {
    errno.ENOSPC: UnavailableReason.DISK_FULL,
    errno.EDQUOT: UnavailableReason.DISK_FULL,
    errno.EROFS: UnavailableReason.READ_ONLY,
    errno.EIO: UnavailableReason.IO_ERROR,
}


def unavailable_reason(exc: BaseException) -> UnavailableReason | None:
    """The reason ``exc`` says the store is unavailable, or None for any other error."""
    if isinstance(exc, StoreUnavailableError):
        return exc.reason
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return None if code is None else _BY_SQLITE_CODE.get(code & 0xFF)
    if isinstance(exc, OSError) and exc.errno is not None:
        return _BY_ERRNO.get(exc.errno)
    return None


def as_store_unavailable(exc: BaseException) -> StoreUnavailableError | None:
    """``exc`` as a StoreUnavailableError (its cause set to ``exc``), or None."""
    if isinstance(exc, StoreUnavailableError):
        return exc
    reason = unavailable_reason(exc)
    if reason is None:
        return None
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    error = StoreUnavailableError(reason, detail)
    error.__cause__ = exc
    return error
