"""Retry delays: exponential, capped and jittered, so a down service is not hammered.

A target that fails to read or apply, and a remote that cannot be fetched, are
retried after ``initial * factor**(failures-1)`` seconds, at most ``cap``, each
delay moved at random by up to ``jitter`` of itself so that many reconcilers
(or many targets) do not retry in step.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 1.0
    cap: float = 300.0
    factor: float = 2.0
    jitter: float = 0.2
    rng: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1 for the first)."""
        if failures <= 0:
            return 0.0
        base = min(self.cap, self.initial * self.factor ** min(failures - 1, 64))
        spread = base * self.jitter * (2 * self.rng() - 1)
        return max(0.0, min(self.cap, base + spread))


@dataclass(slots=True)
class RetryState:
    """Failures in a row of one thing (a target, the remote) and when to try again."""

    failures: int = 0
    next_attempt: float = 0.0
    last_error: str | None = None

    def failed(self, *, now: float, backoff: Backoff, error: str) -> float:
        self.failures += 1
        self.last_error = error
        self.next_attempt = now + backoff.delay(self.failures)
        return self.next_attempt

    def succeeded(self) -> None:
        self.failures = 0
        self.next_attempt = 0.0
        self.last_error = None

    def due(self, now: float) -> bool:
        return self.failures == 0 or now >= self.next_attempt
