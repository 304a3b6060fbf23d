"""serve's node endpoints over real HTTP on loopback: ETag, 304, long polls, reports, status.

The agent's own HTTP client (``reconciler.agent.client``) talks to the service
here too, so both sides of the protocol are tested together.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from reconciler.agent.client import HttpServer, ServerError
from reconciler.cli import app as cli
from reconciler.config import RuntimeConfig
from reconciler.server.settings import ServeSettings
from tests.unit.serve_site import (
    REMOTE_HEADER,
    FakeNeighbours,
    ServeClient,
    accept,
    git,
    make_config,
    make_repo,
    serve_app,
    with_client,
)

NODE010 = ("10.23.45.10", "52:54:00:12:34:0a")


def site(tmp_path: Path, **settings: Any) -> tuple[Path, RuntimeConfig, FakeNeighbours, Any]:
    repo = make_repo(tmp_path)
    config = make_config(tmp_path, repo)
    accept(config)
    neighbours = FakeNeighbours()
    serve = ServeSettings(audit_log=tmp_path / "a.jsonl", refresh_seconds=0.05, **settings)
    return repo, config, neighbours, serve_app(config, serve, neighbours)


def new_revision(repo: Path, config: RuntimeConfig) -> None:
    """Commit node010's move to 2024.11 and accept it, as watch does after applying."""
    group = repo / "groups" / "compute.yaml"
    group.write_text(group.read_text().replace("compute@2024.10", "compute@2024.11"))
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qam", "v11")
    accept(config)


def report(version: str = "2024.10", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "host": "node010", "image": "compute", "version": version, "kernel_sha256": "ab" * 32,
        "boot_id": "b1", "agent_version": "1", "state": "running",
        "health": {"ok": True, "checks": [{"name": "ping", "ok": True, "output": ""}]},
        "last_swap": {"method": "switch-root", "from": "compute@2024.09", "to": "compute@2024.10",
                      "downtime_s": 2.4, "result": "ok", "reason": ""},
        "refused": [],
    }  # fmt: skip
    body.update(changes)
    return body


def test_assignment_has_an_etag_and_answers_304_when_unchanged(tmp_path: Path) -> None:
    _, _, _, app = site(tmp_path)

    async def scenario(client: ServeClient) -> None:
        first = await client.get("/nodes/node010.json")
        assert first.status == 200
        etag = first.headers["ETag"]
        assert (await first.json())["version"] == "2024.10"
        same = await client.get("/nodes/node010.json", headers={"If-None-Match": etag})
        assert same.status == 304 and same.headers["ETag"] == etag
        other = await client.get("/nodes/node010.json", headers={"If-None-Match": '"old"'})
        assert other.status == 200
        # a long poll that sees no change ends with 304 when its time is up
        waited = await client.get("/nodes/node010.json?wait=0.3", headers={"If-None-Match": etag})
        assert waited.status == 304
        missing = await client.get("/nodes/node099.json")
        assert missing.status == 404 and missing.headers["ETag"] == '"absent"'
        assert (await client.get("/nodes/node010.json?wait=soon")).status == 400

    with_client(app, scenario)


def test_long_polls_wake_up_when_a_new_revision_is_accepted(tmp_path: Path) -> None:
    repo, config, _, app = site(tmp_path)

    async def scenario(client: ServeClient) -> None:
        etag = (await client.get("/nodes/node010.json")).headers["ETag"]
        gpu_etag = (await client.get("/nodes/gpu02.json")).headers["ETag"]

        async def poll(host: str, tag: str) -> tuple[int, str]:
            response = await client.get(
                f"/nodes/{host}.json?wait=30", headers={"If-None-Match": tag}
            )
            return response.status, await response.text()

        waiting = [asyncio.create_task(poll("node010", etag)) for _ in range(50)]
        unchanged = asyncio.create_task(poll("gpu02", gpu_etag))
        await asyncio.sleep(0.3)
        assert not any(task.done() for task in waiting)  # held, not answered
        await asyncio.to_thread(new_revision, repo, config)
        answers = await asyncio.wait_for(asyncio.gather(*waiting), timeout=20)
        assert {status for status, _ in answers} == {200}
        assert all(json.loads(body)["version"] == "2024.11" for _, body in answers)
        # gpu02's assignment did not change: its poll keeps waiting after the wake-up
        await asyncio.sleep(0.3)
        assert not unchanged.done()
        unchanged.cancel()

    with_client(app, scenario)


