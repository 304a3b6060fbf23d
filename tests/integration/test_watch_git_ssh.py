"""``reconciler watch`` fetching its inventory over ssh with a deploy key and a pinned host key.

Everything is real: the git host is Debian's sshd (``reconciler.sandbox.sshd``: its
own host key, one authorized deploy key, no PAM) on the loopback of a namespace
made for it, reached through a relay on 127.0.0.1; ``reconciler watch`` runs as a
process with ``[watch] remote = "ssh://..."``, ``ssh_identity`` and
``ssh_known_hosts``, and git runs ssh exactly as it would against a git host.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.sandbox.netns import stop_process
from reconciler.sandbox.site import git
from reconciler.sandbox.sshd import SshGitHost, make_key, ssh_git_host
from reconciler.watch.status import Status, StatusStore

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"
RECONCILER = str(Path(sys.executable).parent / "reconciler")


def example_remote(root: Path, name: str) -> Path:
    """The example inventory committed in ``root``/work and cloned bare to ``root``/``name``."""
    work = root / "work"
    shutil.copytree(EXAMPLE, work)
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "site")
    remote = root / name
    git(root, "clone", "-q", "--bare", str(work), str(remote))
    return remote


@dataclass
class SshSite:
    root: Path
    host: SshGitHost
    remote: Path  # the bare repository sshd serves
    fingerprint: str  # of the deploy key, as sshd logs it

    def config(self, name: str, *, known_hosts: str) -> Path:
        """A watch config (state and output under ``name``) pinning ``known_hosts``."""
        folder = self.root / name
        folder.mkdir()
        (folder / "known_hosts").write_text(known_hosts)
        (folder / "reconciler.toml").write_text(
            f"""state_dir = "state"
[source]
repo = "unused"
rev = "main"
[boot]
http_url = "http://127.0.0.1:8080"
[watch]
remote = "{self.host.url(self.remote)}"
ssh_identity = "{self.root / "deploy-key"}"
ssh_known_hosts = "known_hosts"
poll_interval = 0.5
poll_jitter = 0
backoff_initial = 0.5
backoff_max = 1
drift_interval = 3600
[targets.dhcp]
type = "dhcp-file"
path = "out/dhcpd.hosts.conf"
"""
        )
        return folder / "reconciler.toml"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[SshSite]:
    remote = example_remote(tmp_path, "remote.git")
    deploy_key = make_key(tmp_path / "deploy-key", comment="site-deploy-key")
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(tmp_path / "deploy-key.pub")],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()[1]  # fmt: skip
    with ssh_git_host(tmp_path / "sshd", authorized_keys=[deploy_key], lifetime=300) as host:
        yield SshSite(tmp_path, host, remote, fingerprint)


def wait(what: str, check: Callable[[], bool], *, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout} s: {what}\n{log.read_text()}")
        time.sleep(0.1)


class Watch:
    """``reconciler watch -c config`` as a process, stopped with SIGTERM."""

    def __init__(self, config: Path) -> None:
        self.folder = config.parent
        self.log = self.folder / "watch.log"
        self.store = StatusStore(self.folder / "state")
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [RECONCILER, "watch", "-c", str(config)], stdout=out, stderr=out
            )

    def status(self) -> Status:
        return self.store.load()

    def stop(self) -> None:
        stop_process(self.process)


def test_watch_fetches_over_ssh_with_the_deploy_key_and_applies_each_pushed_commit(
    site: SshSite,
) -> None:
    first = git(site.remote, "rev-parse", "main")
    watch = Watch(site.config("good", known_hosts=site.host.known_hosts()))
    try:
        wait("first revision applied", lambda: watch.status().applied_revision == first,
             log=watch.log)  # fmt: skip
        group = site.root / "work/groups/compute.yaml"
        group.write_text(group.read_text().replace('"52:54:00:12:34:0b"', '"52:54:00:12:34:ee"'))
        git(site.root / "work", "-c", "user.name=t", "-c", "user.email=t@t",
            "commit", "-qam", "new NIC for node011")  # fmt: skip
        git(site.root / "work", "push", "-q", str(site.remote), "main")
        pushed = git(site.remote, "rev-parse", "main")
        wait("the pushed commit applied", lambda: watch.status().applied_revision == pushed,
             log=watch.log)  # fmt: skip
    finally:
        watch.stop()
    assert "52:54:00:12:34:ee" in (site.root / "good/out/dhcpd.hosts.conf").read_text()
    # sshd let git in with the deploy key, not with anything else ssh could have offered.
    accepted = [line for line in site.host.log().splitlines() if "Accepted publickey" in line]
    assert accepted and all(site.fingerprint in line for line in accepted), accepted
    mirror_config = (site.root / "good/state/watch/mirror.git/config").read_text()
    assert site.host.url(site.remote) in mirror_config
    assert "PRIVATE KEY" not in watch.log.read_text()


def test_a_host_key_that_does_not_match_known_hosts_is_refused_and_nothing_applied(
    site: SshSite,
) -> None:
    impostor = make_key(site.root / "impostor-host-key", comment="impostor")
    pinned = f"[127.0.0.1]:{site.host.port} {impostor}\n"
    watch = Watch(site.config("mismatch", known_hosts=pinned))
    try:
        wait("the fetch refused", lambda: watch.status().condition("Ready") is not None,
             log=watch.log)  # fmt: skip
        time.sleep(2)  # a few more fetches (every 0.5 s, with backoff): all refused
        status = watch.status()
    finally:
        watch.stop()
    ready = status.condition("Ready")
    assert ready is not None and not ready.status
    assert "Host key verification failed" in ready.message
    assert f"[127.0.0.1]:{site.host.port}" in ready.message  # which host, to fix known_hosts
    assert status.applied_revision is None and status.accepted_revision is None
    assert not (site.root / "mismatch/out").exists()
    assert "Host key verification failed" in watch.log.read_text()
    # The impostor key refused the server before any key was offered to it.
    assert "Accepted publickey" not in site.host.log()
