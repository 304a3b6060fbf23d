"""Assemble a hybrid ISO that boots as a CD and as a USB stick, on BIOS and UEFI.

The layout is the one Debian's own installer images use: an ISO9660 file
system (with Rock Ridge and Joliet names) whose El Torito catalogue has a BIOS
entry (isolinux) and a UEFI entry (a small FAT image, the EFI system partition,
holding ``/EFI/BOOT/BOOTX64.EFI``), plus an isohybrid MBR and GPT so the same
bytes written raw to a stick boot too. pycdlib writes the ISO in pure Python;
the FAT image comes from mkfs.vfat and mtools.

Output is byte-identical for the same inputs: every clock the tools read is
pinned to one fixed instant, the GPT and MBR identifiers derive from a seed
the caller gives (the content's digest), and files are added in a fixed order.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pycdlib
import pycdlib.dates
import pycdlib.headervd
import pycdlib.isohybrid
import pycdlib.pycdlib

from reconciler.media.tools import run_tool

# 2020-01-01T00:00:00Z: the date every file and volume on a medium carries.
FIXED_EPOCH = 1577836800
ESP_IMAGE = "/boot/efiboot.img"
BOOT_CATALOG = "/boot/boot.cat"
ISOLINUX_BIN = "/boot/isolinux/isolinux.bin"
GRUB_MODULES = [
    *("iso9660", "part_gpt", "part_msdos", "fat", "search", "search_label", "search_fs_file"),
    *("configfile", "normal", "linux", "echo", "test", "gzio", "all_video"),
]


@dataclass(frozen=True, slots=True)
class MediumFile:
    """One file on the ISO9660 file system: its path there and its content."""

    path: str  # absolute, lower case, e.g. "/boot/ipxe.lkrn"
    content: Path | bytes


def iso9660_name(path: str) -> str:
    """``/boot/ipxe.lkrn`` -> ``/BOOT/IPXE.LKRN;1`` (interchange level 3 names)."""
    parts = [p.upper().replace("-", "_") for p in path.strip("/").split("/")]
    return "/" + "/".join(parts) + ";1"


def _dir_name(path: str) -> str:
    return "/" + "/".join(p.upper().replace("-", "_") for p in path.strip("/").split("/"))


def parent_folders(paths: Iterable[str]) -> list[str]:
    """Every folder above the given absolute paths, parents first."""
    folders: set[str] = set()
    for path in paths:
        parts = path.split("/")
        folders.update("/".join(parts[:i]) for i in range(2, len(parts)))
    return sorted(folders, key=lambda folder: (folder.count("/"), folder))


@contextlib.contextmanager
def _pinned_pycdlib(epoch: int, seed: bytes) -> Iterator[None]:
    """pycdlib reads the clock, the local time zone and uuid4(): pin all three."""
    counter = iter(range(1 << 30))

    def fixed_uuid4() -> uuid.UUID:
        block = hashlib.sha256(seed + next(counter).to_bytes(4, "big")).digest()[:16]
        return uuid.UUID(bytes=block, version=4)

    clock = SimpleNamespace(
        time=lambda: float(epoch),
        localtime=time.gmtime,
        gmtime=time.gmtime,
        strftime=time.strftime,
        strptime=time.strptime,
        struct_time=time.struct_time,
        mktime=time.mktime,
        timezone=0,
        altzone=0,
        daylight=0,
    )
    fake_uuid = SimpleNamespace(uuid4=fixed_uuid4, UUID=uuid.UUID)
    patched = [
        (pycdlib.pycdlib, "time", clock),
        (pycdlib.headervd, "time", clock),
        (pycdlib.dates, "time", clock),
        (pycdlib.isohybrid, "uuid", fake_uuid),
    ]
    saved = [(module, name, getattr(module, name)) for module, name, _ in patched]
    try:
        for module, name, value in patched:
            setattr(module, name, value)
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def build_esp(files: dict[str, Path | bytes], *, out: Path, workdir: Path) -> Path:
    """A FAT image holding ``files`` (paths like ``/EFI/BOOT/BOOTX64.EFI``)."""
    staging = workdir / "esp-files"
    staging.mkdir(parents=True, exist_ok=True)
    total = 0
    sources: list[tuple[Path, str]] = []
    for number, (target, content) in enumerate(sorted(files.items())):
        source = staging / f"{number}"
        if isinstance(content, bytes):
            source.write_bytes(content)
        else:
            shutil.copyfile(content, source)
        os.utime(source, (FIXED_EPOCH, FIXED_EPOCH))
        total += source.stat().st_size
        sources.append((source, target))
    size_kib = max(1440, (total * 11 // 10) // 1024 + 512)
    out.unlink(missing_ok=True)
    run_tool(
        ["mkfs.vfat", "--invariant", "-n", "ESP", "-C", str(out), str(size_kib)],
        what="EFI system partition image",
        epoch=FIXED_EPOCH,
    )
    folders = parent_folders(target for _, target in sources)
    if folders:
        run_tool(
            ["mmd", "-i", str(out), *[f"::{f}" for f in folders]],
            what="EFI system partition folders",
            epoch=FIXED_EPOCH,
        )
    for source, target in sources:
        run_tool(
            ["mcopy", "-m", "-i", str(out), str(source), f"::{target}"],
            what=f"EFI system partition file {target}",
            epoch=FIXED_EPOCH,
        )
    return out


def build_grub_efi(*, embedded_cfg: str, modules_dir: Path, out: Path, workdir: Path) -> Path:
    """A standalone GRUB EFI binary whose built-in config finds the medium and its grub.cfg."""
    config = workdir / "grub-embedded.cfg"
    config.write_text(embedded_cfg)
    run_tool(
        [
            "grub-mkimage", "-O", "x86_64-efi", "-o", str(out), "-p", "/boot/grub",
            "-d", str(modules_dir), "-c", str(config), *GRUB_MODULES,
        ],
        what="GRUB EFI image",
        epoch=FIXED_EPOCH,
    )  # fmt: skip
    return out


def write_hybrid_iso(
    *, files: list[MediumFile], esp: Path, volume_id: str, out: Path, seed: bytes
) -> None:
    """Write the ISO with BIOS (isolinux) and UEFI (``esp``) boot entries, made hybrid."""
    with _pinned_pycdlib(FIXED_EPOCH, seed):
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=volume_id)
        all_files = [*files, MediumFile(ESP_IMAGE, esp)]
        for folder in parent_folders(f.path for f in all_files):
            iso.add_directory(
                _dir_name(folder), rr_name=folder.rsplit("/", 1)[1], joliet_path=folder
            )
        streams: list[io.BufferedReader] = []
        try:
            for medium_file in sorted(all_files, key=lambda f: f.path):
                name = iso9660_name(medium_file.path)
                rr_name = medium_file.path.rsplit("/", 1)[1]
                if isinstance(medium_file.content, bytes):
                    data = medium_file.content
                    iso.add_fp(
                        io.BytesIO(data), len(data), name, rr_name=rr_name,
                        joliet_path=medium_file.path,
                    )  # fmt: skip
                else:
                    stream = medium_file.content.open("rb")
                    streams.append(stream)
                    size = medium_file.content.stat().st_size
                    iso.add_fp(stream, size, name, rr_name=rr_name, joliet_path=medium_file.path)
            catalog = iso9660_name(BOOT_CATALOG)
            iso.add_eltorito(
                iso9660_name(ISOLINUX_BIN), bootcatfile=catalog,
                boot_load_size=4, boot_info_table=True,
            )  # fmt: skip
            iso.add_eltorito(iso9660_name(ESP_IMAGE), bootcatfile=catalog, efi=True)
            iso.add_isohybrid(efi=True, mbr_id=int.from_bytes(seed[:4], "big"))
            iso.write(str(out))
        finally:
            iso.close()
            for stream in streams:
                stream.close()
