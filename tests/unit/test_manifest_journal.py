"""The file targets' manifest journal: what a small save appends is what a load finds,
and a journal is never applied to a manifest file other than the one it continues."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from reconciler.targets import manifest
from reconciler.targets.manifest import Manifest


def write(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text(f"{name}\n")
    return path


@pytest.mark.parametrize("seed", range(3))
def test_random_saves_load_back_as_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Records, forgets and saves at random (journal lines and whole writes mixed): a
    fresh load finds exactly the entries the writer holds."""
    monkeypatch.setattr(manifest, "JOURNAL_LINES", 7)
    rng = random.Random(seed)
    files = tmp_path / "files"
    files.mkdir()
    writer = Manifest(tmp_path, "t")
    writer.load()
    journaled = whole = 0
    for _ in range(60):
        for _ in range(rng.choice([1, 2, 4])):
            key = f"k{rng.randrange(12)}"
            if rng.random() < 0.3:
                writer.forget(key)
            else:
                writer.record(key, write(files, f"{key}-{rng.randrange(5)}"), key)
        before = os.lstat(writer.path).st_ino if writer.path.exists() else None
        writer.save()
        rewritten = not writer.path.exists() or os.lstat(writer.path).st_ino != before
        whole, journaled = whole + rewritten, journaled + (not rewritten)
        reader = Manifest(tmp_path, "t")
        reader.load()
        assert reader.entries == writer.entries
        if rng.random() < 0.2:  # a restart: the next writer starts from the files
            writer = Manifest(tmp_path, "t")
            writer.load()
    assert journaled > whole > 1  # both ways taken


def test_a_journal_beside_another_manifest_is_ignored(tmp_path: Path) -> None:
    kept = Manifest(tmp_path, "t")
    kept.load()
    kept.record("a", write(tmp_path, "a"), "a")
    kept.save()  # no manifest yet: written whole
    kept.record("b", write(tmp_path, "b"), "b")
    kept.save()
    assert kept.journal.exists() and "b" not in json.loads(kept.path.read_text())
    again = Manifest(tmp_path, "t")
    again.load()
    assert set(again.entries) == {"a", "b"}
    # The manifest replaced (restored, rewritten by hand): the journal says nothing of it.
    replaced = kept.path.with_name("replaced")
    replaced.write_text(json.dumps({"a": again.entries["a"]}))
    replaced.replace(kept.path)
    after = Manifest(tmp_path, "t")
    after.load()
    assert set(after.entries) == {"a"}


def test_a_torn_journal_line_loses_only_its_entry(tmp_path: Path) -> None:
    kept = Manifest(tmp_path, "t")
    kept.load()
    kept.record("a", write(tmp_path, "a"), "a")
    kept.save()
    kept.record("b", write(tmp_path, "b"), "b")
    kept.save()
    with open(kept.journal, "a") as handle:
        handle.write('\n["c", [1, 2')  # a save of ours cut short
    kept.record("d", write(tmp_path, "d"), "d")
    kept.save()
    loaded = Manifest(tmp_path, "t")
    loaded.load()
    assert set(loaded.entries) == {"a", "b", "d"}
