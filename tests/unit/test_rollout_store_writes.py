"""The rollout store writes only what changed, and writes it as a whole write would."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from reconciler.rollout.state import GroupRollout
from reconciler.rollout.store import RolloutStore, assignments_text


@pytest.mark.parametrize("seed", range(2))
def test_assignments_file_after_random_moves(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = RolloutStore(tmp_path)
    model: dict[str, str] = {}
    path = tmp_path / "rollouts" / "assignments.json"
    for step in range(150):
        model = dict(model)
        for _ in range(rng.choice([1, 2, 5])):
            host = f"node{rng.randrange(40):03d}"
            if rng.random() < 0.2:
                model.pop(host, None)
            else:
                model[host] = rng.choice(["compute@1", "compute@2"])
        if rng.random() < 0.1:  # another process writes it
            RolloutStore(tmp_path).save_assignments(model)
        else:
            store.save_assignments(model)
        if path.exists():
            assert path.read_text() == assignments_text(model), f"step {step}"
        assert store.assignments() == model


def test_an_unchanged_rollout_is_not_written_again(tmp_path: Path) -> None:
    store = RolloutStore(tmp_path)
    rollout = GroupRollout(group="compute", target="compute@2", revision="abc", previous={})
    store.save_rollout(rollout)
    path = tmp_path / "rollouts" / "compute.json"
    written = path.stat()
    store.save_rollout(rollout)
    assert path.stat().st_ino == written.st_ino  # not replaced
    path.write_text("{}\n")  # someone else's write: ours is written again
    store.save_rollout(rollout)
    assert store.rollout("compute") == rollout
    rollout.phase = "Complete"
    store.save_rollout(rollout)
    assert store.rollout("compute") == rollout


@pytest.mark.parametrize("seed", range(3))
def test_assignments_saved_by_group_parts_after_random_moves(tmp_path: Path, seed: int) -> None:
    """As watch saves them: by group, most groups' parts the very objects saved before
    (only the others are compared), hosts moving between groups, groups coming and
    going, and another process writing the file now and then."""
    rng = random.Random(seed)
    store = RolloutStore(tmp_path)
    parts: dict[str, dict[str, str]] = {}
    path = tmp_path / "rollouts" / "assignments.json"
    for step in range(200):
        parts = dict(parts)  # the groups not touched below keep their part objects
        for _ in range(rng.choice([1, 2, 3])):
            group = f"rack{rng.randrange(4)}"
            part = dict(parts.get(group, {}))
            for other in parts.values():
                if other is not parts.get(group) and rng.random() < 0.1 and other:
                    part[rng.choice(sorted(other))] = "moved@1"  # a host changes group
            if rng.random() < 0.1:
                parts.pop(group, None)
                continue
            host = f"node{rng.randrange(60):03d}"
            if rng.random() < 0.2:
                part.pop(host, None)
            else:
                part[host] = rng.choice(["compute@1", "compute@2"])
            parts[group] = part
        for group, part in parts.items():  # a host is assigned by one group only
            for other_group, other in parts.items():
                if other_group < group and other.keys() & part.keys():
                    parts[group] = part = {h: r for h, r in part.items() if h not in other}
        model = {host: ref for part in parts.values() for host, ref in part.items()}
        if rng.random() < 0.1:  # another process writes it
            RolloutStore(tmp_path).save_assignments(model)
        else:
            store.save_assignments(model, parts=parts)
        if path.exists():
            assert path.read_text() == assignments_text(model), f"step {step}"
        assert store.assignments() == model
