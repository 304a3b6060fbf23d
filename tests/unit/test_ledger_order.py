"""The ownership ledger written after a few keys changed, from the sorted keys it knows:
the file is always what writing every key sorted gives, whoever wrote it before."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from reconciler.targets.base import OwnershipLedger, ledger_text


@pytest.mark.parametrize("seed", range(2))
def test_ledger_text_after_random_edits_by_us_by_others_and_by_hand(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    ours, model, hand = OwnershipLedger(tmp_path, "dns"), set[str](), None
    path = tmp_path / "dns.owned.json"
    for step in range(200):
        action = rng.choice(["widen", "narrow", "save", "another process", "by hand"])
        keys = {f"k{rng.randrange(60)}" + ("é" if rng.random() < 0.1 else "") for _ in range(4)}
        if action == "widen":
            ours.widen(keys)
            model |= keys
        elif action == "narrow":
            ours.narrow(keys)
            model -= keys
        elif action == "save":
            model = keys | {f"k{rng.randrange(60)}" for _ in range(20)}
            ours.save(model)
        elif action == "another process":
            OwnershipLedger(tmp_path, "dns").widen(keys)
            model |= keys
        elif path.exists():  # someone rewrites it unsorted; still the same keys
            listed = sorted(model)
            rng.shuffle(listed)
            hand = json.dumps({"owned": listed})
            path.write_text(hand)
        if path.exists():
            text = path.read_text()
            assert text in (hand, ledger_text(model)), f"step {step}: {action}"
        assert ours.load() == model, f"step {step}: {action}"
        sorted_keys = ours.sorted_keys()
        assert sorted_keys == sorted(model), f"step {step}: {action}"
        sorted_keys.append("a key the ledger must not see")  # a copy, never its own list


def test_a_large_ledger_takes_one_more_key_in_order(tmp_path: Path) -> None:
    keys = {f"cluster.example. r{i:05d}.cluster.example. A" for i in range(5000)}
    ledger = OwnershipLedger(tmp_path, "dns")
    ledger.save(keys)
    ledger.widen(["cluster.example. r02500x.cluster.example. A"])
    ledger.narrow(["cluster.example. r00007.cluster.example. A"])
    expected = (keys | {"cluster.example. r02500x.cluster.example. A"}) - {
        "cluster.example. r00007.cluster.example. A"
    }
    assert (tmp_path / "dns.owned.json").read_text() == ledger_text(expected)
