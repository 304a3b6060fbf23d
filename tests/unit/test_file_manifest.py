"""The file targets' manifest: an unchanged lstat spares reading a file, and nothing else does."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import Engine
from reconciler.plan import Plan
from reconciler.targets import filetree, manifest
from tests.unit.site_fixture import Site


def apply_all(engine: Engine) -> None:
    report = engine.apply(engine.plan(engine.compile(engine.load()), revision="test"))
    assert report.ok, [o.error for o in report.outcomes]


def plan_counting_reads(site: Site, monkeypatch: pytest.MonkeyPatch) -> tuple[Plan, list[str]]:
    """A fresh engine's plan, and the files the file targets opened to read."""
    opened: list[str] = []

    def counting_open(path: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(path))
        return open(path, *args, **kwargs)  # the caller closes it

    monkeypatch.setattr(filetree, "open", counting_open, raising=False)
    engine = site.engine()
    plan = engine.plan(engine.compile(engine.load()), revision="test")
    monkeypatch.delattr(filetree, "open")
    return plan, opened


def file_changes(plan: Plan) -> set[tuple[str, str]]:
    return {(t.target, c.key) for t in plan.targets if t.kind != "dns-zonefile" for c in t.changes}


@pytest.fixture
def settled(site: Site, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[str]]:
    """A site applied, then read once: every file of the file targets recorded as trusted.

    The racy window is shortened to 50 ms (the rule itself is tested below), so a
    test waits that long instead of a second."""
    monkeypatch.setattr(manifest, "RACY_NS", 50_000_000)
    apply_all(site.engine())
    time.sleep(0.1)
    first, opened = plan_counting_reads(site, monkeypatch)
    assert not first.has_changes
    assert opened, "files just written are read once (racy), then trusted"

    def plan_reads() -> list[str]:
        plan, reads = plan_counting_reads(site, monkeypatch)
        assert not plan.has_changes
        return reads

    return plan_reads


def test_unchanged_files_are_not_read_again(settled: Callable[[], list[str]]) -> None:
    assert settled() == []


def test_same_size_edit_with_mtime_set_back_is_seen(
    site: Site, settled: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = site.root / "out/tftp/ipxe/52-54-00-12-34-0b.ipxe"
    before = os.lstat(path)
    original = path.read_text()
    edited = original.replace("boot\n", "exit\n")
    assert len(edited) == len(original) and edited != original
    path.write_text(edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # ctime moves all the same
    after = os.lstat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    plan, opened = plan_counting_reads(site, monkeypatch)
    assert file_changes(plan) == {("boot", "ipxe/52-54-00-12-34-0b.ipxe")}
    assert opened == [str(path)]


def test_file_replaced_by_another_with_the_same_times_is_seen(
    site: Site, settled: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = site.root / "out/http/nodes/node010.json"
    before = os.lstat(path)
    original = path.read_text()
    swapped = original.replace('"node010"', '"node0X0"')
    assert len(swapped) == len(original)
    replacement = path.with_name(".replacement")
    replacement.write_text(swapped)
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, path)
    assert os.lstat(path).st_ino != before.st_ino
    plan, opened = plan_counting_reads(site, monkeypatch)
    assert file_changes(plan) == {("images", "node010")}
    assert opened == [str(path)]


def test_a_file_noted_within_the_racy_window_is_never_trusted(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("content\n")
    info = os.lstat(path)
    recorded = manifest.Manifest(tmp_path, "t")
    # Looked at right after the write: a write later in the same clock tick could
    # leave size and times as they are, so even an identical lstat proves nothing.
    recorded.note("k", info, "content\n", looked_at=time.time_ns())
    assert recorded.unchanged_digest("k", os.lstat(path)) is None
    # Looked at well after the write: trusted while the lstat stays.
    later = max(info.st_mtime_ns, info.st_ctime_ns) + manifest.RACY_NS + 1
    recorded.note("k", info, "content\n", looked_at=later)
    assert recorded.unchanged_digest("k", os.lstat(path)) == manifest.digest("content\n")


def test_old_or_damaged_manifest_entries_only_cost_a_read(
    site: Site, settled: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    state = site.root / "state/images.files.json"
    state.write_text('{"node010": [1, 2, "abc"], "node011": "x", "node012": [1, 2, 3, 4, 5]}')
    plan, opened = plan_counting_reads(site, monkeypatch)
    assert not plan.has_changes
    assert len(opened) == len(list((site.root / "out/http/nodes").iterdir()))
    state.write_text("[]")
    plan, _ = plan_counting_reads(site, monkeypatch)
    assert not plan.has_changes
