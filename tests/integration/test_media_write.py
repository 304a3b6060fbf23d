"""``reconciler media write`` on loop devices: what it refuses, and a verified write.

Loop devices stand in for USB sticks: they are whole disks the test creates
and removes, never a disk of this machine. A loop device does not say it is
removable, which is exactly the refusal ``--force`` overrides.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.media import write as media_write

pytestmark = pytest.mark.integration
runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


@pytest.fixture
def loop_device(as_root: None, tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """Factory: a loop device over a sparse file of ``size`` bytes, with partition scanning."""
    devices: list[str] = []

    def make(size: int) -> Path:
        backing = tmp_path / f"disk{len(devices)}.img"
        with backing.open("wb") as stream:
            stream.truncate(size)
        device = subprocess.run(
            ["losetup", "--find", "--show", "--partscan", str(backing)],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()  # fmt: skip
        devices.append(device)
        return Path(device)

    yield make
    for device in devices:
        subprocess.run(["umount", "--quiet", device], capture_output=True, timeout=30)
        subprocess.run(["losetup", "-d", device], capture_output=True, timeout=30)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    config = tmp_path / "reconciler.toml"
    config.write_text(f'state_dir = "state"\n[source]\npath = "{EXAMPLE}"\n')
    out = tmp_path / "net.iso"
    code, _, err = run("media", "build", "-c", str(config), "--out", str(out))
    assert code == 0, err
    return out


def test_writes_verifies_and_the_stick_carries_the_image(
    loop_device: Callable[[int], Path], image: Path
) -> None:
    stick = loop_device(64 << 20)
    code, _, err = run("media", "write", str(image), "--device", str(stick))
    assert code == 2
    assert f"{stick} does not say it is removable" in err and "--force" in err
    assert stick.read_bytes()[:4096] == bytes(4096)  # refused: nothing written
    code, out, err = run("media", "write", str(image), "--device", str(stick), "--force")
    assert code == 0, err
    assert "wrote and verified" in out
    data = image.read_bytes()
    with stick.open("rb") as stream:
        assert stream.read(len(data)) == data


def test_refuses_small_mounted_and_system_disks(
    loop_device: Callable[[int], Path],
    image: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small = loop_device(1 << 20)
    code, _, err = run("media", "write", str(image), "--device", str(small), "--force")
    assert code == 2 and f"{small} holds {1 << 20} bytes, the image needs" in err

    busy = loop_device(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", str(busy)], capture_output=True, check=True, timeout=60)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    subprocess.run(["mount", str(busy), str(mountpoint)], check=True, timeout=30)
    try:
        code, _, err = run("media", "write", str(image), "--device", str(busy), "--force")
        assert code == 2 and f"is in use: mounted at {mountpoint}" in err
        # The disk a system mount lives on is refused before anything else.
        monkeypatch.setattr(media_write, "SYSTEM_MOUNTS", (str(mountpoint),))
        code, _, err = run("media", "write", str(image), "--device", str(busy), "--force")
        assert code == 2 and "holds the running system" in err
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True, timeout=30)

    code, _, err = run("media", "write", str(image), "--device", "/dev/null", "--force")
    assert code == 2 and "/dev/null is not a block device" in err
    code, _, err = run("media", "write", str(tmp_path / "nope.iso"), "--device", str(busy))
    assert code == 2 and "no such image" in err
    assert not (tmp_path / "nope.iso").exists()


def test_refuses_a_partition(
    loop_device: Callable[[int], Path],
    image: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A partition is named by its sysfs ``partition`` file; this kernel may not scan
    loop partitions, so the loop device's sysfs entry is shown with one."""
    stick = loop_device(64 << 20)
    fake = tmp_path / "sys" / "loop9p1"
    fake.mkdir(parents=True)
    (fake / "partition").write_text("1\n")
    monkeypatch.setattr(media_write, "_sys_block", lambda device: fake)
    code, _, err = run("media", "write", str(image), "--device", str(stick), "--force")
    assert code == 2 and f"{stick} is a partition; give the whole disk (sys)" in err
