"""Where an inventory revision's files come from: a folder, or a commit in git.

Both give the loader the same thing, a mapping of relative path to bytes, so a
working tree, a bare repository and a pull request's head load identically.
Git blobs are read straight from the object store (gitpython); nothing is
checked out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import git

INVENTORY_FOLDERS = ("groups", "images")


class SourceError(Exception):
    """The inventory cannot be read at all (missing folder, unknown revision)."""


class InventorySource(Protocol):
    def describe(self) -> str: ...

    def revision(self) -> str: ...

    def read_files(self) -> dict[str, bytes]: ...


def _wanted(relative: str) -> bool:
    parts = relative.split("/")
    return (len(parts) == 1 and parts[0].startswith("site.")) or (
        len(parts) == 2 and parts[0] in INVENTORY_FOLDERS and not parts[1].startswith(".")
    )


class FolderSource:
    """An inventory folder on disk, such as a working tree."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return str(self.path)

    def revision(self) -> str:
        return "working-tree"

    def read_files(self) -> dict[str, bytes]:
        if not self.path.is_dir():
            raise SourceError(f"{self.path}: no such inventory folder")
        try:
            return self._read_files()
        except OSError as error:
            raise SourceError(
                f"{self.path}: cannot read {error.filename or 'the inventory'} "
                f"({error.strerror or error}); fix its permissions or restore it"
            ) from None

    def _read_files(self) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        for candidate in [self.path / "site.yaml", self.path / "site.yml"]:
            if candidate.is_file():
                files[candidate.name] = candidate.read_bytes()
        for folder in INVENTORY_FOLDERS:
            directory = self.path / folder
            if directory.is_dir():
                for entry in sorted(directory.iterdir()):
                    if entry.is_file() and not entry.name.startswith("."):
                        files[f"{folder}/{entry.name}"] = entry.read_bytes()
        return files


class GitSource:
    """An inventory inside a git repository at a revision, read from blobs."""

    def __init__(self, repo: Path, rev: str = "HEAD", subdir: str = "") -> None:
        self.repo_path = repo
        self.rev = rev
        self.subdir = subdir.strip("/")
        self._commit: git.Commit | None = None

    def describe(self) -> str:
        where = f"{self.repo_path}@{self.rev}"
        return f"{where}:{self.subdir}" if self.subdir else where

    def _resolve(self) -> git.Commit:
        import git  # GitPython: imported when a git source is read, never for a folder

        if self._commit is None:
            try:
                repo = git.Repo(self.repo_path)
            except (git.NoSuchPathError, git.InvalidGitRepositoryError):
                raise SourceError(f"{self.repo_path}: not a git repository") from None
            try:
                self._commit = repo.commit(self.rev)
            except (git.BadName, ValueError):
                raise SourceError(
                    f"{self.repo_path}: revision {self.rev!r} not found; "
                    "give a branch, tag or commit that exists"
                ) from None
        return self._commit

    def revision(self) -> str:
        return str(self._resolve().hexsha)

    def read_files(self) -> dict[str, bytes]:
        import git  # GitPython: imported when a git source is read, never for a folder

        try:
            return self._read_files()
        except (ValueError, OSError, git.GitError) as error:  # a damaged object store
            raise SourceError(
                f"{self.describe()}: cannot read the inventory from git ({error}); "
                "the repository may be damaged: check it with `git fsck`"
            ) from None

    def _read_files(self) -> dict[str, bytes]:
        import git  # GitPython: imported when a git source is read, never for a folder

        tree = self._resolve().tree
        if self.subdir:
            try:
                tree = tree / self.subdir
                if not isinstance(tree, git.Tree):
                    raise KeyError(self.subdir)
            except KeyError:
                raise SourceError(
                    f"{self.describe()}: folder {self.subdir!r} does not exist in that commit"
                ) from None
        files: dict[str, bytes] = {}
        for blob in tree.traverse():
            if not isinstance(blob, git.Blob):
                continue
            relative = str(blob.path)[len(self.subdir) + 1 :] if self.subdir else str(blob.path)
            if _wanted(relative):
                files[relative] = blob.data_stream.read()
        return files
