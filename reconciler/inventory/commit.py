"""Commit one changed inventory file to a branch, in a bare repository or a working tree.

The commit is built from blobs in a throw-away index (gitpython), never from
the repository's own index, so whatever someone has staged is not swept into
it, and a bare repository works the same as a clone. The branch moves with a
compare-and-swap (``git update-ref <new> <old>``): if anything else moved it
in between, the commit is refused with ``BranchMoved`` and the caller starts
again from the new head. When the branch is checked out in a working tree,
the file there is updated too, and only if it was unmodified.

With a signing key, the commit is made by ``git commit-tree -S`` with git's
SSH signing (``gpg.format=ssh``), so a watch loop that only applies signed
commits (``verify_signatures = "ssh"``) accepts registrations too.
"""

from __future__ import annotations

import io
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import git
from git.db import IStream  # type: ignore[attr-defined]  # re-exported from gitdb
from git.index.typ import BaseIndexEntry

FILE_MODE = 0o100644


class CommitError(Exception):
    """The change cannot be committed; the message says why and what to do."""


class BranchMoved(CommitError):
    """The branch head changed between reading it and committing; read it again."""


@dataclass(frozen=True, slots=True)
class Author:
    name: str
    email: str


class InventoryBranch:
    """A branch of an inventory repository that the service reads from and commits to."""

    def __init__(self, repo_path: Path, branch: str) -> None:
        try:
            self.repo = git.Repo(repo_path)
        except (git.NoSuchPathError, git.InvalidGitRepositoryError):
            raise CommitError(f"{repo_path}: not a git repository") from None
        if branch == "HEAD":
            if self.repo.head.is_detached:
                raise CommitError(
                    f"{repo_path}: HEAD is detached; set [serve] branch to the branch to commit to"
                )
            branch = self.repo.head.ref.name
        self.branch = branch
        self.ref = f"refs/heads/{branch}"

    def head(self) -> git.Commit:
        try:
            return self.repo.commit(self.ref)
        except (git.BadName, ValueError):
            raise CommitError(
                f"branch {self.branch!r} does not exist in {self.repo.git_dir}; create it "
                "or set [serve] branch"
            ) from None

    def read(self, commit: git.Commit, path: str) -> bytes | None:
        try:
            blob = commit.tree / path
        except KeyError:
            return None
        data: bytes = blob.data_stream.read()
        return data

    def last_commit_mentioning(self, text: str) -> str | None:
        """The newest commit on the branch whose message contains ``text``, if any."""
        found = self.repo.git.log(self.ref, "-1", "--format=%H", "-F", f"--grep={text}")
        return str(found).strip() or None

    def _checked_out_file(self, path: str) -> Path | None:
        """The working tree file, when this branch is checked out in a non-bare repository."""
        if self.repo.bare or self.repo.head.is_detached or self.repo.head.ref.path != self.ref:
            return None
        return Path(self.repo.working_tree_dir or ".") / path

    def commit_file(
        self,
        *,
        parent: git.Commit,
        path: str,
        content: bytes,
        message: str,
        author: Author,
        signing_key: Path | None = None,
    ) -> str:
        """Commit ``content`` as ``path`` on top of ``parent``; return the new commit's sha.

        ``signing_key``: an SSH private key file to sign the commit with.
        """
        if self.head().hexsha != parent.hexsha:
            raise BranchMoved(f"branch {self.branch} moved; read it again")
        worktree_file = self._checked_out_file(path)
        old = self.read(parent, path)
        if worktree_file is not None:
            current = worktree_file.read_bytes() if worktree_file.exists() else None
            if current != old:
                raise CommitError(
                    f"{worktree_file} has uncommitted changes; commit or discard them so "
                    "registrations can be committed"
                )
        blob = self.repo.odb.store(IStream(git.Blob.type, len(content), io.BytesIO(content)))
        # from_tree reads the tree into a temporary index file of its own: the
        # repository's index is never touched.
        index = git.IndexFile.from_tree(self.repo, parent.tree)
        index.add([BaseIndexEntry((FILE_MODE, blob.binsha, 0, path))], write=False)
        tree = index.write_tree()
        if signing_key is not None:
            sha = self._signed_commit(tree.hexsha, parent.hexsha, message, author, signing_key)
        else:
            actor = git.Actor(author.name, author.email)
            sha = git.Commit.create_from_tree(
                self.repo, tree, message, parent_commits=[parent], head=False,
                author=actor, committer=actor,
            ).hexsha  # fmt: skip
        try:
            self.repo.git.update_ref(self.ref, sha, parent.hexsha)
        except git.GitCommandError:
            raise BranchMoved(f"branch {self.branch} moved while committing") from None
        if worktree_file is not None:
            worktree_file.parent.mkdir(parents=True, exist_ok=True)
            worktree_file.write_bytes(content)
            self.repo.git.add("--", path)
        return str(sha)

    def _signed_commit(
        self, tree: str, parent: str, message: str, author: Author, signing_key: Path
    ) -> str:
        """``git commit-tree -S`` with an SSH key: the sha of a signed commit (no ref moves)."""
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_COMMITTER_NAME": author.name,
            "GIT_COMMITTER_EMAIL": author.email,
        }
        argv = [
            "git", f"--git-dir={self.repo.git_dir}",
            "-c", "gpg.format=ssh", "-c", f"user.signingkey={signing_key}",
            "commit-tree", tree, "-p", parent, "-S", "-F", "-",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                argv, input=message, env=env, capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise CommitError(f"cannot sign the commit with {signing_key}: {error}") from None
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
            raise CommitError(
                f"cannot sign the commit with {signing_key}: "
                f"{'; '.join(lines[-2:]) or 'git commit-tree failed'}; check [serve] signing_key "
                "(an SSH private key file, mode 0600, without a passphrase)"
            )
        return done.stdout.strip()
