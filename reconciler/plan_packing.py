"""A target's plan made in a worker process, packed to cross the pipe cheaply.

A worker (``Engine.plan`` with ``parallel``) sends its ``TargetPlan`` back
pickled. Most changes of a large plan carry a wanted resource (every change of
a first plan is a create), which the parent already holds: the compiled state
the worker was forked from. So each change travels as its action, key, old
value and the position of its new resource in the target's desired list; the
parent puts the very same objects back. Pickling 150,000 creates with their
resources made a 30,000-host first plan twice as slow in workers as in process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.plan import TargetPlan
from reconciler.resources import AnyResource
from reconciler.targets.base import Action, Change

_ACTIONS = tuple(Action)
_NUMBER = {action: number for number, action in enumerate(_ACTIONS)}

# (action number, key, old, position of new in desired or -1, new when not there, adopt)
Row = tuple[int, str, AnyResource | None, int, AnyResource | None, bool]


@dataclass(frozen=True, slots=True)
class PackedPlan:
    """A ``TargetPlan`` without its changes, and the changes as rows."""

    plan: TargetPlan
    rows: tuple[Row, ...]


def pack(plan: TargetPlan, desired: Sequence[AnyResource]) -> PackedPlan:
    if not plan.changes:
        return PackedPlan(plan, ())
    position = {id(resource): at for at, resource in enumerate(desired)}
    rows = []
    for change in plan.changes:
        at = -1 if change.new is None else position.get(id(change.new), -1)
        new = change.new if at < 0 else None
        rows.append((_NUMBER[change.action], change.key, change.old, at, new, change.adopt))
    return PackedPlan(dataclasses.replace(plan, changes=()), tuple(rows))


def unpack(packed: PackedPlan, desired: Callable[[], Sequence[AnyResource]]) -> TargetPlan:
    """The plan with its changes, new resources taken from ``desired()`` (called only
    when a change needs it: the same list, in the same order, as the worker's)."""
    if not packed.rows:
        return packed.plan
    wanted: Sequence[Any] = desired() if any(row[3] >= 0 for row in packed.rows) else ()
    changes = tuple(
        Change(_ACTIONS[action], key, old, wanted[at] if at >= 0 else new, adopt)
        for action, key, old, at, new, adopt in packed.rows
    )
    return dataclasses.replace(packed.plan, changes=changes)
