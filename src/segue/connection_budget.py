"""How many client connections one process holds, and which to close when it is full.

Every connection costs a file descriptor. When a process runs out of them, the event
loop can accept nothing: every client fails, the well-behaved ones too. So the
connections a process keeps open are capped below its open-file limit, with room left
for the database, log files and outgoing calls. When one more arrives at the cap, the
connection that has been unproductive the longest is closed to make room for it: one
still sending its request head (ranked by when the head began, so trickling does not
help), one whose body has stalled (ranked by its last piece), or one idle between
requests. A connection whose request has been read in full and is being answered is
never closed; if every connection is in that state, the newcomer is the one closed.
"""

from __future__ import annotations

import logging
import resource
import time
from collections import OrderedDict
from typing import Protocol

log = logging.getLogger("segue.connections")

# descriptors kept for everything but client connections: the database, logs, pipes to
# function workers, outgoing webhook calls (a quarter of the limit, at least this many)
MIN_RESERVED_FDS = 128
LOG_INTERVAL_S = 10.0


class Connection(Protocol):
    def sheddable(self) -> bool:
        """Not in the middle of answering a request that has been read in full."""

    def shed(self) -> None:
        """Close at once; ``ConnectionBudget.closed`` follows (on connection lost)."""


class ConnectionBudget:
    """The open client connections of one process, oldest unproductive first."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a connection budget needs room for one connection")
        self.limit = limit
        self.shed_total = 0
        self._open: set[Connection] = set()
        # connections that may be shed, least recently productive first (lazy: one that
        # became busy stays listed until it reaches the front, where it is dropped)
        self._queue: OrderedDict[Connection, None] = OrderedDict()
        self._shed_since_log = 0
        self._logged_at = 0.0

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, conn: Connection) -> None:
        """A new connection: make room for it if the budget is full."""
        self._open.add(conn)
        self._queue[conn] = None
        while len(self._open) > self.limit:
            victim = self._oldest_sheddable()
            if victim is None:  # cannot happen: the newcomer itself is sheddable
                break
            self._open.discard(victim)  # counted out now: its descriptor is freed now
            self.shed_total += 1
            self._shed_since_log += 1
            victim.shed()
        self._log_shedding()

    def touched(self, conn: Connection) -> None:
        """``conn`` became unproductive just now (a head began, a body piece came, a
        response ended): it goes to the back of the line."""
        if conn in self._open:
            self._queue[conn] = None
            self._queue.move_to_end(conn)

    def closed(self, conn: Connection) -> None:
        self._open.discard(conn)
        self._queue.pop(conn, None)

    def _oldest_sheddable(self) -> Connection | None:
        while self._queue:
            conn, _ = self._queue.popitem(last=False)
            if conn in self._open and conn.sheddable():
                return conn
        return None

    def _log_shedding(self) -> None:
        if not self._shed_since_log:
            return
        now = time.monotonic()
        if now - self._logged_at >= LOG_INTERVAL_S:
            log.warning(
                "connection budget full (%d): closed %d idle or slow connection(s) to make room",
                self.limit,
                self._shed_since_log,
            )
            self._logged_at = now
            self._shed_since_log = 0


def raise_open_file_limit() -> int:
    """Lift the soft open-file limit to the hard one (as Go and nginx do); the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def connection_limit(configured: int, fd_limit: int) -> int:
    """``configured`` (0: automatic) within what ``fd_limit`` descriptors allow."""
    reserved = max(MIN_RESERVED_FDS, fd_limit // 4)
    room = max(fd_limit - reserved, 16)
    if configured <= 0:
        return room
    if configured > room:
        log.warning(
            "max_connections = %d does not fit the open-file limit %d: using %d",
            configured,
            fd_limit,
            room,
        )
        return room
    return configured
