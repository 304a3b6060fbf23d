"""Machines that boot from a medium: qemu with SeaBIOS or OVMF, the image as CD or USB stick.

The four ways a boot medium is used: BIOS or UEFI firmware (OVMF from Debian's
``ovmf``), the image attached as an IDE CD-ROM or as a USB stick (``usb-ehci``
+ ``usb-storage``). A machine may have a NIC on a tap in a test namespace (net
media) or none at all (live media). qemu runs in software emulation with its
serial console in a file; every wait is bounded and qemu is always stopped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.netns import NetnsPair, popen_in
from tests.integration.pxe_machine import MARKER_LINE, QEMU, _stop

OVMF_DIR = Path("/usr/share/OVMF")
OVMF_CODE = OVMF_DIR / "OVMF_CODE_4M.fd"
OVMF_VARS = OVMF_DIR / "OVMF_VARS_4M.fd"
WAYS = (("bios", "cd"), ("bios", "usb"), ("uefi", "cd"), ("uefi", "usb"))


@dataclass(frozen=True, slots=True)
class Nic:
    tap: str
    mac: str


def qemu_argv(
    *, image: Path, firmware: str, medium: str, workdir: Path, tag: str, nic: Nic | None
) -> list[str]:
    argv = [str(QEMU), "-nographic", "-no-reboot", "-m", "512"]  # GRUB EFI needs more than 256
    if firmware == "uefi":
        variables = workdir / f"ovmf-vars-{tag}.fd"
        shutil.copyfile(OVMF_VARS, variables)
        argv += [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
        ]  # fmt: skip
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
        argv += [
            "-netdev", f"tap,id=n0,ifname={nic.tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={nic.mac},romfile=",
        ]  # fmt: skip
    return argv


@dataclass
class Machine:
    """One running qemu and its console file."""

    name: str
    process: subprocess.Popen[bytes]
    console: Path
    started: float
    argv: list[str] = field(default_factory=list)
    namespace: str | None = None
    restarted: bool = False

    def console_text(self) -> str:
        return self.console.read_text(errors="replace")


def start_machine(
    *, namespace: str | None, argv: list[str], console: Path, name: str, pair: NetnsPair | None
) -> Machine:
    stream = console.open("wb")
    started = time.monotonic()
    if namespace is not None:
        process = popen_in(
            namespace, argv, stdin=subprocess.DEVNULL, stdout=stream, stderr=subprocess.STDOUT
        )
    else:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stream, stderr=subprocess.STDOUT
        )
    stream.close()
    if pair is not None:
        pair.on_cleanup(lambda: _stop(process))
    return Machine(name, process, console, started, list(argv), namespace)


FIRMWARE_GAVE_UP = "No bootable device"


def _restart_once(machine: Machine) -> None:
    """SeaBIOS under software emulation on a loaded host sometimes fails to read an
    emulated USB stick at all ("could not read the boot disk", then "No bootable
    device") although the same image boots the other ways. Power-cycle such a
    machine once; a medium that really cannot boot fails again and the test fails."""
    _stop(machine.process)
    with machine.console.open("ab") as stream:
        stream.write(b"\n[test] firmware found no bootable device; power-cycling once\n")
        argv = machine.argv
        if machine.namespace is not None:
            machine.process = popen_in(
                machine.namespace, argv, stdin=subprocess.DEVNULL, stdout=stream,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        else:
            machine.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=stream, stderr=subprocess.STDOUT
            )
    machine.restarted = True


def wait_markers(
    machines: list[Machine], *, timeout: float, pattern: re.Pattern[str] = MARKER_LINE
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
                text = machine.console_text()
                match = pattern.search(text)
                if not match and FIRMWARE_GAVE_UP in text and not machine.restarted:
                    _restart_once(machine)
                    continue
                if match:
                    seconds = time.monotonic() - machine.started
                    results[machine.name] = (match.group(1), match.group(2), seconds)
                    _stop(machine.process)
            time.sleep(0.25)
    finally:
        for machine in machines:
            _stop(machine.process)
    missing = [m for m in machines if m.name not in results]
    if missing:
        tails = "\n".join(f"--- {m.name}:\n{m.console_text()[-2500:]}" for m in missing)
        names = [m.name for m in missing]
        raise TimeoutError(f"no marker within {timeout}s from {names}:\n{tails}")
    return results
