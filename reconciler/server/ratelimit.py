"""Per-source token buckets, so one address cannot flood registration or the git history.

Each source address has a bucket of ``burst`` tokens refilled at ``rate``
per second; a request takes one token or is refused. The table of buckets is
bounded: when it is full, the buckets idle the longest are dropped (a full
bucket is the same as no bucket).

``LogThrottle`` uses the same buckets for log lines: a flood of identical
refusals logs a few lines and then one line now and then that says how many
were left out.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``allow(key)`` is True while ``key`` has a token left."""

    def __init__(
        self,
        *,
        per_minute: float,
        burst: int,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_sources = max_sources
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, key: str) -> bool:
        now = self.clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        return allowed

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` has a token again."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.tokens >= 1.0:
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


class LogThrottle:
    """``allow(key)`` -> (log this line?, how many lines of ``key`` were left out before it)."""

    def __init__(self, *, per_minute: float = 6.0, burst: int = 5) -> None:
        self.limiter = RateLimiter(per_minute=per_minute, burst=burst, max_sources=1000)
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> tuple[bool, int]:
        if self.limiter.allow(key):
            return True, self._suppressed.pop(key, 0)
        if key in self._suppressed or len(self._suppressed) < 10_000:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
        return False, 0
