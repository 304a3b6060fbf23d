"""A no-op plan remembered between processes: ``reconciler plan`` of an unchanged site.

At 100,000 hosts a no-op ``plan`` spends ~20 s of CPU loading, compiling,
rendering boot files and reading back 300,000 files only to print "No
changes". This module lets a fresh process skip that when nothing that could
change the answer changed since a plan found nothing to do:

* the **inputs**: every inventory file (bytes) and the revision, the runtime
  config, the boot templates folder, the reconciler's own code and the
  versions of the libraries it renders with, and the rollout state
  (``state_dir/rollouts/``), or, once the inventory is loaded, the image
  version each node is assigned;
* the **outputs**: each target names every file and folder its read looks
  at (``live_files``); their lstat (inode, mode, size, mtime and ctime, each
  folder's entries too) must be what it was when that plan read them.

A hand edit moves the ctime of the file (no tool can set it back), a replaced
file has another inode, a new or removed file changes its folder's listing: any
of these, a changed input, a target that cannot name its files (a live service
such as dhcpd over OMAPI), a missing, corrupt or foreign cache file all take
the full path, which computes the same plan and records it again. Only a plan
with no changes and no errors is remembered, and only when every file it read
had been written more than ``RACY_NS`` before the read (a later write in the
same clock tick could otherwise leave the times as they were).

Two lookups: before loading, when no group's rollout has nodes moving (then the
assignments follow from the inventory and the rollout files alone), and after
loading and the rollout pass, keyed by the assignments (a rollout in progress
depends on time and the agents' reports). ``reconciler plan --no-cache`` skips
both and records nothing. The cache is ``state_dir/plan-cache.json``; removing
it costs speed, never correctness. The watch loop, the operator and ``apply``
never use it: they read everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import marshal
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from reconciler.plan import Plan, TargetPlan
from reconciler.resources import AnyResource
from reconciler.targets.base import Target, TargetError, atomic_write

if TYPE_CHECKING:
    from reconciler.engine import Engine
    from reconciler.inventory.sources import InventorySource
    from reconciler.rollout.runner import RolloutPass

log = logging.getLogger(__name__)

FORMAT = 1
CACHE_FILE = "plan-cache.json"
# A file whose mtime or ctime is this close to the moment it was looked at is not
# trusted: a write later in the same clock tick would leave its times unchanged.
RACY_NS = 1_000_000_000
_LIBRARIES = ("jinja2", "pydantic", "pydantic-core", "PyYAML", "dnspython")


@dataclass(frozen=True, slots=True)
class LiveFiles:
    """Everything a target's read looks at: files (lstat each) and folders (and their entries)."""

    files: tuple[str, ...]
    folders: tuple[str, ...] = ()


@runtime_checkable
class NamesLiveFiles(Protocol):
    """A target whose live state is files on this machine (see ``LiveFiles``)."""

    def live_files(self, desired: Sequence[AnyResource]) -> LiveFiles: ...


def _stat_row(path: str, info: os.stat_result) -> tuple[str, int, int, int, int, int, int]:
    return (
        path,
        info.st_dev,
        info.st_ino,
        info.st_mode,
        info.st_size,
        info.st_mtime_ns,
        info.st_ctime_ns,
    )


def stat_signature(live: LiveFiles) -> tuple[str, int] | None:
    """A digest of the lstat of every file and folder entry, and the newest time seen.

    None when something cannot be looked at (permissions): then nothing is remembered.
    """
    rows: list[tuple[object, ...]] = []
    newest = 0
    try:
        for path in live.files:
            try:
                row = _stat_row(path, os.lstat(path))
            except (FileNotFoundError, NotADirectoryError):
                rows.append((path,))
                continue
            newest = max(newest, row[5], row[6])
            rows.append(row)
        for folder in live.folders:
            rows.append(("realpath", folder, os.path.realpath(folder)))
            try:
                # In the order listed: an order that changed only costs a full plan.
                with os.scandir(folder) as entries:
                    listed = [
                        (
                            e.name,
                            (info := e.stat(follow_symlinks=False)).st_dev,
                            info.st_ino,
                            info.st_mode,
                            info.st_size,
                            info.st_mtime_ns,
                            info.st_ctime_ns,
                        )
                        for e in entries
                    ]
            except (FileNotFoundError, NotADirectoryError):
                continue
            if listed:
                newest = max(newest, max(r[5] for r in listed), max(r[6] for r in listed))
            rows.extend(listed)
    except OSError:
        return None
    # Version 0: no back-references, so equal rows give equal bytes however they were built.
    return hashlib.sha256(marshal.dumps(rows, 0)).hexdigest(), newest


