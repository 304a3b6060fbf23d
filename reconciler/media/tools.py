"""Where the boot loaders on a medium come from, and whether they are new enough.

A medium carries binaries the project does not build: iPXE (``ipxe.lkrn`` for
BIOS, ``ipxe.efi`` for UEFI), isolinux (BIOS boot from ISO9660, also from a
USB stick through the isohybrid MBR) and a GRUB EFI image (UEFI boot of live
media straight from ISO9660). They come from Debian packages; ``scripts/setup.sh``
installs them. UEFI net media need iPXE 1.21 or newer, the first release that
runs ``autoexec.ipxe`` from the medium it was loaded from: Debian 13 ships it,
and on Debian 12 the setup unpacks Debian 13's architecture-independent
``ipxe`` package into ``/usr/local/share/reconciler/ipxe`` without touching the
system's package sources.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

IPXE_DIRS = (Path("/usr/local/share/reconciler/ipxe"), Path("/usr/lib/ipxe"))
ISOLINUX_DIRS = (Path("/usr/lib/ISOLINUX"), Path("/usr/lib/syslinux"))
LDLINUX_DIRS = (Path("/usr/lib/syslinux/modules/bios"), Path("/usr/lib/syslinux"))
GRUB_EFI_DIR = Path("/usr/lib/grub/x86_64-efi")
MIN_IPXE = (1, 21)
# Debian and upstream builds carry their version as "1.21.1+..." in the binary.
_IPXE_VERSION = re.compile(rb"(?<![0-9.])([0-9]{1,2})\.([0-9]{1,3})\.([0-9]{1,3})\+[\x21-\x7e]*")
SETUP_HINT = "run scripts/setup.sh (it installs isolinux, grub-efi-amd64-bin, mtools and iPXE)"


class MediaToolError(Exception):
    """A boot loader or tool a medium needs is missing or too old; says how to get it."""


@dataclass(frozen=True, slots=True)
class Ipxe:
    """The iPXE binaries for both firmwares and the version they report."""

    lkrn: Path
    efi: Path
    version: str


@dataclass(frozen=True, slots=True)
class BootLoaders:
    """Everything a medium's boot paths are made of, found on this machine."""

    isolinux: Path
    ldlinux: Path
    grub_efi_modules: Path
    ipxe: Ipxe | None


def ipxe_version(binary: Path) -> tuple[tuple[int, int, int], str] | None:
    """The version string inside an iPXE binary (``1.21.1+git...``), or None."""
    found = _IPXE_VERSION.search(binary.read_bytes())
    if found is None:
        return None
    numbers = (int(found.group(1)), int(found.group(2)), int(found.group(3)))
    return numbers, found.group(0).decode("ascii")


def _first(folders: tuple[Path, ...], names: tuple[str, ...]) -> Path | None:
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def find_ipxe(override: Path | None = None) -> Ipxe:
    """iPXE >= 1.21 from ``override`` or the usual places; MediaToolError if none fits."""
    folders = (override,) if override is not None else IPXE_DIRS
    seen: list[str] = []
    for folder in folders:
        lkrn = _first((folder,), ("ipxe.lkrn",))
        efi = _first((folder,), ("ipxe.efi", "ipxe-amd64.efi"))
        if lkrn is None or efi is None:
            seen.append(f"{folder}: no ipxe.lkrn and ipxe.efi")
            continue
        found = ipxe_version(efi.resolve())
        if found is None:
            seen.append(f"{efi}: version unknown")
            continue
        numbers, text = found
        if numbers[:2] < MIN_IPXE:
            seen.append(f"{efi}: iPXE {text} is older than 1.21 (ignores autoexec.ipxe on UEFI)")
            continue
        return Ipxe(lkrn=lkrn.resolve(), efi=efi.resolve(), version=text)
    raise MediaToolError(
        "no iPXE 1.21 or newer found (" + "; ".join(seen) + f"); {SETUP_HINT}, "
        "or set [media] ipxe_dir to a folder with ipxe.lkrn and ipxe.efi"
    )


def find_boot_loaders(*, need_ipxe: bool, ipxe_dir: Path | None = None) -> BootLoaders:
    """The loaders one medium kind needs; MediaToolError naming what is missing."""
    isolinux = _first(ISOLINUX_DIRS, ("isolinux.bin",))
    ldlinux = _first(LDLINUX_DIRS, ("ldlinux.c32",))
    missing = [
        what
        for what, path in (
            ("isolinux.bin (package isolinux)", isolinux),
            ("ldlinux.c32 (package syslinux-common)", ldlinux),
        )
        if path is None
    ]
    if not (GRUB_EFI_DIR / "linux.mod").is_file():
        missing.append(f"GRUB EFI modules in {GRUB_EFI_DIR} (package grub-efi-amd64-bin)")
    if missing:
        raise MediaToolError(f"missing {', '.join(missing)}; {SETUP_HINT}")
    assert isolinux is not None and ldlinux is not None
    return BootLoaders(
        isolinux=isolinux,
        ldlinux=ldlinux,
        grub_efi_modules=GRUB_EFI_DIR,
        ipxe=find_ipxe(ipxe_dir) if need_ipxe else None,
    )


def run_tool(argv: list[str], *, what: str, epoch: int, timeout: float = 120) -> None:
    """Run mkfs.vfat/mtools/grub-mkimage with a fixed clock (reproducible output)."""
    env = {
        **os.environ,
        "SOURCE_DATE_EPOCH": str(epoch),
        "TZ": "UTC",
        "MTOOLS_SKIP_CHECK": "1",
        "LC_ALL": "C",
    }
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        raise MediaToolError(f"{what}: {argv[0]} is not installed; {SETUP_HINT}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise MediaToolError(f"{what} failed ({argv[0]}): {' / '.join(detail)}")
