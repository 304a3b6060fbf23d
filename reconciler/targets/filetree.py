"""A folder of files, one per resource: the shape of boot files and node image assignments.

Live state is what is on disk. Only files the ownership ledger lists are read
as owned; other files under the managed patterns are reported as unmanaged and
never removed. Writes are atomic (temp file and rename), so an apply cut short
leaves every file either old or new, and an apply with nothing to do writes
nothing at all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from reconciler.resources import AnyResource, DesiredState
from reconciler.targets.base import (
    Action,
    ApplyResult,
    Change,
    LiveState,
    OwnershipLedger,
    TargetError,
    stage_file,
)

log = logging.getLogger(__name__)


class FileTreeTarget:
    """Base for targets that keep one file per resource under ``root``."""

    kind: ClassVar[str] = "file-tree"
    live_update: ClassVar[bool] = True
    batch_size: ClassVar[int] = 1
    # Folders (relative to root) whose files this target may own.
    managed_folders: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, name: str, root: Path, state_dir: Path) -> None:
        self.name = name
        self.root = root
        self.ledger = OwnershipLedger(state_dir, name)

    # -- to be provided by subclasses --------------------------------------
    def desired(self, state: DesiredState) -> Sequence[AnyResource]:
        raise NotImplementedError

    def path_of(self, key: str) -> str:
        """The file, relative to root, that holds the resource with this key."""
        raise NotImplementedError

    def encode(self, resource: AnyResource) -> str:
        """The content of a resource's file."""
        raise NotImplementedError

    def decode(self, relative: str, content: str) -> AnyResource:
        """The resource a file on disk holds (for a file someone else made, too)."""
        raise NotImplementedError

    # -- the Target protocol -----------------------------------------------
    def read(self, desired: Sequence[AnyResource]) -> LiveState:
        wanted = {resource.key: resource for resource in desired}
        owned_keys = self.ledger.load()
        owned_paths = {self.path_of(key) for key in owned_keys}
        owned: dict[str, AnyResource] = {}
        unmanaged: dict[str, AnyResource] = {}
        try:
            for key in sorted(owned_keys):
                relative = self.path_of(key)
                content = self._read(relative)
                if content is None:
                    continue
                resource = wanted.get(key)
                # Fast path: a file that already holds what we want needs no decoding.
                if resource is not None and self.encode(resource) == content:
                    owned[key] = resource
                else:
                    owned[key] = self.decode(relative, content)
            for folder in self.managed_folders:
                directory = self.root / folder
                if not directory.is_dir():
                    continue
                with os.scandir(directory) as entries:
                    for entry in entries:
                        relative = f"{folder}/{entry.name}"
                        if (
                            relative in owned_paths
                            or entry.name.startswith(".")
                            or not entry.is_file()
                        ):
                            continue
                        text = Path(entry.path).read_text(errors="replace")
                        resource = self.decode(relative, text)
                        unmanaged[resource.key] = resource
        except OSError as error:
            raise TargetError(self.name, f"cannot read {self.root}: {error}") from error
        return LiveState(owned=owned, unmanaged=unmanaged)

    def _read(self, relative: str) -> str | None:
        try:
            with open(self.root / relative, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        """Write every new file beside its target, sync once, then rename them all in.

        One sync for the whole batch instead of one per file keeps a first apply
        of 30,000 files fast; the renames still make each file appear whole.
        """
        result = ApplyResult()
        self.ledger.widen(c.key for c in changes if c.new is not None)
        staged: list[tuple[Path, Path]] = []
        deleted: list[str] = []
        try:
            for change in changes:
                if change.new is None:
                    continue
                content = self.encode(change.new)
                if change.old is not None and self.encode(change.old) == content:
                    continue  # adopting a file that already holds what we want
                path = self.root / self.path_of(change.key)
                staged.append((stage_file(path, content), path))
            if staged:
                os.sync()
            for temporary, path in staged:
                os.replace(temporary, path)
                result.writes += 1
            for change in changes:
                if change.action is Action.DELETE:
                    (self.root / self.path_of(change.key)).unlink(missing_ok=True)
                    deleted.append(change.key)
                    result.writes += 1
                result.applied += 1
                log.info(
                    "applied change",
                    extra={"target": self.name, "action": change.action.value, "key": change.key},
                )
        except OSError as error:
            raise TargetError(self.name, f"cannot write under {self.root}: {error}") from error
        finally:
            for temporary, _ in staged:
                temporary.unlink(missing_ok=True)
            self.ledger.narrow(deleted)
        return result
