"""What the site-wide rules share: the context they fill in, and what makes a name or an
address unusable.

``rules``, ``subnet_rules`` and ``registration_rules`` each check one part of the
inventory; they all report into one ``RuleContext`` and ask the same questions
of a hostname or an address, so those answers live here, once.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from reconciler.model.inventory import Group, Image, Site
from reconciler.model.problems import PathPart, Problem
from reconciler.model.types import LABEL, MAX_FQDN

IPv4 = ipaddress.IPv4Address


@dataclass
class RuleContext:
    """What the rules learn as they walk the groups, for cross-group checks."""

    site: Site | None
    images: dict[str, Image]
    check_images: bool = True
    boot_profiles: frozenset[str] | None = None
    problems: list[Problem] = field(default_factory=list)
    macs: dict[str, str] = field(default_factory=dict)  # mac -> "file hosts[i]"
    hostnames: dict[str, str] = field(default_factory=dict)
    addresses: dict[int, str] = field(default_factory=dict)  # int(address) -> "file hosts[i]"
    ranges: list[tuple[IPv4, IPv4, str, ipaddress.IPv4Network]] = field(default_factory=list)
    # ``ranges`` by subnet, rebuilt when a range was added: looked up once per host, where
    # walking every group's range (and comparing networks) cost seconds at 100,000 hosts.
    _by_subnet: dict[ipaddress.IPv4Network, list[tuple[IPv4, IPv4, str]]] = field(
        default_factory=dict, init=False, repr=False
    )
    _indexed: int = field(default=-1, init=False, repr=False)

    def ranges_in(self, net: ipaddress.IPv4Network) -> list[tuple[IPv4, IPv4, str]]:
        """The unregistered ranges (first, last, file) of the groups in subnet ``net``."""
        if self._indexed != len(self.ranges):
            self._by_subnet = {}
            for first, last, file, range_net in self.ranges:
                self._by_subnet.setdefault(range_net, []).append((first, last, file))
            self._indexed = len(self.ranges)
        return self._by_subnet.get(net, [])

    def report(self, file: str, path: tuple[PathPart, ...], message: str) -> None:
        self.problems.append(Problem(file, path, message))


@dataclass(frozen=True, slots=True)
class UsableAddresses:
    """A group's host addresses as integers: each host's address is tested with a few
    integer comparisons instead of ipaddress objects (seconds at 100,000 hosts).
    ``usable(n)`` is true exactly when ``address_problem`` finds nothing."""

    low: int  # the network address: not usable, nor is anything below
    high: int  # the broadcast address
    gateway: int
    ranges: tuple[tuple[int, int], ...]  # unregistered ranges in the subnet, inclusive

    @classmethod
    def of(cls, context: RuleContext, group: Group) -> UsableAddresses:
        net = group.subnet
        ranges = tuple((int(first), int(last)) for first, last, _ in context.ranges_in(net))
        return cls(int(net.network_address), int(net.broadcast_address), int(group.gateway), ranges)

    def usable(self, address: int) -> bool:
        if not self.low < address < self.high or address == self.gateway:
            return False
        for first, last in self.ranges:  # noqa: SIM110 - no generator per host
            if first <= address <= last:
                return False
        return True


def address_of(group: Group, index: int) -> IPv4 | None:
    """The address of ``index`` in ``group``, or None past 255.255.255.255."""
    base = group.first_address if group.first_address is not None else group.subnet.network_address
    value = int(base) + index
    return IPv4(value) if value <= 0xFFFFFFFF else None


def address_problem(context: RuleContext, group: Group, address: IPv4 | None) -> str | None:
    """Why ``address`` cannot be a host address of ``group``, or None."""
    net = group.subnet
    if address is None or address not in net:
        return f"address {address or 'past 255.255.255.255'} is outside subnet {net}"
    if address == net.network_address:
        return f"address {address} is the network address of {net}"
    if address == net.broadcast_address:
        return f"address {address} is the broadcast address of {net}"
    if address == group.gateway:
        return f"address {address} is the gateway"
    for first, last, range_file in context.ranges_in(net):
        if first <= address <= last:
            return f"address {address} is inside the unregistered range of {range_file}"
    return None


def hostname_problem(context: RuleContext, hostname: str) -> str | None:
    if not LABEL.match(hostname):
        return (
            f"hostname {hostname!r} is not a valid DNS label (1-63 characters of a-z, "
            "0-9 and '-'); shorten the hostname format or use a smaller index"
        )
    return fqdn_problem(context, hostname)


def fqdn_problem(context: RuleContext, name: str) -> str | None:
    if context.site is None:
        return None
    fqdn = f"{name}.{context.site.domain}"
    if len(fqdn) > MAX_FQDN:
        return (
            f"{fqdn!r} is {len(fqdn)} characters, longer than the {MAX_FQDN} DNS allows; "
            "shorten the name or the site's domain"
        )
    return None
