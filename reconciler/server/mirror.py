"""serve's own copy of the accepted commit, for a serve that does not share the writer's disk.

``accepted.json`` names the git directory the revision was applied from: the
writer's (``watch``'s or the operator's) mirror. A ``serve`` in another pod
or on another machine cannot read that folder, so with ``[serve] mirror_url``
(and the credentials of a private repository: ``mirror_credentials_file``,
``ssh_identity``, ``ssh_known_hosts``) it keeps a mirror of its own
(``state_dir/serve/mirror.git``) and reads the accepted commit from there:
when the record names a commit the mirror does not hold, serve fetches, then
reads exactly that commit by its id. A branch head is never read; a record
whose revision is not a commit id is refused.
"""

from __future__ import annotations

import re
from pathlib import Path

from reconciler.accepted import AcceptedRevision
from reconciler.inventory.sources import GitSource, SourceError
from reconciler.watch.sources import RemoteSource, SourceUnavailable, git_command

COMMIT_ID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")  # SHA-1 or SHA-256 repositories


class AcceptedMirror:
    """Fetches ``url`` into ``path`` when the accepted commit is not there yet."""

    def __init__(
        self,
        url: str,
        *,
        path: Path,
        timeout: float = 120.0,
        credentials_file: Path | None = None,
        ssh_identity: Path | None = None,
        ssh_known_hosts: Path | None = None,
    ) -> None:
        # RemoteSource's fetch: clone --mirror, credentials through GIT_ASKPASS or
        # GIT_SSH_COMMAND (the [serve] settings), redacted errors.
        self.remote = RemoteSource(
            url,
            mirror=path,
            rev="HEAD",
            subdir="",
            timeout=timeout,
            credentials_file=credentials_file,
            ssh_identity=ssh_identity,
            ssh_known_hosts=ssh_known_hosts,
        )
        self.remote.table = "serve"

    @property
    def path(self) -> Path:
        return self.remote.repo

    def _holds(self, commit: str) -> bool:
        if not (self.path / "HEAD").exists():
            return False
        try:
            git_command(self.path, "cat-file", "-e", f"{commit}^{{commit}}")
        except SourceUnavailable:
            return False
        return True

    def source(self, accepted: AcceptedRevision) -> GitSource:
        """The accepted commit in this mirror, fetched first when missing; SourceError if not."""
        commit = accepted.revision
        if not COMMIT_ID.match(commit):
            raise SourceError(
                f"accepted revision {commit!r} is not a git commit id; [serve] mirror_url "
                "serves commits accepted by watch or the operator, never a branch or a folder"
            )
        if not self._holds(commit):
            try:
                self.remote.fetch()
            except SourceUnavailable as error:
                message = f"cannot fetch the accepted commit {commit[:12]}: {error}"
                raise SourceError(message) from None
            if not self._holds(commit):
                raise SourceError(
                    f"the accepted commit {commit[:12]} is not in {self.remote.shown_url} "
                    "(fetched just now): does [serve] mirror_url name the repository the "
                    "reconciler applies from?"
                )
        return GitSource(self.path, commit, accepted.subdir)
