"""The registration audit log: one JSON line per decision, accepted or refused.

Enrolment changes the inventory without a pull request, so every request to
``/register`` leaves a trace an operator can read afterwards: who asked (source
address, MAC), what was decided and why, and the commit when one was made.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
    """Appends decisions to a JSON lines file; each line is flushed before the answer goes out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, decision: Decision) -> None:
        line = json.dumps(
            {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **decision.to_dict()},
            sort_keys=True,
            default=str,
        )
        with self._lock, self.path.open("a", encoding="utf-8") as stream:
            stream.write(line + "\n")
            stream.flush()

    def read(self) -> list[dict[str, Any]]:
        """Every decision recorded so far (for tests and the status page)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]
