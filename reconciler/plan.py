"""Diffing desired against live state, and the Plan: an immutable, checksummed value.

A plan lists, per target, the deletes, creates and updates that make live state
match the inventory, in a deterministic order. It checks its own safety (too
large a share of a target's objects changed refuses without ``--force``) and
carries a sha256 over its content so that ``apply --checksum`` applies exactly
the plan someone reviewed. Rendering lives in ``reconciler.render``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from reconciler.resources import AnyResource
from reconciler.targets.base import ACTION_ORDER, Action, Change, LiveState

if TYPE_CHECKING:
    from reconciler.rollout.preview import GroupMoves

MAX_SAFE_CHANGE_FRACTION = 0.3
MIN_OWNED_FOR_SAFETY = 10


def by_key(desired: Iterable[AnyResource]) -> dict[str, AnyResource]:
    """The resources by key (the last of two with one key wins)."""
    if not isinstance(desired, Sequence):
        desired = list(desired)
    return dict(zip(map(_KEY, desired), desired, strict=True))


_KEY = attrgetter("key")


def compute_changes(
    desired: Iterable[AnyResource],
    live: LiveState,
    *,
    adopt: bool = True,
    wanted: Mapping[str, AnyResource] | None = None,
) -> tuple[Change, ...]:
    """The minimal ordered list of changes that turns ``live`` into ``desired``.

    Objects we own and no longer want are deleted; objects someone else made are
    never deleted. One whose key we now want is updated and adopted when
    ``adopt`` is true; otherwise it is left alone (see ``conflicting_keys``).
    ``wanted``: ``by_key(desired)``, when the caller has it.
    """
    if wanted is None:
        wanted = by_key(desired)
    owned = live.owned
    changes = [Change(Action.DELETE, key, owned[key], None) for key in owned.keys() - wanted]
    keys, resources = list(wanted), list(wanted.values())
    current = list(map(owned.get, keys))
    # One comparison in C first (the same object is equal without asking it): a no-op
    # plan of 200,000 resources stops here.
    if current != resources:
        for key, resource, have in zip(keys, resources, current, strict=True):
            if have is None:
                foreign = live.unmanaged.get(key)
                if foreign is None:
                    changes.append(Change(Action.CREATE, key, None, resource))
                elif adopt:
                    # Someone else's object under a key we want: take it over (even when
                    # equal, so the ledger records it and later passes may change it).
                    changes.append(Change(Action.UPDATE, key, foreign, resource, adopt=True))
            elif have is not resource and have != resource:  # a host's output is reused
                changes.append(Change(Action.UPDATE, key, have, resource))
    changes.sort(key=lambda c: (ACTION_ORDER[c.action], c.key))
    return tuple(changes)


@dataclass(frozen=True, slots=True)
class TargetPlan:
    """The changes for one target, with what the safety check needs to know."""

    target: str
    kind: str
    changes: tuple[Change, ...]
    owned_count: int
    unmanaged: tuple[str, ...] = ()  # keys of objects someone else made (drift report)
    # Keys we want that someone else's object holds; left alone unless adoption is on.
    conflicts: tuple[str, ...] = ()
    error: str | None = None  # the target could not be read

    @property
    def counts(self) -> dict[str, int]:
        result = {action.value: 0 for action in Action}
        for change in self.changes:
            result[change.action.value] += 1
        return result

    def is_safe(self, max_fraction: float = MAX_SAFE_CHANGE_FRACTION) -> bool:
        if self.owned_count < MIN_OWNED_FOR_SAFETY:
            return True
        risky = sum(
            1
            for c in self.changes
            if c.action is Action.DELETE or (c.action is Action.UPDATE and not c.adopt)
        )
        return risky <= max_fraction * self.owned_count

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "owned": self.owned_count,
            "counts": self.counts,
            "changes": [c.to_dict() for c in self.changes],
            "unmanaged": list(self.unmanaged),
            "conflicts": list(self.conflicts),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """All targets' changes for one inventory revision."""

    revision: str
    targets: tuple[TargetPlan, ...]
    max_fraction: float = MAX_SAFE_CHANGE_FRACTION
    # What the node assignment changes do to nodes (switch root, kexec, reboot), per group.
    nodes: tuple[GroupMoves, ...] = ()

    @property
    def has_changes(self) -> bool:
        return any(t.changes for t in self.targets)

    @property
    def has_errors(self) -> bool:
        return any(t.error for t in self.targets)

    @property
    def has_conflicts(self) -> bool:
        """Objects we want are held by hand-made ones: live state cannot match by itself."""
        return any(t.conflicts for t in self.targets)

    def conflict_messages(self) -> list[str]:
        """One line per target with conflicts, naming the objects and the two ways out."""
        return [
            f"{t.target}: {', '.join(t.conflicts[:10])}"
            + (f" and {len(t.conflicts) - 10} more" if len(t.conflicts) > 10 else "")
            + " held by objects the reconciler did not create; remove them by hand, or set "
            f"adopt = true on [targets.{t.target}] to take them over"
            for t in self.targets
            if t.conflicts
        ]

    def unsafe_targets(self) -> list[TargetPlan]:
        return [t for t in self.targets if not t.is_safe(self.max_fraction)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "checksum": self.checksum,
            "targets": [t.to_dict() for t in self.targets],
            "nodes": [m.to_dict() for m in self.nodes],
        }

    @property
    def checksum(self) -> str:
        """sha256 over the changes only: the same changes give the same checksum."""
        body = [
            {"target": t.target, "changes": [c.to_dict() for c in t.changes]} for t in self.targets
        ]
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def conflicting_keys(desired: Sequence[AnyResource], live: LiveState) -> tuple[str, ...]:
    """Keys we want that someone else's object holds with other content."""
    return _conflicts(by_key(desired), live)


def _conflicts(wanted: Mapping[str, AnyResource], live: LiveState) -> tuple[str, ...]:
    held = (wanted.keys() - live.owned.keys()) & live.unmanaged.keys()
    return tuple(sorted(key for key in held if live.unmanaged[key] != wanted[key]))


def build_target_plan(
    *,
    target: str,
    kind: str,
    desired: Sequence[AnyResource],
    live: LiveState,
    adopt: bool = True,
) -> TargetPlan:
    wanted = by_key(desired)
    changes = compute_changes(desired, live, adopt=adopt, wanted=wanted)
    return TargetPlan(
        target=target,
        kind=kind,
        changes=changes,
        owned_count=len(live.owned),
        unmanaged=tuple(sorted(live.unmanaged.keys() - wanted.keys())),
        conflicts=() if adopt else _conflicts(wanted, live),
    )
