"""A revision that validates but fails later is refused: the loop stays up, the last good stays."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner

from reconciler.cli import app as cli
from reconciler.sandbox.site import git
from reconciler.server.app import build_app
from reconciler.server.settings import ServeSettings
from reconciler.watch.loop import WatchLoop
from reconciler.watch.status import Status
from tests.unit.watch_fixture import WatchSite, ready, wait_status

Start = Callable[[WatchLoop], WatchLoop]
HOSTS = "dhcpd.hosts.conf"
NODE010 = "52:54:00:12:34:0a"
runner = CliRunner()


def with_broken_profile(site: WatchSite) -> None:
    """A site template folder with a profile ``broken`` whose iPXE template cannot render."""
    profile = site.root / "templates" / "broken"
    profile.mkdir(parents=True)
    (profile / "ipxe.j2").write_text("#!ipxe\nkernel {{ host.no_such_field }}\n")
    (profile / "pxelinux.j2").write_text("DEFAULT local\n")
    text = site.config_path.read_text().replace("[boot]\n", '[boot]\ntemplates = "templates"\n')
    site.config_path.write_text(text)


def corrupt_blob(repo: Path, rev: str, path: str) -> None:
    blob = git(repo, "rev-parse", f"{rev}:{path}").strip()
    loose = repo / ".git" / "objects" / blob[:2] / blob[2:]
    loose.chmod(0o644)
    loose.write_bytes(b"not a zlib stream")


def served_script(site: WatchSite) -> str:
    app = build_app(site.config(), ServeSettings(audit_log=site.root / "audit.jsonl"))

    async def main() -> str:
        async with TestClient(TestServer(app)) as client:
            response = await client.get(f"/boot/{NODE010}")
            assert response.status == 200
            return await response.text()

    return asyncio.run(main())


def is_stalled(status: Status) -> bool:
    """The pass that looked at the commit is over: Stalled is set (not only attempted)."""
    condition = status.condition("Stalled")
    return condition is not None and condition.status


def status_exit(site: WatchSite) -> tuple[int, str]:
    result = runner.invoke(cli, ["status", "-c", str(site.config_path)])
    return result.exit_code, result.stdout


def test_a_revision_whose_template_fails_is_refused(watch_site: WatchSite, running: Start) -> None:
    with_broken_profile(watch_site)
    good = git(watch_site.repo, "rev-parse", "HEAD")
    loop = running(watch_site.loop())
    wait_status(loop, lambda s: ready(s) and s.accepted_revision == good)
    script, hosts = served_script(watch_site), watch_site.out(HOSTS)
    watch_site.edit(
        "groups/compute.yaml", "image: compute@2024.10", "boot: broken\nimage: compute@2024.10"
    )
    bad = watch_site.commit("use the broken profile")
    status = wait_status(loop, lambda s: s.attempted_revision == bad and is_stalled(s))
    stalled = status.condition("Stalled")
    assert stalled is not None and stalled.status and stalled.reason == "RenderFailed"
    assert bad in stalled.message and "no_such_field" in stalled.message
    assert status.accepted_revision == good and status.applied_revision == good
    assert served_script(watch_site) == script and watch_site.out(HOSTS) == hosts
    code, text = status_exit(watch_site)
    assert code == 2 and "RenderFailed" in text
    # The loop is still alive: the fix is applied.
    watch_site.edit("groups/compute.yaml", "boot: broken\n", "")
    fixed = watch_site.commit("back to the default profile")
    wait_status(loop, lambda s: ready(s) and s.accepted_revision == fixed)
    assert status_exit(watch_site)[0] == 0


def test_a_revision_with_a_corrupt_git_object_is_refused(
    watch_site: WatchSite, running: Start
) -> None:
    good = git(watch_site.repo, "rev-parse", "HEAD")
    assert runner.invoke(cli, ["apply", "-c", str(watch_site.config_path)]).exit_code == 0
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:0b"', '"52:54:00:12:34:bb"')
    bad = watch_site.commit("a change whose blob gets damaged")
    corrupt_blob(watch_site.repo, bad, "groups/compute.yaml")
    again = running(watch_site.loop())
    status = wait_status(again, lambda s: s.attempted_revision == bad and is_stalled(s))
    stalled = status.condition("Stalled")
    assert stalled is not None and stalled.reason == "UnreadableRevision"
    assert bad in stalled.message and "git fsck" in stalled.message
    assert status.accepted_revision == good
    assert "52:54:00:12:34:bb" not in watch_site.out(HOSTS)
    assert status_exit(watch_site)[0] == 2


def test_validate_with_config_renders_every_template(watch_site: WatchSite) -> None:
    with_broken_profile(watch_site)
    watch_site.edit(
        "groups/compute.yaml", "image: compute@2024.10", "boot: broken\nimage: compute@2024.10"
    )
    args = ["validate", str(watch_site.repo), "-c", str(watch_site.config_path)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert "boot template broken/ipxe.j2 fails for host" in result.stderr
    assert "Traceback" not in result.stderr
    # Without the config, the profile is unknown: still exit 2, never 0.
    assert runner.invoke(cli, ["validate", str(watch_site.repo)]).exit_code == 2


def test_plan_exits_2_without_a_traceback_on_a_damaged_repository(watch_site: WatchSite) -> None:
    corrupt_blob(watch_site.repo, "HEAD", "groups/compute.yaml")
    command = [str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "reconciler")]
    result = subprocess.run(
        [*command, "plan", "-c", str(watch_site.config_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "git fsck" in result.stderr and "Traceback" not in result.stderr


def test_plan_exits_2_on_an_unexpected_error(
    watch_site: WatchSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug nobody anticipated")

    monkeypatch.setattr("reconciler.engine.Engine.plan", broken)
    for command in ("plan", "apply"):
        result = runner.invoke(cli, [command, "-c", str(watch_site.config_path)])
        assert result.exit_code == 2, (command, result.output)
        assert "unexpected RuntimeError: a bug nobody anticipated" in result.stderr
        assert "Traceback" not in result.output