def test_the_agent_client_fetches_polls_and_is_refused_a_report_from_loopback(
    tmp_path: Path,
) -> None:
    repo, config, _, app = site(tmp_path)

    async def scenario(client: ServeClient) -> None:
        agent = HttpServer(str(client.make_url("")), "node010", timeout=10)
        fetched = await asyncio.to_thread(agent.fetch, etag=None, wait=0)
        assert fetched.status == 200 and fetched.body["version"] == "2024.10"
        again = await asyncio.to_thread(agent.fetch, etag=fetched.etag, wait=0.2)
        assert again.status == 304
        polling = asyncio.create_task(asyncio.to_thread(agent.fetch, etag=fetched.etag, wait=30))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(new_revision, repo, config)
        changed = await asyncio.wait_for(polling, timeout=20)
        assert changed.status == 200 and changed.body["version"] == "2024.11"
        try:
            await asyncio.to_thread(agent.report, report())
        except ServerError as error:
            assert "403" in str(error) and "accepted from 10.23.45.10 only" in str(error)
        else:
            raise AssertionError("a report from loopback was accepted")

    with_client(app, scenario)


def post(client: ServeClient, remote: str, body: Any, **kwargs: Any) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/nodes/node010/report",
        data=data,
        headers={REMOTE_HEADER: remote, "Content-Type": "application/json"},
        **kwargs,
    )


def test_report_guard_and_storage(tmp_path: Path) -> None:
    _, config, neighbours, app = site(tmp_path, report_rate_burst=20)
    address, mac = NODE010
    stored = config.resolve(config.state_dir) / "reports" / "node010.json"

    async def scenario(client: ServeClient) -> dict[str, tuple[int, str]]:
        answers = {}
        answers["no neighbour entry"] = await post(client, address, report())
        neighbours.entries[address] = "52:54:00:99:99:99"
        answers["another MAC"] = await post(client, address, report())
        neighbours.entries["10.23.45.11"] = "52:54:00:12:34:0b"
        answers["node011's address"] = await post(client, "10.23.45.11", report())
        neighbours.entries[address] = mac
        answers["wrong host field"] = await post(client, address, report(host="node011"))
        answers["bad state"] = await post(client, address, report(state="happy"))
        answers["not JSON"] = await post(client, address, b"{")
        answers["too large"] = await post(client, address, report(boot_id="x" * 70_000))
        answers["ok"] = await post(client, address, report(extra="dropped"))
        return {k: (r.status, await r.text()) for k, r in answers.items()}

    answers = with_client(app, scenario)
    assert answers["no neighbour entry"][0] == 403
    assert "no neighbour entry for 10.23.45.10" in answers["no neighbour entry"][1]
    assert answers["another MAC"][0] == 403 and "52:54:00:99:99:99" in answers["another MAC"][1]
    assert answers["node011's address"][0] == 403
    assert answers["wrong host field"][0] == 400
    assert answers["bad state"][0] == 400 and "'state' must be one of" in answers["bad state"][1]
    assert answers["not JSON"][0] == 400
    assert answers["too large"][0] == 413
    assert answers["ok"][0] == 200
    saved = json.loads(stored.read_text())
    assert saved["version"] == "2024.10" and saved["remote"] == address
    assert "extra" not in saved and saved["received_at"] > 0
    assert saved["last_swap"]["downtime_s"] == 2.4


def test_reports_are_rate_limited_per_address(tmp_path: Path) -> None:
    _, _, neighbours, app = site(tmp_path, report_rate_burst=2, report_rate_per_minute=1)
    neighbours.entries[NODE010[0]] = NODE010[1]

    async def scenario(client: ServeClient) -> list[int]:
        return [(await post(client, NODE010[0], report())).status for _ in range(4)]

    assert with_client(app, scenario) == [200, 200, 429, 429]


