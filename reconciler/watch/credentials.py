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
