"""A rollout over a real inventory: the store, compile with assignments, and the commands."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.rollout.runner import run_rollouts
from reconciler.rollout.store import RolloutStore
from tests.unit.inventory_factory import group, host, load, write_inventory
from tests.unit.site_fixture import EXAMPLE, FILE_TARGETS

MACS = [f"52:54:00:00:01:{i:02x}" for i in range(1, 7)]
OLD, NEW = "compute@2024.10", "compute@2024.11"


def six_nodes(root: Path, image: str, **rollout: object) -> Path:
    hosts = [host(i, mac) for i, mac in enumerate(MACS, start=11)]
    policy = {"waves": [1, "100%"], "max_unavailable": "100%", **rollout}
    return write_inventory(
        root, groups={"compute": group(image=image, hosts=hosts, rollout=policy)}
    )


def report(store: RolloutStore, hostname: str, ref: str, *, healthy: bool = True) -> None:
    store.reports_folder.mkdir(parents=True, exist_ok=True)
    name, _, version = ref.partition("@")
    data = {"host": hostname, "image": name, "version": version, "health": {"ok": healthy}}
    (store.reports_folder / f"{hostname}.json").write_text(json.dumps(data))


def test_an_image_change_moves_one_node_first_and_the_rest_when_it_is_healthy(
    tmp_path: Path,
) -> None:
    store = RolloutStore(tmp_path / "state")
    inventory = load(six_nodes(tmp_path / "inv", OLD))
    first = run_rollouts(inventory, store, persist=True)
    assert set(first.assignments.values()) == {OLD}  # nothing ran before: all at once
    for hostname in first.assignments:
        report(store, hostname, OLD)

    inventory = load(six_nodes(tmp_path / "inv", NEW))
    second = run_rollouts(inventory, store, persist=True)
    assert [h for h, ref in second.assignments.items() if ref == NEW] == ["node011"]
    assert second.active

    report(store, "node011", NEW)
    third = run_rollouts(inventory, store, persist=True)
    assert set(third.assignments.values()) == {NEW}


def test_compile_gives_each_node_its_assigned_version_in_every_output(tmp_path: Path) -> None:
    from reconciler.compile import compile_inventory

    inventory = load(six_nodes(tmp_path / "inv", NEW))
    state = compile_inventory(inventory, assignments={"node012": OLD})
    versions = {n.host: n.version for n in state.node_images}
    assert versions["node012"] == "2024.10" and versions["node011"] == "2024.11"
    ipxe = {f.path: f.content for f in state.boot_files}
    assert "compute/2024.10/vmlinuz" in ipxe["ipxe/52-54-00-00-01-02.ipxe"]
    assert "compute/2024.11/vmlinuz" in ipxe["ipxe/52-54-00-00-01-01.ipxe"]


def test_a_canary_keeps_its_own_image_whatever_the_assignments_say(tmp_path: Path) -> None:
    from reconciler.compile import compile_inventory

    hosts = [host(11, MACS[0], image=NEW), host(12, MACS[1])]
    inventory = load(write_inventory(tmp_path, groups={"compute": group(hosts=hosts)}))
    state = compile_inventory(inventory, assignments={"node011": OLD, "node012": NEW})
    versions = {n.host: n.version for n in state.node_images}
    assert versions == {"node011": "2024.11", "node012": "2024.11"}


def test_rollout_commands_show_and_brake_a_rollout(tmp_path: Path) -> None:
    inventory_dir = six_nodes(tmp_path / "inv", OLD)
    config = tmp_path / "reconciler.toml"
    config.write_text(f'state_dir = "state"\n[source]\npath = "{inventory_dir}"\n')
    store = RolloutStore(tmp_path / "state")
    run_rollouts(load(inventory_dir), store, persist=True)
    for i in range(11, 17):
        report(store, f"node{i:03d}", OLD)
    six_nodes(tmp_path / "inv", NEW)
    run_rollouts(load(inventory_dir), store, persist=True)

    runner = CliRunner()
    shown = runner.invoke(app, ["rollout", "status", "-c", str(config), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    (row,) = json.loads(shown.output)
    assert row["target"] == NEW and row["phase"] == "Progressing"
    assert row["versions"] == {OLD: 5, NEW: 1} and row["wave"] == 1 and row["waves"] == 2

    paused = runner.invoke(app, ["rollout", "pause", "compute", "-c", str(config)])
    assert paused.exit_code == 0 and "paused" in paused.output
    report(store, "node011", NEW)
    held = run_rollouts(load(inventory_dir), store, persist=True)
    assert list(held.assignments.values()).count(NEW) == 1  # the brake holds the next wave
    text = runner.invoke(app, ["rollout", "status", "compute", "-c", str(config)])
    assert "Paused (held by rollout pause)" in text.output

    runner.invoke(app, ["rollout", "resume", "compute", "-c", str(config)])
    assert set(run_rollouts(load(inventory_dir), store, persist=True).assignments.values()) == {NEW}

    aborted = runner.invoke(app, ["rollout", "abort", "compute", "-c", str(config)])
    assert aborted.exit_code == 0
    after = run_rollouts(load(inventory_dir), store, persist=True)
    assert set(after.assignments.values()) == {OLD}
    shown = runner.invoke(app, ["rollout", "status", "-c", str(config)])
    assert shown.exit_code == 2 and "Aborted" in shown.output

    unknown = runner.invoke(app, ["rollout", "pause", "nosuch", "-c", str(config)])
    assert unknown.exit_code == 2 and "no group 'nosuch'" in unknown.output


def test_a_broken_state_file_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    inventory_dir = six_nodes(tmp_path / "inv", OLD)
    config = tmp_path / "reconciler.toml"
    config.write_text(f'state_dir = "state"\n[source]\npath = "{inventory_dir}"\n')
    broken = tmp_path / "state" / "rollouts" / "compute.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"group": "compute"')
    result = CliRunner().invoke(app, ["rollout", "status", "-c", str(config)])
    assert result.exit_code == 2
    assert "compute.json" in result.output and "remove the file" in result.output


def test_reports_older_than_the_timeout_make_a_node_offline(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path / "state")
    report(store, "node001", OLD)
    reports = store.reports(["node001", "node002"])
    assert set(reports) == {"node001"}
    assert abs(reports["node001"].reported_at - time.time()) < 60
    assert reports["node001"].running == OLD and reports["node001"].healthy is True


def test_plan_says_which_nodes_switch_root_kexec_or_reboot_and_in_which_waves(
    tmp_path: Path,
) -> None:

    shutil.copytree(EXAMPLE, tmp_path / "inventory")
    (tmp_path / "reconciler.toml").write_text(FILE_TARGETS)
    config = str(tmp_path / "reconciler.toml")
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "-c", config]).exit_code == 0
    images = tmp_path / "inventory" / "images" / "compute.yaml"
    text = images.read_text()
    # A third version: same kernel and command line as 2024.10, another root filesystem.
    same_kernel = text.split('  "2024.11":')[0].split('  "2024.10":')[1]
    same_kernel = same_kernel.replace(
        "7fa3c6c162913190cee936f34e9aab9180a3ac70213f4465c160820f1f894466", "a" * 64
    )
    images.write_text(text + '  "2024.12":' + same_kernel)
    gpu = tmp_path / "inventory" / "groups" / "gpu.yaml"
    gpu.write_text(gpu.read_text() + "rollout: {method: reboot}\n")
    compute = tmp_path / "inventory" / "groups" / "compute.yaml"
    compute.write_text(
        compute.read_text().replace("image: compute@2024.10", "image: compute@2024.12")
    )
    gpu.write_text(gpu.read_text().replace("image: compute@2024.11", "image: compute@2024.10"))

    shown = runner.invoke(app, ["plan", "-c", config, "--format", "json"])
    assert shown.exit_code == 1, shown.output
    moves = {m["group"]: m for m in json.loads(shown.stdout)["nodes"]}
    assert moves["compute"]["switch_root"] >= 1 and moves["compute"]["kexec"] == 0
    assert moves["gpu"]["reboot"] >= 1 and moves["gpu"]["switch_root"] == 0
    markdown = runner.invoke(app, ["plan", "-c", config, "--format", "markdown"]).stdout
    assert "| group | nodes | switch root | kexec | reboot | waves |" in markdown
    assert "Nodes (does this need a reboot?)" in runner.invoke(app, ["plan", "-c", config]).stdout


def test_diff_counts_switch_root_kexec_and_reboot_per_group(tmp_path: Path) -> None:
    from reconciler.hostdiff import diff_inventories
    from reconciler.hostdiff_render import render_diff_markdown, render_diff_text

    old = load(six_nodes(tmp_path / "old", OLD))
    new = load(six_nodes(tmp_path / "new", NEW))
    diff = diff_inventories(old, new)
    (moves,) = diff.nodes
    # 2024.10 -> 2024.11 changes the kernel: every node kexecs, in waves of 1 then all.
    assert (moves.group, moves.kexec, moves.switch_root, moves.waves) == ("compute", 6, 0, (1, 6))
    assert "6 node(s) move to compute@2024.11: 6 kexec (kernel changes)" in render_diff_text(
        diff, "a", "b"
    )
    assert "| `compute` | 6 | 0 | 6 | 0 | 1 → 6 |" in render_diff_markdown(diff, "a", "b")
    rebooting = load(six_nodes(tmp_path / "reboot", NEW, method="reboot"))
    assert diff_inventories(old, rebooting).nodes[0].reboot == 6


def test_apply_moves_nodes_wave_by_wave_too(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "inventory")
    (tmp_path / "reconciler.toml").write_text(FILE_TARGETS)
    config = str(tmp_path / "reconciler.toml")
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "-c", config]).exit_code == 0
    store = RolloutStore(tmp_path / "state")
    compute = ["node010", "node011", "node012", "node013"]
    for hostname in compute:
        report(store, hostname, OLD)
    group = tmp_path / "inventory" / "groups" / "compute.yaml"
    text = group.read_text().replace("image: compute@2024.10", "image: compute@2024.11")
    group.write_text(text + 'rollout: {waves: [1, "100%"], max_unavailable: "100%"}\n')

    def versions() -> list[str]:
        nodes = tmp_path / "out" / "http" / "nodes"
        return [json.loads((nodes / f"{h}.json").read_text())["version"] for h in compute]

    assert runner.invoke(app, ["apply", "-c", config]).exit_code == 0
    assert versions() == ["2024.11", "2024.10", "2024.10", "2024.10"]
    report(store, "node010", NEW)
    assert runner.invoke(app, ["apply", "-c", config]).exit_code == 0
    assert versions() == ["2024.11"] * 4


def test_a_reboot_method_reaches_the_node_assignment(tmp_path: Path) -> None:
    from reconciler.compile import compile_inventory

    rebooting = compile_inventory(load(six_nodes(tmp_path / "r", NEW, method="reboot")))
    assert {n.to_dict()["swap"] for n in rebooting.node_images} == {"reboot"}
    live = compile_inventory(load(six_nodes(tmp_path / "l", NEW)))
    assert all("swap" not in n.to_dict() for n in live.node_images)  # files stay as they were


def test_a_published_compressed_copy_of_the_assignments_is_read_as_the_state_dir_s(
    tmp_path: Path,
) -> None:
    """serve beside the operator reads assignments.json.gz of a mounted ConfigMap."""
    import pytest

    from reconciler.rollout.store import RolloutStateError, assignments_text, pack_assignments

    wanted = {"node001": "compute@2", "node002": "compute@1"}
    text = assignments_text(wanted).encode()
    assert pack_assignments(text) == pack_assignments(text)  # same bytes: no needless write
    published = tmp_path / "accepted" / "assignments.json.gz"
    published.parent.mkdir()
    store = RolloutStore(tmp_path / "state", assignments_file=published)
    assert store.assignments() == {} and store.assignments_stamp() is None
    published.write_bytes(pack_assignments(text))
    assert store.assignments() == wanted and store.assignments_stamp() is not None
    published.write_bytes(text[:9])  # torn: neither gzip nor JSON
    with pytest.raises(RolloutStateError, match=r"assignments\.json\.gz: unreadable"):
        store.assignments()
