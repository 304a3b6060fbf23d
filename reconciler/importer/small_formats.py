"""The small sources: dhcpd's leases file, pxelinux.cfg per-MAC files, Warewulf 4, CSV.

Each is a few lines of format knowledge turning a file into ``records``:

- leases: the ``host`` blocks dhcpd keeps for hosts made over OMAPI (the same
  scanner the OMAPI target reads them with; ``deleted`` blocks remove a host);
- pxelinux.cfg/01-<mac>: which kernel, initrd and command line a MAC boots;
- Warewulf 4 ``nodes.conf`` (YAML): nodes with their network devices;
- CSV ``name,mac,address[,group]``, what every other tool can export.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
from pathlib import Path
from typing import Any

import yaml

from reconciler.importer.records import BootEntry, HostRecord, ImportFailure, Sources, Where
from reconciler.model.types import normalize_mac
from reconciler.targets.dhcp_hosts import iter_host_blocks

_PXELINUX_FILE = re.compile(r"^01-((?:[0-9a-fA-F]{2}-){5}[0-9a-fA-F]{2})$")


def read_leases(path: Path, sources: Sources) -> None:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise ImportFailure(Where(str(path)), f"cannot read: {error.strerror}") from None
    live: dict[str, HostRecord] = {}
    for block in iter_host_blocks(text):
        if block.deleted:
            live.pop(block.name, None)
            continue
        line = text.count("\n", 0, text.find(block.text)) + 1
        where = Where(str(path), line)
        try:
            mac = normalize_mac(block.mac)
        except ValueError:
            raise ImportFailure(where, f"expected a MAC address in host {block.name}") from None
        try:
            address = ipaddress.IPv4Address(block.ip) if block.ip else None
        except ValueError:
            raise ImportFailure(
                where, f"expected an IPv4 fixed-address in host {block.name}"
            ) from None
        live[block.name] = HostRecord(
            mac=mac, where=where, address=address, dhcp_name=block.name, filename=block.url or None
        )
    sources.hosts.extend(live.values())


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


def read_warewulf(path: Path, sources: Sources) -> None:
    """Warewulf 4 nodes.conf: ``nodes: {name: {network devices: {dev: {hwaddr, ipaddr}}}}``."""
    where = Where(str(path))
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ImportFailure(where, f"cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise ImportFailure(Where(str(path), line), f"expected YAML: {error}") from None
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, dict):
        raise ImportFailure(where, "expected a 'nodes:' mapping (Warewulf 4 nodes.conf)")
    for name, node in nodes.items():
        devices = _get(node, "network devices") or {}
        if not isinstance(devices, dict):
            continue
        profiles = _get(node, "profiles") or []
        group = profiles[0] if isinstance(profiles, list) and profiles else None
        for device in devices.values():
            mac, address = _get(device, "hwaddr"), _get(device, "ipaddr")
            if not mac:
                continue
            try:
                record = HostRecord(
                    mac=normalize_mac(str(mac)),
                    where=Where(str(path)),
                    address=ipaddress.IPv4Address(str(address)) if address else None,
                    name=str(name),
                    group=None if group in (None, "default") else str(group),
                )
            except ValueError as error:
                raise ImportFailure(where, f"node {name}: {error}") from None
            sources.hosts.append(record)
            break  # the first device with a MAC is the one that boots


def _get(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


def read_csv(path: Path, sources: Sources) -> None:
    """``name,mac,address[,group]``; a first row of these words is a header."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ImportFailure(Where(str(path)), f"cannot read: {error.strerror}") from None
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        where = Where(str(path), number)
        if number == 1 and [c.lower() for c in cells[:3]] == ["name", "mac", "address"]:
            continue
        if len(cells) not in (3, 4):
            raise ImportFailure(
                where, f"expected name,mac,address[,group], found {len(cells)} columns"
            )
        try:
            mac = normalize_mac(cells[1])
        except ValueError as error:
            raise ImportFailure(where, f"expected a MAC address in column 2: {error}") from None
        try:
            address = ipaddress.IPv4Address(cells[2])
        except ValueError:
            raise ImportFailure(
                where, f"expected an IPv4 address in column 3, found {cells[2]!r}"
            ) from None
        group = cells[3] if len(cells) == 4 and cells[3] else None
        sources.hosts.append(
            HostRecord(mac=mac, where=where, address=address, name=cells[0], group=group)
        )
