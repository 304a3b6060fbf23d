"""A whole machine that PXE boots: qemu with iPXE on a tap in a test namespace, and its images.

The end-to-end test needs what a real blade sees: dhcpd on the link, the
boot service, and a web server with a kernel and an initrd. The kernel is the
host's own (Debian's ``linux-image-amd64``); the initrd is a tiny busybox
initramfs whose /init prints one marker line with the ``hostname=`` and
``reconciler.image=`` values it finds on its command line, then powers off.
qemu runs through ``qemu_vm`` (software emulation, the serial console in a
file, bounded waits, always stopped).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.integration.netns import NetnsPair, popen_in, wait_for
from tests.integration.qemu_vm import QEMU, QemuVM, tap_nic

# ipxe-qemu's e1000 boot ROM: in /usr/lib/ipxe/qemu on Debian 12, /usr/share/qemu on 13.
_IPXE_ROMS = (Path("/usr/lib/ipxe/qemu/pxe-e1000.rom"), Path("/usr/share/qemu/pxe-e1000.rom"))
IPXE_ROM = next((rom for rom in _IPXE_ROMS if rom.is_file()), _IPXE_ROMS[0])
BUSYBOX = Path("/bin/busybox")
MARKER = "RECONCILER-E2E-MARKER"
MARKER_LINE = re.compile(MARKER + r" hostname=(\S*) image=(\S*)")

INIT = f"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc
/bin/busybox mount -t proc proc /proc
host=""
image=""
for word in $(/bin/busybox cat /proc/cmdline); do
  case "$word" in
    hostname=*) host="${{word#hostname=}}" ;;
    reconciler.image=*) image="${{word#reconciler.image=}}" ;;
  esac
done
echo "{MARKER} hostname=$host image=$image"
/bin/busybox poweroff -f
"""


def host_kernel() -> Path | None:
    """The newest /boot/vmlinuz-*, or None on a machine without a kernel package."""
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    return kernels[-1] if kernels else None


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_initramfs(workdir: Path) -> Path:
    """A gzip'd newc cpio with busybox, /init and /dev/console; returns its path."""
    staging = workdir / "initramfs"
    for folder in ("bin", "dev", "proc"):
        (staging / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, staging / "bin" / "busybox")
    (staging / "init").write_text(INIT)
    (staging / "init").chmod(0o755)
    console = staging / "dev" / "console"
    if not console.exists():
        os.mknod(console, 0o600 | 0o020000, os.makedev(5, 1))
    output = workdir / "initrd.img"
    names = subprocess.run(
        ["find", "."], cwd=staging, capture_output=True, check=True, timeout=30
    ).stdout
    archive = subprocess.run(
        ["cpio", "--quiet", "-o", "-H", "newc"],
        cwd=staging, input=names, capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    output.write_bytes(subprocess.run(
        ["gzip", "-9"], input=archive, capture_output=True, check=True, timeout=60
    ).stdout)  # fmt: skip
    return output


def add_tap_bridge(pair: NetnsPair, *, tap: str, bridge: str) -> None:
    """In the client namespace: a bridge joining the client veth and a tap for qemu."""
    for argv in (
        ["link", "add", bridge, "type", "bridge"],
        ["link", "set", pair.client_if, "master", bridge],
        ["link", "set", bridge, "up"],
    ):
        subprocess.run(["ip", "-n", pair.client, *argv], check=True, timeout=10)
    add_tap(pair, tap=tap, bridge=bridge)


def add_tap(pair: NetnsPair, *, tap: str, bridge: str) -> None:
    """In the client namespace: one more tap on ``bridge``, for one more machine."""
    for argv in (
        ["tuntap", "add", "dev", tap, "mode", "tap"],
        ["link", "set", tap, "master", bridge],
        ["link", "set", tap, "up"],
    ):
        subprocess.run(["ip", "-n", pair.client, *argv], check=True, timeout=10)


@contextlib.contextmanager
def background(
    pair: NetnsPair, namespace: str, argv: list[str], *, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process in a namespace, output to ``log``; killed on the way out."""
    stream = log.open("wb")
    process = popen_in(namespace, argv, stdout=stream, stderr=subprocess.STDOUT)
    pair.on_cleanup(lambda: _stop(process))
    try:
        yield process
    finally:
        _stop(process)
        stream.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def static_server(*, directory: Path, address: str, port: int) -> list[str]:
    """argv of a small static web server (the image store) for ``background``."""
    return [
        sys.executable, "-m", "http.server", str(port), "--bind", address,
        "--directory", str(directory),
    ]  # fmt: skip


def wait_http(pair: NetnsPair, url: str, *, timeout: float) -> None:
    """Wait until ``url`` answers from inside the server namespace."""

    def answers() -> bool:
        result = subprocess.run(
            ["ip", "netns", "exec", pair.server, sys.executable, "-c",
             f"import urllib.request; urllib.request.urlopen({url!r}, timeout=2)"],
            capture_output=True, timeout=10,
        )  # fmt: skip
        return result.returncode == 0

    wait_for(answers, timeout=timeout, interval=0.3, what=url)


def boot_machine(
    pair: NetnsPair, *, mac: str, tap: str, console: Path, timeout: float = 120
) -> tuple[str, str, float]:
    """PXE boot one machine until it prints the marker and powers off.

    Returns (hostname, image) from the marker line and the seconds it took;
    raises TimeoutError with the console's tail when it does not get there.
    """
    argv = [
        str(QEMU), "-nographic", "-no-reboot", "-m", "256", "-boot", "n",
        *tap_nic(tap=tap, mac=mac, model="e1000", rom=str(IPXE_ROM)),
    ]  # fmt: skip
    with QemuVM(argv, console=console, namespace=pair.client, pair=pair, name=mac) as vm:
        match = vm.wait_console(MARKER_LINE, timeout=timeout)
        vm.wait_exit(timeout=30)  # poweroff -f ends qemu
        return match.group(1), match.group(2), vm.seconds()
