"""The accepted revision: the one revision in force, recorded in the state dir.

A revision is accepted when it passed every gate (signature, validation,
compile and render, change threshold) and was applied, by ``reconciler
watch`` or ``reconciler apply``. Every other entry point answers from it and
never from a branch head: ``serve`` hands out the boot scripts and node
assignments of this revision, ``status`` reports it, the node agent's
endpoints wait for it to change. Unsigned or broken commits on the branch are
therefore never served, even though they are the head.

The record says where the revision can be read back (a git repository and
commit, or a folder and its content fingerprint), so a reader can compile
exactly what was applied. ``accepted.json`` is written atomically; a reader
that finds it missing gets ``None`` ("nothing accepted yet"), and one that
finds it wrong-shaped gets a ``StateFileError`` naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reconciler.inventory.sources import FolderSource, GitSource, InventorySource
from reconciler.statefiles import StateFileError, read_json_object
from reconciler.targets.base import atomic_write

ACCEPTED_FILE = "accepted.json"
RECOVERY = "delete it and run `reconciler apply` (or let `reconciler watch` pass once)"


@dataclass(frozen=True, slots=True)
class AcceptedRevision:
    """Which revision is in force, who accepted it, and where to read it back."""

    revision: str  # a git commit, or ``folder-<hash>`` for a folder source
    accepted_by: str  # "watch" or "apply"
    accepted_at: float  # wall-clock time (seconds since the epoch)
    repo: str | None = None  # git directory holding ``revision`` (a mirror for remotes)
    path: str | None = None  # inventory folder, for a folder source
    subdir: str = ""  # inventory folder inside ``repo``

    def source(self) -> InventorySource:
        """The inventory exactly as accepted: the commit pinned, or the folder."""
        if self.repo is not None:
            return GitSource(Path(self.repo), self.revision, self.subdir)
        assert self.path is not None
        return FolderSource(Path(self.path))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, body: dict[str, Any], *, where: Path) -> AcceptedRevision:
        def text(key: str, *, optional: bool = False) -> Any:
            value = body.get(key)
            if value is None and optional:
                return None
            if not isinstance(value, str) or not value:
                raise StateFileError(where, f"'{key}' must be a non-empty string", RECOVERY)
            return value

        revision, accepted_by = text("revision"), text("accepted_by")
        stamp = body.get("accepted_at")
        if not isinstance(stamp, int | float) or isinstance(stamp, bool):
            raise StateFileError(where, "'accepted_at' must be a number", RECOVERY)
        record = cls(
            revision=revision,
            accepted_by=accepted_by,
            accepted_at=float(stamp),
            repo=text("repo", optional=True),
            path=text("path", optional=True),
            subdir=str(body.get("subdir") or ""),
        )
        if (record.repo is None) == (record.path is None):
            raise StateFileError(where, "exactly one of 'repo' and 'path' must be set", RECOVERY)
        return record

    @classmethod
    def of(cls, source: InventorySource, revision: str, *, by: str) -> AcceptedRevision:
        """The record for ``revision`` read from ``source`` (a git or folder source)."""
        if isinstance(source, GitSource):
            return cls(
                revision=revision,
                accepted_by=by,
                accepted_at=time.time(),
                repo=str(source.repo_path.resolve()),
                subdir=source.subdir,
            )
        assert isinstance(source, FolderSource)
        return cls(
            revision=revision,
            accepted_by=by,
            accepted_at=time.time(),
            path=str(source.path.resolve()),
        )


def revision_of(source: InventorySource) -> str:
    """A revision id: the commit of a git source, a content hash of a folder."""
    if isinstance(source, GitSource):
        return source.revision()
    digest = hashlib.sha256()
    for name, content in sorted(source.read_files().items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return f"folder-{digest.hexdigest()[:16]}"


class AcceptedStore:
    """Reads and writes ``state_dir/accepted.json``; ``stamp`` tells cheaply if it changed."""

    def __init__(self, state_dir: Path, *, path: Path | None = None) -> None:
        self.path = path if path is not None else state_dir / ACCEPTED_FILE

    def read(self) -> AcceptedRevision | None:
        """The accepted revision, None before any; StateFileError when the file is damaged."""
        body = read_json_object(self.path, recovery=RECOVERY)
        if body is None:
            return None
        return AcceptedRevision.from_dict(body, where=self.path)

    def record(self, accepted: AcceptedRevision) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(accepted.to_dict(), indent=2, sort_keys=True) + "\n")

    def stamp(self) -> tuple[int, int, int] | None:
        """(inode, size, mtime_ns) of the record, None when absent: changes on every write."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)
