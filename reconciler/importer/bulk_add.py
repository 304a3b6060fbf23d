"""``reconciler hosts add GROUP --macs FILE``: many machines at once, in the order they were cabled.

Sites that collect MACs from a switch table or the BMCs instead of booting
blades one by one append them here: one MAC a line, in boot order, becomes the
next free indexes of the group (after its highest, or from ``--start``). The
group file is edited with ruamel.yaml like a registration commit (comments and
layout kept), and the whole inventory with the new hosts is validated before
the file is replaced: an invalid result writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.inventory.edit import EditError, append_hosts
from reconciler.inventory.load import load_inventory
from reconciler.inventory.sources import FolderSource
from reconciler.model.problems import InventoryError
from reconciler.model.types import normalize_mac
from reconciler.server.enrol import MemorySource
from reconciler.targets.base import atomic_write


class BulkAddError(Exception):
    """The MAC list or the result is not acceptable; nothing was written."""


@dataclass(frozen=True, slots=True)
class Added:
    index: int
    mac: str
    hostname: str


def read_macs(path: Path) -> list[str]:
    """One MAC a line; blank lines and ``#`` comments are skipped; file:line on a bad one."""
    try:
        text = path.read_text()
    except OSError as error:
        raise BulkAddError(f"{path}: cannot read: {error.strerror}") from None
    macs: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            mac = normalize_mac(line)
        except ValueError as error:
            raise BulkAddError(f"{path}:{number}: expected one MAC address: {error}") from None
        if mac in seen:
            raise BulkAddError(f"{path}:{number}: {mac} is already on line {seen[mac]}")
        seen[mac] = number
        macs.append(mac)
    if not macs:
        raise BulkAddError(f"{path}: no MAC addresses in the file")
    return macs


def add_hosts(root: Path, group_name: str, macs: list[str], *, start: int | None) -> list[Added]:
    """Append ``macs`` to ``groups/<group_name>.yaml`` under ``root``; validate, then write."""
    source = FolderSource(root)
    files = source.read_files()
    relative = f"groups/{group_name}.yaml"
    if relative not in files:
        known = sorted(f[len("groups/") : -len(".yaml")] for f in files if f.startswith("groups/"))
        raise BulkAddError(
            f"{root}: no group {group_name!r} (groups: {', '.join(known) or 'none'})"
        )
    try:
        inventory = load_inventory(source)
    except InventoryError as error:
        raise BulkAddError(
            f"the inventory is invalid before any change; fix it first:\n{error}"
        ) from None
    group = next(g for g in inventory.groups if g.name == group_name)
    used = {h.index for h in group.hosts}
    index = start if start is not None else max(used, default=0) + 1
    added: list[Added] = []
    for mac in macs:
        while index in used:
            index += 1
        added.append(Added(index, mac, group.hostname_of(index)))
        used.add(index)
        index += 1
    try:
        text = append_hosts(files[relative].decode("utf-8"), [(a.index, a.mac) for a in added])
    except (EditError, UnicodeDecodeError) as error:
        raise BulkAddError(f"{relative}: {error}") from None
    proposed = {**files, relative: text.encode("utf-8")}
    try:
        load_inventory(MemorySource(proposed, inventory.revision))
    except InventoryError as error:
        raise BulkAddError(
            f"adding these hosts would make the inventory invalid; nothing was written:\n{error}"
        ) from None
    atomic_write(root / relative, text)
    return added
