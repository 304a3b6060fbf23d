"""The watch loop's status as a Site's ``.status``, Flux style, and the Events worth posting.

``reconciler watch`` keeps ``status.json``; the operator turns the same
``Status`` into what Kubernetes users expect: ``observedGeneration``,
``lastAttemptedRevision``, ``lastAppliedRevision``, kstatus conditions with RFC
3339 transition times, per-target results, inventory counts and rollouts. It
also compares two statuses to say which Events a pass deserves (a revision
applied, a revision refused, a target failing), once each, never with secrets.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from reconciler.model.inventory import Inventory
from reconciler.watch.status import Status


def _rfc3339(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp or time.time()))


def inventory_counts(inventory: Inventory | None, assignments: dict[str, str]) -> dict[str, Any]:
    """Groups, hosts and nodes per image version of the revision in force."""
    if inventory is None:
        return {}
    versions: Counter[str] = Counter()
    for group in inventory.groups:
        for host in group.hosts:
            ref = host.image or assignments.get(group.name_of(host)) or group.image
            if ref is not None:
                versions[ref] += 1
    return {
        "groups": len(inventory.groups),
        "hosts": sum(len(g.hosts) for g in inventory.groups),
        "nodesByVersion": dict(sorted(versions.items())),
    }


def site_status(
    status: Status,
    *,
    generation: int,
    counts: dict[str, Any],
    suspended: bool,
    suspended_since: float = 0.0,
) -> dict[str, Any]:
    """The ``.status`` of a Site from the loop's status (the same status gives the same body)."""
    conditions = [
        {
            "type": c.type,
            "status": "True" if c.status else "False",
            "reason": c.reason,
            "message": c.message,
            "lastTransitionTime": _rfc3339(c.last_transition),
            "observedGeneration": generation,
        }
        for c in status.conditions
    ]
    if suspended:
        conditions = [c for c in conditions if c["type"] != "Ready"] + [
            {
                "type": "Ready",
                "status": "False",
                "reason": "Suspended",
                "message": "spec.suspend is true: nothing is written; status stays fresh",
                "lastTransitionTime": _rfc3339(suspended_since),
                "observedGeneration": generation,
            }
        ]
    return {
        "observedGeneration": generation,
        "lastAttemptedRevision": status.attempted_revision,
        "lastAppliedRevision": status.accepted_revision,
        "conditions": conditions,
        "targets": [
            {
                "name": name,
                "ok": t.ok,
                "mode": t.mode,
                "revision": t.revision,
                "applied": t.applied,
                "pending": t.pending,
                "unmanaged": t.unmanaged,
                "error": t.error,
            }
            for name, t in sorted(status.targets.items())
        ],
        "inventory": counts,
        "rollouts": status.rollouts,
        "rolloutError": status.rollout_error,
        "errors": status.errors[:20],
    }


@dataclass(frozen=True)
class Event:
    kind: str  # Normal or Warning
    reason: str  # Applied, Refused, Failed
    message: str


def events_between(before: Status | None, after: Status) -> list[Event]:
    """What happened in a pass that deserves a Kubernetes Event (each thing once)."""
    events = []
    if after.accepted_revision and (
        before is None or before.accepted_revision != after.accepted_revision
    ):
        events.append(Event("Normal", "Applied", f"revision {after.accepted_revision} applied"))
    stalled = after.condition("Stalled")
    was = before.condition("Stalled") if before is not None else None
    if (
        stalled is not None
        and stalled.status
        and (was is None or not was.status or was.message != stalled.message)
    ):
        events.append(Event("Warning", "Refused", stalled.message[:1000]))
    waiting = after.rollout_error
    if waiting and (before is None or before.rollout_error != waiting):
        events.append(Event("Warning", "RolloutWaiting", waiting[:1000]))
    for name, target in sorted(after.targets.items()):
        old = before.targets.get(name) if before is not None else None
        if not target.ok and (old is None or old.ok or old.error != target.error):
            events.append(Event("Warning", "Failed", f"target {name}: {target.error}"[:1000]))
    return events
