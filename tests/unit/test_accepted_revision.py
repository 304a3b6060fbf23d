"""One accepted revision for every entry point: serve answers only from what watch/apply applied."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner

from reconciler.accepted import AcceptedStore
from reconciler.cli import app as cli
from reconciler.config import load_config
from reconciler.sandbox.site import git
from reconciler.server.app import build_app
from reconciler.server.settings import ServeSettings
from reconciler.watch.loop import WatchLoop
from tests.unit.watch_fixture import WatchSite, ready, wait_status

Start = Callable[[WatchLoop], WatchLoop]
NODE010 = "52:54:00:12:34:0a"
OLD_KERNEL = "http://boot.cluster.example/compute/2024.10/vmlinuz"
NEW_KERNEL = "http://boot.cluster.example/compute/2024.11/vmlinuz"


def boot_script(site: WatchSite, mac: str) -> tuple[int, str]:
    """GET /boot/<mac> from a fresh ``serve`` app built from the site's config."""
    app = build_app(site.config(), ServeSettings(audit_log=site.root / "audit.jsonl"))

    async def main() -> tuple[int, str]:
        async with TestClient(TestServer(app)) as client:
            response = await client.get(f"/boot/{mac}")
            return response.status, await response.text()

    return asyncio.run(main())


def ssh_signer(root: Path) -> tuple[tuple[str, ...], Path]:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen (openssh-client) is not installed")
    key = root / "signer"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "signer", "-f", str(key)],
        check=True, timeout=30,
    )  # fmt: skip
    signers = root / "allowed_signers"
    signers.write_text(
        f'signer@example.invalid namespaces="git" {key.with_suffix(".pub").read_text()}'
    )
    return ("-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"), signers


def test_serve_answers_503_before_any_revision_is_accepted(watch_site: WatchSite) -> None:
    status, text = boot_script(watch_site, NODE010)
    assert status == 503
    assert "no revision has been accepted yet" in text and "reconciler apply" in text


def test_an_unsigned_commit_refused_by_watch_is_not_served(
    watch_site: WatchSite, running: Start
) -> None:
    sign, signers = ssh_signer(watch_site.root)
    git(watch_site.repo, *sign, "commit", "--amend", "-S", "-q", "--no-edit")
    signed = git(watch_site.repo, "rev-parse", "HEAD")
    loop = running(watch_site.loop(verify_signatures="ssh", allowed_signers=signers))
    wait_status(loop, lambda s: ready(s) and s.accepted_revision == signed)
    status, before = boot_script(watch_site, NODE010)
    assert status == 200 and OLD_KERNEL in before
    # An unsigned commit moves node010 to the next image: the branch head, but refused.
    watch_site.edit("groups/compute.yaml", "image: compute@2024.10", "image: compute@2024.11")
    unsigned = watch_site.commit("unsigned upgrade")
    after = wait_status(loop, lambda s: s.attempted_revision == unsigned)
    stalled = after.condition("Stalled")
    assert stalled is not None and stalled.reason == "UntrustedSignature"
    status, served = boot_script(watch_site, NODE010)
    assert status == 200 and OLD_KERNEL in served and NEW_KERNEL not in served
    record = AcceptedStore(watch_site.root / "state").read()
    assert record is not None and record.revision == signed and record.accepted_by == "watch"


def test_apply_records_the_accepted_revision_and_status_reports_it(watch_site: WatchSite) -> None:
    head = git(watch_site.repo, "rev-parse", "HEAD")
    runner = CliRunner()
    result = runner.invoke(cli, ["apply", "-c", str(watch_site.config_path)])
    assert result.exit_code == 0, result.output
    record = AcceptedStore(watch_site.root / "state").read()
    assert record is not None and record.revision == head and record.accepted_by == "apply"
    status, script = boot_script(watch_site, NODE010)
    assert status == 200 and OLD_KERNEL in script
    shown = runner.invoke(cli, ["status", "-c", str(watch_site.config_path), "--format", "json"])
    assert json.loads(shown.stdout)["accepted_revision"] == head
    text = runner.invoke(cli, ["status", "-c", str(watch_site.config_path)])
    assert f"accepted:   {head}" in text.stdout
    assert load_config(watch_site.config_path).state_dir == Path("state")
