"""Plans as people read them: plain text for terminals, Markdown for pull requests, JSON.

Kept apart from ``reconciler.plan`` so the plan stays a passive value and new
formats do not touch it.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.plan import Plan, TargetPlan
from reconciler.resources import AnyResource, BootFile, DhcpHost, DhcpSubnet, DnsRecord, NodeImage
from reconciler.rollout.preview import describe as describe_moves
from reconciler.rollout.preview import markdown_table
from reconciler.targets.base import Action, Change

SYMBOL = {Action.DELETE: "-", Action.CREATE: "+", Action.UPDATE: "~"}
MAX_LISTED = 200  # per target in text and Markdown; JSON always has everything


def describe(resource: AnyResource) -> str:
    """One line that says what an object is."""
    if isinstance(resource, DhcpHost):
        return f"{resource.hostname} {resource.mac} {resource.ip}"
    if isinstance(resource, DhcpSubnet):
        pool = "-".join(resource.unregistered_range) if resource.unregistered_range else "no pool"
        return f"subnet {resource.network} via {resource.gateway}, unknown clients: {pool}"
    if isinstance(resource, DnsRecord):
        return f"{resource.name} {resource.ttl} {resource.rtype} {' '.join(resource.values)}"
    if isinstance(resource, BootFile):
        return resource.path
    if isinstance(resource, NodeImage):
        return f"{resource.host} {resource.image}@{resource.version}"
    return resource.key


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def describe_update(change: Change) -> str:
    assert change.old is not None and change.new is not None
    old, new = _flatten(change.old.to_dict()), _flatten(change.new.to_dict())
    parts = []
    for field in sorted(set(old) | set(new)):
        if old.get(field) != new.get(field):
            if field == "content":
                parts.append("content changed")
            else:
                parts.append(f"{field} {_show(old.get(field))} -> {_show(new.get(field))}")
    note = " (adopted: it was not made by the reconciler)" if change.adopt else ""
    return f"{change.key}: {', '.join(parts) or 'ownership only'}{note}"


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def change_line(change: Change) -> str:
    if change.action is Action.UPDATE:
        return describe_update(change)
    resource = change.new if change.new is not None else change.old
    assert resource is not None
    return describe(resource)


def _summary(target: TargetPlan) -> str:
    counts = target.counts
    return (
        f"{counts['delete']} to delete, {counts['create']} to create, "
        f"{counts['update']} to update (owns {target.owned_count})"
    )


def render_text(plan: Plan) -> str:
    lines = [f"Plan for {plan.revision}"]
    for target in plan.targets:
        lines.append("")
        if target.error:
            lines.append(f"{target.target} ({target.kind}): ERROR {target.error}")
            continue
        lines.append(f"{target.target} ({target.kind}): {_summary(target)}")
        for change in target.changes[:MAX_LISTED]:
            lines.append(f"  {SYMBOL[change.action]} {change_line(change)}")
        if len(target.changes) > MAX_LISTED:
            lines.append(f"  ... and {len(target.changes) - MAX_LISTED} more (see --format json)")
        if target.conflicts:
            lines.append(
                f"  ! {len(target.conflicts)} wanted but held by objects the reconciler did not "
                f"make (left alone; set adopt = true to take them over): "
                f"{', '.join(target.conflicts[:10])}"
            )
        if target.unmanaged:
            lines.append(
                f"  {len(target.unmanaged)} unmanaged (not made by the reconciler, "
                f"left alone): {', '.join(target.unmanaged[:10])}"
            )
        if not target.is_safe(plan.max_fraction):
            lines.append("  ! more than the safe share of owned objects changes: needs --force")
    if plan.nodes:
        lines += ["", "Nodes (does this need a reboot?):"]
        lines += [f"  {describe_moves(move)}" for move in plan.nodes]
    lines.append("")
    lines.append("No changes." if not plan.has_changes else f"checksum: {plan.checksum}")
    return "\n".join(lines) + "\n"


def render_markdown(plan: Plan) -> str:
    lines = [f"### Reconciler plan for `{plan.revision[:12]}`", ""]
    if not plan.has_changes and not plan.has_errors:
        lines.append("No changes.")
    for target in plan.targets:
        if target.error:
            lines += [f"#### :x: `{target.target}` ({target.kind})", "", f"> {target.error}", ""]
            continue
        if not target.changes and not target.unmanaged and not target.conflicts:
            continue
        lines += [f"#### `{target.target}` ({target.kind}): {_summary(target)}", ""]
        if not target.is_safe(plan.max_fraction):
            lines += [
                "> **Warning:** more than the safe share of owned objects changes; "
                "applying needs `--force`.",
                "",
            ]
        if target.changes:
            lines += ["| | object | change |", "|---|---|---|"]
            for change in target.changes[:MAX_LISTED]:
                text = change_line(change).replace("|", "\\|")
                lines.append(f"| {SYMBOL[change.action]} | `{change.key}` | {text} |")
            if len(target.changes) > MAX_LISTED:
                lines.append(f"| | | ... and {len(target.changes) - MAX_LISTED} more |")
            lines.append("")
        if target.conflicts:
            names = ", ".join(f"`{k}`" for k in target.conflicts[:10])
            lines += [
                f"> **Conflict:** {len(target.conflicts)} wanted object(s) are held by "
                f"hand-made ones and left alone ({names}); set `adopt = true` to take "
                "them over.",
                "",
            ]
        if target.unmanaged:
            lines += [f"{len(target.unmanaged)} unmanaged object(s) left alone.", ""]
    if plan.nodes:
        lines += ["#### Nodes: does this need a reboot?", ""]
        lines += [*markdown_table(plan.nodes), ""]
    if plan.has_changes:
        lines.append(f"Checksum: `{plan.checksum}`")
    return "\n".join(lines) + "\n"


def render_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2, sort_keys=True) + "\n"


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}
