"""The guards of ``/register`` against abuse: MACs, origin, global cap, cheap refusals first,
malformed bodies, a bounded audit log and throttled log lines.

The peer address and the neighbour table come from test headers (see
``serve_site``); the real kernel table is exercised in
tests/integration/test_registration_netns.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from reconciler.inventory.load import load_inventory
from reconciler.model.inventory import Inventory
from reconciler.server.audit import AuditLog
from tests.unit.serve_site import (
    COMPUTE,
    NEIGHBOUR_HEADER,
    REMOTE_HEADER,
    FakeNeighbours,
    ServeClient,
    accept,
    git,
    make_config,
    make_repo,
    serve_app,
    serve_settings,
    with_client,
)

REMOTE = "10.23.45.201"


def commits(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "main").strip())


async def register(
    client: ServeClient, mac: str, *, remote: str = REMOTE, neighbour: str | None = "same"
) -> tuple[int, dict[str, Any]]:
    headers = {REMOTE_HEADER: remote}
    if neighbour is not None:
        headers[NEIGHBOUR_HEADER] = mac if neighbour == "same" else neighbour
    response = await client.post("/register", data={"mac": mac}, headers=headers)
    return response.status, await response.json()


@pytest.mark.parametrize(
    ("mac", "says"),
    [
        ("ff:ff:ff:ff:ff:ff", "broadcast"),
        ("00:00:00:00:00:00", "all-zero"),
        ("01:00:5e:00:00:fb", "multicast"),
        ("33-33-00-00-00-01", "multicast"),
    ],
)
def test_macs_no_card_has_are_refused(tmp_path: Path, mac: str, says: str) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(make_config(tmp_path, repo), serve_settings(tmp_path), FakeNeighbours())
    status, body = with_client(app, lambda client: register(client, mac))
    assert status == 400 and says in body["error"], body
    assert commits(repo) == 1
    assert AuditLog(tmp_path / "audit.jsonl").read()[-1]["mac"] == mac


def test_a_locally_administered_mac_is_enrolled(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(make_config(tmp_path, repo), serve_settings(tmp_path), FakeNeighbours())
    status, body = with_client(app, lambda client: register(client, "02:16:3e:00:00:01"))
    assert status == 200 and body["hostname"] == "node021"


def test_without_a_neighbour_entry_only_allow_routed_groups_enrol(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    config = make_config(tmp_path, repo)
    mac = "52:54:00:12:34:15"

    def attempt() -> tuple[int, dict[str, Any]]:
        app = serve_app(config, serve_settings(tmp_path), FakeNeighbours())
        return with_client(app, lambda client: register(client, mac, neighbour=None))

    status, body = attempt()  # nothing accepted yet: the enroller checks at the head
    assert status == 403 and "no neighbour entry" in body["error"], body
    assert "allow_routed" in body["error"]
    accept(config)
    status, body = attempt()  # refused from the accepted revision, without a git read
    assert status == 403 and "allow_routed" in body["error"], body
    assert commits(repo) == 1

    group = (repo / "groups/compute.yaml").read_text()
    (repo / "groups/compute.yaml").write_text(
        group.replace("  indexes: 21-40\n", "  indexes: 21-40\n  allow_routed: true\n")
    )
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qam", "routed ok")
    status, body = attempt()  # committed but not accepted: still refused
    assert status == 403 and "allow_routed" in body["error"], body
    accept(config)
    status, body = attempt()
    assert status == 200 and body["hostname"] == "node021", body


def test_a_global_cap_holds_back_many_addresses_together(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(
        make_config(tmp_path, repo),
        serve_settings(tmp_path, rate_limit_global_burst=3, rate_limit_global_per_minute=1),
        FakeNeighbours(),
    )

    async def scenario(client: ServeClient) -> list[tuple[int, dict[str, Any]]]:
        return [
            await register(client, f"52:54:00:00:03:{i:02x}", remote=f"10.23.45.{210 + i}")
            for i in range(5)
        ]

    answers = with_client(app, scenario)
    assert [a[0] for a in answers] == [200, 200, 200, 429, 429]
    assert "everyone together" in answers[3][1]["error"]
    assert commits(repo) == 4


def test_cheap_refusals_never_read_the_inventory_from_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path, open_window=False)
    loads: list[str] = []
    import reconciler.server.enrol as enrol

    def counting_load(*args: Any, **kwargs: Any) -> Inventory:
        loads.append("load")
        return load_inventory(*args, **kwargs)

    monkeypatch.setattr(enrol, "load_inventory", counting_load)
    config = make_config(tmp_path, repo)
    accept(config)  # the window is checked in the accepted revision, in memory
    app = serve_app(
        config,
        serve_settings(tmp_path, rate_limit_burst=1, rate_limit_per_minute=1, max_body_bytes=128),
        FakeNeighbours(),
    )

    async def scenario(client: ServeClient) -> list[int]:
        statuses = [(await register(client, "52:54:00:12:34:15"))[0]]  # window closed
        statuses.append((await register(client, "52:54:00:12:34:15"))[0])  # rate
        big = {REMOTE_HEADER: "10.23.45.230"}
        response = await client.post("/register", data={"mac": "x" * 500}, headers=big)
        statuses.append(response.status)  # size
        statuses.append((await register(client, "ff:ff:ff:ff:ff:ff", remote="10.23.45.231"))[0])
        return statuses

    assert with_client(app, scenario) == [403, 429, 413, 400]
    assert loads == []


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b'{"mac": "52:54:00:12:34:15"}', "application/json; charset=x-no-such", "charset"),
        (b"mac=52:54:00:12:34:15", "application/x-www-form-urlencoded; charset=utf-16", "UTF-8"),
        (b'{"mac": "\xff\xfe"}', "application/json", "UTF-8"),
        (b"[" * 50_000 + b"]" * 50_000, "application/json", "not valid JSON"),
        (b'{"a":' * 20_000 + b"1" + b"}" * 20_000, "application/json", "not valid JSON"),
        (b'["52:54:00:12:34:15"]', "application/json", "must be an object"),
        (b'"52:54:00:12:34:15"', "application/json", "must be an object"),
        (b"null", "application/json", "must be an object"),
        (b"--x\r\nnot a part", "multipart/form-data; boundary=x", "multipart"),
    ],
)
def test_malformed_bodies_are_a_400_never_a_500(
    tmp_path: Path, body: bytes, content_type: str, says: str
) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(
        make_config(tmp_path, repo),
        serve_settings(tmp_path, max_body_bytes=1_048_576),
        FakeNeighbours(),
    )

    async def scenario(client: ServeClient) -> tuple[int, Any]:
        response = await client.post(
            "/register", data=body, headers={REMOTE_HEADER: REMOTE, "Content-Type": content_type}
        )
        return response.status, await response.json()

    status, answer = with_client(app, scenario)
    assert status == 400 and says in answer["error"], answer
    assert commits(repo) == 1


def test_the_audit_log_is_rotated_and_bounded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, open_window=False)
    app = serve_app(
        make_config(tmp_path, repo),
        serve_settings(tmp_path, audit_log_max_bytes=4096, audit_log_backups=2),
        FakeNeighbours(),
    )

    async def scenario(client: ServeClient) -> None:
        for i in range(120):
            await register(client, f"52:54:00:00:04:{i:02x}", remote=f"10.23.45.{100 + i}")

    with_client(app, scenario)
    files = sorted(p.name for p in tmp_path.glob("audit.jsonl*"))
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size < 4096 + 1024
    newest = AuditLog(tmp_path / "audit.jsonl").read()[-1]
    assert newest["mac"] == "52:54:00:00:04:77" and newest["decision"] == "refused"


def test_repeated_refusals_are_logged_a_few_times_not_every_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(
        make_config(tmp_path, repo), serve_settings(tmp_path, rate_limit_burst=1), FakeNeighbours()
    )

    async def scenario(client: ServeClient) -> None:
        for _ in range(50):
            await register(client, "ff:ff:ff:ff:ff:ff")

    with caplog.at_level(logging.INFO, logger="reconciler.server.registration"):
        with_client(app, scenario)
    refused = [r for r in caplog.records if r.getMessage() == "registration refused"]
    assert 1 <= len(refused) <= 10, len(refused)
    assert len(AuditLog(tmp_path / "audit.jsonl").read()) == 50  # the audit log keeps all


def test_group_file_untouched_after_refusals(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(make_config(tmp_path, repo), serve_settings(tmp_path), FakeNeighbours())
    with_client(app, lambda client: register(client, "52:54:00:12:34:15", neighbour=None))
    assert git(repo, "show", "main:groups/compute.yaml") == COMPUTE.format(
        open="true", indexes="21-40"
    )
