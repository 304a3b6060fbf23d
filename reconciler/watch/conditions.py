"""Where a pass leaves the site, as Kubernetes-style conditions on the watch status.

Kept apart from the loop: the loop gathers what happened (the revision in
force, a refused commit, refused plans, failing targets, an unreachable
source, hand-made objects in the way) into a ``PassOutcome``; ``settle`` turns
it into ``Ready``, ``Stalled``, ``Reconciling`` and ``Degraded`` with a reason
and a message naming commits and objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from reconciler.watch.status import Status


@dataclass(slots=True)
class PassOutcome:
    good: str | None  # the valid revision being applied
    bad: str | None = None  # the newest commit refused, if any
    bad_reason: str = ""
    refused: dict[str, str] = field(default_factory=dict)  # target -> why its plan was refused
    source_error: str | None = None
    waiting: Sequence[str] = ()  # targets retried with backoff
    targets: Sequence[str] = ()  # every configured target
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # target -> keys in the way


def settle(status: Status, outcome: PassOutcome) -> None:
    """Set the applied revision and the three conditions from one pass's outcome."""
    good = outcome.good
    targets_ok = good is not None and all(
        (t := status.targets.get(n)) is not None and t.ok and t.revision == good
        for n in outcome.targets
    )
    if good is not None and targets_ok:
        status.applied_revision = good
    in_force = f"revision {good[:12]} stays in force" if good else "nothing applied yet"
    if outcome.bad is not None:
        shown = "; ".join(status.errors[:5]) + (" ..." if len(status.errors) > 5 else "")
        message = f"commit {outcome.bad} not applied: {shown}; {in_force}"
        status.set_condition("Stalled", True, reason=outcome.bad_reason, message=message)
        status.set_condition("Ready", False, reason=outcome.bad_reason, message=message)
    elif outcome.refused:
        message = "; ".join(outcome.refused.values())
        status.set_condition("Stalled", True, reason="PlanRefused", message=message)
        status.set_condition("Ready", False, reason="PlanRefused", message=message)
    else:
        status.set_condition("Stalled", False, reason="Progressing")
        if good is None:
            why = outcome.source_error or "no revision loaded yet"
            status.set_condition("Ready", False, reason="NoRevision", message=why)
        elif not targets_ok:
            failing = [n for n, t in status.targets.items() if not t.ok]
            status.set_condition(
                "Ready", False, reason="TargetFailed",
                message=f"{', '.join(failing) or 'some targets'} not at {good[:12]}",
            )  # fmt: skip
        elif outcome.conflicts:
            message = conflict_message(outcome.conflicts)
            status.set_condition("Ready", False, reason="Degraded", message=message)
        elif outcome.source_error is not None:
            status.set_condition(
                "Ready", False, reason="SourceUnavailable",
                message=f"{outcome.source_error}; {in_force}",
            )  # fmt: skip
        else:
            status.set_condition(
                "Ready", True, reason="ReconciliationSucceeded", message=f"applied revision {good}"
            )
    if outcome.conflicts:
        message = conflict_message(outcome.conflicts)
        status.set_condition("Degraded", True, reason="Conflict", message=message)
    else:
        status.set_condition("Degraded", False, reason="NoConflict")
    if outcome.waiting or outcome.source_error is not None:
        what = ", ".join(outcome.waiting) or "the source"
        status.set_condition(
            "Reconciling", True, reason="RetryPending", message=f"retrying {what} with backoff"
        )
    else:
        status.set_condition("Reconciling", False, reason="Idle")


def conflict_message(conflicts: dict[str, list[str]]) -> str:
    """Which wanted objects hand-made ones hold, per target, and the two ways out."""
    held = "; ".join(
        f"{target}: {', '.join(keys[:5])}" + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        for target, keys in sorted(conflicts.items())
    )
    return (
        f"held by objects the reconciler did not create: {held}; remove them by hand, "
        "or set adopt = true on the target to take them over"
    )
