"""Can the SQLite store write? A cheap answer for ``/health``, cached for a second.

The probe looks at what the writer thread saw first, and writes only when that is
not enough:

- a group failed with a store error in the last ``recent_s`` seconds: unhealthy;
- after a full disk, unhealthy until the file system has ``resume_free_bytes`` free
  again. A small write may fit in a nearly full disk (SQLite reuses its WAL file), so
  a probe write alone would report health while the next batch fails again;
- a group committed in the last ``ttl_s``: healthy, no write needed;
- otherwise one tiny write through the writer (a row in ``meta``) decides.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from segue.store.availability import StoreHealth, StoreUnavailableError, UnavailableReason
from segue.store.sqlite.writer import GroupCommitWriter, WriteFailure

MIB = 1024 * 1024


class WriteHealthProbe:
    """The health of one SQLite store, from its writer's outcomes and a test write."""

    def __init__(
        self,
        writer: GroupCommitWriter,
        test_write: Callable[[], Awaitable[None]],
        directory: Path,
        *,
        ttl_s: float = 1.0,
        recent_s: float = 2.0,
        resume_free_bytes: int = 8 * MIB,
        timeout_s: float = 2.0,
    ) -> None:
        self._writer = writer
        self._test_write = test_write
        self._directory = directory
        self._ttl_s = ttl_s
        self._recent_s = recent_s
        self._resume_free_bytes = resume_free_bytes
        self._timeout_s = timeout_s
        self._clock = writer.clock  # the writer's, which dates its failures
        # (when, the writer's last failure then, the answer)
        self._cached: tuple[float, WriteFailure | None, StoreHealth] | None = None
        self._cleared: WriteFailure | None = None  # a failure already known to be over
        self._lock: asyncio.Lock | None = None

    async def check(self) -> StoreHealth:
        if (cached := self._fresh()) is not None:
            return cached
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # concurrent /health calls share one probe
            if (cached := self._fresh()) is not None:
                return cached
            failure = self._writer.last_failure
            health = await self._probe()
            self._cached = (self._clock(), failure, health)
            return health

    def _fresh(self) -> StoreHealth | None:
        """The cached answer, unless it is old or a write has failed since."""
        if self._cached is None:
            return None
        at, failure, health = self._cached
        if self._clock() - at >= self._ttl_s or self._writer.last_failure is not failure:
            return None
        return health

    def free_bytes(self) -> int | None:
        try:
            stats = os.statvfs(self._directory)
        except OSError:
            return None
        return stats.f_bavail * stats.f_frsize

    async def _probe(self) -> StoreHealth:
        writer = self._writer
        if not writer.running:
            return StoreHealth.unavailable(UnavailableReason.CLOSED)
        now, free = self._clock(), self.free_bytes()
        failure = writer.last_failure
        if failure is not None and failure is not self._cleared:
            if now - failure.at < self._recent_s:
                return self._failing(failure.error, free)
            if (
                failure.error.reason is UnavailableReason.DISK_FULL
                and free is not None
                and free < self._resume_free_bytes
            ):
                need = self._resume_free_bytes // MIB
                return self._failing(failure.error, free, f"; waiting for {need} MiB free")
        last_success = writer.last_success
        recent_success = last_success is not None and now - last_success < self._ttl_s
        if not recent_success or (failure is not None and failure.at > (last_success or 0)):
            try:
                await asyncio.wait_for(self._test_write(), self._timeout_s)
            except StoreUnavailableError as exc:
                return self._failing(exc, free)
            except TimeoutError:
                return StoreHealth.unavailable(UnavailableReason.UNRESPONSIVE, free_bytes=free)
            except RuntimeError:  # closed meanwhile
                return StoreHealth.unavailable(UnavailableReason.CLOSED)
        self._cleared = failure
        return StoreHealth(ok=True, free_bytes=free)

    def _failing(
        self, error: StoreUnavailableError, free: int | None, extra: str = ""
    ) -> StoreHealth:
        return StoreHealth.unavailable(
            error.reason,
            f"{error}{extra}",
            since_ms=self._writer.failing_since_ms,
            free_bytes=free,
        )
