"""Per-source token buckets for the optional request rate limit."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` requests per second with a burst of ``max(rate, 1)``."""

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(rate, 1.0)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()

    def take(self) -> float:
        """Take a token: 0.0 if allowed, else the seconds to wait before retrying."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


class RateLimiter:
    """Buckets per source id, rebuilt when a source's configured rate changes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, source_id: str, rate: float | None) -> int:
        """0 when allowed, else the Retry-After seconds (at least 1)."""
        if not rate:
            return 0
        bucket = self._buckets.get(source_id)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[source_id] = TokenBucket(rate, self._clock)
        wait = bucket.take()
        return 0 if wait == 0.0 else max(1, math.ceil(wait))
