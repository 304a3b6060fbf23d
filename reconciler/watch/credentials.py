"""Credentials of a ``[watch] remote`` URL, kept out of command lines and the mirror's config.

``https://user:token@host/site.git`` works with git as it is, but git then
runs with the token on its command line (readable by every local user in
``ps``) and writes it into the mirror's config. Instead the URL is cloned
without its user part, and git asks for the user name and password through
``GIT_ASKPASS``: a small script in the state folder that prints them from the
environment of that one git process (readable by its owner only).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ASKPASS = """#!/bin/sh
# Written by the reconciler: answers git's credential prompts from its environment.
case "$1" in
  Username*) printf '%s\\n' "$RECONCILER_GIT_USERNAME" ;;
  *) printf '%s\\n' "$RECONCILER_GIT_PASSWORD" ;;
esac
"""


@dataclass(frozen=True, slots=True)
class RemoteCredentials:
    url: str  # the URL without its user part
    username: str
    password: str

    def environment(self, folder: Path) -> dict[str, str]:
        """The environment for git: the askpass script (written to ``folder``) and the secrets."""
        script = folder / "askpass.sh"
        folder.mkdir(parents=True, exist_ok=True)
        if not script.exists() or script.read_text() != ASKPASS:
            script.write_text(ASKPASS)
        script.chmod(0o700)
        return {
            **os.environ,
            "GIT_ASKPASS": str(script),
            "GIT_TERMINAL_PROMPT": "0",
            "RECONCILER_GIT_USERNAME": self.username,
            "RECONCILER_GIT_PASSWORD": self.password,
        }


def split_credentials(url: str) -> RemoteCredentials | None:
    """The credentials of an http(s) URL and the URL without them; None when it has none."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return RemoteCredentials(
        url=urlunsplit(parts._replace(netloc=host)),
        username=unquote(user),
        password=unquote(password),
    )


def read_credentials_file(path: Path, *, url: str) -> RemoteCredentials:
    """``user:token`` from a file (a mounted Secret): the token is in neither URL nor config.

    Raises OSError when it cannot be read.
    """
    text = path.read_text().strip()
    user, _, password = text.partition(":")
    return RemoteCredentials(url=url, username=user, password=password)


def ssh_command(identity: Path, known_hosts: Path | None = None) -> str:
    """``GIT_SSH_COMMAND`` using only ``identity``; host keys from ``known_hosts`` when given.

    git runs the value through the shell, so each word is shell-quoted. ssh splits a
    ``UserKnownHostsFile`` value on blanks itself, so that path is also put in double
    quotes for ssh (a path holding a double quote is refused: ssh cannot take it).
    Without ``known_hosts`` ssh checks host keys as it always does (~/.ssh/known_hosts,
    /etc/ssh/ssh_known_hosts) and, in batch mode, refuses a host it does not know.
    """
    words = ["ssh", "-i", str(identity), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
    if known_hosts is not None:
        if '"' in str(known_hosts):
            raise ValueError(
                f"ssh cannot use a known_hosts path with a double quote: {known_hosts}"
            )
        words += ["-o", f'UserKnownHostsFile="{known_hosts}"', "-o", "StrictHostKeyChecking=yes"]
    return " ".join(shlex.quote(word) for word in words)


def git_transport(
    url: str,
    *,
    folder: Path,
    credentials_file: Path | None = None,
    ssh_identity: Path | None = None,
    ssh_known_hosts: Path | None = None,
) -> tuple[str, dict[str, str] | None]:
    """The URL to hand git and the environment carrying its credentials (None: git's own).

    Credentials in an http(s) URL win over ``credentials_file``; both go through
    ``GIT_ASKPASS`` (its script written to ``folder``). ``ssh_identity`` sets
    ``GIT_SSH_COMMAND``, which git uses for ssh:// and scp-like URLs only.
    Raises OSError when the credentials file cannot be read.
    """
    env: dict[str, str] | None = None
    credentials = split_credentials(url)
    if credentials is None and credentials_file is not None:
        credentials = read_credentials_file(credentials_file, url=url)
    if credentials is not None:
        url, env = credentials.url, credentials.environment(folder)
    if ssh_identity is not None:
        env = {**(env or os.environ), "GIT_SSH_COMMAND": ssh_command(ssh_identity, ssh_known_hosts)}
    return url, env


def checked_git_transport(
    url: str,
    *,
    folder: Path,
    credentials_file: Path | None,
    ssh_identity: Path | None,
    ssh_known_hosts: Path | None,
    table: str,
    credentials_setting: str,
    error: type[Exception],
) -> tuple[str, dict[str, str] | None]:
    """``git_transport``, its failures raised as ``error`` naming the ``[table]`` setting to fix."""
    try:
        return git_transport(
            url,
            folder=folder,
            credentials_file=credentials_file,
            ssh_identity=ssh_identity,
            ssh_known_hosts=ssh_known_hosts,
        )
    except OSError as failure:
        raise error(
            f"cannot read [{table}] {credentials_setting} {credentials_file}: "
            f"{failure.strerror or failure}"
        ) from None
    except ValueError as failure:  # a known_hosts path ssh cannot take
        raise error(f"[{table}] ssh_known_hosts: {failure}") from None