def test_status_metrics_and_the_status_command_count_nodes(tmp_path: Path) -> None:
    _, config, neighbours, app = site(tmp_path)
    neighbours.entries[NODE010[0]] = NODE010[1]
    gpu = ("10.23.46.2", "52:54:00:aa:00:02")
    neighbours.entries[gpu[0]] = gpu[1]
    why = [{"version": "compute@2024.12", "reason": "sha256 mismatch"}]
    refused = report("2024.11", host="gpu02", state="refused", last_swap=None, refused=why)

    async def scenario(client: ServeClient) -> tuple[dict[str, Any], str]:
        assert (await post(client, NODE010[0], report())).status == 200
        answer = await client.post(
            "/nodes/gpu02/report", data=json.dumps(refused),
            headers={REMOTE_HEADER: gpu[0], "Content-Type": "application/json"},
        )  # fmt: skip
        assert answer.status == 200, await answer.text()
        status = await (await client.get("/status")).json()
        metrics = await (await client.get("/metrics")).text()
        return status, metrics

    status, metrics = with_client(app, scenario)
    nodes = status["nodes"]
    assert nodes["nodes"] == 2
    assert nodes["by_version"] == {"compute@2024.10": 1, "compute@2024.11": 1}
    assert nodes["by_state"] == {"refused": 1, "running": 1}
    assert nodes["attention"] == [
        {
            "host": "gpu02",
            "state": "refused",
            "version": "compute@2024.11",
            "reason": why[0]["reason"],
        }
    ]
    assert 'reconciler_nodes_by_version{version="compute@2024.10"} 1.0' in metrics
    assert 'reconciler_nodes_by_state{state="refused"} 1.0' in metrics
    assert 'reconciler_nodes_by_state{state="swapping"} 0.0' in metrics

    toml = tmp_path / "reconciler.toml"
    toml.write_text(f'state_dir = "{config.resolve(config.state_dir)}"\n'
                    f'[source]\nrepo = "{config.source.repo}"\nrev = "main"\n')  # fmt: skip
    text = CliRunner().invoke(cli, ["status", "-c", str(toml)])
    assert "nodes:      2 reporting" in text.output
    assert "states:   refused 1, running 1" in text.output
    assert "gpu02 refused on compute@2024.11: sha256 mismatch" in text.output
    as_json = CliRunner().invoke(cli, ["status", "-c", str(toml), "--format", "json"])
    assert json.loads(as_json.output)["nodes"]["nodes"] == 2


def test_held_polls_answer_at_once_when_serve_stops(tmp_path: Path) -> None:
    _, _, _, app = site(tmp_path)

    async def scenario(client: ServeClient) -> int:
        etag = (await client.get("/nodes/node010.json")).headers["ETag"]
        held = asyncio.create_task(
            client.get("/nodes/node010.json?wait=60", headers={"If-None-Match": etag})
        )
        await asyncio.sleep(0.3)
        assert not held.done()
        await app.shutdown()  # what SIGTERM runs first, before waiting for open requests
        response = await asyncio.wait_for(held, timeout=20)
        return response.status

    assert with_client(app, scenario) == 304


def test_a_report_body_that_never_arrives_times_out(tmp_path: Path) -> None:
    _, _, neighbours, app = site(tmp_path, body_timeout=0.3)
    neighbours.entries[NODE010[0]] = NODE010[1]

    async def scenario(client: ServeClient) -> bytes:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(
            b"POST /nodes/node010/report HTTP/1.1\r\nHost: x\r\n"
            + f"{REMOTE_HEADER}: {NODE010[0]}\r\n".encode()
            + b'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"host"'
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(200), timeout=20)
        writer.close()
        return answer

    assert with_client(app, scenario).startswith(b"HTTP/1.1 408")


def test_reports_of_hosts_removed_from_the_inventory_are_dropped(tmp_path: Path) -> None:
    """gpu02 reported, then its group left the inventory: once serve compiles the revision
    without it, its report is gone from /status, the state dir and ``reconciler status``."""
    repo, config, neighbours, app = site(tmp_path)
    neighbours.entries[NODE010[0]] = NODE010[1]
    gpu = ("10.23.46.2", "52:54:00:aa:00:02")
    neighbours.entries[gpu[0]] = gpu[1]
    reports = config.resolve(config.state_dir) / "reports"

    def remove_gpu_group() -> None:
        git(repo, "rm", "-q", "groups/gpu.yaml")
        git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "no gpu")
        accept(config)

    async def scenario(client: ServeClient) -> tuple[int, int]:
        assert (await post(client, NODE010[0], report())).status == 200
        answer = await client.post(
            "/nodes/gpu02/report", data=json.dumps(report("2024.11", host="gpu02")),
            headers={REMOTE_HEADER: gpu[0], "Content-Type": "application/json"},
        )  # fmt: skip
        assert answer.status == 200, await answer.text()
        before = (await (await client.get("/status")).json())["nodes"]["nodes"]
        await asyncio.to_thread(remove_gpu_group)
        await asyncio.sleep(0.1)  # past refresh_seconds: the next request compiles it
        assert (await client.get("/nodes/gpu02.json")).status == 404
        after = (await (await client.get("/status")).json())["nodes"]["nodes"]
        return before, after

    assert with_client(app, scenario) == (2, 1)
    assert sorted(path.name for path in reports.iterdir()) == ["node010.json"]
