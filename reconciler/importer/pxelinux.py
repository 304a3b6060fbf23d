"""pxelinux.cfg/01-<mac> files: which kernel, initrd and command line each MAC boots.

The label ``DEFAULT`` names (else the first) is what the machine boots;
``INITRD`` or ``initrd=`` on the APPEND line both count. ``images`` turns the
entries into pinned images.
"""

from __future__ import annotations

import re
from pathlib import Path

from reconciler.importer.records import BootEntry, ImportFailure, Sources, Where
from reconciler.model.types import normalize_mac

_PXELINUX_FILE = re.compile(r"^01-((?:[0-9a-fA-F]{2}-){5}[0-9a-fA-F]{2})$")


def read_pxelinux(folder: Path, sources: Sources) -> None:
    """Per-MAC files of a pxelinux.cfg folder; the TFTP root is the folder's parent."""
    if not folder.is_dir():
        raise ImportFailure(Where(str(folder)), "expected a pxelinux.cfg folder")
    sources.tftp_root = str(folder.parent)
    for path in sorted(folder.iterdir()):
        match = _PXELINUX_FILE.match(path.name)
        if match is None:
            continue
        entry = _boot_entry(path, normalize_mac(match.group(1)))
        if entry is not None:
            sources.boot.append(entry)
        else:
            sources.warnings.append(f"{path}: no KERNEL and INITRD found; not imported as an image")


def _boot_entry(path: Path, mac: str) -> BootEntry | None:
    """The label DEFAULT names (else the first): its kernel, initrd and append line."""
    labels: dict[str, dict[str, str]] = {}
    default = None
    current: dict[str, str] | None = None
    first_line: dict[str, int] = {}
    for number, raw in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "DEFAULT":
            default = rest.split()[0] if rest else None
        elif keyword == "LABEL":
            current = labels.setdefault(rest, {})
            first_line[rest] = number
        elif current is not None and keyword in ("KERNEL", "LINUX", "INITRD", "APPEND"):
            current[keyword.replace("LINUX", "KERNEL")] = rest
    if not labels:
        return None
    name = default if default in labels else next(iter(labels))
    label = labels[name]
    append = label.get("APPEND", "")
    initrd = label.get("INITRD", "")
    words = []
    for word in append.split():
        if word.startswith("initrd="):
            initrd = initrd or word[len("initrd=") :].split(",")[0]
        else:
            words.append(word)
    if not label.get("KERNEL") or not initrd:
        return None
    return BootEntry(
        mac=mac,
        where=Where(str(path), first_line[name]),
        kernel=label["KERNEL"],
        initrd=initrd,
        append=" ".join(words),
    )
