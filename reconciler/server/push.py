"""Registration commits for a site applied from a remote repository: fetch, commit, push.

When ``watch`` fetches the inventory from a remote (``[watch] remote``) or the
Kubernetes operator does (serve then has ``[serve] mirror_url``), a commit to
a local branch would never be applied. So serve keeps a small bare work
repository (``state_dir/serve/registration.git``), fetches the remote branch
into it before every enrolment, commits the registration on top of that head
and pushes it with a plain ``git push``, never forced: the remote's own
fast-forward check is the compare-and-swap. When someone else pushed in
between (another serve, a person), the push is rejected and the enroller
starts again from the new head, so indexes stay sequential.

Credentials are handled as for the watch fetch: taken out of the URL (or read
from ``push_credentials_file``) and given to git through ``GIT_ASKPASS``;
every message shows the redacted URL only.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from reconciler.watch.credentials import checked_git_transport
from reconciler.watch.sources import redact_url, scrub_secrets


class RemoteUnavailable(Exception):
    """The remote cannot be read or written now (unreachable, refused, timed out)."""


class PushRejected(Exception):
    """The remote did not take the commit; the message says what git answered."""


class RegistrationRemote:
    """The remote branch registrations are pushed to, through a bare work repository."""

    def __init__(
        self,
        url: str,
        *,
        work: Path,
        branch: str,
        credentials_file: Path | None = None,
        ssh_identity: Path | None = None,
        ssh_known_hosts: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.url = url  # handed to git only; everything shown uses shown_url
        self.shown_url = redact_url(url)
        self.work = work
        self.wanted = branch
        self.credentials_file = credentials_file
        self.ssh_identity = ssh_identity
        self.ssh_known_hosts = ssh_known_hosts
        self.timeout = timeout
        self._branch: str | None = None

    def _transport(self) -> tuple[str, dict[str, str] | None]:
        """The URL to give git and the environment carrying its credentials."""
        return checked_git_transport(
            self.url,
            folder=self.work.parent,
            credentials_file=self.credentials_file,
            ssh_identity=self.ssh_identity,
            ssh_known_hosts=self.ssh_known_hosts,
            table="serve",
            credentials_setting="push_credentials_file",
            error=RemoteUnavailable,
        )

    def _git(self, *args: str) -> subprocess.CompletedProcess[str]:
        url, env = self._transport()
        argv = ["git", f"--git-dir={self.work}", *(url if a == "{url}" else a for a in args)]
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout, env=env
            )
        except subprocess.TimeoutExpired:
            raise RemoteUnavailable(
                f"git {args[0]} to {self.shown_url} took more than {self.timeout:g} s"
            ) from None

    def _detail(self, done: subprocess.CompletedProcess[str]) -> str:
        """What went wrong: the remote's own words, git's error, a rejected ref's reason."""
        said = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        said = [ln for ln in said if not ln.startswith(("hint:", "error: failed to push"))]
        # ``--porcelain`` lines of refused refs: "!<TAB>src:dst<TAB>[rejected] (why)".
        said += [ln.split("\t")[-1] for ln in done.stdout.splitlines() if ln.startswith("!")]
        text = "; ".join(said[-3:]) or f"git exited {done.returncode}"
        return scrub_secrets(text, self.url)

    def branch(self) -> str:
        """The branch to push to; ``HEAD`` is asked of the remote (its default branch)."""
        if self._branch is not None:
            return self._branch
        if self.wanted != "HEAD":
            self._branch = self.wanted
            return self._branch
        done = self._git("ls-remote", "--symref", "{url}", "HEAD")
        for line in done.stdout.splitlines():
            target, _, name = line.partition("\t")
            if name == "HEAD" and target.startswith("ref: refs/heads/"):
                self._branch = target.removeprefix("ref: refs/heads/")
                return self._branch
        problem = self._detail(done) if done.returncode else "it names no default branch"
        raise RemoteUnavailable(
            f"cannot find out the default branch of {self.shown_url} ({problem}); "
            "set [serve] branch"
        )

    def fetch(self) -> str:
        """Bring the work repository's branch to the remote's head; return the branch name."""
        if not (self.work / "HEAD").exists():
            self.work.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["git", "init", "--quiet", "--bare", str(self.work)],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip
        branch = self.branch()
        ref = f"refs/heads/{branch}"
        done = self._git("fetch", "--quiet", "--no-tags", "{url}", f"+{ref}:{ref}")
        if done.returncode != 0:
            detail = self._detail(done)
            if "couldn't find remote ref" in detail:
                raise RemoteUnavailable(
                    f"branch {branch!r} does not exist in {self.shown_url}; create it or set "
                    "[serve] branch"
                )
            raise RemoteUnavailable(f"cannot fetch {branch} from {self.shown_url}: {detail}")
        return branch

    def push(self, commit: str) -> None:
        """Push ``commit`` as the new head of the branch; PushRejected if the remote says no."""
        branch = self.branch()
        done = self._git("push", "--quiet", "--porcelain", "{url}", f"{commit}:refs/heads/{branch}")
        if done.returncode != 0:
            raise PushRejected(self._detail(done))
