"""Machines that boot from a medium: qemu with SeaBIOS or OVMF, the image as CD or USB stick.

The four ways a boot medium is used: BIOS or UEFI firmware (OVMF from Debian's
``ovmf``), the image attached as an IDE CD-ROM or as a USB stick (``usb-ehci``
+ ``usb-storage``). A machine may have a NIC on a tap in a test namespace (net
media) or none at all (live media). qemu runs through ``qemu_vm`` (software
emulation, the serial console in a file, bounded waits, always stopped).
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.netns import NetnsPair
from tests.integration.pxe_machine import MARKER_LINE
from tests.integration.qemu_vm import QEMU, QemuVM, tap_nic

OVMF_DIR = Path("/usr/share/OVMF")
OVMF_CODE = OVMF_DIR / "OVMF_CODE_4M.fd"
OVMF_VARS = OVMF_DIR / "OVMF_VARS_4M.fd"
WAYS = (("bios", "cd"), ("bios", "usb"), ("uefi", "cd"), ("uefi", "usb"))


@dataclass(frozen=True, slots=True)
class Nic:
    tap: str
    mac: str


def firmware_argv(*, firmware: str, workdir: Path, tag: str) -> list[str]:
    """qemu arguments for ``firmware``: none for SeaBIOS (qemu's default); for "uefi", OVMF
    with a fresh copy of its variables in ``workdir`` (named by ``tag``)."""
    if firmware != "uefi":
        return []
    variables = workdir / f"ovmf-vars-{tag}.fd"
    shutil.copyfile(OVMF_VARS, variables)
    return [
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
        "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
    ]  # fmt: skip


def qemu_argv(
    *, image: Path, firmware: str, medium: str, workdir: Path, tag: str, nic: Nic | None
) -> list[str]:
    argv = [str(QEMU), "-nographic", "-no-reboot", "-m", "512"]  # GRUB EFI needs more than 256
    argv += firmware_argv(firmware=firmware, workdir=workdir, tag=tag)
    if medium == "cd":
        argv += [
            "-drive", f"file={image},media=cdrom,readonly=on,format=raw,if=none,id=medium",
            "-device", "ide-cd,drive=medium,bootindex=0",
        ]  # fmt: skip
    else:
        argv += [
            "-drive", f"file={image},readonly=on,format=raw,if=none,id=medium",
            "-device", "usb-ehci,id=ehci",
            "-device", "usb-storage,bus=ehci.0,drive=medium,bootindex=0",
        ]  # fmt: skip
    if nic is None:
        argv += ["-nic", "none"]
    else:
        argv += tap_nic(tap=nic.tap, mac=nic.mac)
    return argv


def start_machine(
    *, namespace: str | None, argv: list[str], console: Path, name: str, pair: NetnsPair | None
) -> QemuVM:
    return QemuVM(argv, console=console, namespace=namespace, pair=pair, name=name).start()


# SeaBIOS under software emulation on a loaded host sometimes fails to read an
# emulated USB stick at all ("could not read the boot disk", then "No bootable
# device") although the same image boots the other ways. Such a machine is
# power-cycled once; a medium that really cannot boot fails again and the test fails.
FIRMWARE_GAVE_UP = "No bootable device"


def wait_markers(
    machines: list[QemuVM], *, timeout: float, pattern: re.Pattern[str] = MARKER_LINE
) -> dict[str, tuple[str, str, float]]:
    """Wait until every machine printed the marker: name -> (its two fields, seconds).

    All machines are stopped on the way out; a machine without its marker by the
    deadline raises TimeoutError with the tail of its console.
    """
    results: dict[str, tuple[str, str, float]] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(results) < len(machines) and time.monotonic() < deadline:
            for machine in machines:
                if machine.name in results:
                    continue
                text = machine.text()
                match = pattern.search(text)
                if not match and FIRMWARE_GAVE_UP in text and not machine.power_cycles:
                    machine.power_cycle("firmware found no bootable device")
                    continue
                if match:
                    results[machine.name] = (match.group(1), match.group(2), machine.seconds())
                    machine.stop()
            time.sleep(0.25)
    finally:
        for machine in machines:
            machine.stop()
    missing = [m for m in machines if m.name not in results]
    if missing:
        tails = "\n".join(f"--- {m.name}:\n{m.tail(2500)}" for m in missing)
        names = [m.name for m in missing]
        raise TimeoutError(f"no marker within {timeout}s from {names}:\n{tails}")
    return results
