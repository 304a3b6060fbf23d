"""State files written with json's C string encoder read back exactly as json.dumps wrote
them before (the operator mirrors them; people diff them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.rollout.store import RolloutStateError, RolloutStore, assignments_text
from reconciler.targets.base import ledger_text

ODD = ["a", 'é"x', "c\\d", "tab\there", "node0001", "10.23.1.1.in-addr.arpa./PTR"]


@pytest.mark.parametrize("keys", [[], ["one"], ODD])
def test_a_ledger_reads_as_json_dumps_wrote_it(keys: list[str]) -> None:
    assert ledger_text(keys) == json.dumps({"owned": sorted(keys)}, indent=0) + "\n"
    assert json.loads(ledger_text(keys)) == {"owned": sorted(keys)}


@pytest.mark.parametrize("hosts", [[], ["node1"], ODD])
def test_assignments_read_as_json_dumps_wrote_them(hosts: list[str]) -> None:
    assignments = {host: f"compute@{n}" for n, host in enumerate(reversed(hosts))}
    expected = json.dumps(assignments, sort_keys=True, indent=1) + "\n"
    assert assignments_text(assignments) == expected


def test_assignments_edited_by_hand_are_read_again(tmp_path: Path) -> None:
    """The store keeps assignments.json parsed between reads: an edit must still show."""
    store = RolloutStore(tmp_path)
    store.save_assignments({"node1": "compute@1"})
    assert store.assignments() == {"node1": "compute@1"}
    path = tmp_path / "rollouts" / "assignments.json"
    path.write_text(json.dumps({"node1": "compute@2", "node2": "compute@2"}))
    assert store.assignments() == {"node1": "compute@2", "node2": "compute@2"}
    path.write_text("[1, 2]")
    with pytest.raises(RolloutStateError):
        store.assignments()
