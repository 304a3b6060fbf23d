"""The registration audit log: one JSON line per decision, accepted or refused.

Enrolment changes the inventory without a pull request, so every request to
``/register`` leaves a trace an operator can read afterwards: who asked (source
address, the MAC claimed), what was decided and why, and the commit when one
was made. The file is bounded: past ``max_bytes`` it is rotated to ``.1``,
``.2``, ... (``backups`` of them kept), so a flood of refused requests cannot
fill the disk. When the disk is full anyway, ``has_room`` says so and the
service refuses registrations instead of committing without a trace; a failed
write is logged, never raised into the request.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Free space the audit log's folder must have before a registration is attempted.
MIN_FREE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one registration request."""

    accepted: bool
    status: int  # the HTTP status answered
    reason: str
    remote: str | None
    mac: str | None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": "accepted" if self.accepted else "refused",
            "status": self.status,
            "reason": self.reason,
            "remote": self.remote,
            "mac": self.mac,
            **self.details,
        }


class AuditLog:
    """Appends decisions to a JSON lines file, rotating it when it grows past ``max_bytes``."""

    def __init__(self, path: Path, *, max_bytes: int = 10 * 1024 * 1024, backups: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def has_room(self) -> bool:
        """True while the log's file system has room for more than a few lines."""
        try:
            stats = os.statvfs(self.path.parent)
        except OSError:
            return False
        return stats.f_bavail * stats.f_frsize >= MIN_FREE_BYTES

    def record(self, decision: Decision) -> bool:
        """Write one line; False (and an error logged) when it could not be written."""
        line = json.dumps(
            {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **decision.to_dict()},
            sort_keys=True,
            default=str,
        )
        try:
            with self._lock:
                self._rotate_if_full()
                with self.path.open("a", encoding="utf-8") as stream:
                    stream.write(line + "\n")
                    stream.flush()
        except OSError as error:
            log.error(
                "cannot write the registration audit log",
                extra={"path": str(self.path), "error": error.strerror or str(error)},
            )
            return False
        return True

    def _rotate_if_full(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size < self.max_bytes:
            return
        if self.backups == 0:
            self.path.unlink()
            return
        for number in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{number + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def read(self) -> list[dict[str, Any]]:
        """Every decision in the current file (for tests and the status page)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]
