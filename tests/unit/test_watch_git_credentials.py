"""Credentials of ``[watch] remote`` from files: a token file (https) and an SSH key (ssh).

The https case fetches from a real git host (``git http-backend`` behind Basic
authentication on 127.0.0.1); the ssh case checks the command line git hands
the shell, and what ssh itself makes of it (``ssh -G`` prints the options it
would use without connecting anywhere).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from reconciler.sandbox.git_http import git_http_host
from reconciler.sandbox.site import git
from reconciler.watch.credentials import ssh_command
from reconciler.watch.sources import RemoteSource, SourceUnavailable

USER, TOKEN = "site-reader", "f1le-t0ken-8080"


def remote_repo(root: Path) -> tuple[Path, str]:
    repo = root / "served" / "site"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "hosts.yaml").write_text("hosts: []\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "one")
    return repo, git(repo, "rev-parse", "HEAD").strip()


def source(url: str, root: Path, credentials: Path) -> RemoteSource:
    return RemoteSource(
        url,
        mirror=root / "state" / "mirror.git",
        rev="main",
        subdir="",
        credentials_file=credentials,
    )


def test_a_credentials_file_lets_git_in_and_stays_out_of_the_mirror(tmp_path: Path) -> None:
    repo, head = remote_repo(tmp_path)
    token = tmp_path / "token"
    token.write_text(f"{USER}:{TOKEN}\n")
    with git_http_host(tmp_path / "served", user=USER, password=TOKEN) as host:
        assert source(host.url(repo / ".git"), tmp_path, token).resolve({"startup"}) == head
        assert USER in host.seen_users
    kept = [p.read_bytes() for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert not any(TOKEN.encode() in data for data in kept)


def test_a_wrong_or_missing_credentials_file_is_a_redacted_fetch_error(tmp_path: Path) -> None:
    repo, _ = remote_repo(tmp_path)
    token = tmp_path / "token"
    token.write_text(f"{USER}:wr0ng-t0ken\n")
    with git_http_host(tmp_path / "served", user=USER, password=TOKEN) as host:
        url = host.url(repo / ".git")
        with pytest.raises(SourceUnavailable, match="Authentication failed") as failed:
            source(url, tmp_path, token).resolve({"startup"})
        assert "wr0ng" not in str(failed.value)
        with pytest.raises(SourceUnavailable, match=r"cannot read \[watch\] credentials_file"):
            source(url, tmp_path, tmp_path / "absent").resolve({"startup"})


def test_the_ssh_command_quotes_paths_for_the_shell_and_for_ssh(tmp_path: Path) -> None:
    folder = tmp_path / "a b" / "it's $HOME"
    folder.mkdir(parents=True)
    identity, known = folder / "id key", folder / "known hosts"
    identity.write_text("")  # ssh lists an identity file only when it exists
    command = ssh_command(identity, known)
    assert shlex.split(command) == [
        "ssh", "-i", str(identity), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f'UserKnownHostsFile="{known}"', "-o", "StrictHostKeyChecking=yes",
    ]  # fmt: skip
    shown = subprocess.run(
        ["sh", "-c", f"{command} -G example.invalid"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.splitlines()  # fmt: skip
    assert f"identityfile {identity}" in shown
    assert f"userknownhostsfile {known}" in shown
    assert {"identitiesonly yes", "stricthostkeychecking true", "batchmode yes"} <= set(shown)


def test_without_known_hosts_ssh_keeps_its_own_and_a_quote_in_the_path_is_refused(
    tmp_path: Path,
) -> None:
    assert "UserKnownHostsFile" not in ssh_command(tmp_path / "id")
    assert "StrictHostKeyChecking" not in ssh_command(tmp_path / "id")
    with pytest.raises(ValueError, match="double quote"):
        ssh_command(tmp_path / "id", tmp_path / 'known"hosts')


def test_an_ssh_secret_of_a_site_becomes_the_watch_ssh_settings(tmp_path: Path) -> None:
    """The operator's one code path: Secret keys -> 0600 files -> [watch] ssh_* -> ssh command."""
    import base64

    from reconciler.operator.site import runtime_config
    from reconciler.operator.spec import SiteSpec
    from reconciler.watch.credentials import git_transport

    spec = SiteSpec.model_validate(
        {"source": {"url": "git@git.example.org:site/inventory.git", "secretRef": {"name": "g"}}}
    )
    values = {"identity": b"-----BEGIN OPENSSH PRIVATE KEY-----\n", "known_hosts": b"host key\n"}
    data = {k: base64.b64encode(v).decode() for k, v in values.items()}
    config = runtime_config(spec, namespace="ns", work_dir=tmp_path, secrets={("ns", "g"): data})
    identity, known = config.watch.ssh_identity, config.watch.ssh_known_hosts
    assert identity is not None and known is not None and config.watch.credentials_file is None
    assert (identity.read_bytes(), known.read_bytes()) == (
        values["identity"],
        values["known_hosts"],
    )
    assert {identity.stat().st_mode & 0o777, known.stat().st_mode & 0o777} == {0o600}
    url, env = git_transport(
        config.watch.remote or "", folder=tmp_path, ssh_identity=identity, ssh_known_hosts=known
    )
    assert url == "git@git.example.org:site/inventory.git" and env is not None
    assert env["GIT_SSH_COMMAND"] == ssh_command(identity, known)


def test_a_failed_ssh_fetch_says_what_ssh_said_not_git_s_generic_hint() -> None:
    from reconciler.watch.sources import git_failure

    hint = (
        "fatal: Could not read from remote repository.\n\n"
        "Please make sure you have the correct access rights\nand the repository exists.\n"
    )
    changed = (
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "Offending ED25519 key in /k:1\n"
        "Host key for [git.example.org]:22 has changed and you have requested strict checking.\n"
        "Host key verification failed.\n" + hint
    )
    assert git_failure(changed) == (
        "Host key for [git.example.org]:22 has changed and you have requested strict checking. "
        "Host key verification failed. fatal: Could not read from remote repository."
    )
    denied = "git@git.example.org: Permission denied (publickey).\n" + hint
    assert git_failure(denied) == (
        "git@git.example.org: Permission denied (publickey). "
        "fatal: Could not read from remote repository."
    )
    http = "fatal: Authentication failed for 'https://git.example.org/site.git/'\n"
    assert (
        git_failure(http) == "fatal: Authentication failed for 'https://git.example.org/site.git/'"
    )
    assert git_failure("") == "failed"
