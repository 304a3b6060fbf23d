"""Where new revisions come from: a local repository's refs, or a remote fetched into a mirror.

Each source answers one question, ``resolve()``: which commit is the revision
to run now. A local repository is watched with watchdog on the files git
rewrites when a branch moves (``refs/heads/...``, ``packed-refs``, ``HEAD``),
so a commit or a push into it fires the loop's trigger at once; a cheap ref
check every few seconds backs the notifications up. A remote is fetched into a
bare mirror under the state directory every poll interval (jittered), and at
once when a webhook says something was pushed. Reading a commit's files is
left to ``reconciler.inventory.sources.GitSource``, pinned to the commit.
"""

from __future__ import annotations

import logging
import random
import subprocess
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from reconciler.inventory.sources import GitSource
from reconciler.watch.backoff import Backoff, RetryState
from reconciler.watch.credentials import checked_git_transport
from reconciler.watch.debounce import Trigger

log = logging.getLogger(__name__)

# Reasons that make a remote fetch now rather than at its next poll.
FETCH_REASONS = frozenset({"startup", "poll", "webhook", "manual"})


def redact_url(url: str) -> str:
    """``https://user:token@host/x.git`` -> ``https://***@host/x.git``: the URL safe to show.

    The whole user part goes, not only the password: a token is often given as
    the user name (``https://<token>@github.com/...``).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def scrub_secrets(text: str, url: str) -> str:
    """``text`` with the URL's user part (and the URL itself) replaced by their redacted form."""
    text = text.replace(url, redact_url(url))
    try:
        parts = urlsplit(url)
    except ValueError:
        return text
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    user, _, password = userinfo.partition(":")
    # The password, or a user name that is a token (long, no password beside it).
    secrets = [password] if password else ([user] if len(user) >= 8 else [])
    for secret in {*secrets, *(unquote(s) for s in secrets)}:
        if secret:
            text = text.replace(secret, "***")
    return text


class SourceUnavailable(Exception):
    """The revision cannot be found out now (remote unreachable, ref missing); try later."""


def git_command(
    repo: Path, *args: str, timeout: float = 30.0, env: dict[str, str] | None = None
) -> str:
    try:
        result = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        raise SourceUnavailable(f"git {args[0]} in {repo} took more than {timeout:g} s") from None
    except FileNotFoundError:
        raise SourceUnavailable(f"{repo}: no such folder") from None
    if result.returncode != 0:
        detail = git_failure(result.stderr or result.stdout)
        raise SourceUnavailable(f"git {args[0]} in {repo}: {detail}")
    return result.stdout.strip()


TRANSPORT_FAILED = "fatal: Could not read from remote repository."


def git_failure(output: str) -> str:
    """The lines of a failed git command's output that say why.

    Usually git's last line (``fatal: Authentication failed for ...``). When the
    transport failed (ssh), git ends with a generic hint and the reason is ssh's,
    just before git's ``Could not read from remote repository``: for example
    ``Host key for [host]:port has changed ... Host key verification failed.`` or
    ``Permission denied (publickey).``; those lines are kept, banners dropped.
    """
    lines = [line.strip() for line in output.splitlines()]
    lines = [line for line in lines if line and not line.startswith("@")]
    if TRANSPORT_FAILED not in lines:
        return lines[-1] if lines else "failed"
    end = lines.index(TRANSPORT_FAILED)
    return " ".join(lines[max(0, end - 2) : end + 1])


