"""Images from pxelinux per-MAC files: each distinct kernel, initrd and command line is one.

The inventory pins every artifact by sha256, so the files are hashed where the
pxelinux configs point (paths relative to the TFTP root, the folder above
``pxelinux.cfg``). The reconciler boots a squashfs root over HTTP; the root
file system is taken from the command line (``root=live:URL``, ``fetch=URL``,
``reconciler.rootfs=URL``) and hashed from the TFTP root at the same path. An
image that lacks a file or a root is a conflict and is not written: its hosts
get no image (they boot discovery) until one is added by hand.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from reconciler.importer.infer import Conflict, Inference
from reconciler.importer.records import BootEntry, Sources
from reconciler.model.types import LABEL

_ROOTFS = re.compile(r"^(?:root=live:|fetch=|reconciler\.rootfs=|rootfs=)(https?://\S+)\Z")
_ROOTFS_SHA = re.compile(r"^reconciler\.rootfs_sha256=([0-9a-f]{64})\Z")
VERSION = "imported"


@dataclass(frozen=True, slots=True)
class ImportedImage:
    name: str
    kernel: tuple[str, str]  # url, sha256
    initrd: tuple[str, str]
    rootfs: tuple[str, str]
    cmdline: str
    source: str  # where it was first seen

    @property
    def ref(self) -> str:
        return f"{self.name}@{VERSION}"


def _digest(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


class _ImageBuilder:
    def __init__(self, sources: Sources, result: Inference, tftp_server: str) -> None:
        self.root = Path(sources.tftp_root or ".")
        self.result = result
        self.tftp_server = tftp_server
        self.names: set[str] = set()

    def artifact(self, path: str, entry: BootEntry, what: str) -> tuple[str, str] | None:
        if path.startswith(("http://", "https://", "tftp://")):
            url, relative = path, urlparse(path).path
        else:
            relative = path
            url = f"tftp://{self.tftp_server}/{path.lstrip('/')}"
        digest = _digest(self.root / relative.lstrip("/"))
        if digest is None:
            self.result.conflicts.append(
                Conflict(
                    "image",
                    f"{entry.where}: the {what} {path} is not under the TFTP root {self.root}, "
                    "so it cannot be pinned by sha256; this boot entry is not imported",
                )
            )
            return None
        return url, digest

    def build(self, entry: BootEntry) -> ImportedImage | None:
        kernel = self.artifact(entry.kernel, entry, "kernel")
        initrd = self.artifact(entry.initrd, entry, "initrd")
        rootfs_url = next(
            (m.group(1) for w in entry.append.split() if (m := _ROOTFS.match(w))), None
        )
        if rootfs_url is None:
            self.result.conflicts.append(
                Conflict(
                    "image",
                    f"{entry.where}: no root file system URL (root=live:, fetch= or "
                    "reconciler.rootfs=) on the APPEND line; the reconciler boots a squashfs "
                    "root, so this boot entry is not imported",
                )
            )
            return None
        pinned = next(
            (m.group(1) for w in entry.append.split() if (m := _ROOTFS_SHA.match(w))), None
        )
        rootfs = (
            (rootfs_url, pinned) if pinned else self.artifact(rootfs_url, entry, "root file system")
        )
        if kernel is None or initrd is None or rootfs is None:
            return None
        cmdline = " ".join(
            w for w in entry.append.split() if not (_ROOTFS.match(w) or w.startswith("reconciler."))
        )
        if '"' in cmdline:
            self.result.conflicts.append(
                Conflict(
                    "image", f"{entry.where}: the APPEND line has a double quote; not imported"
                )
            )
            return None
        return ImportedImage(
            self.name_for(entry), kernel, initrd, rootfs, cmdline, str(entry.where)
        )

    def name_for(self, entry: BootEntry) -> str:
        parent = Path(entry.kernel.split("://")[-1]).parent.name
        base = re.sub(r"[^a-z0-9-]+", "-", (parent or "image").lower()).strip("-") or "image"
        base = base if LABEL.match(base) else "image"
        name, number = base, 2
        while name in self.names:
            name, number = f"{base}-{number}", number + 1
        self.names.add(name)
        return name


def infer_images(sources: Sources, result: Inference, *, tftp_server: str) -> list[ImportedImage]:
    """One image per distinct boot entry; machines and groups get their references."""
    builder = _ImageBuilder(sources, result, tftp_server)
    by_identity: dict[tuple[str, str, str], ImportedImage | None] = {}
    by_mac: dict[str, ImportedImage] = {}
    for entry in sources.boot:
        identity = (entry.kernel, entry.initrd, entry.append)
        if identity not in by_identity:
            by_identity[identity] = builder.build(entry)
        image = by_identity[identity]
        if image is not None:
            by_mac[entry.mac] = image
    for machine in result.machines:
        image = by_mac.get(machine.mac)
        machine.image = image.ref if image else None
    for group in result.groups:
        refs = {m.machine.image for m in group.members}
        if len(refs) == 1 and None not in refs:
            group.image = refs.pop()
    used: dict[str, ImportedImage] = defaultdict()
    for image in by_mac.values():
        used[image.name] = image
    return sorted(used.values(), key=lambda i: i.name)
