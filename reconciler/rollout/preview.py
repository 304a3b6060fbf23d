""" "Does this need a reboot?": what an image change does to each group's nodes, for plans.

From the node assignments a plan would change (``node-images`` updates: what a
node is assigned now and what it will be), count per group how many nodes the
agent can move by switching root (same kernel and command line), must kexec
(the kernel or its command line changes) or must reboot (``method: reboot``),
and in which waves the group's ``rollout:`` policy moves them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from reconciler.model.inventory import Inventory
from reconciler.model.rollout import RolloutPolicy
from reconciler.resources import NodeImage
from reconciler.rollout.controller import cumulative_waves

if TYPE_CHECKING:
    from reconciler.plan import Plan


@dataclass(frozen=True, slots=True)
class GroupMoves:
    """How one group's nodes move to new images."""

    group: str
    targets: tuple[str, ...]  # the versions they move to
    switch_root: int
    kexec: int
    reboot: int
    waves: tuple[int, ...]  # cumulative nodes per wave

    @property
    def total(self) -> int:
        return self.switch_root + self.kexec + self.reboot

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "targets": list(self.targets),
            "switch_root": self.switch_root,
            "kexec": self.kexec,
            "reboot": self.reboot,
            "waves": list(self.waves),
        }


def swap_method(before: NodeImage, after: NodeImage, policy: RolloutPolicy) -> str:
    """The least disruptive way the agent can move a node from ``before`` to ``after``."""
    if policy.method == "reboot":
        return "reboot"
    if before.kernel_sha256 == after.kernel_sha256 and before.cmdline == after.cmdline:
        return "switch_root"
    return "kexec"


def node_moves(
    inventory: Inventory, changes: Iterable[tuple[NodeImage, NodeImage]]
) -> tuple[GroupMoves, ...]:
    """Group ``(before, after)`` assignment pairs by group and count their swap methods."""
    group_of: dict[str, str] = {}
    for group in inventory.groups:
        for host in group.hosts:
            group_of[group.name_of(host)] = group.name
    policies = {g.name: g.rollout for g in inventory.groups}
    counts: dict[str, dict[str, int]] = {}
    targets: dict[str, set[str]] = {}
    for before, after in changes:
        if (before.image, before.version) == (after.image, after.version) and (
            before.rootfs_sha256 == after.rootfs_sha256
        ):
            continue  # a URL moved, not the image: nothing to swap
        name = group_of.get(after.host)
        if name is None:
            continue
        method = swap_method(before, after, policies[name])
        counts.setdefault(name, {"switch_root": 0, "kexec": 0, "reboot": 0})[method] += 1
        targets.setdefault(name, set()).add(f"{after.image}@{after.version}")
    moves = []
    for name, count in sorted(counts.items()):
        total = sum(count.values())
        moves.append(
            GroupMoves(
                group=name,
                targets=tuple(sorted(targets[name])),
                waves=tuple(cumulative_waves(policies[name].waves, total)),
                **count,
            )
        )
    return tuple(moves)


def describe(move: GroupMoves) -> str:
    parts = [
        f"{count} {label}"
        for count, label in (
            (move.switch_root, "switch root (same kernel)"),
            (move.kexec, "kexec (kernel changes)"),
            (move.reboot, "reboot"),
        )
        if count
    ]
    waves = " -> ".join(str(size) for size in move.waves)
    return (
        f"{move.group}: {move.total} node(s) move to {', '.join(move.targets)}: "
        f"{', '.join(parts)}; waves {waves}"
    )


def with_node_moves(plan: Plan, inventory: Inventory) -> Plan:
    """The plan with its ``nodes`` summary, from the node-images targets' updates."""
    pairs = [
        (change.old, change.new)
        for target in plan.targets
        if target.kind == "node-images"
        for change in target.changes
        if isinstance(change.old, NodeImage) and isinstance(change.new, NodeImage)
    ]
    return replace(plan, nodes=node_moves(inventory, pairs))
