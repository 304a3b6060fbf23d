"""Node agents' reports: their format, where they are kept, and the counts operators read.

An agent posts what its node runs (image, version, kernel, boot id), its state,
its health checks and its last swap. ``serve`` checks the report against the
format below (unknown keys are dropped, strings and lists are bounded) and
keeps the last one per host as ``reports/<host>.json`` in the state dir,
written atomically. ``reconciler status``, ``/status`` and ``/metrics`` count
nodes per image version and per state; a node silent for longer than
``SILENT_AFTER`` counts as ``silent`` whatever it said last. A host removed
from the inventory has its report dropped once serve compiles that revision.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any

from reconciler.targets.base import atomic_write

log = logging.getLogger(__name__)

STATES = ("running", "staging", "swapping", "failed", "refused")
SWAP_METHODS = ("switch-root", "soft-reboot", "kexec", "reboot")
SWAP_RESULTS = ("ok", "failed", "rolled-back")
SILENT_AFTER = 900.0  # three missed heartbeats of the agent's default 300 s
HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
MAX_TEXT, MAX_OUTPUT, MAX_ITEMS = 200, 2000, 32


class ReportError(ValueError):
    """The report does not follow the format; the message names the field."""


def _text(data: dict[str, Any], key: str, *, limit: int = MAX_TEXT, where: str = "") -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ReportError(f"'{where}{key}' must be a string")
    return value[:limit]


def _flag(data: dict[str, Any], key: str, where: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise ReportError(f"'{where}{key}' must be true or false")
    return value


def _items(value: Any, key: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ReportError(f"'{key}' must be a list of objects")
    return value[:MAX_ITEMS]


def _health(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ReportError("'health' must be an object with 'ok' and 'checks'")
    checks = [
        {
            "name": _text(check, "name", where="health.checks.") or "",
            "ok": _flag(check, "ok", "health.checks."),
            "output": _text(check, "output", limit=MAX_OUTPUT, where="health.checks.") or "",
        }
        for check in _items(value.get("checks"), "health.checks")
    ]
    return {"ok": _flag(value, "ok", "health."), "checks": checks}


def _last_swap(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ReportError("'last_swap' must be an object")
    method, result = value.get("method"), value.get("result")
    if method not in SWAP_METHODS:
        raise ReportError(f"'last_swap.method' must be one of {', '.join(SWAP_METHODS)}")
    if result not in SWAP_RESULTS:
        raise ReportError(f"'last_swap.result' must be one of {', '.join(SWAP_RESULTS)}")
    downtime = value.get("downtime_s")
    if downtime is not None and (
        isinstance(downtime, bool) or not isinstance(downtime, int | float) or downtime < 0
    ):
        raise ReportError("'last_swap.downtime_s' must be a number of seconds")
    return {
        "method": method,
        "from": _text(value, "from", where="last_swap."),
        "to": _text(value, "to", where="last_swap."),
        "downtime_s": downtime,
        "result": result,
        "reason": _text(value, "reason", limit=MAX_OUTPUT, where="last_swap.") or "",
    }


def normalize_report(host: str, data: Any) -> dict[str, Any]:
    """The report as stored: known keys only, checked and bounded; ReportError when wrong."""
    if not isinstance(data, dict):
        raise ReportError("the report must be a JSON object")
    if data.get("host") != host:
        raise ReportError(
            f"the report names host {data.get('host')!r}, but was posted for {host!r}"
        )
    state = data.get("state")
    if state not in STATES:
        raise ReportError(f"'state' must be one of {', '.join(STATES)}")
    report: dict[str, Any] = {"host": host, "state": state}
    for key in ("image", "version", "kernel_sha256", "rootfs_sha256", "assigned", "boot_id",
                "agent_version"):  # fmt: skip
        report[key] = _text(data, key)
    report["health"] = _health(data.get("health"))
    report["last_swap"] = _last_swap(data.get("last_swap"))
    report["refused"] = [
        {
            "version": _text(item, "version", where="refused.") or "",
            "reason": _text(item, "reason", limit=MAX_OUTPUT, where="refused.") or "",
        }
        for item in _items(data.get("refused"), "refused")
    ]
    return report


class ReportStore:
    """``reports/<host>.json`` under the state dir, with the last reports kept in memory.

    ``version`` names the reports held: it changes whenever one is saved or dropped,
    and differs between two stores (a restarted serve), so equal versions mean the
    same reports (``GET /reports`` answers 304 Not Modified on that).
    """

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / "reports"
        self._reports: dict[str, dict[str, Any]] | None = None
        self._instance = secrets.token_hex(8)
        self._changes = 0

    @property
    def version(self) -> str:
        return f"{self._instance}.{self._changes}"

    def save(self, report: dict[str, Any]) -> None:
        host = report["host"]
        if not HOSTNAME.match(host):
            raise ReportError(f"{host!r} is not a host name")
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self.folder / f"{host}.json", json.dumps(report, sort_keys=True) + "\n")
        self.all()[host] = report
        self._changes += 1

    def all(self) -> dict[str, dict[str, Any]]:
        if self._reports is None:
            self._reports = load_reports(self.folder.parent)
        return self._reports

    def keep_only(self, hosts: Collection[str]) -> list[str]:
        """Drop the reports of hosts not in ``hosts`` (gone from the inventory), on disk and
        in memory, so counts and rollouts stop seeing them; returns the hosts dropped."""
        reports, keep = self.all(), set(hosts)
        files = {path.stem: path for path in self.folder.glob("*.json")}
        gone = sorted((set(files) | set(reports)) - keep)
        for host in gone:
            reports.pop(host, None)
            if host in files:
                try:
                    files[host].unlink(missing_ok=True)
                except OSError as error:  # kept; the next revision tries again
                    log.warning(
                        "node report not removed", extra={"host": host, "error": str(error)}
                    )
        if gone:
            self._changes += 1
            log.info("node reports of removed hosts dropped", extra={"hosts": gone})
        return gone


def load_reports(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Every readable report in ``state_dir/reports`` by host (unreadable ones skipped)."""
    found: dict[str, dict[str, Any]] = {}
    folder = state_dir / "reports"
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("host"), str):
            found[data["host"]] = data
    return found


