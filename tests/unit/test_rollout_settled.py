"""Settled rollout decisions reused from pass to pass (``SettledGroups``, as watch runs
them): only while the group is the very same model and its rollout state reads the
same; a changed group, a changed image or a changed state file is decided again."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.rollout.runner import SettledGroups, run_rollouts
from reconciler.rollout.store import RolloutStore
from tests.unit.inventory_factory import group, host, load, write_inventory

OLD, NEW = "compute@2024.10", "compute@2024.11"


def site(root: Path, image: str, count: int) -> Path:
    macs = [f"52:54:00:00:01:{i:02x}" for i in range(1, count + 1)]
    hosts = [host(i, mac) for i, mac in enumerate(macs, start=11)]
    policy = {"waves": [1, "100%"], "max_unavailable": "100%"}
    return write_inventory(
        root, groups={"compute": group(image=image, hosts=hosts, rollout=policy)}
    )


def test_the_same_group_and_state_reuse_the_decision(tmp_path: Path) -> None:
    store, settled = RolloutStore(tmp_path / "state"), SettledGroups()
    inventory = load(site(tmp_path / "inv", OLD, 4))
    run_rollouts(inventory, store, persist=True, settled=settled)
    second = run_rollouts(inventory, store, persist=True, settled=settled)
    third = run_rollouts(inventory, store, persist=True, settled=settled)
    assert third.decisions["compute"] is second.decisions["compute"]
    fresh = run_rollouts(inventory, store, persist=False)
    assert third.assignments == fresh.assignments
    assert third.decisions == fresh.decisions


def test_a_new_host_in_a_reloaded_group_is_assigned(tmp_path: Path) -> None:
    store, settled = RolloutStore(tmp_path / "state"), SettledGroups()
    run_rollouts(load(site(tmp_path / "inv", OLD, 4)), store, persist=True, settled=settled)
    run_rollouts(load(site(tmp_path / "inv", OLD, 4)), store, persist=True, settled=settled)
    grown = run_rollouts(load(site(tmp_path / "inv", OLD, 5)), store, persist=True, settled=settled)
    assert grown.assignments == {f"node{i:03d}": OLD for i in range(11, 16)}


def test_an_image_change_still_rolls_out_in_waves(tmp_path: Path) -> None:
    store, settled = RolloutStore(tmp_path / "state"), SettledGroups()
    inventory = load(site(tmp_path / "inv", OLD, 4))
    for _ in range(2):
        run_rollouts(inventory, store, persist=True, settled=settled)
    moved = run_rollouts(load(site(tmp_path / "inv", NEW, 4)), store, persist=True, settled=settled)
    assert [h for h, ref in moved.assignments.items() if ref == NEW] == ["node011"]
    assert moved.active


def test_a_changed_state_file_is_decided_again(tmp_path: Path) -> None:
    """Same group object, but its rollout state was removed by hand (``rollout`` help says
    so to start again): decided anew from the assignments, not taken from memory."""
    store, settled = RolloutStore(tmp_path / "state"), SettledGroups()
    inventory = load(site(tmp_path / "inv", OLD, 4))
    first = run_rollouts(inventory, store, persist=True, settled=settled)
    (store.folder / "compute.json").unlink()
    again = run_rollouts(inventory, store, persist=True, settled=settled)
    assert again.decisions["compute"] is not first.decisions["compute"]
    assert again.assignments == first.assignments
    assert (store.folder / "compute.json").exists()  # the state is written again


def test_a_state_file_edited_between_passes_is_not_overwritten_from_memory(
    tmp_path: Path,
) -> None:
    store, settled = RolloutStore(tmp_path / "state"), SettledGroups()
    inventory = load(site(tmp_path / "inv", OLD, 4))
    for _ in range(2):
        run_rollouts(inventory, store, persist=True, settled=settled)
    path = store.folder / "compute.json"
    state = json.loads(path.read_text())
    state["wave"], state["revision"] = 7, "edited"
    path.write_text(json.dumps(state))
    after = run_rollouts(inventory, store, persist=True, settled=settled)
    rollout = after.decisions["compute"].rollout
    assert rollout is not None and (rollout.wave, rollout.revision) == (7, "edited")
    assert json.loads(path.read_text())["revision"] == "edited"