def _tree_digest(digest: Any, folder: Path) -> None:
    """Names and bytes of every file under ``folder`` (nothing when it does not exist)."""
    if not folder.is_dir():
        digest.update(b"\0absent\0")
        return
    for directory, subfolders, files in os.walk(folder):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".pyc"):
                continue
            path = Path(directory, name)
            content = path.read_bytes()
            digest.update(f"{path.relative_to(folder)}\0{len(content)}\0".encode())
            digest.update(content)


_CODE: list[str] = []


def code_fingerprint() -> str:
    """The reconciler's own files, Python's version and the libraries it renders with."""
    if not _CODE:
        digest = hashlib.sha256(f"{FORMAT}\0{sys.version}\0".encode())
        for name in _LIBRARIES:
            with contextlib.suppress(metadata.PackageNotFoundError):
                digest.update(f"{name}={metadata.version(name)}\0".encode())
        _tree_digest(digest, Path(__file__).resolve().parent)
        _CODE.append(digest.hexdigest())
    return _CODE[0]


class _ReadOnce:
    """The source, its files read once: the fingerprint and the load see the same bytes."""

    def __init__(self, source: InventorySource) -> None:
        self.source = source
        self._files: dict[str, bytes] | None = None
        self._revision: str | None = None

    def describe(self) -> str:
        return self.source.describe()

    def revision(self) -> str:
        if self._revision is None:
            self._revision = self.source.revision()
        return self._revision

    def read_files(self) -> dict[str, bytes]:
        if self._files is None:
            self._files = self.source.read_files()
        return self._files


@dataclass(frozen=True, slots=True)
class _TargetEntry:
    name: str
    kind: str
    owned: int
    unmanaged: tuple[str, ...]
    conflicts: tuple[str, ...]
    live: LiveFiles
    signature: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "owned": self.owned,
            "unmanaged": list(self.unmanaged),
            "conflicts": list(self.conflicts),
            "files": list(self.live.files),
            "folders": list(self.live.folders),
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, data: Any) -> _TargetEntry:
        """The entry, or ValueError/TypeError/KeyError for anything not of this shape."""
        strings = ("unmanaged", "conflicts", "files", "folders")
        if not all(isinstance(data[k], list) for k in strings) or not all(
            isinstance(item, str) for k in strings for item in data[k]
        ):
            raise TypeError("not lists of strings")
        if not isinstance(data["owned"], int) or not all(
            isinstance(data[k], str) for k in ("name", "kind", "signature")
        ):
            raise TypeError("wrong types")
        return cls(
            name=data["name"],
            kind=data["kind"],
            owned=data["owned"],
            unmanaged=tuple(data["unmanaged"]),
            conflicts=tuple(data["conflicts"]),
            live=LiveFiles(tuple(data["files"]), tuple(data["folders"])),
            signature=data["signature"],
        )

    def target_plan(self) -> TargetPlan:
        return TargetPlan(
            target=self.name,
            kind=self.kind,
            changes=(),
            owned_count=self.owned,
            unmanaged=self.unmanaged,
            conflicts=self.conflicts,
        )


