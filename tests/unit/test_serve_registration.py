"""``POST /register`` against a real git repository: enrolment commits, guards, audit log."""

from __future__ import annotations

import asyncio
import difflib
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse

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

MAC = "52:54:00:12:34:15"
REMOTE = "10.23.45.201"


async def post(
    client: ServeClient,
    mac: str,
    *,
    remote: str = REMOTE,
    as_json: bool = False,
    on_link: bool = True,
) -> ClientResponse:
    """POST /register from ``remote``; ``on_link``: the kernel has a neighbour entry for it."""
    headers = {REMOTE_HEADER: remote}
    if on_link:
        headers[NEIGHBOUR_HEADER] = mac
    if as_json:
        return await client.post("/register", json={"mac": mac}, headers=headers)
    return await client.post("/register", data={"mac": mac}, headers=headers)


def group_file(repo: Path, rev: str = "main") -> str:
    return git(repo, "show", f"{rev}:groups/compute.yaml")


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    return AuditLog(tmp_path / "audit.jsonl").read()


@pytest.mark.parametrize("bare", [False, True], ids=["working-tree", "bare"])
def test_enrolment_appends_the_host_and_commits(tmp_path: Path, bare: bool) -> None:
    repo = make_repo(tmp_path, bare=bare)
    before = group_file(repo)
    config = make_config(tmp_path, repo)
    accept(config)
    app = serve_app(config, serve_settings(tmp_path), FakeNeighbours())

    async def scenario(client: ServeClient) -> tuple[int, Any, str, str]:
        response = await post(client, MAC)
        body = await response.json()
        waiting = await (await client.get(f"/boot/{MAC}")).text()
        accept(config)  # what watch does once it applied the registration commit
        boot = await client.get(f"/boot/{MAC}")
        return response.status, body, waiting, await boot.text()

    status, body, waiting, script = with_client(app, scenario)
    assert status == 200, body
    head = git(repo, "rev-parse", "main").strip()
    assert body == {
        "hostname": "node021",
        "ip": "10.23.45.21",
        "index": 21,
        "group": "compute",
        "commit": head,
    }
    log = git(repo, "log", "-1", "--format=%s|%an|%ae", "main").strip()
    assert (
        log == f"register node021 ({MAC}) in compute|reconciler registration|reconciler@localhost"
    )
    after = group_file(repo)
    added = [
        line[2:]
        for line in difflib.ndiff(before.splitlines(), after.splitlines())
        if line.startswith(("+ ", "- "))
    ]
    # Only the new host's lines changed: comments, quoting and order are as they were.
    assert added == ["  - index: 21", f'    mac: "{MAC}"']
    assert after.startswith(before)
    assert git(repo, "diff", "--stat", "main~1", "main").count("|") == 1
    if not bare:
        assert (repo / "groups" / "compute.yaml").read_text() == after
        assert git(repo, "status", "--porcelain") == ""
    # Until the commit is applied (accepted), the MAC still gets the registration script,
    # which waits and asks again; then the new host's own script.
    assert "/register" in waiting and "hostname=node021" not in waiting
    assert "hostname=node021" in script and "reconciler.image=compute@2024.10" in script


def test_repeat_gets_the_same_answer_and_no_second_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(make_config(tmp_path, repo), serve_settings(tmp_path), FakeNeighbours())

    async def scenario(client: ServeClient) -> list[Any]:
        first = await (await post(client, MAC)).json()
        second = await (await post(client, MAC.upper().replace(":", "-"), as_json=True)).json()
        return [first, second]

    first, second = with_client(app, scenario)
    assert first == second and first["index"] == 21
    assert git(repo, "rev-list", "--count", "main").strip() == "2"
    assert [e["reason"] for e in audit(tmp_path)] == [
        "enrolled",
        "already registered in this group",
    ]


