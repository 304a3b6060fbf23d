"""One rollout pass over a whole inventory: the bridge between the controller and the store.

The watch loop (and the operator) call ``run_rollouts`` before compiling a
revision: it decides, group by group, which version each node is assigned now,
persists the decisions when asked to, and returns the assignments that
``compile_inventory`` uses for ``nodes/<host>.json`` and the boot files. A
read-only caller (``plan``, ``rollout status``) runs it with ``persist=False``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.model.inventory import Group, Inventory
from reconciler.rollout.controller import decide, decide_settled
from reconciler.rollout.state import Brake, Decision, GroupRollout, NodeReport
from reconciler.rollout.store import RolloutStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RolloutPass:
    """Every node's assignment, and each group's decision (for status and plans)."""

    assignments: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)

    def rows(
        self, brakes: dict[str, Brake] | None = None, *, group: str | None = None
    ) -> list[dict[str, Any]]:
        """Per group: target, phase, wave, brake, nodes per version and state, failures."""
        rows = []
        for name, decision in sorted(self.decisions.items()):
            if group is not None and name != group:
                continue
            rollout = decision.rollout
            brake = (brakes or {}).get(name, Brake())
            rows.append(
                {
                    "group": name,
                    "target": rollout.target if rollout else None,
                    "phase": rollout.phase if rollout else "Complete",
                    "wave": (rollout.wave + 1) if rollout else 0,
                    "waves": decision.waves_total,
                    "paused": brake.paused,
                    "aborted": brake.aborted,
                    "versions": dict(sorted(Counter(decision.assignments.values()).items())),
                    "states": dict(sorted(Counter(decision.node_states.values()).items())),
                    "failures": {h: f.reason for h, f in sorted(rollout.failed.items())}
                    if rollout
                    else {},
                }
            )
        return rows

    @property
    def active(self) -> bool:
        """Whether any rollout still waits for nodes (the loop then re-runs on a timer).

        A Degraded rollout opens no wave, but nodes that were swapping when it
        stopped still report healthy or failed; status must show how they end.
        """
        return any(
            d.rollout is not None
            and (
                d.rollout.phase in ("Progressing", "Paused")
                or (d.rollout.phase == "Degraded" and "updating" in d.node_states.values())
            )
            for d in self.decisions.values()
        )


class SettledGroups:
    """The settled decisions of the last pass, by group, for a long-running caller (watch).

    A settled group's decision (no node moving) depends only on the group (its hosts,
    image and policy) and its rollout state. The load cache hands an unchanged group
    file's model on as the very same object, so while the group is that object and its
    rollout state reads the same, the decision is the one made before: at 100,000
    hosts, a commit to one rack no longer names every other rack's 2,500 hosts again.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[Group, GroupRollout, Decision]] = {}
        self._now: dict[str, tuple[Group, GroupRollout, Decision]] = {}

    def get(self, group: Group, rollout: GroupRollout | None) -> Decision | None:
        held = self._last.get(group.name)
        if held is None or rollout is None or held[0] is not group or held[1] != rollout:
            return None
        self._now[group.name] = held
        return held[2]

    def put(self, group: Group, decision: Decision) -> None:
        if decision.rollout is not None:  # a copy: the controller changes rollouts in place
            self._now[group.name] = (group, replace(decision.rollout), decision)

    def end_pass(self) -> None:
        """Keep this pass's decisions only (groups gone or moving are forgotten)."""
        self._last, self._now = self._now, {}


def run_rollouts(
    inventory: Inventory,
    store: RolloutStore,
    *,
    persist: bool,
    now: float | None = None,
    reports_from: Callable[[], Mapping[str, Any]] | None = None,
    timeout_from: float = 0.0,
    settled: SettledGroups | None = None,
) -> RolloutPass:
    """Decide every group's rollout; write the state back when ``persist``.

    ``reports_from`` gives the agents' reports by host when they are not in the state
    dir (pulled from serve; called only when a group has nodes moving, and may raise);
    no node fails for its wave timeout before ``timeout_from``. ``settled`` keeps
    settled decisions from one call to the next (see ``SettledGroups``).
    """
    now = time.time() if now is None else now
    previous = store.assignments()
    brakes = store.brakes()
    result = RolloutPass()
    memo = settled if settled is not None else SettledGroups()
    for group in inventory.groups:
        if group.image is None:
            continue
        rollout = store.rollout(group.name)
        decision = memo.get(group, rollout)
        if decision is not None:
            result.decisions[group.name] = decision
            result.assignments.update(decision.assignments)
            continue
        hostname = group.hostname  # as group.name_of, without a call per host
        hosts = [
            h.name if h.name is not None else hostname % h.index
            for h in group.hosts
            if h.image is None
        ]
        decision = decide_settled(
            hosts=hosts, target=group.image, rollout=rollout, policy=group.rollout
        )
        if decision is not None:
            memo.put(group, decision)
        if decision is None:
            # A version removed from images/ cannot be returned to: such nodes move at once.
            current = {
                host: ref
                for host in hosts
                if (ref := previous.get(host)) is not None and inventory.has_image(ref)
            }
            decision = decide(
                group=group.name,
                hosts=hosts,
                target=group.image,
                revision=inventory.revision,
                policy=group.rollout,
                current=current,
                reports=_Reports(store, hosts, reports_from),
                rollout=rollout,
                brake=brakes.get(group.name, Brake()),
                now=now,
                timeout_from=timeout_from,
            )
        result.decisions[group.name] = decision
        result.assignments.update(decision.assignments)
    memo.end_pass()
    if persist:
        save_pass(store, result)
    return result


class _Reports(Mapping[str, NodeReport]):
    """A group's reports, read (or pulled) only when the controller looks at one."""

    def __init__(
        self,
        store: RolloutStore,
        hosts: list[str],
        pulled: Callable[[], Mapping[str, Any]] | None,
    ) -> None:
        self._store, self._hosts, self._pulled = store, hosts, pulled
        self._found: dict[str, NodeReport] | None = None

    def _reports(self) -> dict[str, NodeReport]:
        if self._found is None:
            stored = self._pulled() if self._pulled is not None else None
            self._found = self._store.reports(self._hosts, stored=stored)
        return self._found

    def __getitem__(self, host: str) -> NodeReport:
        return self._reports()[host]

    def __iter__(self) -> Iterator[str]:
        return iter(self._reports())

    def __len__(self) -> int:
        return len(self._reports())


def save_pass(store: RolloutStore, result: RolloutPass) -> None:
    """Persist what a pass decided: each group's rollout and every node's assignment."""
    for decision in result.decisions.values():
        if decision.rollout is not None:
            store.save_rollout(decision.rollout)
        for event in decision.events:
            log.info("rollout", extra={"event": event})
    store.forget(result.decisions)
    parts = {group: decision.assignments for group, decision in result.decisions.items()}
    store.save_assignments(result.assignments, parts=parts)