def node_state(report: dict[str, Any], now: float) -> str:
    received = report.get("received_at")
    if isinstance(received, int | float) and now - received > SILENT_AFTER:
        return "silent"
    return str(report.get("state", "unknown"))


def summarize(reports: dict[str, dict[str, Any]], *, now: float | None = None) -> dict[str, Any]:
    """Counts of nodes per image version and per state, and the nodes that need a look."""
    now = time.time() if now is None else now
    versions: Counter[str] = Counter()
    states: Counter[str] = Counter()
    attention = []
    for host, report in sorted(reports.items()):
        version = f"{report.get('image')}@{report.get('version')}"
        state = node_state(report, now)
        versions[version] += 1
        states[state] += 1
        if state in ("failed", "refused", "silent"):
            swap = report.get("last_swap") or {}
            refused = report.get("refused") or [{}]
            reason = swap.get("reason") or refused[-1].get("reason") or ""
            attention.append({"host": host, "state": state, "version": version, "reason": reason})
    return {
        "nodes": len(reports),
        "by_version": dict(sorted(versions.items())),
        "by_state": dict(sorted(states.items())),
        "attention": attention,
    }


def render_nodes_text(summary: dict[str, Any], *, limit: int = 20) -> str:
    """The node part of ``reconciler status``."""
    if not summary["nodes"]:
        return "nodes:      no agent has reported yet\n"
    lines = [
        f"nodes:      {summary['nodes']} reporting",
        "  versions: " + ", ".join(f"{v} {n}" for v, n in summary["by_version"].items()),
        "  states:   " + ", ".join(f"{s} {n}" for s, n in summary["by_state"].items()),
    ]
    for item in summary["attention"][:limit]:
        lines.append(f"  {item['host']} {item['state']} on {item['version']}: {item['reason']}")
    if len(summary["attention"]) > limit:
        lines.append(f"  ... and {len(summary['attention']) - limit} more")
    return "\n".join(lines).rstrip() + "\n"
