"""A folder of files, one per resource: the shape of boot files and node image assignments.

Live state is what is on disk (a manifest of sizes, mtimes and hashes spares
reading files that did not change since we wrote them). Only files the
ownership ledger lists are read as owned; other files under the managed
folders are reported as unmanaged and never removed. Writes are atomic (temp
file and rename), so an apply cut short leaves every file either old or new,
and an apply with nothing to do writes nothing at all.

Every path comes from a key, and keys come from the ledger, a file someone
could edit. So a key whose file would lie outside ``root`` (``..``, an
absolute path, a folder that is a symbolic link out of the tree) or is itself
a symbolic link is refused before anything is read, written or deleted.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from reconciler.plan_cache import LiveFiles
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
from reconciler.targets.file_batch import as_recorded
from reconciler.targets.file_preread import PreRead, owned_as_pre_read
from reconciler.targets.manifest import Manifest, digest

log = logging.getLogger(__name__)

FEW_FILES = 16  # an apply of at most this many files syncs each one, not the machine


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
        self.manifest = Manifest(state_dir, name)
        self._real_root = ""
        self._checked_folders: set[str] = set()
        # Handed over before a parallel plan's read, used once (``file_preread``).
        self.pre_read: PreRead | None = None

    # -- to be provided by subclasses --------------------------------------
    def desired(self, state: DesiredState) -> Sequence[AnyResource]:
        raise NotImplementedError

    def path_of(self, key: str) -> str:
        """The file, relative to root, that holds the resource with this key."""
        raise NotImplementedError

    def encode(self, resource: AnyResource) -> str:
        """The content of a resource's file."""
        raise NotImplementedError

    def contents(self, resources: Sequence[AnyResource]) -> list[str]:
        """``encode`` of each resource (a subclass may do all at once faster)."""
        return list(map(self.encode, resources))

    def decode(self, relative: str, content: str) -> AnyResource:
        """The resource a file on disk holds (for a file someone else made, too)."""
        raise NotImplementedError

    # -- confinement ---------------------------------------------------------
    def _confined(self, key: str) -> str:
        """``root/path_of(key)`` as a string, or TargetError when it could leave ``root``."""
        relative = self.path_of(key)
        folder = relative.rpartition("/")[0]
        # String tests, not a split per key: this runs for every file of a 30,000-file pass.
        ok = not (
            relative.startswith(("/", "./"))
            or relative.endswith(("/", "/."))
            or ".." in relative  # refuses a few odd names too; compile never makes them
            or "//" in relative
            or "/./" in relative
            or "\0" in relative
            or relative in ("", ".")
        )
        if ok and folder not in self._checked_folders:
            ok = self._folder_inside(folder)
        if not ok:
            raise self._outside(key, relative, "resolves outside")
        return f"{self.root}/{relative}"  # plain strings: pathlib costs 30k times

    def _folder_inside(self, folder: str) -> bool:
        """Whether ``root/folder`` resolves inside the root (remembered when it does)."""
        if not self._real_root:
            self._real_root = os.path.realpath(self.root)
        real = os.path.realpath(os.path.join(self._real_root, folder))
        inside = real == self._real_root or real.startswith(self._real_root + os.sep)
        if inside:
            self._checked_folders.add(folder)
        return inside

    def _outside(self, key: str, relative: str, what: str) -> TargetError:
        return TargetError(
            self.name,
            f"the entry {key!r} (file {relative!r}) {what} {self.root}; it was refused and "
            f"nothing was read, written or deleted for it. Remove it from {self.ledger.path} "
            "(and the symbolic link, if one is in the way) and find out who changed it",
        )

    def _refuse_link(self, key: str, path: str) -> None:
        """A symbolic link where a file of ours should be is never followed."""
        try:
            mode = os.lstat(path).st_mode
        except OSError:  # missing, or a folder in the way: the write reports it
            return
        if stat.S_ISLNK(mode):
            raise self._outside(key, self.path_of(key), "is a symbolic link under")

    def live_files(self, desired: Sequence[AnyResource]) -> LiveFiles:
        """Every file and folder ``read`` looks at (``reconciler.plan_cache`` signs them)."""
        root = str(self.root)
        folders = tuple(f"{root}/{folder}" for folder in self.managed_folders)
        managed = set(self.managed_folders)
        elsewhere = set()  # files read one by one, not found by listing a managed folder
        for keys in (self.ledger.load(), (resource.key for resource in desired)):
            for key in keys:
                relative = self.path_of(key)
                if relative.rpartition("/")[0] not in managed:
                    elsewhere.add(f"{root}/{relative}")
        files = (str(self.ledger.path), root, *folders, *sorted(elsewhere))
        return LiveFiles(files, folders)

    # -- the Target protocol -----------------------------------------------
    def read(self, desired: Sequence[AnyResource]) -> LiveState:
        wanted = {resource.key: resource for resource in desired}
        pre, self.pre_read = self.pre_read, None
        self._real_root, self._checked_folders = "", set()
        unmanaged: dict[str, AnyResource] = {}
        try:
            if pre is None:
                relatives, owned = self._read_owned_files(wanted)
                owned_paths = set(relatives)
                foreign = {f: self.foreign_names(f, owned_paths) for f in self.managed_folders}
            else:
                owned, foreign = owned_as_pre_read(self, pre, wanted), pre.foreign
            for folder, names in foreign.items():
                self._read_foreign(folder, names or [], unmanaged)
            # A file we want outside the managed folders (boot.ipxe at the root) that
            # someone else made is theirs too: never overwritten without adoption.
            for key in wanted.keys() - owned.keys() - unmanaged.keys():
                theirs = self.root / self.path_of(key)
                if theirs.is_file():
                    text = theirs.read_text(errors="replace")
                    unmanaged[key] = self.decode(self.path_of(key), text)
        except OSError as error:
            raise TargetError(self.name, f"cannot read {self.root}: {error}") from error
        self.manifest.save_if_noted()
        return LiveState(owned=owned, unmanaged=unmanaged)

    def _read_owned_files(
        self, wanted: dict[str, AnyResource]
    ) -> tuple[list[str], dict[str, AnyResource]]:
        """The ledger keys' files (``path_of``), and the live resources of those that exist."""
        keys = self.ledger.sorted_keys()
        self.manifest.load()
        looked_at = time.time_ns()  # before any lstat: see Manifest's racy rule
        owned: dict[str, AnyResource] = {}
        relatives = list(map(self.path_of, keys))
        batch = as_recorded(self, keys, relatives, wanted)
        if batch is None:  # an odd key or a missing file: one by one, in order
            for key in keys:
                self._look_at(key, wanted.get(key), owned, looked_at=looked_at)
        else:
            owned, left = batch
            for key, path, info in left:
                self._look_at(key, wanted.get(key), owned, looked_at=looked_at, seen=(path, info))
            if left:  # in key order, as one by one
                owned = {key: owned[key] for key in keys if key in owned}
        return relatives, owned

    def _look_at(
        self,
        key: str,
        want: AnyResource | None,
        owned: dict[str, AnyResource],
        *,
        looked_at: int,
        seen: tuple[str, os.stat_result] | None = None,
    ) -> None:
        """Put the live resource under ``key`` into ``owned`` (nothing when its file is gone);
        ``seen``: its path and lstat, when already taken."""
        if seen is None:
            path = self._confined(key)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                return
        else:
            path, info = seen
        if want is not None and not stat.S_ISLNK(info.st_mode):
            recorded = self.manifest.unchanged_digest(key, info)
            if recorded is not None and recorded == digest(self.encode(want)):
                owned[key] = want
                return
        resource = self._read_owned(key, want, path=path, info=info, looked_at=looked_at)
        if resource is not None:
            owned[key] = resource

    def foreign_names(self, folder: str, owned_paths: set[str]) -> list[str] | None:
        """The names in a managed folder that the ledger does not list (sorted, no dot
        files), or None when it is not a folder."""
        directory = self.root / folder
        if directory.is_symlink() or not directory.is_dir():
            return None
        # Names first, compared as sets: at 200,000 files of ours, a scandir entry
        # per file costs more than the whole comparison.
        # Each name as a path from the root, so no set of ours is made per folder.
        prefix = f"{folder}/"
        listed = set(map(prefix.__add__, os.listdir(directory))) - owned_paths
        others = (path[len(prefix) :] for path in listed)
        return sorted(name for name in others if not name.startswith("."))

    def _read_foreign(
        self, folder: str, names: list[str], unmanaged: dict[str, AnyResource]
    ) -> None:
        """Files in a managed folder that the ledger does not list: someone else's."""
        directory = self.root / folder
        prefix = f"{folder}/"
        for name in names:
            path = f"{directory}/{name}"
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:  # removed since listed
                continue
            if stat.S_ISDIR(mode) or not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                continue
            if stat.S_ISLNK(mode):
                # A link is listed, never followed: it could point anywhere.
                if not os.path.isfile(path):
                    continue
                text = ""
            else:
                text = Path(path).read_text(errors="replace")
            foreign = self.decode(prefix + name, text)
            unmanaged[foreign.key] = foreign

    def _read_owned(
        self,
        key: str,
        wanted: AnyResource | None,
        *,
        path: str,
        info: os.stat_result,
        looked_at: int,
    ) -> AnyResource | None:
        """The live resource under ``key`` (at ``path``, lstat ``info``), read from the file."""
        relative = self.path_of(key)
        if stat.S_ISLNK(info.st_mode):
            raise self._outside(key, relative, "is a symbolic link under")
        with open(path, encoding="utf-8", errors="replace") as handle:
            content = handle.read()
        self.manifest.note(key, info, content, looked_at=looked_at)
        if wanted is not None and self.encode(wanted) == content:
            return wanted
        return self.decode(relative, content)

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        """Write every new file beside its target, sync once, then rename them all in.

        One sync for the whole batch instead of one per file keeps a first apply
        of 30,000 files fast; the renames still make each file appear whole. A batch
        of a few files syncs each instead: a sync of every file system waits for
        whatever else the machine writes (a one-host commit: two boot files).
        """
        result = ApplyResult()
        self._real_root, self._checked_folders = "", set()
        for change in changes:  # all refused before anything is written
            self._refuse_link(change.key, self._confined(change.key))
        self.ledger.widen(c.key for c in changes if c.new is not None)
        staged: list[tuple[Path, Path, str, str]] = []
        deleted: list[str] = []
        few = len(changes) <= FEW_FILES
        try:
            for change in changes:
                if change.new is None:
                    continue
                content = self.encode(change.new)
                path = Path(self._confined(change.key))
                if change.old is not None and self.encode(change.old) == content:
                    continue  # adopted as it is (the read noted it, when it read it)
                staged.append((stage_file(path, content, sync=few), path, change.key, content))
            if staged and not few:
                os.sync()
            for temporary, path, key, content in staged:
                os.replace(temporary, path)
                self.manifest.record(key, path, content)
                result.writes += 1
            for change in changes:
                if change.action is Action.DELETE:
                    Path(self._confined(change.key)).unlink(missing_ok=True)
                    self.manifest.forget(change.key)
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
            for temporary, *_ in staged:
                temporary.unlink(missing_ok=True)
            self.ledger.narrow(deleted)
            if changes:
                self.manifest.save_quietly()
        return result
