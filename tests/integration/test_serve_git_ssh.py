"""serve beside the operator with a Site fetched over ssh: its mirror and its pushes use the key.

In a cluster serve fetches the accepted commit into a mirror of its own
(``[serve] mirror_url``, the Site's URL) and pushes registrations there; for an
``ssh://`` Site both go through ``[serve] ssh_identity`` and ``ssh_known_hosts``
(the Site's Secret, mounted). The git host is real: Debian's sshd in a namespace
of its own (``reconciler.sandbox.sshd``), which lets in only the deploy key and
proves a host key that known_hosts must pin. serve runs as a process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.accepted import AcceptedRevision
from reconciler.sandbox.named import free_port
from reconciler.sandbox.netns import stop_process
from reconciler.sandbox.site import git
from reconciler.sandbox.sshd import SshGitHost, make_key, ssh_git_host
from reconciler.server.push import RegistrationRemote
from tests.integration.test_watch_git_ssh import example_remote

pytestmark = pytest.mark.integration

RECONCILER = str(Path(sys.executable).parent / "reconciler")
COMMITTER = ("-c", "user.name=t", "-c", "user.email=t@t")


@dataclass
class Origin:
    root: Path
    host: SshGitHost
    repo: Path  # bare, served by sshd
    accepted: str  # the commit the operator accepted
    identity: Path

    def known_hosts(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        return path


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[Origin]:
    repo = example_remote(tmp_path, "origin.git")
    deploy_key = make_key(tmp_path / "deploy-key", comment="site-deploy-key")
    with ssh_git_host(tmp_path / "sshd", authorized_keys=[deploy_key], lifetime=300) as host:
        accepted = git(repo, "rev-parse", "main")
        yield Origin(tmp_path, host, repo, accepted, tmp_path / "deploy-key")


@contextmanager
def serve(origin: Origin, name: str, known_hosts: Path) -> Iterator[str]:
    """serve with the accepted record of a mounted ConfigMap and an ssh mirror_url."""
    folder = origin.root / name
    (folder / "accepted").mkdir(parents=True)
    record = AcceptedRevision(
        revision=origin.accepted, accepted_by="watch", accepted_at=time.time(),
        repo="/var/lib/reconciler-operator/sites/lab/state/watch/mirror.git",
    )  # fmt: skip
    (folder / "accepted" / "accepted.json").write_text(json.dumps(record.to_dict()))
    port = free_port()
    (folder / "serve.toml").write_text(f"""state_dir = "state"
[source]
repo = "state/serve/mirror.git"
rev = "main"
[boot]
http_url = "http://10.23.45.2:8080"
[serve]
listen = "127.0.0.1"
port = {port}
refresh_seconds = 0.1
mirror_url = "{origin.host.url(origin.repo)}"
accepted_file = "{folder / "accepted" / "accepted.json"}"
ssh_identity = "{origin.identity}"
ssh_known_hosts = "{known_hosts}"
""")
    with (folder / "serve.log").open("wb") as log:
        command = [RECONCILER, "serve", "-c", str(folder / "serve.toml")]
        process = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


def assignment(url: str, host: str) -> tuple[int, str]:
    """A node agent's request for its assignment: the status and the body."""
    try:
        with urllib.request.urlopen(f"{url}/nodes/{host}.json", timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""  # not listening yet


def answered(url: str, host: str) -> tuple[int, str]:
    deadline = time.monotonic() + 60
    while (found := assignment(url, host))[0] in (0, 503) and time.monotonic() < deadline:
        if found[0] == 503 and "cannot" in found[1]:
            return found  # a fetch that failed: serve says why
        time.sleep(0.2)
    return found


def test_serve_fetches_the_accepted_commit_over_ssh_with_the_deploy_key(origin: Origin) -> None:
    pinned = origin.known_hosts("known_hosts", origin.host.known_hosts())
    with serve(origin, "good", pinned) as url:
        status, body = answered(url, "node010")
    assert status == 200, body
    assert json.loads(body)["version"] == "2024.10"
    assert "Accepted publickey for root from 127.0.0.1" in origin.host.log()
    mirror = origin.root / "good/state/serve/mirror.git"
    assert git(mirror, "cat-file", "-t", origin.accepted) == "commit"


def test_a_git_host_whose_key_is_not_pinned_is_refused_and_nothing_served(
    origin: Origin,
) -> None:
    impostor = make_key(origin.root / "impostor", comment="impostor-host-key")
    pinned = origin.known_hosts("wrong", f"[127.0.0.1]:{origin.host.port} {impostor}\n")
    with serve(origin, "mismatch", pinned) as url:
        status, body = answered(url, "node010")
    assert status == 503
    assert "Host key verification failed" in body, body
    assert "Accepted publickey" not in origin.host.log()
    assert not (origin.root / "mismatch/state/serve/mirror.git/HEAD").exists()


def test_a_registration_commit_is_pushed_over_ssh_with_the_deploy_key(origin: Origin) -> None:
    remote = RegistrationRemote(
        origin.host.url(origin.repo),
        work=origin.root / "registration.git",
        branch="main",
        ssh_identity=origin.identity,
        ssh_known_hosts=origin.known_hosts("known_hosts", origin.host.known_hosts()),
    )
    branch = remote.fetch()
    work = origin.root / "registration.git"
    tree = git(work, "rev-parse", f"{branch}^{{tree}}")
    commit = git(work, *COMMITTER, "commit-tree", tree, "-p", branch, "-m", "register node021")
    remote.push(commit)
    assert git(origin.repo, "rev-parse", "main") == commit