def test_closed_window_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, open_window=False)
    app = serve_app(make_config(tmp_path, repo), serve_settings(tmp_path), FakeNeighbours())

    async def scenario(client: ServeClient) -> tuple[int, Any]:
        response = await post(client, MAC)
        return response.status, await response.json()

    status, body = with_client(app, scenario)
    assert status == 403 and "closed" in body["error"]
    assert git(repo, "rev-list", "--count", "main").strip() == "1"


def test_full_window_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, indexes="21-22")
    app = serve_app(make_config(tmp_path, repo), serve_settings(tmp_path), FakeNeighbours())

    async def scenario(client: ServeClient) -> list[tuple[int, Any]]:
        answers = []
        for last in ("21", "22", "23"):
            response = await post(client, f"52:54:00:00:01:{last}", remote=f"10.23.45.2{last}")
            answers.append((response.status, await response.json()))
        return answers

    answers = with_client(app, scenario)
    assert [a[1].get("index") for a in answers[:2]] == [21, 22]
    status, body = answers[2]
    assert status == 409 and "full" in body["error"] and "21-22" in body["error"]


def test_concurrent_registrations_get_distinct_consecutive_indexes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(make_config(tmp_path, repo), serve_settings(tmp_path), FakeNeighbours())
    macs = [f"52:54:00:00:02:{i:02x}" for i in range(12)]

    async def scenario(client: ServeClient) -> list[Any]:
        responses = await asyncio.gather(
            *(post(client, mac, remote=f"10.23.45.{200 + i}") for i, mac in enumerate(macs))
        )
        return [await r.json() for r in responses]

    bodies = with_client(app, scenario)
    indexes = sorted(b["index"] for b in bodies)
    assert indexes == list(range(21, 33))
    assert len({b["hostname"] for b in bodies}) == 12
    assert git(repo, "rev-list", "--count", "main").strip() == "13"
    final = group_file(repo)
    assert all(f'mac: "{mac}"' in final for mac in macs)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        ({"mac": "52:54:00:12:34"}, "form", 400, "not a MAC address"),
        ({"mac": "zz:54:00:12:34:56"}, "json", 400, "not a MAC address"),
        ({"host": "x"}, "form", 400, "no 'mac' field"),
        ({"mac": 5}, "json", 400, "must be a string"),
        ("mac=52:54:00:12:34:15", "text/plain", 415, "form"),
        ("{not json", "application/json", 400, "not valid"),
    ],
)
def test_bad_requests_are_refused(
    tmp_path: Path, body: Any, content_type: str, status: int, says: str
) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(make_config(tmp_path, repo), serve_settings(tmp_path), FakeNeighbours())

    async def scenario(client: ServeClient) -> tuple[int, Any]:
        headers = {REMOTE_HEADER: REMOTE}
        if content_type == "form":
            response = await client.post("/register", data=body, headers=headers)
        elif content_type == "json":
            response = await client.post("/register", json=body, headers=headers)
        else:
            headers["Content-Type"] = content_type
            response = await client.post("/register", data=body, headers=headers)
        return response.status, await response.json()

    got_status, answer = with_client(app, scenario)
    assert got_status == status and says in answer["error"], answer
    assert git(repo, "rev-list", "--count", "main").strip() == "1"
    assert audit(tmp_path)[-1]["decision"] == "refused"


