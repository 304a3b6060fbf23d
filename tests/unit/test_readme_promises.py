"""What the README promises about reviewed plans, the safety threshold and registration
indexes, each through the command or service a user runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.server.settings import ServeSettings
from tests.unit.serve_site import (
    FakeNeighbours,
    ServeClient,
    accept,
    git,
    make_config,
    make_repo,
    serve_app,
    with_client,
)
from tests.unit.site_fixture import Site
from tests.unit.watch_fixture import WatchSite, ready, wait_status

runner = CliRunner()
HOSTS = "out/dhcpd.hosts.conf"
NODE012_IPXE = "out/tftp/ipxe/52-54-00-12-34-0c.ipxe"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def plan_json(site: Site) -> dict[str, Any]:
    code, out, err = run("plan", "-c", str(site.config), "--format", "json")
    assert code in (0, 1), err
    body: dict[str, Any] = json.loads(out)
    return body


def applied(site: Site, *extra: str) -> None:
    code, out, err = run("apply", "-c", str(site.config), *extra)
    assert code == 0, out + err


def snapshot(site: Site) -> dict[str, str]:
    return {str(p): p.read_text() for p in sorted((site.root / "out").rglob("*")) if p.is_file()}


def empty_compute_hosts(root: Path) -> None:
    group = root / "groups/compute.yaml"
    text = group.read_text()
    group.write_text(text[: text.index("hosts:")] + "hosts: []\n")


# -- apply --checksum: only the plan that was reviewed ---------------------------------


def test_a_reviewed_checksum_is_refused_once_the_inventory_changed(site: Site) -> None:
    applied(site)
    site.edit("groups/compute.yaml", '"52:54:00:12:34:0b"', '"52:54:00:12:34:bb"')
    reviewed = plan_json(site)["checksum"]
    site.edit("groups/compute.yaml", '"52:54:00:12:34:0c"', '"52:54:00:12:34:cc"')
    before = snapshot(site)
    code, _, err = run("apply", "-c", str(site.config), "--checksum", reviewed)
    assert code == 2 and "differs from the reviewed" in err
    assert snapshot(site) == before  # nothing applied, not even the reviewed part
    applied(site, "--checksum", plan_json(site)["checksum"])
    assert "52:54:00:12:34:cc" in (site.root / HOSTS).read_text()


def test_a_reviewed_checksum_is_refused_once_the_live_state_changed(site: Site) -> None:
    applied(site)
    site.edit("groups/compute.yaml", '"52:54:00:12:34:0b"', '"52:54:00:12:34:bb"')
    reviewed = plan_json(site)["checksum"]
    hand_edit = site.root / NODE012_IPXE
    hand_edit.write_text("#!ipxe\nshell\n")  # someone changed a boot file by hand meanwhile
    before = snapshot(site)
    code, _, err = run("apply", "-c", str(site.config), "--checksum", reviewed)
    assert code == 2 and "differs from the reviewed" in err
    assert snapshot(site) == before


# -- the safety threshold -------------------------------------------------------------


def test_force_from_the_command_line_applies_a_large_deletion(site: Site) -> None:
    applied(site)
    empty_compute_hosts(site.inventory)
    code, out, err = run("apply", "-c", str(site.config))
    assert code == 2 and "--force" in err
    assert "needs --force" in out  # the plan printed before says why
    assert (site.root / NODE012_IPXE).is_file()
    applied(site, "--force")
    assert not (site.root / NODE012_IPXE).exists()


def test_updates_count_toward_the_threshold(site: Site) -> None:
    applied(site)
    site.edit("site.yaml", "ttl: 300", "ttl: 600")  # every record of the site changes
    plan = plan_json(site)
    actions = {c["action"] for t in plan["targets"] for c in t["changes"]}
    assert actions == {"update"}  # no deletes at all, yet too many changes
    code, _, err = run("apply", "-c", str(site.config))
    assert code == 2 and "--force" in err
    assert " 300 " in (site.root / "out/zones/cluster.example.zone").read_text()
    applied(site, "--force")
    assert " 600 " in (site.root / "out/zones/cluster.example.zone").read_text()


def test_a_custom_max_change_fraction(site: Site) -> None:
    applied(site)
    # Two of five compute hosts go: about a fifth of the boot files and records.
    for index in ("11", "12"):
        text = (site.inventory / "groups/compute.yaml").read_text()
        start = text.index(f"  - index: {index}\n")
        end = text.index("  - index:", start + 1)
        (site.inventory / "groups/compute.yaml").write_text(text[:start] + text[end:])
    strict = site.config.read_text().replace(
        'state_dir = "state"', 'state_dir = "state"\nmax_change_fraction = 0.1'
    )
    site.config.write_text(strict)
    code, _, err = run("apply", "-c", str(site.config))
    assert code == 2 and "--force" in err
    site.config.write_text(strict.replace("max_change_fraction = 0.1", "max_change_fraction = 0.3"))
    applied(site)  # the default share (0.3) lets the same change through
    assert not (site.root / NODE012_IPXE).exists()


def test_watch_refuses_a_change_over_the_threshold(watch_site: WatchSite, running: Any) -> None:
    good = git(watch_site.repo, "rev-parse", "HEAD").strip()
    loop = running(watch_site.loop())
    wait_status(loop, lambda s: ready(s) and s.accepted_revision == good)
    boot_file = watch_site.out("tftp/ipxe/52-54-00-12-34-0c.ipxe")
    empty_compute_hosts(watch_site.repo)
    big = watch_site.commit("remove every compute host")
    status = wait_status(loop, lambda s: s.attempted_revision == big and not ready(s))
    stalled = status.condition("Stalled")
    assert stalled is not None and stalled.status and stalled.reason == "PlanRefused"
    assert "force" in stalled.message
    assert status.accepted_revision == good
    # The boot files (20 owned, 10 to delete) are left as they were. (dhcp-file owns only
    # 8 hosts: below ten owned objects the share is not checked.)
    assert watch_site.out("tftp/ipxe/52-54-00-12-34-0c.ipxe") == boot_file
    assert "boot" in stalled.message
    result = runner.invoke(app, ["status", "-c", str(watch_site.config_path)])
    assert result.exit_code == 2 and "PlanRefused" in result.stdout


# -- registration indexes ---------------------------------------------------------------


def test_registration_takes_the_lowest_free_index_and_reuses_a_removed_one(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, indexes="10-14")  # overlaps hosts 10 and 11
    config = make_config(tmp_path, repo)
    accept(config)
    neighbours = FakeNeighbours()
    settings = ServeSettings(audit_log=tmp_path / "audit.jsonl", refresh_seconds=0)
    app_ = serve_app(config, settings, neighbours)

    async def register(client: ServeClient, mac: str, remote: str) -> Any:
        neighbours.entries[remote] = mac
        response = await client.post(
            "/register", data={"mac": mac}, headers={"X-Test-Remote": remote}
        )
        return await response.json()

    async def scenario(client: ServeClient) -> list[Any]:
        first = await register(client, "52:54:00:00:02:01", "10.23.45.201")
        # node011 leaves the inventory (a commit by hand); its index is free again.
        group = repo / "groups/compute.yaml"
        text = group.read_text()
        group.write_text(
            text.replace(
                "  - index: 11\n    mac: '52-54-00-12-34-0B'   # any spelling of a MAC works\n", ""
            )
        )
        git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qam", "node011 retired")
        accept(config)
        second = await register(client, "52:54:00:00:02:02", "10.23.45.202")
        third = await register(client, "52:54:00:00:02:03", "10.23.45.203")
        return [first, second, third]

    answers = with_client(app_, scenario)
    assert [a.get("index") for a in answers] == [12, 11, 13], answers
    assert [a.get("hostname") for a in answers] == ["node012", "node011", "node013"]
