"""What the loop is doing and where it stands, in ``status.json`` under the state directory.

Modelled on Kubernetes/Flux conditions: ``Degraded`` (hand-made objects hold
keys the inventory wants), ``Ready`` (live state matches the last
good revision), ``Reconciling`` (a pass is running or a retry is pending) and
``Stalled`` (the newest revision cannot be applied: invalid, unsigned, refused
as too large), each with a reason and a message naming the commit. Writes are
atomic, so ``reconciler status`` and the HTTP service always read a whole file.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from reconciler.statefiles import StateFileError, read_json_object
from reconciler.targets.base import atomic_write

log = logging.getLogger(__name__)

ConditionType = Literal["Ready", "Reconciling", "Stalled", "Degraded"]
CONDITION_TYPES: tuple[ConditionType, ...] = ("Ready", "Reconciling", "Stalled", "Degraded")
STATUS_FILE = "status.json"


@dataclass(slots=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str = ""
    last_transition: float = 0.0


@dataclass(slots=True)
class TargetStatus:
    ok: bool = True
    mode: str = "correct"
    revision: str | None = None  # revision this target was last brought to
    last_apply: float | None = None
    applied: int = 0  # changes applied in its last apply
    error: str | None = None
    failures: int = 0
    next_retry: float | None = None  # wall-clock time of the next attempt
    unmanaged: int = 0  # objects someone else made (left alone)
    pending: int = 0  # changes waiting: drift reported, or not applied after a failure
    conflicts: list[str] = field(default_factory=list)  # wanted keys held by hand-made objects


@dataclass(slots=True)
class Status:
    source: str = ""
    applied_revision: str | None = None  # last revision applied to every target
    good_revision: str | None = None  # last valid revision: the one being applied
    accepted_revision: str | None = None  # applied and in force: what serve answers from
    attempted_revision: str | None = None  # newest revision the loop looked at
    errors: list[str] = field(default_factory=list)  # why attempted was not applied
    conditions: list[Condition] = field(default_factory=list)
    targets: dict[str, TargetStatus] = field(default_factory=dict)
    # Image rollouts in progress or ended, per group (reconciler.watch.rollouts).
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    rollout_error: str | None = None
    passes: int = 0
    last_success: float | None = None
    updated: float = 0.0

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def set_condition(
        self, kind: ConditionType, status: bool, *, reason: str, message: str = ""
    ) -> None:
        """Set a condition; its transition time moves only when its status flips."""
        now = time.time()
        current = self.condition(kind)
        if current is None:
            self.conditions.append(Condition(kind, status, reason, message, now))
            self.conditions.sort(key=lambda c: CONDITION_TYPES.index(c.type))
            return
        if current.status != status:
            current.last_transition = now
        current.status, current.reason, current.message = status, reason, message

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["conditions"] = [
            {**asdict(c), "status": "True" if c.status else "False"} for c in self.conditions
        ]
        return body

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Status:
        """A status from its JSON form; pydantic.ValidationError when it has the wrong shape."""
        return _STATUS.validate_python(body)


_STATUS = TypeAdapter(Status)
RECOVERY = "delete it: `reconciler watch` writes a new one on its next pass"


class StatusStore:
    """Loads and saves ``status.json`` atomically."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATUS_FILE

    def read(self) -> Status:
        """The saved status (empty before the first pass); StateFileError when damaged."""
        body = read_json_object(self.path, recovery=RECOVERY)
        if body is None:
            return Status()
        try:
            return Status.from_dict(body)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            problem = f"has the wrong shape ({where}: {first['msg']})"
            raise StateFileError(self.path, problem, RECOVERY) from None

    def load(self) -> Status:
        """Like ``read``, but a damaged file is logged and replaced by an empty status."""
        try:
            return self.read()
        except StateFileError as error:
            log.error("status file damaged; starting afresh", extra={"error": str(error)})
            return Status()

    def save(self, status: Status) -> None:
        status.updated = time.time()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(status.to_dict(), indent=2, sort_keys=True) + "\n")


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "never"


def render_status_text(status: Status) -> str:
    """A short human summary for ``reconciler status``."""
    lines = [
        f"source:     {status.source or '(unknown)'}",
        f"applied:    {status.applied_revision or '(none)'}",
        f"accepted:   {status.accepted_revision or '(none)'} (served)",
        f"in force:   {status.good_revision or '(none)'}",
        f"attempted:  {status.attempted_revision or '(none)'}",
        f"last ok:    {_when(status.last_success)}   passes: {status.passes}",
    ]
    for c in status.conditions:
        state = "True " if c.status else "False"
        lines.append(f"{c.type:<12}{state} {c.reason}: {c.message}".rstrip(": "))
    for error in status.errors:
        lines.append(f"  error: {error}")
    for row in status.rollouts:
        versions = ", ".join(f"{v}: {n}" for v, n in row["versions"].items())
        lines.append(
            f"rollout {row['group']}: {row['phase']} to {row['target']}, "
            f"wave {row['wave']}/{row['waves']}; {versions}"
        )
        lines += [f"  failed {host}: {why}" for host, why in row["failures"].items()]
    if status.rollout_error:
        lines.append(f"  rollout error: {status.rollout_error}")
    for name, t in sorted(status.targets.items()):
        state = "ok" if t.ok else f"FAILED ({t.failures}x): {t.error}"
        lines.append(
            f"target {name} [{t.mode}]: {state}; unmanaged {t.unmanaged}, pending {t.pending}"
            + (f"; retry at {_when(t.next_retry)}" if t.next_retry else "")
        )
        for key in t.conflicts:
            lines.append(f"  conflict: {key} is held by an object the reconciler did not create")
    return "\n".join(lines) + "\n"