class PlanCache:
    """One ``plan`` command's use of ``state_dir/plan-cache.json``: look up, then record."""

    def __init__(self, engine: Engine, source: InventorySource) -> None:
        self.engine = engine
        self.source = _ReadOnce(source)
        config = engine.config
        self.state_dir = config.resolve(config.state_dir)
        self.path = self.state_dir / CACHE_FILE
        self._base: str | None = None
        self._live: dict[str, tuple[LiveFiles, str] | None] = {}
        self._stored = self._read_entry()
        self._moved = False  # a lookup found output files changed

    # -- the inputs --------------------------------------------------------------
    def _base_key(self) -> str:
        """Everything but the rollout side: code, config, templates, inventory, revision."""
        if self._base is None:
            config = self.engine.config
            digest = hashlib.sha256(code_fingerprint().encode())
            digest.update(config.model_dump_json().encode() + b"\0")
            digest.update(f"{config.base_dir.resolve()}\0".encode())
            if config.boot.templates is not None:
                _tree_digest(digest, config.resolve(config.boot.templates))
            digest.update(f"{self.source.describe()}\0{self.source.revision()}\0".encode())
            for name, content in sorted(self.source.read_files().items()):
                digest.update(f"{name}\0{len(content)}\0".encode())
                digest.update(content)
            self._base = digest.hexdigest()
        return self._base

    def _files_key(self) -> str:
        """With the rollout state's files: what the assignments follow from when none move."""
        digest = hashlib.sha256(self._base_key().encode())
        _tree_digest(digest, self.state_dir / "rollouts")
        return digest.hexdigest()

    def _assigned_key(self, assignments: Mapping[str, str]) -> str:
        digest = hashlib.sha256(self._base_key().encode())
        digest.update(json.dumps(sorted(assignments.items())).encode())
        return digest.hexdigest()

    # -- lookup ----------------------------------------------------------------
    def _read_entry(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                return None
            targets = [_TargetEntry.from_json(item) for item in data["targets"]]
            if not isinstance(data["assigned"], str) or not isinstance(data["files"], str | None):
                return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None  # missing, damaged or not ours: the full path
        return {"assigned": data["assigned"], "files": data["files"], "targets": targets}

    def before_load(self) -> Plan | None:
        """The remembered plan when no rollout moves nodes and nothing changed, else None."""
        if self._stored is None or self._stored["files"] is None:
            return None
        if self._stored["files"] != self._files_key():
            return None
        return self._reuse()

    def after_rollouts(self, rollouts: RolloutPass) -> Plan | None:
        """The remembered plan when the inventory and every node's version are unchanged."""
        if self._stored is None or self._stored["assigned"] != self._assigned_key(
            rollouts.assignments
        ):
            return None
        return self._reuse()

    def _reuse(self) -> Plan | None:
        assert self._stored is not None
        if self._moved:
            return None
        entries: list[_TargetEntry] = self._stored["targets"]
        targets = self.engine.targets
        if [(e.name, e.kind) for e in entries] != [(t.name, t.kind) for t in targets]:
            return None
        for entry in entries:
            current = stat_signature(entry.live)
            if current is None or current[0] != entry.signature:
                log.info("plan cache: files changed", extra={"target": entry.name})
                self._moved = True  # the second lookup would find the same
                return None
        log.info("plan cache: inputs and outputs as the last no-op plan found them")
        return Plan(
            self.source.revision(),
            tuple(e.target_plan() for e in entries),
            self.engine.config.max_change_fraction,
        )

    # -- record (the engine calls these around each target's read) ---------------
    def before_read(self, target: Target, desired: Sequence[AnyResource]) -> None:
        self._live[target.name] = None
        if not isinstance(target, NamesLiveFiles):
            return
        try:
            live = target.live_files(desired)
        except (TargetError, OSError):
            return
        looked_at = time.time_ns()
        signature = stat_signature(live)
        if signature is not None and signature[1] < looked_at - RACY_NS:
            self._live[target.name] = (live, signature[0])

    def after_read(self, target: Target, desired: Sequence[AnyResource]) -> None:
        """Forget the target unless the files it names are still the ones signed before."""
        known = self._live.get(target.name)
        if known is None:
            return
        assert isinstance(target, NamesLiveFiles)
        try:
            same = target.live_files(desired) == known[0]
        except (TargetError, OSError):
            same = False
        if not same:
            self._live[target.name] = None

    def record(self, plan: Plan, rollouts: RolloutPass) -> None:
        """Remember a plan with nothing to do; anything else removes what was remembered."""
        entries: list[_TargetEntry] = []
        for target_plan in plan.targets:
            known = self._live.get(target_plan.target)
            if known is None or target_plan.changes or target_plan.error is not None:
                entries = []
                break
            entries.append(
                _TargetEntry(
                    name=target_plan.target,
                    kind=target_plan.kind,
                    owned=target_plan.owned_count,
                    unmanaged=target_plan.unmanaged,
                    conflicts=target_plan.conflicts,
                    live=known[0],
                    signature=known[1],
                )
            )
        if not entries or plan.nodes:
            if self._stored is not None:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            return
        static = all(
            decision.rollout is None or not decision.rollout.previous
            for decision in rollouts.decisions.values()
        )
        body = {
            "format": FORMAT,
            "files": self._files_key() if static else None,
            "assigned": self._assigned_key(rollouts.assignments),
            "targets": [entry.to_json() for entry in entries],
        }
        with contextlib.suppress(OSError):  # a read-only state dir only costs speed
            atomic_write(self.path, json.dumps(body, separators=(",", ":")))
