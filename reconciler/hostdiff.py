"""What changes between two inventory revisions, in the terms of hosts.

For pull requests: "node020 re-addressed, node031 added, node014 image
compute@2024.10 -> compute@2024.11". It needs no live access, so CI can post
it without any secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from reconciler.model.inventory import Inventory


@dataclass(frozen=True, slots=True)
class HostView:
    hostname: str
    group: str
    mac: str
    ip: str
    image: str
    aliases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HostChange:
    kind: str  # added, removed, renamed, readdressed, mac, image, aliases, group
    hostname: str
    detail: str


@dataclass(slots=True)
class HostDiff:
    changes: list[HostChange] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for change in self.changes:
            result[change.kind] = result.get(change.kind, 0) + 1
        return result


def host_views(inventory: Inventory) -> dict[str, HostView]:
    views = {}
    for group in inventory.groups:
        for host in group.hosts:
            name = group.name_of(host)
            views[name] = HostView(
                hostname=name,
                group=group.name,
                mac=host.mac,
                ip=str(group.address_for(host)),
                image=host.image or group.image or "(discovery)",
                aliases=tuple(host.aliases),
            )
    return views


def _field_changes(old: HostView, new: HostView, name: str) -> list[HostChange]:
    changes = []
    if old.ip != new.ip:
        changes.append(HostChange("readdressed", name, f"{old.ip} -> {new.ip}"))
    if old.mac != new.mac:
        changes.append(HostChange("mac", name, f"MAC {old.mac} -> {new.mac}"))
    if old.image != new.image:
        changes.append(HostChange("image", name, f"image {old.image} -> {new.image}"))
    if old.aliases != new.aliases:
        changes.append(
            HostChange("aliases", name, f"aliases {list(old.aliases)} -> {list(new.aliases)}")
        )
    if old.group != new.group:
        changes.append(HostChange("group", name, f"group {old.group} -> {new.group}"))
    return changes


def diff_inventories(base: Inventory, head: Inventory) -> HostDiff:
    old, new = host_views(base), host_views(head)
    diff = HostDiff()
    gone = {name: view for name, view in old.items() if name not in new}
    fresh = {name: view for name, view in new.items() if name not in old}
    gone_by_mac = {view.mac: view for view in gone.values()}
    for name in sorted(set(old) & set(new)):
        diff.changes.extend(_field_changes(old[name], new[name], name))
    for name, view in sorted(fresh.items()):
        previous = gone_by_mac.pop(view.mac, None)
        if previous is not None:
            gone.pop(previous.hostname)
            diff.changes.append(HostChange("renamed", name, f"{previous.hostname} -> {name}"))
            diff.changes.extend(c for c in _field_changes(previous, view, name) if c.kind != "mac")
        else:
            diff.changes.append(HostChange("added", name, f"{view.mac} {view.ip} {view.image}"))
    for name, view in sorted(gone.items()):
        diff.changes.append(HostChange("removed", name, f"{view.mac} {view.ip}"))
    diff.changes.sort(key=lambda c: (c.hostname, c.kind))
    return diff


def render_diff_text(diff: HostDiff, base: str, head: str) -> str:
    if not diff.changes:
        return f"No host changes between {base} and {head}.\n"
    lines = [f"Host changes {base} -> {head}:"]
    lines += [f"  {c.kind:<11} {c.hostname:<20} {c.detail}" for c in diff.changes]
    summary = ", ".join(f"{count} {kind}" for kind, count in sorted(diff.counts().items()))
    return "\n".join([*lines, "", summary]) + "\n"


def render_diff_markdown(diff: HostDiff, base: str, head: str) -> str:
    lines = [f"### Host changes `{base[:12]}` → `{head[:12]}`", ""]
    if not diff.changes:
        return "\n".join([*lines, "No host changes."]) + "\n"
    lines += ["| host | change | detail |", "|---|---|---|"]
    lines += [f"| `{c.hostname}` | {c.kind} | {c.detail} |" for c in diff.changes]
    summary = ", ".join(f"{count} {kind}" for kind, count in sorted(diff.counts().items()))
    return "\n".join([*lines, "", summary]) + "\n"


def render_diff_json(diff: HostDiff, base: str, head: str) -> str:
    body = {
        "base": base,
        "head": head,
        "changes": [{"kind": c.kind, "host": c.hostname, "detail": c.detail} for c in diff.changes],
        "counts": diff.counts(),
    }
    return json.dumps(body, indent=2, sort_keys=True) + "\n"
