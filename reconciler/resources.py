"""The desired and live resource types that every part of the reconciler shares.

Compiling an inventory produces these values; every target reads its live state
into the same types; the plan compares them. They are frozen, hashable and carry
a string ``key`` that identifies the object inside its target (two values with
the same key are the same object, possibly in two different states).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias


class Resource(Protocol):
    """What the plan needs of a resource: an identity and a comparable value."""

    @property
    def key(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class DhcpHost:
    """One dhcpd ``host`` declaration (a Kea reservation): a MAC pinned to an address and a name.

    What the entry says about booting: ``boot_filename``, the per-host iPXE
    script given to iPXE clients only ("" when the group's ``dhcp_filename`` is
    ``subnet``), and the host's own ``filename`` and ``next_server`` for every
    client with its MAC ("" when the subnet's hold), as a legacy config had them.
    """

    hostname: str
    mac: str  # normalised: lower case, colon separated
    ip: str
    group: str
    boot_filename: str  # the per-host iPXE script, relative to the boot root, or ""
    filename: str = ""
    next_server: str = ""

    @property
    def key(self) -> str:
        return self.hostname

    def to_dict(self) -> dict[str, Any]:
        own = {"filename": self.filename} if self.filename else {}
        own |= {"next_server": self.next_server} if self.next_server else {}
        return {
            "hostname": self.hostname,
            "mac": self.mac,
            "ip": self.ip,
            "group": self.group,
            "boot_filename": self.boot_filename,
        } | own


@dataclass(frozen=True, slots=True)
class DhcpSubnet:
    """A subnet declaration of dhcpd.conf: routing, lease time, the unknown-client pool."""

    network: str  # CIDR, e.g. 10.23.45.0/24
    gateway: str
    lease_time: int
    domain: str
    unregistered_range: tuple[str, str] | None
    groups: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.network

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "gateway": self.gateway,
            "lease_time": self.lease_time,
            "domain": self.domain,
            "unregistered_range": list(self.unregistered_range)
            if self.unregistered_range
            else None,
            "groups": list(self.groups),
        }


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One DNS RRset. Names and name-valued data are absolute (trailing dot)."""

    zone: str  # absolute, e.g. "cluster.example."
    name: str  # absolute owner name
    rtype: str  # "A", "PTR", "CNAME", ...
    ttl: int
    values: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.zone} {self.name} {self.rtype}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "name": self.name,
            "type": self.rtype,
            "ttl": self.ttl,
            "values": list(self.values),
        }


@dataclass(frozen=True, slots=True)
class DnsZone:
    """A zone the reconciler keeps records in: the forward domain or a reverse zone."""

    name: str  # absolute
    kind: str  # "forward" or "reverse"

    @property
    def key(self) -> str:
        return self.name

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class BootFile:
    """A file under the boot root: pxelinux config or iPXE script for one MAC."""

    path: str  # relative to the boot root, forward slashes
    content: str

    @property
    def key(self) -> str:
        return self.path

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "content": self.content}


@dataclass(frozen=True, slots=True)
class NodeImage:
    """The image a node must run: what the node agent compares itself against."""

    host: str
    mac: str
    image: str
    version: str
    kernel_url: str
    kernel_sha256: str
    initrd_url: str
    initrd_sha256: str
    rootfs_url: str
    rootfs_sha256: str
    cmdline: str
    swap: str = "live"  # the group's rollout method: "reboot" makes the agent always reboot

    @property
    def key(self) -> str:
        return self.host

    def to_dict(self) -> dict[str, Any]:
        extra = {"swap": self.swap} if self.swap != "live" else {}
        return extra | {
            "host": self.host,
            "mac": self.mac,
            "image": self.image,
            "version": self.version,
            "kernel": {"url": self.kernel_url, "sha256": self.kernel_sha256},
            "initrd": {"url": self.initrd_url, "sha256": self.initrd_sha256},
            "rootfs": {"url": self.rootfs_url, "sha256": self.rootfs_sha256},
            "cmdline": self.cmdline,
        }


AnyResource: TypeAlias = DhcpHost | DhcpSubnet | DnsRecord | DnsZone | BootFile | NodeImage


@dataclass(frozen=True, slots=True)
class DesiredState:
    """Everything one inventory revision compiles to, grouped by kind."""

    dhcp_hosts: tuple[DhcpHost, ...] = ()
    dhcp_subnets: tuple[DhcpSubnet, ...] = ()
    dns_zones: tuple[DnsZone, ...] = ()
    dns_records: tuple[DnsRecord, ...] = ()
    boot_files: tuple[BootFile, ...] = ()
    node_images: tuple[NodeImage, ...] = ()
    # MAC -> hostname for every known host, for lookups by the HTTP service.
    hosts_by_mac: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
