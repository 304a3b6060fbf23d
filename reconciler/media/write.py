"""``reconciler media write``: put an image on a USB stick without hurting anything else.

Writing a raw image to the wrong disk destroys it, so the device is checked
first and every refusal says why: it must be a whole disk (not a partition),
not mounted or used by another block device (LVM, RAID, dm-crypt), not the
disk this system runs from, large enough, and, unless ``--force``, say it is
removable (or sit on USB). The device is opened exclusively, written, synced,
its cache dropped, and read back; the read-back digest must equal the image's.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler.media.artifacts import Progress

CHUNK = 4 << 20
BLKFLSBUF = 0x1261  # linux/fs.h: flush the block device's buffer cache
BLKRRPART = 0x125F  # linux/fs.h: re-read the partition table (the image brings one)
SYSTEM_MOUNTS = ("/", "/boot", "/boot/efi", "/usr", "/var")


class WriteRefused(Exception):
    """The image was not written (or did not verify); the message says why."""


@dataclass(frozen=True, slots=True)
class Written:
    size: int
    sha256: str


def _sys_block(device: Path) -> Path:
    info = device.stat()
    if not stat.S_ISBLK(info.st_mode):
        raise WriteRefused(f"{device} is not a block device; give a whole disk such as /dev/sdb")
    major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
    return Path(f"/sys/dev/block/{major}:{minor}").resolve()


def _whole_disks(sys_path: Path) -> set[Path]:
    """The whole disks under a sysfs block device (through partitions and dm/md slaves)."""
    disks: set[Path] = set()
    pending = [sys_path]
    while pending:
        node = pending.pop()
        if (node / "partition").exists():
            node = node.parent
        slaves = list((node / "slaves").iterdir()) if (node / "slaves").is_dir() else []
        if slaves:
            pending.extend(s.resolve() for s in slaves)
        else:
            disks.add(node)
    return disks


def _system_disks() -> set[Path]:
    disks: set[Path] = set()
    for mount in SYSTEM_MOUNTS:
        try:
            number = os.stat(mount).st_dev
        except OSError:
            continue
        sys_path = Path(f"/sys/dev/block/{os.major(number)}:{os.minor(number)}")
        if sys_path.exists():
            disks |= _whole_disks(sys_path.resolve())
    return disks


def _mounted_parts(disk: Path) -> list[str]:
    """Mount points and swap areas on the disk or any of its partitions."""
    numbers = {(disk / "dev").read_text().strip()}
    numbers |= {
        (child / "dev").read_text().strip()
        for child in disk.iterdir()
        if (child / "partition").exists()
    }
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[2] in numbers:
            found.append(fields[4])
    for line in Path("/proc/swaps").read_text().splitlines()[1:]:
        source = line.split()[0]
        try:
            info = os.stat(source)
        except OSError:
            continue
        if f"{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}" in numbers:
            found.append(f"swap {source}")
    return found


def _holders(disk: Path) -> list[str]:
    names = [h.name for h in (disk / "holders").iterdir()] if (disk / "holders").is_dir() else []
    for child in disk.iterdir():
        if (child / "partition").exists() and (child / "holders").is_dir():
            names += [h.name for h in (child / "holders").iterdir()]
    return names


def check_device(*, device: Path, image_size: int, force: bool) -> None:
    """Every refusal, before a single byte is written."""
    if not device.exists():
        raise WriteRefused(f"{device}: no such device; list disks with lsblk")
    sys_path = _sys_block(device)
    if (sys_path / "partition").exists():
        raise WriteRefused(
            f"{device} is a partition; give the whole disk ({sys_path.parent.name}), "
            "the image brings its own partition table"
        )
    if sys_path in _system_disks():
        raise WriteRefused(f"{device} holds the running system (/, /boot or /usr); refusing")
    mounted = _mounted_parts(sys_path)
    if mounted:
        raise WriteRefused(f"{device} is in use: mounted at {', '.join(mounted)}; unmount first")
    holders = _holders(sys_path)
    if holders:
        raise WriteRefused(f"{device} is used by {', '.join(holders)} (LVM, RAID or dm-crypt)")
    removable = (sys_path / "removable").read_text().strip() == "1" or "/usb" in str(sys_path)
    if not removable and not force:
        raise WriteRefused(
            f"{device} does not say it is removable (no USB stick or card); "
            "check it is the right disk, then pass --force"
        )
    capacity = int((sys_path / "size").read_text()) * 512
    if capacity < image_size:
        raise WriteRefused(
            f"{device} holds {capacity} bytes, the image needs {image_size}; use a larger stick"
        )


def _chunks(stream_fd: int, size: int) -> Iterator[bytes]:
    done = 0
    while done < size:
        chunk = os.read(stream_fd, min(CHUNK, size - done))
        if not chunk:
            break
        done += len(chunk)
        yield chunk


def write_image(
    *,
    image: Path,
    device: Path,
    force: bool,
    progress: Callable[[str], Progress] | None = None,
) -> Written:
    """Check, write, sync, read back, compare; WriteRefused on any problem."""
    if not image.is_file():
        raise WriteRefused(f"{image}: no such image; build one with `reconciler media build`")
    size = image.stat().st_size
    check_device(device=device, image_size=size, force=force)
    writing = progress("writing") if progress else None
    digest = hashlib.sha256()
    try:
        target = os.open(device, os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as error:
        raise WriteRefused(f"{device}: cannot open it exclusively: {error.strerror}") from None
    try:
        source = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
        try:
            done = 0
            for chunk in _chunks(source, size):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(target, view) :]
                done += len(chunk)
                if writing:
                    writing(done, size)
        finally:
            os.close(source)
        os.fsync(target)
        fcntl.ioctl(target, BLKFLSBUF, 0)
        with contextlib.suppress(OSError):  # a device without partition support says EINVAL
            fcntl.ioctl(target, BLKRRPART, 0)
    except OSError as error:
        raise WriteRefused(f"{device}: write failed: {error.strerror or error}") from None
    finally:
        os.close(target)
    expected = digest.hexdigest()
    actual = _read_back(device, size, progress("verifying") if progress else None)
    if actual != expected:
        raise WriteRefused(
            f"{device}: read back {actual}, wrote {expected}; the stick may be faulty"
        )
    return Written(size=size, sha256=expected)


def _read_back(device: Path, size: int, progress: Progress | None) -> str:
    digest = hashlib.sha256()
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        done = 0
        for chunk in _chunks(fd, size):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, size)
    finally:
        os.close(fd)
    return digest.hexdigest()
