"""Rollout state in the state dir: what each group's rollout is at, brakes, and node reports.

Layout under ``<state_dir>/``::

    rollouts/<group>.json      the group's rollout (``GroupRollout``), after every pass
    rollouts/assignments.json  hostname -> image reference in force for each node
    rollouts/brakes.json       ``reconciler rollout pause|resume|abort`` per group
    reports/<host>.json        the agents' last reports (written by ``serve``)

Every write is a temporary file and a rename, so a restart of ``watch`` mid-rollout
reads exactly the last decision. A file of the wrong shape is a ``RolloutStateError``
naming it and how to recover, never a crash.

``serve`` in a cluster has no access to the operator's state dir: it reads a
published copy of the assignments instead (``[serve] assignments_file``, the
gzip-compressed ``assignments.json.gz`` of the ConfigMap ``site-<name>-accepted``,
see ``pack_assignments``).
"""

from __future__ import annotations

import bisect
import gzip
import json
import os
import time
import zlib
from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring_ascii as _string
from pathlib import Path
from typing import Any

from reconciler.rollout.state import Brake, GroupRollout, NodeReport
from reconciler.server.nodereports import load_reports
from reconciler.targets.base import atomic_write


class RolloutStateError(Exception):
    """A rollout state file cannot be used; the message names the file and the way out."""


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, sort_keys=True, indent=1) + "\n")


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def assignments_text(assignments: dict[str, str]) -> str:
    """``json.dumps(assignments, sort_keys=True, indent=1)`` and a newline, built with
    json's C string encoder: given an indent, json.dumps falls back to its pure-Python
    encoder, ~100 ms for 10,000 nodes on every pass that moves one."""
    return _text_of_lines([_line(host, ref) for host, ref in sorted(assignments.items())])


def _line(host: str, ref: str) -> str:
    return f" {_string(host)}: {_string(ref)}"


def _text_of_lines(lines: list[str]) -> str:
    return "{\n" + ",\n".join(lines) + "\n}\n" if lines else "{}\n"


FEW_NODES = 1000  # a save that moves at most this many nodes edits the sorted lines it knows


def pack_assignments(text: bytes) -> bytes:
    """``assignments.json`` as published for serve: gzip, the same bytes for the same text
    (10,000 nodes are ~0.4 MB of JSON, a few dozen kB compressed: far below a ConfigMap's
    1 MiB)."""
    return gzip.compress(text, mtime=0)


def _read_json(path: Path) -> Any:
    try:
        data = path.read_bytes()
        return json.loads(gzip.decompress(data) if path.suffix == ".gz" else data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, zlib.error) as error:
        raise RolloutStateError(
            f"{path}: unreadable rollout state ({error}); remove the file to start that "
            "group's rollout again from the versions its nodes are assigned"
        ) from None


def _ref(value: object) -> str | None:
    """``"compute@2"`` or ``{"image": "compute", "version": "2"}`` -> ``"compute@2"``."""
    if isinstance(value, str) and "@" in value:
        return value
    if isinstance(value, dict) and "image" in value and "version" in value:
        return f"{value['image']}@{value['version']}"
    return None


def report_from_json(host: str, data: object, *, received: float) -> NodeReport | None:
    """A stored agent report as the controller needs it; None when it says nothing usable."""
    if not isinstance(data, dict):
        return None
    running = _ref(data)
    if running is None:
        return None
    health = data.get("health")
    healthy = health.get("ok") if isinstance(health, dict) else None
    swap = data.get("last_swap")
    swap = swap if isinstance(swap, dict) else {}
    at = data.get("received_at", received)
    return NodeReport(
        host=host,
        running=running,
        healthy=healthy if isinstance(healthy, bool) else None,
        reported_at=float(at) if isinstance(at, (int, float)) else received,
        swap_to=_ref(swap.get("to")),
        swap_result=swap.get("result") if isinstance(swap.get("result"), str) else None,
        reason=str(swap.get("reason") or data.get("reason") or "")[:500],
    )


