"""The watch loop rolls an image change out wave by wave, from agent reports in the state dir.

Passes are run one at a time (``run_pass``) so each step is deterministic; the
reports are the files ``serve`` writes when an agent posts (``reports/<host>.json``).
"""

from __future__ import annotations

import json
import socket

from reconciler.watch.loop import WatchLoop
from tests.unit.watch_fixture import WatchSite

COMPUTE = ["node010", "node011", "node012", "node013"]  # node014 is a canary
POLICY = 'rollout: {waves: [1, "100%"], max_unavailable: "100%", on_failure: pause}\n'


def assigned(site: WatchSite, host: str) -> str:
    data = json.loads(site.out(f"http/nodes/{host}.json"))
    return f"{data['image']}@{data['version']}"


def report(site: WatchSite, host: str, ref: str, *, healthy: bool = True) -> None:
    folder = site.root / "state" / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    image, _, version = ref.partition("@")
    body = {"host": host, "image": image, "version": version, "health": {"ok": healthy}}
    (folder / f"{host}.json").write_text(json.dumps(body))


def start_rollout(site: WatchSite, **settings: object) -> WatchLoop:
    loop = site.loop(rollout_interval=0.05, **settings)
    loop.run_pass({"startup"})
    assert {assigned(site, h) for h in COMPUTE} == {"compute@2024.10"}
    for host in COMPUTE:
        report(site, host, "compute@2024.10")
    site.edit("groups/compute.yaml", "image: compute@2024.10", "image: compute@2024.11")
    path = site.repo / "groups" / "compute.yaml"
    path.write_text(path.read_text() + POLICY)
    site.commit("compute to 2024.11")
    loop.run_pass({"local"})
    return loop


def test_an_image_change_goes_to_one_node_then_the_rest(watch_site: WatchSite) -> None:
    loop = start_rollout(watch_site)
    moved = [h for h in COMPUTE if assigned(watch_site, h) == "compute@2024.11"]
    assert moved == ["node010"]
    # Its boot files say the same: a power cycle boots what it is assigned.
    ipxe = watch_site.out("tftp/ipxe/52-54-00-12-34-0b.ipxe")
    assert "compute/2024.10/vmlinuz" in ipxe
    status = loop.store.load()
    (row,) = status.rollouts
    assert (row["group"], row["phase"], row["wave"]) == ("compute", "Progressing", 1)
    assert loop.rollouts.wakeup() is not None  # the loop looks at reports again soon

    loop.run_pass({"timer"})  # no report yet: nothing more moves
    assert sum(assigned(watch_site, h) == "compute@2024.11" for h in COMPUTE) == 1

    report(watch_site, "node010", "compute@2024.11")
    loop.run_pass({"timer"})
    assert {assigned(watch_site, h) for h in COMPUTE} == {"compute@2024.11"}
    assert "compute/2024.11/vmlinuz" in watch_site.out("tftp/ipxe/52-54-00-12-34-0b.ipxe")
    for host in COMPUTE:
        report(watch_site, host, "compute@2024.11")
    loop.run_pass({"timer"})
    assert loop.store.load().rollouts[0]["phase"] == "Complete"
    assert loop.rollouts.wakeup() is None


def test_a_failed_health_check_stops_the_rollout_and_status_names_the_node(
    watch_site: WatchSite,
) -> None:
    loop = start_rollout(watch_site)
    report(watch_site, "node010", "compute@2024.11", healthy=False)
    loop.run_pass({"timer"})
    (row,) = loop.store.load().rollouts
    assert row["phase"] == "Degraded"
    assert "health check failed" in row["failures"]["node010"]
    assert sum(assigned(watch_site, h) == "compute@2024.11" for h in COMPUTE) == 1


def test_a_restart_mid_rollout_goes_on_where_it_was(watch_site: WatchSite) -> None:
    start_rollout(watch_site)
    report(watch_site, "node010", "compute@2024.11")
    again = watch_site.loop(rollout_interval=0.05)
    again.run_pass({"startup"})
    assert {assigned(watch_site, h) for h in COMPUTE} == {"compute@2024.11"}


