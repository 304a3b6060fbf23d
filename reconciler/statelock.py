"""One writer at a time: an advisory lock on ``state_dir/lock``.

``apply``, each pass of ``watch`` and each registration commit change live
services, ledgers or the inventory branch. Two of them at once could lose a
ledger update (both read it, both write it back) or interleave changes. They
take this lock first: ``fcntl.flock`` on a file in the state dir, released by
the kernel when the holder exits, even by ``kill -9``, so a crash never leaves
a stale lock. The holder writes its pid and purpose into the file, so a
writer that has to wait, or gives up, can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType
from typing import IO

LOCK_FILE = "lock"
POLL_SECONDS = 0.05


class StateLocked(Exception):
    """Another writer held the state dir's lock for longer than we were willing to wait."""


class StateLock:
    """``with StateLock(state_dir, purpose="apply", timeout=60): ...``; re-entrant it is not."""

    def __init__(self, state_dir: Path, *, purpose: str, timeout: float) -> None:
        self.path = state_dir / LOCK_FILE
        self.purpose = purpose
        self.timeout = timeout
        self._handle: IO[str] | None = None

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it ("pid 123 (apply)"), or "unknown"."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            text = ""
        pid, _, purpose = text.partition(" ")
        return f"pid {pid} ({purpose or 'unknown'})" if pid.isdigit() else "an unknown process"

    def acquire(self) -> None:
        """Wait up to ``timeout`` seconds for the lock; StateLocked naming the holder if not."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - kept open while held
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise StateLocked(
                        f"{self.path}: another writer holds the state dir's lock "
                        f"({self.holder()}); wait for it to finish, or give a longer "
                        "--lock-timeout"
                    ) from None
                time.sleep(POLL_SECONDS)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {self.purpose}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.close()  # closing the last descriptor releases the flock
            self._handle = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
