"""The VM tests' image cache (tests/integration/node_images.py) does not grow for ever.

Images are keyed by a hash of what went in (the agent's code among it), so
every change of the code leaves a new entry behind. A build removes the
entries no session used for ``RECONCILER_TEST_CACHE_HOURS``; a hit marks its
entry used, so an image another session still uses is kept.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.integration import node_images

DAY = 24 * 3600.0


def entry(cache: Path, name: str, *, age: float) -> Path:
    path = cache / name
    path.mkdir(parents=True)
    (path / "rootfs.squashfs").write_bytes(b"image")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_a_build_removes_what_no_session_used_lately_and_a_hit_counts_as_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node_images, "CACHE", tmp_path)
    stale = entry(tmp_path, "busybox-0000000000000001", age=3 * DAY)
    reused = entry(tmp_path, "busybox-0000000000000002", age=3 * DAY)
    recent = entry(tmp_path, "systemd-0000000000000003", age=3600)
    crashed = entry(tmp_path, ".busybox-0000000000000004.4242", age=3 * DAY)
    built: list[Path] = []

    def build(folder: Path) -> None:
        built.append(folder)
        (folder / "rootfs.squashfs").write_bytes(b"new image")

    # A hit: nothing is built, and the entry counts as just used.
    assert node_images.cached("busybox", "0000000000000002", build) == reused
    assert built == [] and time.time() - reused.stat().st_mtime < 60

    # A miss: built, then whatever nobody used for a day is gone.
    new = node_images.cached("busybox", "0000000000000005", build)
    assert len(built) == 1 and (new / "rootfs.squashfs").read_bytes() == b"new image"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [reused.name, recent.name, new.name]
    )
    assert not stale.exists() and not crashed.exists()
