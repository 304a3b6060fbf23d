"""What changes between two inventory revisions, in the terms of hosts.

For pull requests: "node020 re-addressed, node031 added, node014 image
compute@2024.10 -> compute@2024.11 (kernel, rootfs)", and how many running
nodes would reboot or swap because what they boot changes. It needs no live
access, so CI can post it without any secret. Renderers: ``hostdiff_render``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.model.inventory import Group, Host, Inventory
from reconciler.rollout.preview import GroupMoves, diff_moves

DISCOVERY = "(discovery)"
BOOT_PARTS = ("kernel", "initrd", "rootfs", "cmdline")


@dataclass(frozen=True, slots=True)
class BootImage:
    """What a node boots, resolved from its image reference: compared part by part."""

    ref: str  # <image>@<version>
    kernel: str  # "<url> sha256:<digest>"
    initrd: str
    rootfs: str
    cmdline: str

    def part(self, name: str) -> str:
        value: str = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class HostView:
    hostname: str
    group: str
    mac: str
    ip: str
    boot: BootImage | None  # None: the host boots discovery
    aliases: tuple[str, ...]
    dhcp_boot: str = ""  # what its DHCP entry names as boot file (see ``dhcp_boot_of``)

    @property
    def image(self) -> str:
        return self.boot.ref if self.boot is not None else DISCOVERY


@dataclass(frozen=True, slots=True)
class PartChange:
    """One boot part (kernel, initrd, rootfs, cmdline) of one host, before and after."""

    part: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class HostChange:
    kind: str  # added, removed, renamed, readdressed, mac, image, aliases, group, dhcp-boot
    hostname: str
    detail: str
    parts: tuple[PartChange, ...] = ()  # kind "image": what the node would boot differently


@dataclass(slots=True)
class HostDiff:
    changes: list[HostChange] = field(default_factory=list)
    # Per group: how the nodes whose image changes move (switch root, kexec, reboot).
    nodes: tuple[GroupMoves, ...] = ()

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for change in self.changes:
            result[change.kind] = result.get(change.kind, 0) + 1
        return result

    @property
    def image_changes(self) -> list[HostChange]:
        """Existing hosts whose boot image changes: each would reboot or swap."""
        return [change for change in self.changes if change.kind == "image"]


def _boot_image(inventory: Inventory, ref: str | None) -> BootImage | None:
    if ref is None:
        return None
    _, _, version = inventory.resolve_image(ref)
    return BootImage(
        ref=ref,
        kernel=f"{version.kernel.url} sha256:{version.kernel.sha256}",
        initrd=f"{version.initrd.url} sha256:{version.initrd.sha256}",
        rootfs=f"{version.rootfs.url} sha256:{version.rootfs.sha256}",
        cmdline=version.cmdline,
    )


def host_views(inventory: Inventory) -> dict[str, HostView]:
    views = {}
    for group in inventory.groups:
        for host in group.hosts:
            name = group.name_of(host)
            views[name] = HostView(
                hostname=name,
                group=group.name,
                mac=host.mac,
                ip=str(group.address_for(host)),
                boot=_boot_image(inventory, host.image or group.image),
                aliases=tuple(host.aliases),
                dhcp_boot=dhcp_boot_of(group, host),
            )
    return views


def dhcp_boot_of(group: Group, host: Host) -> str:
    """The boot file a host's DHCP entry gives, in words (as ``compile.dhcp_host`` decides)."""
    filename, next_server = group.filename_for(host), group.next_server_for(host)
    if filename is not None:
        said = f"filename {filename}"
    elif group.dhcp_filename == "per-host":
        said = "its iPXE script"
    else:
        said = "the subnet's filename"
    return said + (f", next-server {next_server}" if next_server else "")


def _image_change(old: HostView, new: HostView, name: str) -> HostChange | None:
    if old.boot == new.boot:
        return None
    if old.boot is None or new.boot is None:
        parts: tuple[PartChange, ...] = tuple(
            PartChange(
                part,
                old.boot.part(part) if old.boot else DISCOVERY,
                new.boot.part(part) if new.boot else DISCOVERY,
            )
            for part in BOOT_PARTS
        )
    else:
        parts = tuple(
            PartChange(part, old.boot.part(part), new.boot.part(part))
            for part in BOOT_PARTS
            if old.boot.part(part) != new.boot.part(part)
        )
    what = ", ".join(p.part for p in parts)
    if old.image == new.image:
        detail = f"image {new.image} changed in place ({what})"
    else:
        detail = f"image {old.image} -> {new.image} ({what})"
    return HostChange("image", name, detail, parts)


def _field_changes(old: HostView, new: HostView, name: str) -> list[HostChange]:
    changes = []
    if old.ip != new.ip:
        changes.append(HostChange("readdressed", name, f"{old.ip} -> {new.ip}"))
    if old.mac != new.mac:
        changes.append(HostChange("mac", name, f"MAC {old.mac} -> {new.mac}"))
    image = _image_change(old, new, name)
    if image is not None:
        changes.append(image)
    if old.aliases != new.aliases:
        changes.append(
            HostChange("aliases", name, f"aliases {list(old.aliases)} -> {list(new.aliases)}")
        )
    if old.group != new.group:
        changes.append(HostChange("group", name, f"group {old.group} -> {new.group}"))
    if old.dhcp_boot != new.dhcp_boot:
        changes.append(
            HostChange("dhcp-boot", name, f"DHCP boot file: {old.dhcp_boot} -> {new.dhcp_boot}")
        )
    return changes


def diff_inventories(base: Inventory, head: Inventory) -> HostDiff:
    old, new = host_views(base), host_views(head)
    diff = HostDiff()
    gone = {name: view for name, view in old.items() if name not in new}
    fresh = {name: view for name, view in new.items() if name not in old}
    gone_by_mac = {view.mac: view for view in gone.values()}
    for name in sorted(set(old) & set(new)):
        diff.changes.extend(_field_changes(old[name], new[name], name))
    for name, view in sorted(fresh.items()):
        previous = gone_by_mac.pop(view.mac, None)
        if previous is not None:
            gone.pop(previous.hostname)
            diff.changes.append(HostChange("renamed", name, f"{previous.hostname} -> {name}"))
            diff.changes.extend(c for c in _field_changes(previous, view, name) if c.kind != "mac")
        else:
            diff.changes.append(HostChange("added", name, f"{view.mac} {view.ip} {view.image}"))
    for name, view in sorted(gone.items()):
        diff.changes.append(HostChange("removed", name, f"{view.mac} {view.ip}"))
    diff.changes.sort(key=lambda c: (c.hostname, c.kind))
    diff.nodes = diff_moves(
        head,
        (
            (change.hostname, new[change.hostname].image, {p.part for p in change.parts})
            for change in diff.image_changes
        ),
    )
    return diff
