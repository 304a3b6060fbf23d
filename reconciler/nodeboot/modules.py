"""Kernel modules for the initramfs, resolved with their dependencies from a module tree.

Debian builds squashfs, overlay, loop and most NIC drivers as modules, so the
initramfs must carry them and load them in dependency order. Dependencies are
read from each module's ``.modinfo`` ELF section (``depends=``), so a tree
unpacked from a kernel package without ``modules.dep`` works too. Compressed
modules (``.ko.xz``, ``.ko.gz``, ``.ko.zst``) are stored decompressed, because
busybox ``insmod`` loads plain ``.ko`` files only.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import struct
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Always needed to mount a node's root: the image, its loop device, the overlay.
ROOT_MODULES = ("loop", "squashfs", "overlay")
# Network drivers of common servers and of qemu; absent ones are skipped.
DEFAULT_NIC_MODULES = (
    "virtio_pci", "virtio_net", "e1000", "e1000e", "igb", "ixgbe", "i40e", "ice",
    "bnxt_en", "tg3", "bnx2", "r8169", "mlx4_en", "mlx5_core", "vmxnet3",
)  # fmt: skip
# Boot media (``reconciler media build --kind live``): CD and USB storage and ISO9660,
# carried when the kernel has them and loaded only with reconciler.media= on the cmdline.
MEDIA_MODULES = (
    "isofs", "sr_mod", "ata_piix", "ahci", "sd_mod", "usb_storage", "uas", "ehci_pci", "xhci_pci",
)  # fmt: skip
SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")


class ModuleError(ValueError):
    """A requested module is not in the tree (nor built into the kernel)."""


def module_name(filename: str) -> str:
    """``virtio-net.ko.xz`` -> ``virtio_net``: the kernel treats - and _ alike."""
    for suffix in SUFFIXES:
        if filename.endswith(suffix):
            filename = filename[: -len(suffix)]
            break
    return filename.replace("-", "_")


def read_module(path: Path) -> bytes:
    """The plain ELF bytes of a module file, decompressed if needed."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        zstd = shutil.which("zstd")
        if zstd is None:
            raise ModuleError(f"{path}: zstd-compressed; install zstd to read it")
        return subprocess.run(
            [zstd, "-dc", str(path)], capture_output=True, check=True, timeout=60
        ).stdout
    return data


def modinfo(elf: bytes) -> dict[str, str]:
    """The ``key=value`` strings of an ELF64 module's ``.modinfo`` section."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise ModuleError("not an ELF64 kernel module")
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        base = shoff + index * shentsize
        (name,) = struct.unpack_from("<I", elf, base)
        offset, size = struct.unpack_from("<QQ", elf, base + 24)
        return name, offset, size

    _, names_at, _ = section(shstrndx)
    for index in range(shnum):
        name, offset, size = section(index)
        end = elf.index(b"\0", names_at + name)
        if elf[names_at + name : end] == b".modinfo":
            info: dict[str, str] = {}
            for entry in elf[offset : offset + size].split(b"\0"):
                key, sep, value = entry.decode(errors="replace").partition("=")
                if sep and key not in info:
                    info[key] = value
            return info
    return {}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path  # in the module tree
    relative: str  # path under the tree, without the compression suffix (ends in .ko)
    depends: tuple[str, ...]
    elf: bytes


class ModuleTree:
    """The modules of one kernel (``/lib/modules/<version>``), looked up by name."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ModuleError(f"{root}: no such module tree (is the kernel's package installed?)")
        self.root = root
        self._files: dict[str, Path] = {}
        for path in sorted(root.rglob("*.ko*")):
            if path.name.endswith(SUFFIXES):
                self._files.setdefault(module_name(path.name), path)
        builtin = root / "modules.builtin"
        self.builtin = (
            {module_name(Path(line).name) for line in builtin.read_text().split()}
            if builtin.is_file()
            else set()
        )
        self._loaded: dict[str, Module] = {}

    def has(self, name: str) -> bool:
        return name.replace("-", "_") in self._files

    def module(self, name: str) -> Module:
        name = name.replace("-", "_")
        if name not in self._loaded:
            path = self._files[name]
            elf = read_module(path)
            depends = tuple(d for d in modinfo(elf).get("depends", "").split(",") if d)
            relative = str(path.relative_to(self.root))
            relative = relative[: relative.rindex(".ko")] + ".ko"
            self._loaded[name] = Module(name, path, relative, depends, elf)
        return self._loaded[name]

    def closure(self, name: str) -> list[Module]:
        """``name`` and what it depends on, dependencies first."""
        order: list[Module] = []
        visiting: set[str] = set()

        def visit(current: str, chain: Sequence[str]) -> None:
            current = current.replace("-", "_")
            if current in visiting or any(m.name == current for m in order):
                return
            if current not in self._files:
                if current in self.builtin:
                    return
                raise ModuleError(
                    f"module {current} (needed by {' -> '.join(chain) or 'the initramfs'}) "
                    f"is not in {self.root}"
                )
            visiting.add(current)
            module = self.module(current)
            for dependency in module.depends:
                visit(dependency, [*chain, current])
            order.append(module)

        visit(name, [])
        return order


@dataclass(frozen=True)
class ModuleSelection:
    """What goes into the initramfs: modules and the names loaded at boot."""

    modules: tuple[Module, ...]  # every module carried, each once, dependencies first
    closures: dict[str, tuple[Module, ...]]  # name -> its load order
    boot: tuple[str, ...]  # loaded at every boot
    skipped: tuple[str, ...]  # default NIC drivers this kernel does not have


def select_modules(
    tree: ModuleTree,
    *,
    boot: Iterable[str],
    optional: Iterable[str] = (),
    default_nics: bool = True,
) -> ModuleSelection:
    """Resolve ROOT_MODULES, the default NIC drivers (unless ``default_nics`` is false) and
    the user's ``boot``/``optional`` names. A missing user or root module is an error;
    missing default NICs are skipped."""
    boot = [name.replace("-", "_") for name in boot]
    boot_names: list[str] = []
    closures: dict[str, tuple[Module, ...]] = {}
    skipped: list[str] = []
    requested = [*ROOT_MODULES, *(DEFAULT_NIC_MODULES if default_nics else ()), *boot]
    for name in [*requested, *optional, *MEDIA_MODULES]:
        name = name.replace("-", "_")
        if name in closures or name in boot_names:
            continue
        if name in MEDIA_MODULES and name not in boot and not tree.has(name):
            continue  # a kernel without CD/USB storage (a cloud kernel): no live media
        if name in DEFAULT_NIC_MODULES and name not in boot and not tree.has(name):
            skipped.append(name)
            continue
        if not tree.has(name) and name in tree.builtin:
            continue  # built into the kernel: nothing to load
        if not tree.has(name):
            raise ModuleError(f"module {name} is not in {tree.root} nor built into the kernel")
        closures[name] = tuple(tree.closure(name))
        if name in requested:
            boot_names.append(name)
    carried: dict[str, Module] = {}
    for closure in closures.values():
        for module in closure:
            carried.setdefault(module.name, module)
    return ModuleSelection(
        modules=tuple(carried.values()),
        closures=closures,
        boot=tuple(boot_names),
        skipped=tuple(skipped),
    )
