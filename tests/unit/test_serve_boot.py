"""Boot routes of ``reconciler serve``: the same scripts as the boot files, fresh per revision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.compile import ipxe_path, pxelinux_path
from reconciler.config import ConfigError
from reconciler.engine import Engine
from reconciler.server.neighbours import parse_ip_neigh, parse_proc_arp
from reconciler.server.settings import ServeSettings, load_serve_config
from tests.unit.serve_site import (
    HTTP_URL,
    FakeNeighbours,
    ServeClient,
    accept,
    git,
    make_config,
    make_repo,
    serve_app,
    with_client,
)

KNOWN = "52:54:00:12:34:0a"
UNKNOWN = "52:54:00:77:00:01"


def test_boot_routes_answer_from_the_compiled_inventory(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    config = make_config(tmp_path, repo)
    accept(config)
    engine = Engine(config)
    files = {f.path: f.content for f in engine.compile(engine.load()).boot_files}
    app = serve_app(config, ServeSettings(audit_log=tmp_path / "a.jsonl"), FakeNeighbours())

    async def scenario(client: ServeClient) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        for path in [
            "/healthz",
            "/boot.ipxe",
            f"/boot/{KNOWN}",
            f"/boot/{KNOWN.upper().replace(':', '-')}",
            f"/boot/{UNKNOWN}",
            "/boot/not-a-mac",
            "/" + ipxe_path(KNOWN),
            "/" + pxelinux_path(KNOWN),
            "/" + pxelinux_path(UNKNOWN),
            "/nodes/node010.json",
            "/nodes/node099.json",
        ]:
            response = await client.get(path)
            answers[path] = (response.status, await response.text())
        return answers

    answers = with_client(app, scenario)
    status, health = answers["/healthz"]
    assert status == 200 and git(repo, "rev-parse", "main").strip() in health
    status, entry = answers["/boot.ipxe"]
    assert status == 200 and f"chain {HTTP_URL}/boot/${{net0/mac}}" in entry
    assert answers[f"/boot/{KNOWN}"] == (200, files[ipxe_path(KNOWN)])
    assert answers[f"/boot/{KNOWN.upper().replace(':', '-')}"] == (200, files[ipxe_path(KNOWN)])
    status, registration = answers[f"/boot/{UNKNOWN}"]
    assert status == 200 and registration.startswith("#!ipxe")
    assert "param mac ${net0/mac}" in registration
    assert f"{HTTP_URL}/register##params" in registration
    assert f"chain {HTTP_URL}/boot/${{net0/mac}}" in registration
    assert answers["/boot/not-a-mac"][0] == 400
    assert answers["/" + ipxe_path(KNOWN)] == (200, files[ipxe_path(KNOWN)])
    assert answers["/" + pxelinux_path(KNOWN)] == (200, files[pxelinux_path(KNOWN)])
    assert answers["/" + pxelinux_path(UNKNOWN)][0] == 404
    status, node = answers["/nodes/node010.json"]
    assert status == 200 and '"version": "2024.10"' in node.replace('":"', '": "')
    assert answers["/nodes/node099.json"][0] == 404


def test_only_the_accepted_revision_is_served(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    config = make_config(tmp_path, repo)
    app = serve_app(
        config,
        ServeSettings(audit_log=tmp_path / "a.jsonl", refresh_seconds=0),
        FakeNeighbours(),
    )
    group = repo / "groups" / "compute.yaml"

    async def scenario(client: ServeClient) -> list[tuple[int, str]]:
        async def boot() -> tuple[int, str]:
            response = await client.get(f"/boot/{KNOWN}")
            return response.status, await response.text()

        answers = [await boot()]  # nothing accepted yet
        accept(config)
        answers.append(await boot())
        group.write_text(group.read_text().replace("compute@2024.10", "compute@2024.11"))
        git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "upgrade")
        answers.append(await boot())  # the head moved, but nothing accepted it
        accept(config)
        answers.append(await boot())
        group.write_text("name: [broken\n")
        git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "broken")
        answers.append(await boot())
        return answers

    nothing, first, head_moved, upgraded, broken_head = with_client(app, scenario)
    assert nothing[0] == 503 and "no revision has been accepted yet" in nothing[1]
    assert first[0] == 200 and "compute@2024.10" in first[1]
    assert head_moved == first
    assert upgraded[0] == 200 and "compute@2024.11" in upgraded[1]
    assert broken_head == upgraded


def test_serve_settings_come_from_the_same_toml(tmp_path: Path) -> None:
    config_file = tmp_path / "reconciler.toml"
    config_file.write_text(
        '[source]\nrepo = "inventory"\nrev = "main"\n'
        '[serve]\nlisten = "10.23.45.2"\nport = 8081\naudit_log = "/var/log/reg.jsonl"\n'
        'branch = "registrations"\nauthor_name = "boot server"\n'
        'author_email = "boot@cluster.example"\nrate_limit_per_minute = 6\n'
        "rate_limit_burst = 2\nmax_body_bytes = 1024\n"
    )
    config, settings = load_serve_config(config_file)
    assert config.source.repo == Path("inventory") and config.base_dir == tmp_path
    assert settings.port == 8081 and settings.branch == "registrations"
    assert settings.audit_log == Path("/var/log/reg.jsonl")
    config_file.write_text('[source]\npath = "x"\n[serve]\nport = 0\nlisten_on = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_serve_config(config_file)
    assert "serve.port" in str(caught.value) and "serve.listen_on" in str(caught.value)


def test_neighbour_entries_are_parsed() -> None:
    assert parse_ip_neigh("10.23.45.201 dev vc1 lladdr 52:54:00:12:34:15 REACHABLE\n") == (
        "52:54:00:12:34:15"
    )
    assert parse_ip_neigh("10.23.45.201 dev vc1 FAILED\n") is None
    assert parse_ip_neigh("") is None
    arp = (
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "10.23.45.201     0x1         0x2         52:54:00:12:34:15     *        vs1\n"
        "10.23.45.202     0x1         0x0         00:00:00:00:00:00     *        vs1\n"
    )
    assert parse_proc_arp(arp, "10.23.45.201") == "52:54:00:12:34:15"
    assert parse_proc_arp(arp, "10.23.45.202") is None
