"""The values a rollout decision reads and writes: node reports, a group's rollout, brakes.

Kept apart from the decision logic so that the store (JSON in the state dir,
or a ConfigMap for the operator) and the controller agree on one shape, and so
that a rollout survives a restart of ``watch`` exactly as it was.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Phase = Literal["Progressing", "Paused", "Degraded", "RolledBack", "Aborted", "Complete"]
PHASES = ("Progressing", "Paused", "Degraded", "RolledBack", "Aborted", "Complete")
NodeState = Literal["waiting", "updating", "healthy", "failed", "offline", "rolled-back"]


@dataclass(frozen=True, slots=True)
class NodeReport:
    """What a node's agent last said (``POST /nodes/<host>/report``), as the controller needs it."""

    host: str
    running: str  # "<image>@<version>" the node runs
    healthy: bool | None
    reported_at: float
    swap_to: str | None = None  # the version its last swap tried
    swap_result: str | None = None  # "ok", "failed" or "rolled-back"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Brake:
    """The emergency brake of ``reconciler rollout pause|resume|abort GROUP`` (state dir)."""

    paused: bool = False
    aborted: bool = False
    resumed_at: float = 0.0  # failures noted before this no longer hold the rollout


@dataclass(slots=True)
class Failure:
    reason: str
    at: float


@dataclass(slots=True)
class GroupRollout:
    """One group moving its nodes from what they had to ``target``, wave by wave."""

    group: str
    target: str
    revision: str
    previous: dict[str, str]  # host -> version it had when this rollout started
    assigned: dict[str, float] = field(default_factory=dict)  # host -> when it got the target
    assigned_offline: list[str] = field(default_factory=list)  # silent when assigned: not awaited
    wave: int = -1  # the last wave opened (index into the policy's waves)
    wave_started: float = 0.0
    failed: dict[str, Failure] = field(default_factory=dict)
    rolled_back: list[str] = field(default_factory=list)
    phase: Phase = "Progressing"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupRollout:
        """Read what ``to_dict`` wrote; KeyError, TypeError or ValueError on another shape."""
        failed = {host: Failure(**value) for host, value in dict(data["failed"]).items()}
        rollout = cls(
            group=str(data["group"]),
            target=str(data["target"]),
            revision=str(data["revision"]),
            previous={str(k): str(v) for k, v in dict(data["previous"]).items()},
            assigned={str(k): float(v) for k, v in dict(data["assigned"]).items()},
            assigned_offline=[str(host) for host in data["assigned_offline"]],
            wave=int(data["wave"]),
            wave_started=float(data["wave_started"]),
            failed=failed,
            rolled_back=[str(host) for host in data["rolled_back"]],
            phase=data["phase"],
        )
        if rollout.phase not in PHASES:
            raise ValueError(f"unknown rollout phase {rollout.phase!r}")
        return rollout


@dataclass(frozen=True, slots=True)
class Decision:
    """What one pass decided for a group: every host's assigned version and the new state."""

    assignments: dict[str, str]
    rollout: GroupRollout | None
    node_states: dict[str, NodeState]
    events: tuple[str, ...]
    waves_total: int = 0
