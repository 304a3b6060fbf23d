"""Host diffs as people read them: text for terminals, Markdown for pull requests, JSON.

Everything that comes from the inventory or the command line (names, URLs,
command lines, revisions) is escaped for Markdown, so a name cannot break the
table or inject markup into a pull-request comment.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

from reconciler.hostdiff import HostChange, HostDiff, PartChange
from reconciler.rollout.preview import describe as describe_moves
from reconciler.rollout.preview import markdown_table

MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<|~#!&{}()])")  # ">" only matters at line start
LISTED_HOSTS = 10  # per group of identical image changes, in text and Markdown
MAX_ROWS = 200  # Markdown rows: a pull-request comment holds at most 65,536 characters


def md_text(value: str) -> str:
    """``value`` as literal Markdown text (also safe inside a table cell)."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", value)


def md_code(value: str, *, in_table: bool = False) -> str:
    """``value`` as a code span, whatever backticks it holds."""
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {value} " if value.startswith("`") or value.endswith("`") else value
    if in_table:
        padded = padded.replace("|", "\\|")
    return f"{fence}{padded}{fence}"


def _summary(diff: HostDiff) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in sorted(diff.counts().items()))


def _reboot_line(diff: HostDiff) -> str:
    count = len(diff.image_changes)
    nodes = "node" if count == 1 else "nodes"
    return (
        f"{count} {nodes} would reboot or swap "
        "(what they boot changes: kernel, initrd, root filesystem or command line)."
    )


ImageGroupKey = tuple[str, tuple[PartChange, ...]]


def _image_groups(diff: HostDiff) -> dict[ImageGroupKey, list[str]]:
    """Hosts with identical boot changes together, so each change is shown once."""
    groups: dict[ImageGroupKey, list[str]] = defaultdict(list)
    for change in diff.image_changes:
        transition = change.detail.split(" (", 1)[0].removeprefix("image ")
        groups[(transition, change.parts)].append(change.hostname)
    return groups


def _hosts_listed(hosts: list[str]) -> list[str]:
    more = len(hosts) - LISTED_HOSTS
    return hosts[:LISTED_HOSTS] + ([f"and {more} more"] if more > 0 else [])


def render_diff_text(diff: HostDiff, base: str, head: str) -> str:
    if not diff.changes:
        return f"No host changes between {base} and {head}.\n"
    lines = [f"Host changes {base} -> {head}:"]
    lines += [f"  {c.kind:<11} {c.hostname:<20} {c.detail}" for c in diff.changes]
    groups = _image_groups(diff)
    if groups:
        lines += ["", "Boot image changes:"]
    for (transition, parts), hosts in groups.items():
        lines.append(f"  {transition}: {', '.join(_hosts_listed(hosts))}")
        lines += [f"    {p.part:<8} {p.old!r} -> {p.new!r}" for p in parts]
    lines += ["", _summary(diff)]
    if groups:
        lines.append(_reboot_line(diff))
        lines += [f"  {describe_moves(move)}" for move in diff.nodes]
    return "\n".join(lines) + "\n"


def _markdown_row(change: HostChange) -> str:
    return (
        f"| {md_code(change.hostname, in_table=True)} | {change.kind} | {md_text(change.detail)} |"
    )


def render_diff_markdown(diff: HostDiff, base: str, head: str) -> str:
    lines = [f"### Host changes {md_code(base[:12])} → {md_code(head[:12])}", ""]
    if not diff.changes:
        return "\n".join([*lines, "No host changes."]) + "\n"
    groups = _image_groups(diff)
    if groups:
        lines += [f"**{_reboot_line(diff)}**", "", *markdown_table(diff.nodes), ""]
    lines += ["| host | change | detail |", "|---|---|---|"]
    lines += [_markdown_row(c) for c in diff.changes[:MAX_ROWS]]
    if len(diff.changes) > MAX_ROWS:
        more = len(diff.changes) - MAX_ROWS
        lines.append(f"| | | ... and {more} more (`reconciler diff --format json` has all) |")
    if groups:
        lines += ["", "#### Boot image changes", ""]
    for (transition, parts), hosts in groups.items():
        names = ", ".join(md_code(h) if h in hosts else md_text(h) for h in _hosts_listed(hosts))
        lines.append(f"- {md_text(transition)}: {names}")
        lines += [f"  - {p.part}: {md_code(p.old)} → {md_code(p.new)}" for p in parts]
    return "\n".join([*lines, "", md_text(_summary(diff))]) + "\n"


def _change_json(change: HostChange) -> dict[str, object]:
    body: dict[str, object] = {
        "kind": change.kind,
        "host": change.hostname,
        "detail": change.detail,
    }
    if change.parts:
        body["parts"] = [{"part": p.part, "old": p.old, "new": p.new} for p in change.parts]
    return body


def render_diff_json(diff: HostDiff, base: str, head: str) -> str:
    body = {
        "base": base,
        "head": head,
        "changes": [_change_json(c) for c in diff.changes],
        "counts": diff.counts(),
        "would_reboot_or_swap": len(diff.image_changes),
        "nodes": [move.to_dict() for move in diff.nodes],
    }
    return json.dumps(body, indent=2, sort_keys=True) + "\n"