def resolve_commit(repo: Path, rev: str) -> str:
    return git_command(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")


def git_dir_of(repo: Path) -> Path:
    """The folder holding refs: ``repo/.git`` for a working tree, ``repo`` when bare."""
    dot_git = repo / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():  # a linked worktree: "gitdir: <path>"
        target = Path(dot_git.read_text().split(":", 1)[1].strip())
        return target if target.is_absolute() else (repo / target).resolve()
    return repo


class RevisionSource(Protocol):
    repo: Path  # the repository commits are read from (the mirror for a remote)
    subdir: str

    def describe(self) -> str: ...

    def resolve(self, reasons: set[str]) -> str: ...

    def start(self, trigger: Trigger) -> None: ...

    def stop(self) -> None: ...

    def next_wakeup(self) -> float | None:
        """Monotonic time at which the source wants the loop to wake up (a poll)."""
        ...


def pinned(source: RevisionSource, commit: str) -> GitSource:
    return GitSource(source.repo, commit, source.subdir)


REF_WRITE_EVENTS = frozenset({"created", "modified", "moved", "deleted", "closed"})


class _RefEvents(FileSystemEventHandler):
    """Fires the trigger when git rewrites a ref; ignores objects, index, logs."""

    def __init__(self, git_dir: Path, trigger: Trigger) -> None:
        self.git_dir = git_dir
        self.trigger = trigger

    def _relevant(self, path: str) -> bool:
        try:
            relative = Path(path).relative_to(self.git_dir).as_posix()
        except ValueError:
            return False
        if relative.endswith(".lock"):
            relative = relative[: -len(".lock")]
        return relative in ("HEAD", "packed-refs") or relative.startswith("refs/")

    def on_any_event(self, event: FileSystemEvent) -> None:
        # Only writes: git's (and this loop's own) reads of HEAD and refs raise "opened"
        # and "closed_no_write" events, which would wake the loop after every pass.
        if event.event_type not in REF_WRITE_EVENTS:
            return
        paths = [str(event.src_path), str(getattr(event, "dest_path", "") or "")]
        if any(p and self._relevant(p) for p in paths):
            self.trigger.fire("ref-change")


class LocalRepoSource:
    """The runtime config's ``[source] repo``: a working tree or a bare repository."""

    def __init__(self, repo: Path, rev: str, subdir: str, *, poll_interval: float = 5.0) -> None:
        self.repo = repo
        self.rev = rev
        self.subdir = subdir
        self.poll_interval = poll_interval
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._next_poll = 0.0

    def describe(self) -> str:
        return f"{self.repo}@{self.rev}" + (f":{self.subdir}" if self.subdir else "")

    def resolve(self, reasons: set[str]) -> str:
        self._next_poll = time.monotonic() + self.poll_interval
        return resolve_commit(self.repo, self.rev)

    def start(self, trigger: Trigger) -> None:
        git_dir = git_dir_of(self.repo)
        handler = _RefEvents(git_dir, trigger)
        observer = Observer()
        observer.schedule(handler, str(git_dir), recursive=False)
        if (git_dir / "refs").is_dir():
            observer.schedule(handler, str(git_dir / "refs"), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer
        self._next_poll = time.monotonic() + self.poll_interval

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def next_wakeup(self) -> float | None:
        return self._next_poll


class RemoteSource:
    """A remote repository (any URL git can fetch), mirrored under the state directory."""

    table = "watch"  # the config table of the credential settings, named in errors

    def __init__(
        self,
        url: str,
        *,
        mirror: Path,
        rev: str,
        subdir: str,
        interval: float = 60.0,
        jitter: float = 0.1,
        timeout: float = 60.0,
        backoff: Backoff | None = None,
        credentials_file: Path | None = None,
        ssh_identity: Path | None = None,
        ssh_known_hosts: Path | None = None,
    ) -> None:
        self.url = url  # handed to git only; everything shown uses shown_url
        self.credentials_file = credentials_file
        self.ssh_identity = ssh_identity
        self.ssh_known_hosts = ssh_known_hosts
        self.shown_url = redact_url(url)
        self.repo = mirror
        self.rev = rev
        self.subdir = subdir
        self.interval = interval
        self.jitter = jitter
        self.timeout = timeout
        self.backoff = backoff or Backoff(initial=2.0, cap=interval)
        self.retry = RetryState()
        self._next_fetch = 0.0

    def describe(self) -> str:
        return f"{self.shown_url}@{self.rev}" + (f":{self.subdir}" if self.subdir else "")

    def fetch(self) -> None:
        """Bring the mirror up to date with the remote (clone it the first time)."""
        # credentials go to git through GIT_ASKPASS / GIT_SSH_COMMAND, not its arguments
        url, env = checked_git_transport(
            self.url,
            folder=self.repo.parent,
            credentials_file=self.credentials_file,
            ssh_identity=self.ssh_identity,
            ssh_known_hosts=self.ssh_known_hosts,
            table=self.table,
            credentials_setting="credentials_file",
            error=SourceUnavailable,
        )
        try:
            if not (self.repo / "HEAD").exists():
                self.repo.parent.mkdir(parents=True, exist_ok=True)
                git_command(
                    self.repo.parent,
                    "clone", "--quiet", "--mirror", url, str(self.repo),
                    timeout=self.timeout, env=env,
                )  # fmt: skip
                # The mirror's config holds the URL (with credentials, for ssh:// ones).
                (self.repo / "config").chmod(0o600)
                return
            git_command(
                self.repo, "fetch", "--quiet", "--prune", "origin", timeout=self.timeout, env=env
            )
        except SourceUnavailable as error:
            raise SourceUnavailable(scrub_secrets(str(error), self.url)) from None

    def resolve(self, reasons: set[str]) -> str:
        now = time.monotonic()
        due = now >= self._next_fetch
        if (reasons & FETCH_REASONS or due) and self.retry.due(now):
            try:
                self.fetch()
            except SourceUnavailable as error:
                self._next_fetch = self.retry.failed(
                    now=now, backoff=self.backoff, error=str(error)
                )
                log.warning("fetch failed", extra={"remote": self.shown_url, "error": str(error)})
                raise
            self.retry.succeeded()
            self._next_fetch = now + self.interval * (1 + self.jitter * random.random())
        if not (self.repo / "HEAD").exists():
            raise SourceUnavailable(f"{self.shown_url}: not fetched yet ({self.retry.last_error})")
        return resolve_commit(self.repo, self.rev)

    def start(self, trigger: Trigger) -> None:
        self._next_fetch = 0.0

    def stop(self) -> None:
        return None

    def next_wakeup(self) -> float | None:
        return self._next_fetch


def verify_commit(
    repo: Path,
    commit: str,
    *,
    mode: str,
    allowed_signers: Path | None = None,
    gnupghome: Path | None = None,
) -> str | None:
    """None if ``commit`` is signed by a trusted key; otherwise the reason it is refused."""
    import os

    if mode == "none":
        return None
    args = ["git"]
    env = dict(os.environ)
    if mode == "ssh":
        if allowed_signers is None:
            return "verify_signatures = 'ssh' needs watch.allowed_signers"
        args += ["-c", f"gpg.ssh.allowedSignersFile={allowed_signers}"]
    elif mode == "gpg":
        if gnupghome is None:
            return "verify_signatures = 'gpg' needs watch.gnupghome"
        env["GNUPGHOME"] = str(gnupghome)
    args += ["verify-commit", "--raw", commit]
    result = subprocess.run(args, cwd=repo, capture_output=True, text=True, env=env, timeout=30)
    if result.returncode == 0:
        return None
    lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    detail = "; ".join(lines[-2:]) if lines else "no signature"
    return f"commit {commit[:12]} is not signed by a trusted key ({detail})"
