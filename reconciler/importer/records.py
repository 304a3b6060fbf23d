"""What the source readers produce: plain records with the place each came from.

Every reader turns its format into these values, so the inference step works
the same whatever mix of dhcpd.conf, leases, zones, Warewulf and CSV a site
has. ``Where`` travels with every record: reports say ``file:line``, not just
what is wrong.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Where:
    """A place in an input: a file and a line (0 when the format has no lines)."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


class ImportFailure(Exception):
    """An input cannot be read at all: the message says where and what was expected."""

    def __init__(self, where: Where, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


@dataclass(frozen=True, slots=True)
class HostRecord:
    """One machine as one source describes it; fields a source does not know are None."""

    mac: str | None  # normalised
    where: Where
    address: ipaddress.IPv4Address | None = None
    name: str | None = None  # as the source spells it, maybe an FQDN
    dhcp_name: str | None = None  # the name of a dhcpd ``host`` block
    group: str | None = None  # a group a source names (CSV, Warewulf profile)
    filename: str | None = None  # dhcpd ``filename``
    next_server: str | None = None


@dataclass(slots=True)
class SubnetRecord:
    """A subnet declaration with what the inventory needs of it."""

    network: ipaddress.IPv4Network
    where: Where
    gateway: ipaddress.IPv4Address | None = None
    ranges: list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]] = field(default_factory=list)
    domain: str | None = None
    shared_network: str | None = None


@dataclass(frozen=True, slots=True)
class BootEntry:
    """What a pxelinux per-MAC file boots."""

    mac: str
    where: Where
    kernel: str
    initrd: str
    append: str


@dataclass(frozen=True, slots=True)
class DnsName:
    """An A or PTR record read from a zone."""

    name: str  # absolute, lower case, no trailing dot
    address: ipaddress.IPv4Address
    where: Where
    ttl: int


@dataclass(slots=True)
class Sources:
    """Everything read from every input, before inference."""

    hosts: list[HostRecord] = field(default_factory=list)
    subnets: list[SubnetRecord] = field(default_factory=list)
    forward: list[DnsName] = field(default_factory=list)  # A records
    reverse: list[DnsName] = field(default_factory=list)  # PTR records
    zones: list[str] = field(default_factory=list)  # origins of forward zones read
    boot: list[BootEntry] = field(default_factory=list)
    tftp_root: str | None = None
    next_servers: list[str] = field(default_factory=list)  # every next-server statement
    declared_subnets: bool = False  # a dhcpd.conf gave subnets: do not guess any
    warnings: list[str] = field(default_factory=list)
