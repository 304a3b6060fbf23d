"""One writer at a time: apply, watch passes and registrations take the state dir's lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reconciler.cli import app as cli
from reconciler.server.settings import ServeSettings
from reconciler.statelock import StateLock, StateLocked
from reconciler.watch.loop import WatchLoop
from tests.unit.serve_site import (
    REMOTE_HEADER,
    FakeNeighbours,
    ServeClient,
    make_config,
    make_repo,
    serve_app,
    with_client,
)
from tests.unit.watch_fixture import WatchSite, ready, wait_status

Start = Callable[[WatchLoop], WatchLoop]
runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def held(state_dir: Path) -> StateLock:
    lock = StateLock(state_dir, purpose="test", timeout=1)
    lock.acquire()
    return lock


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    lock = held(tmp_path)
    try:
        with pytest.raises(StateLocked, match=f"pid {os.getpid()} \\(test\\)"):
            StateLock(tmp_path, purpose="apply", timeout=0.1).acquire()
    finally:
        lock.release()
    with StateLock(tmp_path, purpose="apply", timeout=0.1):
        pass  # free again


def test_apply_refuses_or_waits_while_another_writer_holds_the_lock(
    watch_site: WatchSite,
) -> None:
    config = str(watch_site.config_path)
    lock = held(watch_site.root / "state")
    refused = runner.invoke(cli, ["apply", "-c", config, "--lock-timeout", "0.2"])
    assert refused.exit_code == 2
    assert f"pid {os.getpid()} (test)" in refused.stderr and "--lock-timeout" in refused.stderr
    assert not (watch_site.root / "out").exists()  # nothing applied
    threading.Timer(0.5, lock.release).start()
    waited = runner.invoke(cli, ["apply", "-c", config, "--lock-timeout", "30"])
    assert waited.exit_code == 0, waited.output
    assert "node010" in watch_site.out("dhcpd.hosts.conf")


def test_a_watch_pass_waits_for_the_lock(watch_site: WatchSite, running: Start) -> None:
    loop = running(watch_site.loop())
    wait_status(loop, ready)
    lock = held(watch_site.root / "state")
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:0b"', '"52:54:00:12:34:bb"')
    head = watch_site.commit("new NIC")
    try:
        time.sleep(1.5)  # passes come and are postponed; nothing is written meanwhile
        assert "52:54:00:12:34:bb" not in watch_site.out("dhcpd.hosts.conf")
    finally:
        lock.release()
    wait_status(loop, lambda s: s.accepted_revision == head, timeout=10)
    assert "52:54:00:12:34:bb" in watch_site.out("dhcpd.hosts.conf")


def test_a_registration_waits_then_answers_503_naming_the_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reconciler.server.app.REGISTRATION_LOCK_WAIT", 0.2)
    repo = make_repo(tmp_path)
    config = make_config(tmp_path, repo)
    app = serve_app(config, ServeSettings(audit_log=tmp_path / "a.jsonl"), FakeNeighbours())
    lock = held(tmp_path / "state")

    async def scenario(client: ServeClient) -> tuple[int, Any]:
        response = await client.post(
            "/register", data={"mac": "52:54:00:12:34:15"}, headers={REMOTE_HEADER: "10.23.45.201"}
        )
        return response.status, await response.json()

    try:
        status, body = with_client(app, scenario)
    finally:
        lock.release()
    assert status == 503 and f"pid {os.getpid()} (test)" in body["error"]


def test_concurrent_applies_lose_no_ledger_update(watch_site: WatchSite) -> None:
    reconciler = str(Path(sys.executable).with_name("reconciler"))
    command = [reconciler, "apply", "-c", str(watch_site.config_path)]
    processes = [
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
        for _ in range(3)
    ]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    plan = runner.invoke(cli, ["plan", "-c", str(watch_site.config_path), "--format", "json"])
    assert plan.exit_code == 0, plan.output  # nothing left to do
    ledger = json.loads((watch_site.root / "state" / "dns.owned.json").read_text())
    assert len(ledger["owned"]) > 10
