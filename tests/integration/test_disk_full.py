"""Disk full during apply: a clear error, exit 2, and every file whole or absent.

The test mounts a tiny tmpfs (as root) that holds the targets' output and the
state dir, so writes fail with ENOSPC part-way through a first apply.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.site_fixture import EXAMPLE, FILE_TARGETS

RECONCILER = str(Path(sys.executable).with_name("reconciler"))


def reconciler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RECONCILER, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(params=["8k", "48k"], ids=["state-dir-full", "targets-full"])
def small_disk(request: pytest.FixtureRequest, as_root: None, tmp_path: Path) -> Iterator[Path]:
    """A tmpfs so small that the ledgers (8k) or the targets' files (48k) do not fit."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={request.param},nr_inodes=1000", "tmpfs", str(mount)],
        check=True, timeout=30,
    )  # fmt: skip
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def site(root: Path, *, output: Path) -> Path:
    shutil.copytree(EXAMPLE, root / "inventory")
    config = FILE_TARGETS.replace('state_dir = "state"', f'state_dir = "{output}/state"')
    config = config.replace('"out/', f'"{output}/out/')
    (root / "reconciler.toml").write_text(config)
    return root / "reconciler.toml"


SOA_SERIAL = re.compile(rb"( IN SOA \S+ \S+ )\d+")


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path; zone serials (a timestamp) blanked."""
    return {
        str(p.relative_to(root)): SOA_SERIAL.sub(rb"\1SERIAL", p.read_bytes())
        for p in root.rglob("*")
        if p.is_file()
    }


def test_disk_full_is_a_clear_error_and_nothing_is_half_written(
    small_disk: Path, tmp_path: Path
) -> None:
    reference = site(tmp_path / "reference", output=tmp_path / "reference")
    assert reconciler("apply", "-c", str(reference)).returncode == 0
    expected = files(tmp_path / "reference" / "out")

    config = site(tmp_path / "full", output=small_disk)
    result = reconciler("apply", "-c", str(config))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "No space left on device" in result.stderr
    assert "Traceback" not in result.stderr
    written = files(small_disk / "out") if (small_disk / "out").exists() else {}
    assert not [name for name in written if ".tmp-" in name], written.keys()
    for name, content in written.items():
        assert content == expected[name], f"{name} is half-written"
    for ledger in (small_disk / "state").glob("*.json"):
        json.loads(ledger.read_text())  # whole, or absent
    # With room again, the next apply completes and a plan has nothing left to do.
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True, timeout=30)
    again = reconciler("apply", "-c", str(config))
    assert again.returncode == 0, again.stderr
    assert files(small_disk / "out") == expected
    assert reconciler("plan", "-c", str(config)).returncode == 0
