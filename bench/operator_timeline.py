"""When each step of a commit's pass happened, for bench_operator.py, read from what it leaves.

Nothing is added to the reconciler to time it: the steps are read afterwards
from what a pass writes anyway, the same way for ``reconciler watch`` and the
operator, so the split costs neither of them anything:

- ``fetched``: the mirror's ref ``refs/heads/<ref>`` is rewritten by the fetch
  that brings the commit (its mtime);
- ``ledgers``: each target's ownership ledger (``<target>.owned.json``) is
  widened just before its creates; the first and the last of them;
- ``accepted``: ``accepted.json`` is written when every target holds the revision;
- for the operator, from the stand-in apiserver's request log: the journal
  patches of the head ConfigMap (one per ledger, before its creates), the state
  part and the head switch (the state is durable), and the status patch that
  carries ``lastAppliedRevision`` (the moment a client can see it);
- for watch, the moment its status store saved a status naming the commit.

The apiserver runs in a process of its own (``APISERVER``) and appends one JSON
line per request to a log file; the times are ``time.time()`` of the same
machine, as the files' mtimes are.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

APISERVER = """
import json, sys, time
sys.path.insert(0, {folder!r})
import kube_apiserver
from kube_apiserver import RunningApiserver

log = open({log!r}, "a", buffering=1)
handle = kube_apiserver.StrictApiserver._handle


async def logged(self, request):
    line = {{"t": time.time(), "action": request.action.value if request.action else None,
            "ns": request.namespace, "name": request.name, "sub": request.subresource}}
    data = request.data if isinstance(request.data, dict) else {{}}
    if request.resource is not None and request.resource.plural == "configmaps":
        line["keys"] = sorted({{*(data.get("data") or {{}}), *(data.get("binaryData") or {{}})}})
        line["name"] = request.name or (data.get("metadata") or {{}}).get("name")
    applied = (data.get("status") or {{}}).get("lastAppliedRevision")
    if applied:
        line["applied"] = applied
    log.write(json.dumps(line) + "\\n")
    return await handle(self, request)


kube_apiserver.StrictApiserver._handle = logged
api = RunningApiserver()
api.thread.start()
api.ready.wait()
print(api.url, flush=True)
time.sleep(3600)
"""


class RequestLog:
    """The apiserver's request log, read as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[dict[str, Any]] = []
        self._offset = 0

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return self.lines
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        whole = chunk[: chunk.rfind(b"\n") + 1]  # a line being written is read next time
        self._offset += len(whole)
        self.lines += [json.loads(line) for line in whole.splitlines() if line.strip()]
        return self.lines

    def applied_at(self, namespace: str, commit: str) -> float | None:
        """When the status patch naming ``commit`` as lastAppliedRevision reached the apiserver."""
        for line in reversed(self.read()):
            if line.get("ns") == namespace and line.get("applied") == commit:
                return float(line["t"])
        return None

    def between(self, namespace: str, start: float, end: float) -> list[dict[str, Any]]:
        return [x for x in self.read() if x.get("ns") == namespace and start <= x["t"] <= end]


def mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def file_steps(state: Path, *, ref: str, start: float, visible: float) -> dict[str, float | None]:
    """The steps both loops leave in their state dir, relative to the commit at ``start``."""

    def since(moment: float | None) -> float | None:
        if moment is None or not start <= moment <= visible + 0.05:
            return None
        return moment - start

    ledgers = sorted(t for p in state.glob("*.owned.json") if (t := mtime(p)) is not None)
    ledgers = [t for t in ledgers if start <= t <= visible]
    return {
        "fetched": since(mtime(state / "watch" / "mirror.git" / "refs" / "heads" / ref)),
        "first ledger": since(ledgers[0]) if ledgers else None,
        "last ledger": since(ledgers[-1]) if ledgers else None,
        "accepted": since(mtime(state / "accepted.json")),
        "visible": visible - start,
    }


def api_steps(log: RequestLog, namespace: str, *, start: float, visible: float) -> dict[str, Any]:
    """The operator's API calls in a commit's pass, relative to the commit."""
    calls = log.between(namespace, start, visible + 0.001)
    journal = [x["t"] for x in calls if x.get("keys") == ["journal"]]
    parts = [x["t"] for x in calls if x.get("action") == "CREATE" and "part" in x.get("keys", [])]
    head = [x["t"] for x in calls if "digest" in x.get("keys", []) and "-cache-" not in x["name"]]
    return {
        "journal patches": len(journal),
        "last journal": journal[-1] - start if journal else None,
        "state written": (head or parts or [None])[-1] - start if (head or parts) else None,
        "calls": len(calls),
    }


def summary(rows: list[dict[str, Any]], key: str) -> str:
    """The median of ``key`` over the commits and its spread (min-max), in ms."""
    values = [row[key] for row in rows if row.get(key) is not None]
    if not values:
        return "-"
    if key in ("journal patches", "calls"):
        return f"{statistics.median(values):.0f}"
    low, middle, high = (
        round(v * 1000) for v in (min(values), statistics.median(values), max(values))
    )
    return f"{middle} ({low}-{high})"