def test_where_the_request_comes_from_is_checked(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    neighbours = FakeNeighbours()
    neighbours.entries[REMOTE] = "52:54:00:99:99:99"
    app = serve_app(make_config(tmp_path, repo), serve_settings(tmp_path), neighbours)

    async def scenario(client: ServeClient) -> list[tuple[int, str]]:
        answers = []
        for mac, remote in [
            (MAC, REMOTE),  # the kernel saw another MAC at this address
            (MAC, "192.0.2.7"),  # not in any group's subnet
            ("52:54:00:aa:00:02", "10.23.45.202"),  # gpu02, asking from compute's subnet
            ("52:54:00:99:99:99", REMOTE),  # matches the neighbour entry: enrolled
        ]:
            response = await post(client, mac, remote=remote)
            body = await response.json()
            answers.append((response.status, body.get("error", body.get("hostname"))))
        return answers

    answers = with_client(app, scenario)
    assert answers[0][0] == 403 and "neighbour entry" in answers[0][1]
    assert answers[1][0] == 403 and "not in the subnet of any group" in answers[1][1]
    assert answers[2][0] == 409 and "already registered as gpu02" in answers[2][1]
    assert answers[3] == (200, "node021")


def test_rate_limit_per_source_address(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(
        make_config(tmp_path, repo),
        serve_settings(tmp_path, rate_limit_burst=3, rate_limit_per_minute=1),
        FakeNeighbours(),
    )

    async def scenario(client: ServeClient) -> list[tuple[int, str | None]]:
        answers = []
        for remote in [REMOTE] * 5 + ["10.23.45.202"]:
            response = await post(client, MAC, remote=remote)
            answers.append((response.status, response.headers.get("Retry-After")))
        return answers

    answers = with_client(app, scenario)
    # Another address is not held back by the first one's empty bucket.
    assert [a[0] for a in answers] == [200, 200, 200, 429, 429, 200]
    assert answers[3][1] is not None and int(answers[3][1]) >= 1
    assert audit(tmp_path)[3]["status"] == 429


def test_body_size_is_bounded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(
        make_config(tmp_path, repo), serve_settings(tmp_path, max_body_bytes=256), FakeNeighbours()
    )

    async def scenario(client: ServeClient) -> int:
        response = await post(client, MAC + "x" * 1000)
        return response.status

    assert with_client(app, scenario) == 413
    assert git(repo, "rev-list", "--count", "main").strip() == "1"
    assert audit(tmp_path)[-1]["status"] == 413


def test_an_invalid_inventory_is_never_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(make_config(tmp_path, repo), serve_settings(tmp_path), FakeNeighbours())
    monkeypatch.setattr(
        "reconciler.server.enrol.append_host",
        lambda text, *, index, mac: text + f'  - index: 10\n    mac: "{mac}"\n',
    )

    async def scenario(client: ServeClient) -> tuple[int, Any]:
        response = await post(client, MAC)
        return response.status, await response.json()

    status, body = with_client(app, scenario)
    assert status == 409 and "would make the inventory invalid" in body["error"]
    assert git(repo, "rev-list", "--count", "main").strip() == "1"
    assert group_file(repo) == COMPUTE.format(open="true", indexes="21-40")


def test_audit_log_has_one_line_per_decision(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(make_config(tmp_path, repo), serve_settings(tmp_path), FakeNeighbours())

    async def scenario(client: ServeClient) -> None:
        await post(client, MAC)
        await post(client, "nonsense")
        await post(client, "52:54:00:12:34:16", remote="192.0.2.9")

    with_client(app, scenario)
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["decision"] for e in entries] == ["accepted", "refused", "refused"]
    assert entries[0]["hostname"] == "node021" and entries[0]["commit"]
    assert entries[0]["remote"] == REMOTE and entries[0]["mac"] == MAC
    assert entries[1]["status"] == 400 and entries[1]["mac"] == "nonsense"  # what was claimed
    assert entries[2]["remote"] == "192.0.2.9" and "subnet" in entries[2]["reason"]
    assert all("time" in e for e in entries)


@pytest.mark.parametrize("allowed", [True, False])
def test_ipxe_without_params_registers_with_get(tmp_path: Path, allowed: bool) -> None:
    repo = make_repo(tmp_path)
    app = serve_app(
        make_config(tmp_path, repo),
        serve_settings(tmp_path, register_with_get=allowed),
        FakeNeighbours(),
    )

    async def scenario(client: ServeClient) -> tuple[int, str]:
        response = await client.get(
            f"/register?mac={MAC}", headers={REMOTE_HEADER: REMOTE, NEIGHBOUR_HEADER: MAC}
        )
        return response.status, await response.text()

    status, body = with_client(app, scenario)
    if allowed:
        assert status == 200 and json.loads(body)["hostname"] == "node021"
    else:
        assert status == 405
        assert git(repo, "rev-list", "--count", "main").strip() == "1"
