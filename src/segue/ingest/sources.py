"""Write key → Source lookups without a database round trip per request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from segue.store import Source, Store


class SourceDirectory:
    """An in-memory copy of the sources table, refreshed on a miss and on a timer.

    Another process (the admin API of another node) may change sources; ``max_age``
    bounds how long a stale copy is trusted.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_age: float = 5.0,
        min_refresh_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max_age = max_age
        self._min_interval = min_refresh_interval
        self._clock = clock
        self._by_key: dict[str, Source] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            sources = await self._store.list_sources()
            self._by_key = {s.write_key: s for s in sources}
            self._loaded_at = self._clock()

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    async def by_write_key(self, write_key: str) -> Source | None:
        age = self._clock() - self._loaded_at
        source = self._by_key.get(write_key)
        if age > self._max_age or (source is None and age > self._min_interval):
            await self.refresh()
            source = self._by_key.get(write_key)
        return source
