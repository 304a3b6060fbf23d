"""The real ``System``: mount, signal PID 1, kexec, reboot, read /proc (needs root on a node).

Each action runs one program with a bounded time and turns a failure into
``ActionFailed`` with the program's own message. The shell side (mounting an
image as root) is the node's ``mount-root.sh``, shared with the initramfs, so
there is one definition of it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from reconciler.agent import AGENT_VERSION
from reconciler.agent.ladder import Capabilities
from reconciler.agent.system import ActionFailed

CHUNK = 1 << 20
NEXTROOT = Path("/run/nextroot")
STAGE_IN_LOWERDIR = re.compile(r"stage/([0-9a-f]{64})(?:/|$|:|,)")


class HttpDownload:
    """An open HTTP response read in chunks."""

    def __init__(self, response: IO[bytes], length: int | None) -> None:
        self.response = response
        self.length = length

    def chunks(self) -> Iterator[bytes]:
        while chunk := self.response.read(CHUNK):
            yield chunk


def _run(argv: Sequence[str], *, timeout: float = 120) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ActionFailed(f"{argv[0]}: not installed on this node") from None
    except subprocess.TimeoutExpired:
        raise ActionFailed(f"{' '.join(argv)}: no answer within {timeout:.0f} s") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
        raise ActionFailed(f"{' '.join(argv)}: {detail}")
    return result.stdout


def mounts() -> list[tuple[str, str, str]]:
    """(mount point, file system type, super options) of each line of /proc/self/mountinfo."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3:
            point = fields[4].replace("\\040", " ")
            found.append((point, tail[0], tail[2]))
    return found


def lowerdir_stage(options: str) -> str | None:
    """The rootfs sha256 named by an overlay's ``lowerdir=.../stage/<sha>/...`` option."""
    for option in options.split(","):
        if option.startswith("lowerdir="):
            match = STAGE_IN_LOWERDIR.search(option)
            return match.group(1) if match else None
    return None


class RealSystem:
    """The node itself. ``lib_dir`` holds ``mount-root.sh`` (``/usr/lib/reconciler``)."""

    def __init__(self, *, lib_dir: Path = Path("/usr/lib/reconciler")) -> None:
        self.lib_dir = lib_dir

    @contextmanager
    def download(self, url: str) -> Iterator[HttpDownload]:
        request = urllib.request.Request(
            url, headers={"User-Agent": f"reconciler-agent/{AGENT_VERSION}"}
        )
        try:
            response = urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as error:
            raise ActionFailed(f"GET {url}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ActionFailed(f"GET {url}: {reason}") from None
        with response:
            header = response.headers.get("Content-Length")
            length = int(header) if header and header.isdigit() else None
            try:
                yield HttpDownload(response, length)
            except OSError as error:
                raise ActionFailed(f"GET {url}: {error}") from None

    def mem_available(self) -> int:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
        raise ActionFailed("/proc/meminfo has no MemAvailable line")

    def free_space(self, path: Path) -> int:
        while not path.exists():
            path = path.parent
        stats = os.statvfs(path)
        return stats.f_bavail * stats.f_frsize

    def mount_squashfs(self, image: Path, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        _run(["mount", "-t", "squashfs", "-o", "loop,ro", str(image), str(target)])

    def unmount(self, target: Path, *, lazy: bool = False) -> None:
        _run(["umount", *(["-l"] if lazy else []), str(target)])

    def capabilities(self) -> Capabilities:
        try:
            init = os.path.basename(os.readlink("/proc/1/exe"))
        except OSError:
            init = Path("/proc/1/comm").read_text().strip()
        kexec = shutil.which("kexec") is not None and Path("/sys/kernel/kexec_loaded").exists()
        if "systemd" in init:
            version = None
            try:
                words = _run(["systemctl", "--version"], timeout=10).split()
                version = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
            except ActionFailed:
                pass
            return Capabilities("systemd", version, kexec)
        return Capabilities("busybox" if "busybox" in init else "other", None, kexec)

    def boot_id(self) -> str:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()

    def cmdline(self) -> str:
        return Path("/proc/cmdline").read_text().strip()

    def running_rootfs_sha256(self) -> str | None:
        roots = [options for point, kind, options in mounts() if point == "/" and kind == "overlay"]
        return lowerdir_stage(roots[-1]) if roots else None

    def switch_root(self) -> None:
        os.kill(1, signal.SIGQUIT)

    def soft_reboot(self, *, squashfs: Path, stage: Path) -> None:
        NEXTROOT.mkdir(parents=True, exist_ok=True)
        mount_root = str(self.lib_dir / "mount-root.sh")
        _run(["sh", mount_root, "mount_image_root", str(squashfs), str(stage), str(NEXTROOT)])
        _run(["systemctl", "soft-reboot"], timeout=30)

    def kexec(self, *, kernel: Path, initrd: Path, cmdline: str, systemd: bool) -> None:
        _run(["kexec", "-l", str(kernel), f"--initrd={initrd}", f"--append={cmdline}"])
        os.sync()
        _run(["systemctl", "kexec"] if systemd else ["kexec", "-e"], timeout=60)

    def reboot(self, *, systemd: bool) -> None:
        os.sync()
        _run(["systemctl", "reboot"] if systemd else ["reboot"], timeout=60)

    def release(self, stage: Path) -> None:
        prefix = str(stage).rstrip("/") + "/"
        inside = [point for point, _, _ in mounts() if (point + "/").startswith(prefix)]
        for point in sorted(inside, key=len, reverse=True):
            try:
                self.unmount(Path(point), lazy=True)
            except ActionFailed:
                continue  # still busy: the lazy unmount of its parent detaches it anyway