class RolloutStore:
    """Reads and writes the files above; one instance per state dir.

    ``assignments_file`` reads the assignments from elsewhere, read-only (serve beside
    the operator: the mounted, published copy; a ``.gz`` name is decompressed).
    """

    def __init__(self, state_dir: Path, *, assignments_file: Path | None = None) -> None:
        self.folder = state_dir / "rollouts"
        self.reports_folder = state_dir / "reports"
        self.assignments_path = assignments_file or self.folder / "assignments.json"
        # assignments.json as last read or written, by its stamp: the watch loop reads it
        # twice a pass, and at 10,000 nodes each parse costs.
        self._assignments: tuple[tuple[int, int, int], dict[str, str]] | None = None
        # Each group's rollout file as this store last wrote it (its stamp and text): a
        # pass saves every group's rollout, and most are the same as before.
        self._written: dict[str, tuple[tuple[int, int, int] | None, str]] = {}
        # Assignments this store wrote, their hosts sorted and the file's line of each.
        self._lines: tuple[dict[str, str], list[str], list[str]] | None = None
        # The assignments last written, by group (``save_assignments``'s parts).
        self._parts: dict[str, dict[str, str]] | None = None

    def rollout(self, group: str) -> GroupRollout | None:
        path = self.folder / f"{group}.json"
        data = _read_json(path)
        if data is None:
            return None
        try:
            return GroupRollout.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise RolloutStateError(
                f"{path}: not a rollout state ({error!r}); remove the file to start the "
                f"rollout of group {group} again from the versions its nodes are assigned"
            ) from None

    def save_rollout(self, rollout: GroupRollout) -> None:
        path = self.folder / f"{rollout.group}.json"
        text = json.dumps(rollout.to_dict(), sort_keys=True, indent=1) + "\n"
        if self._written.get(rollout.group) == (_stamp(path), text):
            return  # the file holds this text already (and nobody wrote it since)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
        self._written[rollout.group] = (_stamp(path), text)

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the rollouts of groups that are gone from the inventory."""
        wanted = {f"{group}.json" for group in keep}
        for path in self.folder.glob("*.json"):
            if path.name not in wanted and path.name not in ("assignments.json", "brakes.json"):
                path.unlink(missing_ok=True)

    def assignments(self) -> dict[str, str]:
        return dict(self._current_assignments())

    def _current_assignments(self) -> dict[str, str]:
        """The assignments as last read or written (not copied: read-only)."""
        stamp = self.assignments_stamp()
        if stamp is not None and self._assignments is not None and self._assignments[0] == stamp:
            return self._assignments[1]
        assignments = self._read_assignments()
        if stamp is not None and stamp == self.assignments_stamp():
            self._assignments = (stamp, assignments)
        return assignments

    def _read_assignments(self) -> dict[str, str]:
        path = self.assignments_path
        data = _read_json(path)
        if data is None:
            return {}
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise RolloutStateError(
                f"{path}: expected an object of hostname -> image@version; remove it and "
                "every node is assigned its group's image on the next pass"
            )
        return {str(host): ref for host, ref in data.items()}

    def assignments_stamp(self) -> tuple[int, int, int] | None:
        """(inode, size, mtime_ns) of assignments.json, None when absent: cheap change check."""
        try:
            stat = os.stat(self.assignments_path)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def save_assignments(
        self, assignments: dict[str, str], *, parts: Mapping[str, dict[str, str]] | None = None
    ) -> None:
        """Write ``assignments`` unless the file holds them already.

        ``parts``: the same assignments by group (their union). A group whose part is the
        very object saved the last time moved no node, so only the others are compared:
        at 100,000 nodes, comparing every node's assignment cost more than the write.
        """
        current = self._current_assignments()
        moved = self._moved(current, parts)
        if moved is None:  # compared whole
            if assignments == current:
                return
            moved = {host for host, _ in assignments.items() ^ current.items()}
        elif not moved:
            return
        lines = self._lines_after(current, assignments, moved)
        self._assignments, self._lines, self._parts = None, None, None
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.folder / "assignments.json", _text_of_lines(lines[1]))
        stamp = self.assignments_stamp()
        if stamp is not None:
            kept = dict(assignments)
            self._assignments, self._lines = (stamp, kept), (kept, *lines)
            self._parts = dict(parts) if parts is not None else None

    def _moved(
        self, current: dict[str, str], parts: Mapping[str, dict[str, str]] | None
    ) -> set[str] | None:
        """The hosts whose assignment may differ from the file's, found from the groups
        whose part is not the one saved last; None when the file is not as this store
        wrote it with parts (then every node is compared)."""
        last = self._parts
        if parts is None or last is None or self._lines is None or self._lines[0] is not current:
            return None
        moved: set[str] = set()
        for group in parts.keys() | last.keys():
            new, old = parts.get(group, {}), last.get(group, {})
            if new is not old:
                moved.update(host for host, _ in new.items() ^ old.items())
        return moved

    def _lines_after(
        self, current: dict[str, str], assignments: dict[str, str], moved: set[str]
    ) -> tuple[list[str], list[str]]:
        """The sorted hosts and lines of ``assignments``: those of ``current`` edited where
        a few nodes (``moved``) moved (and taken: the file is about to change), else made
        anew."""
        if self._lines is None or self._lines[0] is not current or len(moved) > FEW_NODES:
            ordered = sorted(assignments)
            return ordered, [_line(host, assignments[host]) for host in ordered]
        _, hosts, lines = self._lines
        for host in moved:
            at = bisect.bisect_left(hosts, host)
            present = at < len(hosts) and hosts[at] == host
            if host not in assignments:
                if present:
                    del hosts[at], lines[at]
            elif present:
                lines[at] = _line(host, assignments[host])
            else:
                hosts.insert(at, host)
                lines.insert(at, _line(host, assignments[host]))
        return hosts, lines

    def brakes(self) -> dict[str, Brake]:
        path = self.folder / "brakes.json"
        data = _read_json(path)
        if data is None:
            return {}
        try:
            return {str(group): Brake(**value) for group, value in dict(data).items()}
        except (TypeError, ValueError) as error:
            raise RolloutStateError(
                f"{path}: not a set of rollout brakes ({error}); remove it to release them"
            ) from None

    def set_brake(self, group: str, brake: Brake) -> None:
        brakes = self.brakes()
        brakes[group] = brake
        _write_json(
            self.folder / "brakes.json",
            {
                name: {"paused": b.paused, "aborted": b.aborted, "resumed_at": b.resumed_at}
                for name, b in brakes.items()
            },
        )

    def reports(
        self, hosts: Iterable[str], *, stored: Mapping[str, Any] | None = None
    ) -> dict[str, NodeReport]:
        """The last report of each host that has one (unreadable reports count as none):
        from ``stored`` (pulled from serve) when given, else from the state dir."""
        if stored is None:
            stored = load_reports(self.reports_folder.parent)
        now = time.time()
        found: dict[str, NodeReport] = {}
        for host in hosts:
            data = stored.get(host)
            if data is None:
                continue
            # serve stamps received_at; a report without one counts as just received.
            report = report_from_json(host, data, received=now)
            if report is not None:
                found[host] = report
        return found
