"""Coalesce bursts of triggers into one pass.

A ``git push`` touches several refs and files; a webhook may arrive right after
the file watcher saw the same commit. ``Trigger.fire`` may be called from any
thread (watchdog's, the HTTP service's event loop, a signal handler); the loop
calls ``wait`` and gets one set of reasons once the burst has been quiet for
``window`` seconds (or ``max_delay`` after its first event, whichever is first).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Trigger:
    def __init__(
        self,
        *,
        window: float = 0.05,
        max_delay: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.max_delay = max_delay
        self._clock = clock
        self._cond = threading.Condition()
        self._reasons: set[str] = set()
        self._first = 0.0
        self._last = 0.0

    def fire(self, reason: str = "trigger") -> None:
        """Ask for a pass; cheap and thread-safe."""
        with self._cond:
            now = self._clock()
            if not self._reasons:
                self._first = now
            self._last = now
            self._reasons.add(reason)
            self._cond.notify_all()

    def pending(self) -> bool:
        with self._cond:
            return bool(self._reasons)

    def wait(self, timeout: float | None = None) -> set[str] | None:
        """Block until a burst is over and return its reasons; None after ``timeout``."""
        with self._cond:
            deadline = None if timeout is None else self._clock() + timeout
            while not self._reasons:
                remaining = None if deadline is None else deadline - self._clock()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            while True:
                now = self._clock()
                quiet_at = self._last + self.window
                latest = self._first + self.max_delay
                until = min(quiet_at, latest)
                if now >= until:
                    break
                self._cond.wait(until - now)
            reasons, self._reasons = self._reasons, set()
            return reasons
