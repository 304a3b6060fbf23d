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
    """Count ``(before, after)`` assignment pairs (a plan's node-images updates) per group."""
    policies = {g.name: g.rollout for g in inventory.groups}
    group_of = _group_of(inventory)
    moves = []
    for before, after in changes:
        if (before.image, before.version, before.rootfs_sha256) == (
            after.image,
            after.version,
            after.rootfs_sha256,
        ):
            continue  # a URL moved, not the image: nothing to swap
        group = group_of.get(after.host)
        if group is not None:
            method = swap_method(before, after, policies[group])
            moves.append((group, f"{after.image}@{after.version}", method))
    return summarize(inventory, moves)


def diff_moves(
    inventory: Inventory, changes: Iterable[tuple[str, str, set[str]]]
) -> tuple[GroupMoves, ...]:
    """Count ``(hostname, new image ref, changed boot parts)`` from ``reconciler diff`` per group.

    A node that boots discovery before or after (no image) reboots.
    """
    policies = {g.name: g.rollout for g in inventory.groups}
    group_of = _group_of(inventory)
    moves = []
    for hostname, ref, parts in changes:
        group = group_of.get(hostname)
        if group is None:
            continue
        if policies[group].method == "reboot" or "@" not in ref:
            method = "reboot"
        elif parts & {"kernel", "cmdline"}:
            method = "kexec"
        else:
            method = "switch_root"
        moves.append((group, ref, method))
    return summarize(inventory, moves)


def _group_of(inventory: Inventory) -> dict[str, str]:
    return {group.name_of(host): group.name for group in inventory.groups for host in group.hosts}


def summarize(
    inventory: Inventory, moves: Iterable[tuple[str, str, str]]
) -> tuple[GroupMoves, ...]:
    """``(group, target ref, method)`` per moving node -> one ``GroupMoves`` per group."""
    policies = {g.name: g.rollout for g in inventory.groups}
    counts: dict[str, dict[str, int]] = {}
    targets: dict[str, set[str]] = {}
    for group, ref, method in moves:
        counts.setdefault(group, {"switch_root": 0, "kexec": 0, "reboot": 0})[method] += 1
        targets.setdefault(group, set()).add(ref)
    return tuple(
        GroupMoves(
            group=name,
            targets=tuple(sorted(targets[name])),
            waves=tuple(cumulative_waves(policies[name].waves, sum(count.values()))),
            **count,
        )
        for name, count in sorted(counts.items())
    )


def markdown_table(moves: Iterable[GroupMoves]) -> list[str]:
    """The "does this need a reboot?" table for pull requests."""
    lines = [
        "| group | nodes | switch root | kexec | reboot | waves |",
        "|---|---|---|---|---|---|",
    ]
    for move in moves:
        waves = " → ".join(str(size) for size in move.waves)
        lines.append(
            f"| `{move.group}` | {move.total} | {move.switch_root} | {move.kexec} "
            f"| {move.reboot} | {waves} |"
        )
    return lines


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
