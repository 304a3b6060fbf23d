"""From records to an inventory: merge machines by MAC, name them, and find groups.

Each machine is merged from every source that knows its MAC; its name comes
from the source that states it (CSV, Warewulf, ``option host-name``), else the
dhcpd ``host`` block, else DNS. Forward, reverse and DHCP are cross-checked.
Hosts are grouped by subnet and name pattern (``node001``..``node128`` becomes
``hostname: node%03d``); ``first_address`` is the offset most of a group's
hosts agree on, and hosts that do not fit keep their own ``address``/``name``.

Nothing is resolved silently: every disagreement becomes a ``Conflict`` that
says what was found where and what the import did about it (usually: left the
machine out). ``--strict`` turns any conflict into a failure.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from reconciler.importer.records import DnsName, HostRecord, Sources, SubnetRecord, Where
from reconciler.model.embedded import check_dhcp_filename
from reconciler.model.types import LABEL

IPv4 = ipaddress.IPv4Address
DEFAULT_TTL = 300


@dataclass(frozen=True, slots=True)
class Conflict:
    kind: str  # "mac", "address", "name", "dns", "subnet", "range", "image", "boot"
    message: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"


@dataclass(slots=True)
class Machine:
    """One machine after merging its records."""

    mac: str
    address: IPv4
    name: str
    wheres: list[Where]
    hint: str | None = None
    image: str | None = None  # image reference, filled by the image step
    in_dhcp: bool = False  # a dhcpd host block or lease declares it
    filename: str | None = None  # its DHCP entry's own filename and next-server
    next_server: IPv4 | None = None


@dataclass(slots=True)
class Member:
    index: int
    machine: Machine
    own_name: bool
    own_address: bool


@dataclass(slots=True)
class InferredGroup:
    name: str
    subnet: SubnetRecord
    gateway: IPv4
    hostname: str
    first_address: IPv4 | None
    members: list[Member]
    origin: list[str]  # comment lines: where the group came from
    unregistered_range: tuple[IPv4, IPv4] | None = None
    image: str | None = None
    dhcp_filename: str = "per-host"  # "subnet" when its hosts come from dhcpd entries
    filename: str | None = None  # what every member's DHCP entry has: said once
    next_server: IPv4 | None = None


@dataclass(slots=True)
class Inference:
    domain: str
    ttl: int
    groups: list[InferredGroup] = field(default_factory=list)
    machines: list[Machine] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _places(wheres: list[Where]) -> str:
    return ", ".join(str(w) for w in wheres)


def choose_domain(sources: Sources, domain: str | None) -> str | None:
    if domain:
        return domain.rstrip(".").lower()
    if sources.zones:
        counts = Counter(
            zone for zone in sources.zones for n in sources.forward if n.name.endswith("." + zone)
        )
        return counts.most_common(1)[0][0] if counts else sources.zones[0]
    domains = Counter(s.domain for s in sources.subnets if s.domain)
    return domains.most_common(1)[0][0].lower() if domains else None


class Inferrer:
    """Merges the sources' records into machines and places them in subnets."""

    def __init__(self, sources: Sources, domain: str) -> None:
        self.sources = sources
        self.result = Inference(domain=domain, ttl=DEFAULT_TTL, warnings=list(sources.warnings))
        self.forward: dict[str, list[DnsName]] = defaultdict(list)
        for record in sources.forward:
            self.forward[record.name].append(record)
        self.reverse: dict[IPv4, list[DnsName]] = defaultdict(list)
        for record in sources.reverse:
            self.reverse[record.address].append(record)

    def conflict(self, kind: str, message: str) -> None:
        self.result.conflicts.append(Conflict(kind, message))

    def short(self, name: str) -> str:
        """``node1.cluster.example`` -> ``node1``; a name in another domain stays whole."""
        name = name.rstrip(".").lower()
        suffix = "." + self.result.domain
        return name[: -len(suffix)] if name.endswith(suffix) else name

    # --- machines -----------------------------------------------------------

    def machines(self) -> list[Machine]:
        by_mac: dict[str, list[HostRecord]] = defaultdict(list)
        for record in self.sources.hosts:
            if record.mac is not None:
                by_mac[record.mac].append(record)
        machines: list[Machine] = []
        taken_addresses: dict[IPv4, Machine] = {}
        taken_names: dict[str, Machine] = {}
        for mac, records in by_mac.items():
            machine = self._machine(mac, records)
            if machine is None:
                continue
            other = taken_addresses.get(machine.address)
            if other is not None:
                self.conflict(
                    "address",
                    f"address {machine.address} is given to {other.mac} "
                    f"({_places(other.wheres)}) and to {mac} ({_places(machine.wheres)}); "
                    f"{mac} is left out",
                )
                continue
            twin = taken_names.get(machine.name)
            if twin is not None:
                self.conflict(
                    "name",
                    f"name {machine.name} is given to {twin.mac} ({_places(twin.wheres)}) and to "
                    f"{mac} ({_places(machine.wheres)}); {mac} is left out",
                )
                continue
            taken_addresses[machine.address] = machine
            taken_names[machine.name] = machine
            machines.append(machine)
        return machines

    def _machine(self, mac: str, records: list[HostRecord]) -> Machine | None:
        wheres = [r.where for r in records]
        addresses = {r.address for r in records if r.address is not None}
        if len(addresses) > 1:
            found = "; ".join(f"{r.address} ({r.where})" for r in records if r.address)
            self.conflict(
                "mac", f"MAC {mac} has {len(addresses)} addresses: {found}; the machine is left out"
            )
            return None
        stated = [self.short(r.name) for r in records if r.name]
        dhcp = [self.short(r.dhcp_name) for r in records if r.dhcp_name]
        address = next(iter(addresses), None)
        if address is None:
            for candidate in stated + dhcp:
                found_a = self.forward.get(f"{candidate}.{self.result.domain}", [])
                if len(found_a) == 1:
                    address = found_a[0].address
                    break
        if address is None:
            self.conflict(
                "address",
                f"MAC {mac} ({_places(wheres)}) has no fixed address and DNS gives none; "
                "the machine is left out (add it to a CSV with its address, or by hand)",
            )
            return None
        names = list(dict.fromkeys(stated + dhcp))
        if not names:
            ptr = self.reverse.get(address, [])
            names = [self.short(p.name) for p in ptr[:1]]
        if not names:
            self.conflict(
                "name",
                f"MAC {mac} ({address}, {_places(wheres)}) has no name in any source; left out",
            )
            return None
        if len(names) > 1:
            self.conflict(
                "name",
                f"MAC {mac} ({_places(wheres)}) has the names {', '.join(names)}; "
                f"imported as {names[0]}: the others will not be managed",
            )
        name = names[0]
        if not LABEL.match(name):
            self.conflict(
                "name",
                f"{name!r} (MAC {mac}, {_places(wheres)}) is not a DNS label the inventory "
                "accepts (lower-case letters, digits, '-'); the machine is left out",
            )
            return None
        hints = [r.group for r in records if r.group]
        self._check_dns(name, address, mac)
        machine = Machine(mac, address, name, wheres, hints[0] if hints else None)
        machine.in_dhcp = any(r.dhcp_name for r in records)
        machine.filename = self._own_filename(machine, records)
        machine.next_server = self._own_next_server(machine, records)
        return machine

    def _own_value(self, machine: Machine, records: list[HostRecord], what: str) -> str | None:
        found = {getattr(r, what): r.where for r in records if getattr(r, what)}
        if len(found) > 1:
            spelled = "; ".join(f"{value} ({where})" for value, where in found.items())
            self.conflict(
                "boot",
                f"{machine.name} ({machine.mac}) has {len(found)} {what.replace('_', '-')}s: "
                f"{spelled}; imported the first",
            )
        return next(iter(found), None)

    def _own_filename(self, machine: Machine, records: list[HostRecord]) -> str | None:
        value = self._own_value(machine, records, "filename")
        if value is None:
            return None
        try:
            return check_dhcp_filename(value)
        except ValueError as error:
            self.conflict(
                "boot", f"{machine.name} ({_places(machine.wheres)}): {error}; not imported"
            )
            return None

    def _own_next_server(self, machine: Machine, records: list[HostRecord]) -> IPv4 | None:
        value = self._own_value(machine, records, "next_server")
        if value is None:
            return None
        try:
            return IPv4(value)
        except ValueError:
            self.conflict(
                "boot",
                f"{machine.name} ({_places(machine.wheres)}) has next-server {value}, a name: "
                "the inventory keeps a host's next-server as an IPv4 address, so it is not "
                "imported (the host gets its subnet's); give the address by hand",
            )
            return None

    def _check_dns(self, name: str, address: IPv4, mac: str) -> None:
        if not self.forward and not self.reverse:
            return
        fqdn = f"{name}.{self.result.domain}"
        for record in self.forward.get(fqdn, []):
            if record.address != address:
                self.conflict(
                    "dns",
                    f"{fqdn} has A {record.address} ({record.where}) but DHCP gives "
                    f"{mac} the address {address}",
                )
        for record in self.reverse.get(address, []):
            if record.name != fqdn:
                self.conflict(
                    "dns",
                    f"PTR of {address} names {record.name} ({record.where}) but the "
                    f"machine there is {fqdn} ({mac})",
                )

    # --- subnets --------------------------------------------------------------

    def subnets(self, machines: list[Machine]) -> dict[ipaddress.IPv4Network, list[Machine]]:
        records = {s.network: s for s in self.sources.subnets}
        if not self.sources.declared_subnets:
            guessed = False
            for machine in machines:
                if not any(machine.address in network for network in records):
                    network = ipaddress.IPv4Network(f"{machine.address}/24", strict=False)
                    records[network] = SubnetRecord(network, Where("(guessed)"))
                    guessed = True
            if guessed:
                self.result.warnings.append(
                    "no dhcpd.conf gave the subnet of some hosts: a /24 around them was assumed"
                )
        self.subnet_records = records
        members: dict[ipaddress.IPv4Network, list[Machine]] = defaultdict(list)
        for machine in machines:
            found = next((n for n in records if machine.address in n), None)
            if found is None:
                self.conflict(
                    "subnet",
                    f"{machine.name} ({machine.mac}, {machine.address}, "
                    f"{_places(machine.wheres)}) is outside every subnet; left out",
                )
            elif found.prefixlen > 24:
                self.conflict(
                    "subnet",
                    f"{machine.name} is in {found}, smaller than the /24 the inventory "
                    "supports; left out",
                )
            else:
                members[found].append(machine)
        return members

    def gateway(self, subnet: SubnetRecord, used: set[IPv4]) -> IPv4 | None:
        if subnet.gateway is not None and subnet.gateway in subnet.network:
            return subnet.gateway
        guess = subnet.network.network_address + 1
        if guess in used:
            self.conflict(
                "subnet",
                f"subnet {subnet.network} ({subnet.where}) names no router and its first "
                "address is a host's; its hosts are left out (add 'option routers')",
            )
            return None
        self.result.warnings.append(
            f"subnet {subnet.network} ({subnet.where}) names no router: gateway {guess} assumed"
        )
        return guess
