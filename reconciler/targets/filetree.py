"""A folder of files, one per resource: the shape of boot files and node image assignments.

Live state is what is on disk. Only files the ownership ledger lists are read
as owned; other files under the managed patterns are reported as unmanaged and
never removed. Writes are atomic (temp file and rename), so an apply cut short
leaves every file either old or new, and an apply with nothing to do writes
nothing at all.
"""

from __future__ import annotations

import logging
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
    atomic_write,
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
        owned_keys = self.ledger.load()
        owned_paths = {self.path_of(key) for key in owned_keys}
        owned: dict[str, AnyResource] = {}
        unmanaged: dict[str, AnyResource] = {}
        try:
            for key in sorted(owned_keys):
                relative = self.path_of(key)
                content = self._read(relative)
                if content is not None:
                    owned[key] = self.decode(relative, content)
            for folder in self.managed_folders:
                directory = self.root / folder
                if not directory.is_dir():
                    continue
                for entry in directory.iterdir():
                    relative = f"{folder}/{entry.name}"
                    if relative in owned_paths or entry.name.startswith(".") or not entry.is_file():
                        continue
                    resource = self.decode(relative, entry.read_text(errors="replace"))
                    unmanaged[resource.key] = resource
        except OSError as error:
            raise TargetError(self.name, f"cannot read {self.root}: {error}") from error
        return LiveState(owned=owned, unmanaged=unmanaged)

    def _read(self, relative: str) -> str | None:
        try:
            return (self.root / relative).read_text()
        except FileNotFoundError:
            return None

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        result = ApplyResult()
        self.ledger.widen(c.key for c in changes if c.new is not None)
        deleted: list[str] = []
        try:
            for change in changes:
                path = self.root / self.path_of(change.key)
                if change.action is Action.DELETE:
                    path.unlink(missing_ok=True)
                    deleted.append(change.key)
                    result.writes += 1
                elif change.new is not None:
                    content = self.encode(change.new)
                    if change.old is None or self.encode(change.old) != content:
                        atomic_write(path, content)
                        result.writes += 1
                result.applied += 1
                log.info(
                    "applied change",
                    extra={"target": self.name, "action": change.action.value, "key": change.key},
                )
        except OSError as error:
            raise TargetError(self.name, f"cannot write under {self.root}: {error}") from error
        finally:
            self.ledger.narrow(deleted)
        return result
