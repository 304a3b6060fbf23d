"""Operations routes of ``reconciler serve``: status, metrics, and webhooks that wake the loop."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from pathlib import Path
from typing import Any

from reconciler.server.settings import ServeSettings
from reconciler.watch.sources import FETCH_REASONS
from reconciler.watch.status import Status, StatusStore, TargetStatus
from reconciler.watch.wakeup import WakeupWatcher, request_pass, wakeup_path
from tests.unit.serve_site import (
    FakeNeighbours,
    ServeClient,
    make_config,
    make_repo,
    serve_app,
    with_client,
)

SECRET = b"s3cret-for-tests"


def _app(tmp_path: Path, *, with_secret: bool) -> Any:
    repo = make_repo(tmp_path)
    config = make_config(tmp_path, repo)
    if with_secret:
        (tmp_path / "webhook.secret").write_bytes(SECRET + b"\n")
        config = config.model_copy(
            update={
                "watch": config.watch.model_copy(
                    update={"webhook_secret_file": Path("webhook.secret")}
                )
            }
        )
    status = Status(source="repo@main", applied_revision="abc123", good_revision="abc123")
    status.set_condition("Ready", True, reason="Applied", message="all targets applied")
    status.targets["dns"] = TargetStatus(ok=False, unmanaged=3, pending=2, error="down")
    StatusStore(config.resolve(config.state_dir)).save(status)
    app = serve_app(config, ServeSettings(audit_log=tmp_path / "a.jsonl"), FakeNeighbours())
    return app, config.resolve(config.state_dir)


def test_status_and_metrics_come_from_the_loop_state(tmp_path: Path) -> None:
    app, _ = _app(tmp_path, with_secret=False)

    async def scenario(client: ServeClient) -> tuple[int, Any, str, int]:
        status = await client.get("/status")
        metrics = await client.get("/metrics")
        webhook = await client.post("/webhook/github", data=b"{}")
        return status.status, await status.json(), await metrics.text(), webhook.status

    code, body, metrics, webhook = with_client(app, scenario)
    assert code == 200
    assert body["applied_revision"] == "abc123"
    assert body["conditions"][0] == {**body["conditions"][0], "type": "Ready", "status": "True"}
    assert 'reconciler_condition{condition="Ready"} 1.0' in metrics
    assert 'reconciler_target_up{target="dns"} 0.0' in metrics
    assert 'reconciler_target_unmanaged{target="dns"} 3.0' in metrics
    assert webhook == 404  # no secret configured: no webhook receiver


def test_a_signed_webhook_wakes_the_loop_and_a_forged_one_does_not(tmp_path: Path) -> None:
    app, state_dir = _app(tmp_path, with_secret=True)
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    good = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()

    async def scenario(client: ServeClient) -> list[int]:
        forged = await client.post(
            "/webhook/github", data=body, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}
        )
        codes = [forged.status, int(wakeup_path(state_dir).exists())]
        signed = await client.post(
            "/webhook/github", data=body, headers={"X-Hub-Signature-256": good}
        )
        return [*codes, signed.status]

    forged, woken_by_forgery, signed = with_client(app, scenario)
    assert (forged, woken_by_forgery, signed) == (401, 0, 202)
    assert json.loads(wakeup_path(state_dir).read_text())["reason"] == "webhook"


def test_the_watch_loop_hears_a_wakeup_from_another_process(tmp_path: Path) -> None:
    fired = threading.Event()
    reasons: list[str] = []

    def trigger(reason: str) -> None:
        reasons.append(reason)
        fired.set()

    watcher = WakeupWatcher(tmp_path, trigger)
    watcher.start()
    try:
        request_pass(tmp_path, "webhook")
        assert fired.wait(timeout=5)
    finally:
        watcher.stop()
    assert reasons[0] in FETCH_REASONS  # a remote source fetches at once


def test_metrics_show_rollout_progress_and_swap_downtimes(tmp_path: Path) -> None:
    config = make_config(tmp_path, make_repo(tmp_path))
    state_dir = config.resolve(config.state_dir)
    store = StatusStore(state_dir)
    status = Status(source="repo@main")
    status.rollouts = [
        {
            "group": "compute", "target": "compute@2", "phase": "Progressing", "wave": 2,
            "waves": 4, "versions": {"compute@1": 90, "compute@2": 10},
            "states": {"healthy": 8, "updating": 2, "waiting": 90}, "failures": {},
        }
    ]  # fmt: skip
    store.save(status)
    reports = state_dir / "reports"
    reports.mkdir(parents=True)
    for host, method, downtime in (("n1", "switch-root", 2.4), ("n2", "kexec", 14.0)):
        swap = {"method": method, "downtime_s": downtime, "result": "ok"}
        body: dict[str, object] = {
            "host": host, "state": "running", "image": "compute", "version": "2"
        }  # fmt: skip
        body["last_swap"] = swap
        (reports / f"{host}.json").write_text(json.dumps(body))

    app = serve_app(config, ServeSettings(audit_log=tmp_path / "a.jsonl"), FakeNeighbours())

    async def scenario(client: ServeClient) -> str:
        return await (await client.get("/metrics")).text()

    metrics = with_client(app, scenario)
    assert 'reconciler_rollout_nodes_assigned{group="compute",version="compute@2"} 10.0' in metrics
    assert 'reconciler_rollout_nodes{group="compute",state="updating"} 2.0' in metrics
    assert 'reconciler_rollout_wave{group="compute"} 2.0' in metrics
    assert 'reconciler_rollout_phase{group="compute",phase="Progressing"} 1.0' in metrics
    assert 'reconciler_node_swap_downtime_seconds_bucket{le="2.5",method="switch-root"} 1.0' in (
        metrics
    )
    assert 'reconciler_node_swap_downtime_seconds_bucket{le="10.0",method="kexec"} 0.0' in metrics
    assert 'reconciler_node_swap_downtime_seconds_count{method="kexec"} 1.0' in metrics
