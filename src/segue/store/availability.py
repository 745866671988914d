"""When the store cannot do its job: the error every backend raises, and its health.

A full disk, a read-only file system or a failing disk is not a bug in the request
that ran into it: the write did not happen, and the same request succeeds once the
operator has fixed the disk. Backends raise :class:`StoreUnavailableError` for those
cases (and only those), so that HTTP can answer 503 with ``Retry-After`` instead of
a 500, and ``/health`` can tell a load balancer to send its traffic elsewhere.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class UnavailableReason(enum.StrEnum):
    """Why the store cannot write; the values appear in ``/health``."""

    DISK_FULL = "disk_full"
    READ_ONLY = "read_only"
    IO_ERROR = "io_error"
    CANNOT_OPEN = "cannot_open"
    CLOSED = "closed"
    UNRESPONSIVE = "unresponsive"


_EXPLANATIONS = {
    UnavailableReason.DISK_FULL: "the disk holding the database is full",
    UnavailableReason.READ_ONLY: "the database is read-only",
    UnavailableReason.IO_ERROR: "the disk holding the database reported an I/O error",
    UnavailableReason.CANNOT_OPEN: "the database file cannot be opened",
    UnavailableReason.CLOSED: "the store is not open",
    UnavailableReason.UNRESPONSIVE: "the store did not commit a test write in time",
}


def explain(reason: UnavailableReason) -> str:
    """A sentence fragment for people: ``the disk holding the database is full``."""
    return _EXPLANATIONS[reason]


class StoreUnavailableError(Exception):
    """The store could not carry out the operation, for a reason outside segue's code.

    Nothing of the operation was stored. It is transient from the caller's point of
    view: the same operation succeeds once the disk has room (or is writable) again.
    """

    def __init__(self, reason: UnavailableReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail  # what the backend said, e.g. "database or disk is full"
        text = explain(reason)
        super().__init__(f"{text} ({detail})" if detail else text)


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """Whether the store can write now, and if not, why (for ``/health``)."""

    ok: bool
    reason: UnavailableReason | None = None
    message: str = ""
    since_ms: int | None = None  # when writes started failing, if known
    free_bytes: int | None = None  # free space where the database lives, if known

    @classmethod
    def unavailable(
        cls,
        reason: UnavailableReason,
        message: str = "",
        *,
        since_ms: int | None = None,
        free_bytes: int | None = None,
    ) -> StoreHealth:
        return cls(False, reason, message or explain(reason), since_ms, free_bytes)

    def as_json(self) -> dict[str, Any]:
        """The store's part of ``/health``; only what is known."""
        data: dict[str, Any] = {"writable": self.ok}
        if self.reason is not None:
            data["reason"] = self.reason.value
        if self.message:
            data["message"] = self.message
        if self.since_ms is not None:
            data["failing_since_ms"] = self.since_ms
        if self.free_bytes is not None:
            data["free_bytes"] = self.free_bytes
        return data
