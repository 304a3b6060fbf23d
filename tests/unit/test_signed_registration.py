"""``verify_signatures = "ssh"`` with registration commits and a relative allowed_signers path.

Keys are real ``ssh-keygen`` keys; commits are signed and verified by git. The
site's history is signed by an operator's key, registrations by the service's
own key (``[serve] signing_key``); the watch loop trusts both through an
``allowed_signers`` file named relative to the config file, while the process
runs from another folder.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reconciler.config import ConfigError
from reconciler.sandbox.site import git
from reconciler.server.settings import ServeSettings
from reconciler.watch.loop import WatchLoop
from reconciler.watch.status import Status
from tests.unit.serve_site import NEIGHBOUR_HEADER, REMOTE_HEADER, FakeNeighbours, serve_app
from tests.unit.watch_fixture import WatchSite, ready, wait_status

Start = Callable[[WatchLoop], WatchLoop]
MAC = "52:54:00:12:34:21"


def stalled(status: Status) -> bool:
    condition = status.condition("Stalled")
    return condition is not None and condition.status


def ssh_key(root: Path, name: str) -> Path:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen (openssh-client) is not installed")
    key = root / "keys" / name
    key.parent.mkdir(exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
        check=True, timeout=30,
    )  # fmt: skip
    return key


def trust(signers: Path, *keys: Path) -> None:
    signers.write_text(
        "".join(
            f'{k.name}@example.invalid namespaces="git" {k.with_suffix(".pub").read_text()}'
            for k in keys
        )
    )


def open_window(site: WatchSite, operator: Path) -> str:
    site.edit("groups/compute.yaml", "  open: false", "  open: true")
    git(site.repo, "add", "-A")
    git(
        site.repo, "-c", "gpg.format=ssh", "-c", f"user.signingkey={operator}",
        "commit", "-S", "-q", "-m", "open the registration window",
    )  # fmt: skip
    return git(site.repo, "rev-parse", "HEAD")


def register(site: WatchSite, signing_key: str | None) -> tuple[int, str]:
    settings = ServeSettings(audit_log=site.root / "audit.jsonl", signing_key=signing_key)
    app = serve_app(site.config(), settings, FakeNeighbours())

    async def main() -> tuple[int, str]:
        async with TestClient(TestServer(app)) as client:
            headers = {REMOTE_HEADER: "10.23.45.201", NEIGHBOUR_HEADER: MAC}
            response = await client.post("/register", data={"mac": MAC}, headers=headers)
            return response.status, await response.text()

    return asyncio.run(main())


def verify(site: WatchSite, signers: Path, commit: str) -> int:
    return subprocess.run(
        ["git", "-C", str(site.repo), "-c", f"gpg.ssh.allowedSignersFile={signers}",
         "verify-commit", commit],
        capture_output=True, timeout=30,
    ).returncode  # fmt: skip


def test_signed_registrations_pass_verify_signatures_with_a_relative_signers_file(
    watch_site: WatchSite, running: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = ssh_key(watch_site.root, "operator")
    service = ssh_key(watch_site.root, "service")
    trust(watch_site.root / "allowed_signers", operator, service)
    opened = open_window(watch_site, operator)
    monkeypatch.chdir(watch_site.root / "keys")  # relative paths must not follow the cwd

    loop = running(watch_site.loop(verify_signatures="ssh", allowed_signers="allowed_signers"))
    wait_status(loop, lambda s: ready(s) and s.accepted_revision == opened)

    status, body = register(watch_site, signing_key="keys/service")
    assert status == 200, body
    registered = git(watch_site.repo, "rev-parse", "HEAD")
    assert registered != opened
    assert verify(watch_site, watch_site.root / "allowed_signers", registered) == 0
    loop.trigger.fire("manual")
    after = wait_status(loop, lambda s: ready(s) and s.accepted_revision == registered)
    assert "node021" in watch_site.out("dhcpd.hosts.conf")
    assert not stalled(after)


def test_unsigned_registrations_are_refused_by_verify_signatures(
    watch_site: WatchSite, running: Start
) -> None:
    operator = ssh_key(watch_site.root, "operator")
    trust(watch_site.root / "allowed_signers", operator)
    opened = open_window(watch_site, operator)
    loop = running(watch_site.loop(verify_signatures="ssh", allowed_signers="allowed_signers"))
    wait_status(loop, lambda s: ready(s) and s.accepted_revision == opened)
    assert register(watch_site, signing_key=None)[0] == 200
    unsigned = git(watch_site.repo, "rev-parse", "HEAD")
    loop.trigger.fire("manual")
    after = wait_status(loop, lambda s: s.attempted_revision == unsigned and stalled(s))
    condition = after.condition("Stalled")
    assert condition is not None and condition.reason == "UntrustedSignature"
    assert after.accepted_revision == opened


def test_a_missing_signing_key_is_a_config_error(watch_site: WatchSite) -> None:
    with pytest.raises(ConfigError, match=r"serve\.signing_key: .*nowhere"):
        register(watch_site, signing_key="keys/nowhere")
