"""Groups from machines: one per subnet and name pattern, with the pattern's format and offset.

``node001``..``node128`` in one subnet is one group with ``hostname: node%03d``;
its ``first_address`` is the address minus the index that most of its hosts
share (omitted when that is the network address, the inventory's default).
A host whose address does not follow keeps its own ``address``. Names that
fit no pattern shared by two hosts go to one group per subnet where every host
keeps its own ``name``. A group named by a source (CSV group, Warewulf
profile) keeps its hosts together whatever their names.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter, defaultdict

from reconciler.importer.infer import Inference, InferredGroup, Inferrer, IPv4, Machine, Member
from reconciler.importer.records import SubnetRecord
from reconciler.model.types import LABEL

_PATTERN = re.compile(r"^(.*?[a-z-])(\d+)([a-z-]*)\Z")


def _pattern(name: str) -> tuple[str, str, str] | None:
    match = _PATTERN.match(name)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def _format_for(digit_strings: list[str]) -> str:
    """``%03d`` when the numbers are zero-padded to 3, else ``%d``."""
    padded = [d for d in digit_strings if len(d) > 1 and d.startswith("0")]
    if padded:
        return f"%0{min(len(d) for d in padded)}d"
    return "%d"


def _label(text: str, fallback: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:40].strip("-")
    return name if name and LABEL.match(name) else fallback


class Grouper:
    """Turns the machines of each subnet into inventory groups (see the module docstring)."""

    def __init__(self, inferrer: Inferrer) -> None:
        self.inferrer = inferrer
        self.result: Inference = inferrer.result
        self.names: set[str] = set()

    def unique(self, name: str, subnet: ipaddress.IPv4Network) -> str:
        candidate = name
        if candidate in self.names:
            octets = str(subnet.network_address).split(".")
            candidate = f"{name}-{'-'.join(octets[: max(1, subnet.prefixlen // 8)])}"
        number = 2
        base = candidate
        while candidate in self.names:
            candidate, number = f"{base}-{number}", number + 1
        self.names.add(candidate)
        return candidate

    def run(self, members: dict[ipaddress.IPv4Network, list[Machine]]) -> None:
        for network in sorted(members):
            subnet = self.inferrer.subnet_records[network]
            machines = sorted(members[network], key=lambda m: m.address)
            gateway = self.inferrer.gateway(subnet, {m.address for m in machines})
            if gateway is None:
                continue
            machines = self._usable(subnet, gateway, machines)
            if not machines:
                continue
            before = len(self.result.groups)
            self._subnet(subnet, gateway, machines)
            self._range(subnet, gateway, machines, self.result.groups[before:])

    def _usable(
        self, subnet: SubnetRecord, gateway: IPv4, machines: list[Machine]
    ) -> list[Machine]:
        """Machines on the subnet's network, broadcast or router address are conflicts."""
        network = subnet.network
        special = {
            network.network_address: "network",
            network.broadcast_address: "broadcast",
            gateway: "router",
        }
        usable = []
        for machine in machines:
            role = special.get(machine.address)
            if role is None:
                usable.append(machine)
                continue
            self.inferrer.conflict(
                "address",
                f"{machine.name} ({machine.mac}, {', '.join(str(w) for w in machine.wheres)}) "
                f"has {machine.address}, the {role} address of {network}; left out",
            )
        return usable

    def _subnet(self, subnet: SubnetRecord, gateway: IPv4, machines: list[Machine]) -> None:
        by_hint: dict[str, list[Machine]] = defaultdict(list)
        by_pattern: dict[tuple[str, str], list[Machine]] = defaultdict(list)
        misc: list[Machine] = []
        for machine in machines:
            found = _pattern(machine.name)
            if machine.hint:
                by_hint[machine.hint].append(machine)
            elif found is not None:
                by_pattern[(found[0], found[2])].append(machine)
            else:
                misc.append(machine)
        for (prefix, suffix), group in sorted(by_pattern.items()):
            if len(group) < 2:
                misc.extend(group)
                continue
            name = _label(prefix + suffix, "hosts")
            misc.extend(
                self._patterned(name, subnet, gateway, group, origin=f"names {prefix}N{suffix}")
            )
        for hint, group in sorted(by_hint.items()):
            leftover = self._patterned(
                _label(hint, "hosts"), subnet, gateway, group, origin=f"the source's group {hint}"
            )
            misc.extend(leftover)
        if misc:
            self._irregular(subnet, gateway, sorted(misc, key=lambda m: m.address))

    def _patterned(
        self,
        name: str,
        subnet: SubnetRecord,
        gateway: IPv4,
        machines: list[Machine],
        *,
        origin: str,
    ) -> list[Machine]:
        """Make one group of ``machines``; return those whose names do not fit the format."""
        patterns = [(m, _pattern(m.name)) for m in machines]
        shapes = Counter((p[0], p[2]) for _, p in patterns if p is not None)
        if not shapes:
            return machines
        (prefix, suffix), _ = shapes.most_common(1)[0]
        digits = [p[1] for _, p in patterns if p is not None and (p[0], p[2]) == (prefix, suffix)]
        hostname = f"{prefix}{_format_for(digits)}{suffix}"
        fitting: list[tuple[int, Machine]] = []
        leftover: list[Machine] = []
        indexes: set[int] = set()
        for machine, found in patterns:
            index = int(found[1]) if found is not None else -1
            if index >= 0 and hostname % index == machine.name and index not in indexes:
                fitting.append((index, machine))
                indexes.add(index)
            else:
                leftover.append(machine)
        if not fitting or not LABEL.match(hostname % 0):
            return machines
        offsets = Counter(int(m.address) - index for index, m in fitting)
        offset, holds = offsets.most_common(1)[0]
        network = int(subnet.network.network_address)
        if offset < 0 or (holds < 2 and len(fitting) > 1):
            offset = network
        first = None if offset == network else IPv4(offset)
        members = [
            Member(index, m, own_name=False, own_address=int(m.address) - index != offset)
            for index, m in sorted(fitting, key=lambda pair: pair[0])
        ]
        origin_lines = [
            f"From subnet {subnet.network} ({subnet.where}): {len(members)} hosts whose {origin} "
            f"follow {hostname!r}.",
        ]
        own = sum(1 for m in members if m.own_address)
        origin_lines.append(
            f"first_address + index gives the address of {len(members) - own} of "
            f"{len(members)} hosts; the others give their own address."
            if own
            else "first_address + index gives every host's address."
        )
        self.result.groups.append(
            InferredGroup(
                name=self.unique(name, subnet.network),
                subnet=subnet,
                gateway=gateway,
                hostname=hostname,
                first_address=first,
                members=members,
                origin=origin_lines,
            )
        )
        return leftover

    def _irregular(self, subnet: SubnetRecord, gateway: IPv4, machines: list[Machine]) -> None:
        """Hosts that follow no shared pattern: each gives its own name and address."""
        name = self.unique("other", subnet.network)
        network = int(subnet.network.network_address)
        members = []
        for index, machine in enumerate(machines, start=1):
            members.append(
                Member(
                    index,
                    machine,
                    own_name=True,
                    own_address=int(machine.address) != network + index,
                )
            )
        self.result.groups.append(
            InferredGroup(
                name=name,
                subnet=subnet,
                gateway=gateway,
                hostname=f"{name}%d",
                first_address=None,
                members=members,
                origin=[
                    f"From subnet {subnet.network} ({subnet.where}): {len(members)} hosts whose "
                    "names follow no pattern shared with another host; each keeps its own "
                    "name and address (the index only numbers them).",
                ],
            )
        )

    def _range(
        self,
        subnet: SubnetRecord,
        gateway: IPv4,
        machines: list[Machine],
        groups: list[InferredGroup],
    ) -> None:
        """The subnet's dynamic range becomes the unregistered range of its first group."""
        if not subnet.ranges or not groups:
            return
        first, last = max(subnet.ranges, key=lambda r: int(r[1]) - int(r[0]))
        if len(subnet.ranges) > 1:
            self.result.warnings.append(
                f"subnet {subnet.network} ({subnet.where}) has {len(subnet.ranges)} ranges; "
                f"only the largest, {first}-{last}, is kept as the unregistered range"
            )
        network = subnet.network
        inside = [m for m in machines if first <= m.address <= last]
        special = {network.network_address, network.broadcast_address, gateway}
        if first not in network or last not in network or any(first <= a <= last for a in special):
            self.inferrer.conflict(
                "range",
                f"range {first}-{last} of subnet {network} ({subnet.where}) is not inside it "
                "or covers its network, broadcast or gateway address; no unregistered range kept",
            )
        elif inside:
            names = ", ".join(m.name for m in inside[:5])
            self.inferrer.conflict(
                "range",
                f"range {first}-{last} of subnet {network} ({subnet.where}) holds fixed "
                f"addresses of {names}; no unregistered range kept",
            )
        else:
            target = min(groups, key=lambda g: g.name)
            target.unregistered_range = (first, last)
