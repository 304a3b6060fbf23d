"""Wrong-shaped or truncated state files: a clear error naming the file and the fix, no crash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner

from reconciler.cli import app as cli
from reconciler.server.app import build_app
from reconciler.server.settings import ServeSettings
from reconciler.watch.loop import WatchLoop
from tests.unit.watch_fixture import WatchSite, ready, wait_status

Start = Callable[[WatchLoop], WatchLoop]
runner = CliRunner()
DAMAGE = {
    "truncated": '{"owned": ["a", "b"',
    "wrong shape": '["a", "b"]',
    "wrong type inside": '{"owned": 5}',
}


@pytest.mark.parametrize("content", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_ledger_is_a_clear_error(watch_site: WatchSite, content: str) -> None:
    config = str(watch_site.config_path)
    assert runner.invoke(cli, ["apply", "-c", config]).exit_code == 0
    ledger = watch_site.root / "state" / "dns.owned.json"
    assert ledger.exists()
    ledger.write_text(content)
    for command in ("plan", "apply"):
        result = runner.invoke(cli, [command, "-c", config])
        assert result.exit_code == 2, result.output
        assert str(ledger) in result.stderr and "remove it" in result.stderr
        assert "Traceback" not in result.output
    assert ledger.read_text() == content  # left for the user to inspect


def test_watch_stays_up_on_a_damaged_ledger(watch_site: WatchSite, running: Start) -> None:
    state = watch_site.root / "state"
    state.mkdir()
    (state / "dns.owned.json").write_text('{"owned": {"not": "a list"}}')
    loop = running(watch_site.loop(backoff_initial=0.05, backoff_max=0.2))
    status = wait_status(loop, lambda s: "dns" in s.targets and s.targets["dns"].failures >= 2)
    assert "dns.owned.json" in (status.targets["dns"].error or "")
    assert status.targets["dhcp"].ok
    (state / "dns.owned.json").unlink()
    wait_status(loop, ready)


@pytest.mark.parametrize("content", ['{"passes": 3, "conditions": [', '{"passes": "many"}', "[]"])
def test_a_damaged_status_file(watch_site: WatchSite, running: Start, content: str) -> None:
    status_file = watch_site.root / "state" / "status.json"
    status_file.parent.mkdir()
    status_file.write_text(content)
    result = runner.invoke(cli, ["status", "-c", str(watch_site.config_path)])
    assert result.exit_code == 2
    assert str(status_file) in result.stderr and "delete it" in result.stderr
    assert "Traceback" not in result.output
    loop = running(watch_site.loop())  # the loop starts afresh and rewrites it
    wait_status(loop, ready)
    assert json.loads(status_file.read_text())["passes"] >= 1


def test_a_damaged_accepted_revision_record(watch_site: WatchSite) -> None:
    config = str(watch_site.config_path)
    assert runner.invoke(cli, ["apply", "-c", config]).exit_code == 0
    record = watch_site.root / "state" / "accepted.json"
    record.write_text('{"revision": 42}')
    app = build_app(watch_site.config(), ServeSettings(audit_log=watch_site.root / "a.jsonl"))

    async def main() -> tuple[int, str]:
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/boot/52:54:00:12:34:0a")
            return response.status, await response.text()

    status, text = asyncio.run(main())
    assert status == 503 and str(record) in text and "'revision' must be" in text
    result = runner.invoke(cli, ["status", "-c", config])
    assert result.exit_code == 2 and str(record) in result.stderr
    assert "reconciler apply" in result.stderr