def test_a_damaged_rollout_state_keeps_the_assignments_and_says_which_file(
    watch_site: WatchSite,
) -> None:
    loop = start_rollout(watch_site)
    state = watch_site.root / "state" / "rollouts" / "compute.json"
    state.write_text("{not json")
    report(watch_site, "node010", "compute@2024.11")
    loop.run_pass({"timer"})
    assert sum(assigned(watch_site, h) == "compute@2024.11" for h in COMPUTE) == 1
    status = loop.store.load()
    assert status.rollout_error is not None and "compute.json" in status.rollout_error


def test_rollout_status_command_and_brake_through_the_loop(watch_site: WatchSite) -> None:
    from typer.testing import CliRunner

    from reconciler.cli import app

    loop = start_rollout(watch_site)
    config = str(watch_site.config_path)
    runner = CliRunner()
    assert runner.invoke(app, ["rollout", "pause", "compute", "-c", config]).exit_code == 0
    report(watch_site, "node010", "compute@2024.11")
    loop.run_pass({"rollout"})
    assert sum(assigned(watch_site, h) == "compute@2024.11" for h in COMPUTE) == 1
    assert loop.store.load().rollouts[0]["paused"] is True
    shown = runner.invoke(app, ["status", "-c", config])
    assert "rollout compute: Paused to compute@2024.11" in shown.stdout
    runner.invoke(app, ["rollout", "resume", "compute", "-c", config])
    loop.run_pass({"rollout"})
    assert {assigned(watch_site, h) for h in COMPUTE} == {"compute@2024.11"}


def test_serve_answers_each_node_with_the_version_its_wave_assigns(watch_site: WatchSite) -> None:
    import asyncio

    from reconciler.engine import Engine
    from reconciler.server.state import CompiledInventory

    loop = start_rollout(watch_site)
    served = CompiledInventory(Engine(watch_site.config()), refresh_seconds=0)

    def versions() -> dict[str, str]:
        compiled = asyncio.run(served.current(force=True))
        return {host: compiled.nodes[host].version for host in COMPUTE}

    first = versions()
    assert first["node010"] == "2024.11" and first["node011"] == "2024.10"
    report(watch_site, "node010", "compute@2024.11")
    loop.run_pass({"timer"})
    assert set(versions().values()) == {"2024.11"}


def test_a_degraded_rollout_keeps_looking_until_its_swapping_nodes_settle(
    watch_site: WatchSite,
) -> None:
    loop = start_rollout(watch_site)
    report(watch_site, "node010", "compute@2024.11")
    loop.run_pass({"timer"})  # wave 2: node011..node013 swap together
    report(watch_site, "node011", "compute@2024.11", healthy=False)
    loop.run_pass({"timer"})
    (row,) = loop.store.load().rollouts
    assert row["phase"] == "Degraded" and list(row["failures"]) == ["node011"]
    # node012 and node013 are still swapping: their outcome must still reach status.
    assert loop.rollouts.wakeup() is not None
    report(watch_site, "node012", "compute@2024.11", healthy=False)
    report(watch_site, "node013", "compute@2024.11")
    loop.run_pass({"timer"})
    (row,) = loop.store.load().rollouts
    assert sorted(row["failures"]) == ["node011", "node012"]
    assert row["states"] == {"failed": 2, "healthy": 2}
    assert loop.rollouts.wakeup() is None  # settled: no more timer passes


def test_a_restart_while_serve_is_unreachable_keeps_the_assignments_in_force(
    watch_site: WatchSite,
) -> None:
    """A takeover while serve (where the reports are, [watch] reports_url) is away."""
    start_rollout(watch_site)
    with socket.socket() as probe:  # a port that was free a moment ago: refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    again = watch_site.loop(
        rollout_interval=0.05, reports_url=f"http://127.0.0.1:{port}", reports_timeout=2
    )
    again.run_pass({"startup"})
    # Nothing is decided without the reports: node010 keeps the new version, the others
    # the old one (not the group's new image all at once), and status says why.
    moved = [h for h in COMPUTE if assigned(watch_site, h) == "compute@2024.11"]
    assert moved == ["node010"]
    status = again.store.load()
    assert status.rollout_error is not None and "node reports unavailable" in status.rollout_error
    assert again.rollouts.wakeup() is not None  # it asks serve again soon
