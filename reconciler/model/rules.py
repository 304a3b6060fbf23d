"""Site-wide rules: everything INVENTORY.md forbids that no single file can see.

Each check appends ``Problem`` values naming the file and the YAML path of the
offending value, so the loader can point at line and column. All rules run even
after one fails: users get every problem in one go.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field

from reconciler.model.inventory import Group, Host, Image, Site
from reconciler.model.problems import PathPart, Problem
from reconciler.model.types import LABEL, MAX_FQDN

IPv4 = ipaddress.IPv4Address


@dataclass
class _Context:
    """What the rules learn as they walk the groups, for cross-group checks."""

    site: Site | None
    images: dict[str, Image]
    check_images: bool = True
    boot_profiles: frozenset[str] | None = None
    problems: list[Problem] = field(default_factory=list)
    macs: dict[str, str] = field(default_factory=dict)  # mac -> "file hosts[i]"
    hostnames: dict[str, str] = field(default_factory=dict)
    addresses: dict[IPv4, str] = field(default_factory=dict)
    ranges: list[tuple[IPv4, IPv4, str, ipaddress.IPv4Network]] = field(default_factory=list)

    def report(self, file: str, path: tuple[PathPart, ...], message: str) -> None:
        self.problems.append(Problem(file, path, message))


def check_site(
    site: Site | None,
    groups: list[tuple[str, Group]],
    images: list[tuple[str, Image]],
    *,
    check_images: bool = True,
    boot_profiles: frozenset[str] | None = None,
) -> list[Problem]:
    """Run every cross-file rule; ``groups`` and ``images`` pair each model with its file.

    ``check_images`` is False when an image file itself was invalid: references to
    it would only repeat that problem. ``site`` is None when site.yaml is invalid;
    then names are not checked against the FQDN length limit.
    """
    context = _Context(site=site, images={}, check_images=check_images, boot_profiles=boot_profiles)
    for file, image in images:
        stem = _stem(file)
        if image.name != stem:
            context.report(
                file,
                ("name",),
                f"image name {image.name!r} must equal the file "
                f"name {stem!r}; rename the file or change the name",
            )
        context.images[image.name] = image
    _check_subnets(context, groups)
    for file, group in groups:
        for index_range in _unregistered(group):
            context.ranges.append((*index_range, file, group.subnet))
    for file, group in groups:
        _check_group(context, file, group)
    for file, group in groups:
        if group.registration is not None:
            _check_registration(context, file, group)
    return context.problems


def _stem(file: str) -> str:
    name = file.rsplit("/", 1)[-1]
    return name[:-5] if name.endswith(".yaml") else name.rsplit(".", 1)[0]


def _unregistered(group: Group) -> Iterator[tuple[IPv4, IPv4]]:
    if group.unregistered_range is not None:
        yield group.unregistered_range


def _check_subnets(context: _Context, groups: list[tuple[str, Group]]) -> None:
    seen: dict[ipaddress.IPv4Network, list[tuple[str, Group]]] = {}
    for file, group in groups:
        net = group.subnet
        if net.prefixlen > 24:
            context.report(
                file,
                ("subnet",),
                f"subnet {net} is smaller than a /24; its reverse "
                "DNS would need classless delegation (RFC 2317), which is not "
                "supported: use a /24 or a larger subnet",
            )
        if group.gateway not in net or group.gateway in (
            net.network_address,
            net.broadcast_address,
        ):
            context.report(
                file,
                ("gateway",),
                f"gateway {group.gateway} must be a host address inside subnet {net}; "
                "correct the gateway or the subnet",
            )
        for other_net, members in seen.items():
            if other_net == net:
                _check_shared_subnet(context, file, group, members)
            elif other_net.overlaps(net):
                other_file = members[0][0]
                context.report(
                    file,
                    ("subnet",),
                    f"subnet {net} overlaps {other_net} of "
                    f"{other_file}; subnets must be equal or disjoint: give both groups "
                    "the same subnet or pick one that does not overlap",
                )
        seen.setdefault(net, []).append((file, group))
        if group.unregistered_range is not None:
            first, last = group.unregistered_range
            if first not in net or last not in net:
                context.report(
                    file,
                    ("unregistered_range",),
                    f"range {first}-{last} is not inside subnet {net}; "
                    "pick first and last addresses inside the subnet",
                )
            elif (
                any(
                    a in (net.network_address, net.broadcast_address, group.gateway)
                    for a in (first, last)
                )
                or first < group.gateway < last
            ):
                context.report(
                    file,
                    ("unregistered_range",),
                    f"range {first}-{last} must not "
                    f"include the network, broadcast or gateway ({group.gateway}) address; "
                    "narrow the range",
                )


def _check_shared_subnet(
    context: _Context, file: str, group: Group, members: list[tuple[str, Group]]
) -> None:
    """``group`` shares its subnet with ``members``: one gateway, at most one range."""
    net = group.subnet
    other_file, other = members[0]
    if other.gateway != group.gateway:
        context.report(
            file,
            ("gateway",),
            f"group shares subnet {net} with "
            f"{other_file} but has gateway {group.gateway} instead of "
            f"{other.gateway}; groups in one subnet need one gateway",
        )
    if group.unregistered_range is None:
        return
    for other_file, other in members:
        if other.unregistered_range is not None and (
            other.unregistered_range != group.unregistered_range
        ):
            first, last = other.unregistered_range
            context.report(
                file,
                ("unregistered_range",),
                f"groups sharing subnet {net} give different unregistered ranges "
                f"({other_file} gives {first}-{last}); give the range in one group only, "
                "or identically in all of them",
            )
            return


def address_of(group: Group, index: int) -> IPv4 | None:
    """The address of ``index`` in ``group``, or None past 255.255.255.255."""
    base = group.first_address if group.first_address is not None else group.subnet.network_address
    value = int(base) + index
    return IPv4(value) if value <= 0xFFFFFFFF else None


def _address_problem(context: _Context, group: Group, address: IPv4 | None) -> str | None:
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
    for first, last, range_file, range_net in context.ranges:
        if range_net == net and first <= address <= last:
            return f"address {address} is inside the unregistered range of {range_file}"
    return None


def _hostname_problem(context: _Context, hostname: str) -> str | None:
    if not LABEL.match(hostname):
        return (
            f"hostname {hostname!r} is not a valid DNS label (1-63 characters of a-z, "
            "0-9 and '-'); shorten the hostname format or use a smaller index"
        )
    return _fqdn_problem(context, hostname)


def _fqdn_problem(context: _Context, name: str) -> str | None:
    if context.site is None:
        return None
    fqdn = f"{name}.{context.site.domain}"
    if len(fqdn) > MAX_FQDN:
        return (
            f"{fqdn!r} is {len(fqdn)} characters, longer than the {MAX_FQDN} DNS allows; "
            "shorten the name or the site's domain"
        )
    return None


def _check_image(context: _Context, file: str, path: tuple[PathPart, ...], ref: str) -> None:
    if not context.check_images:
        return
    name, _, version = ref.partition("@")
    image = context.images.get(name)
    if image is None:
        known = ", ".join(sorted(context.images)) or "none"
        context.report(
            file,
            path,
            f"image {name!r} does not exist in images/ (known: {known}); "
            f"add images/{name}.yaml or refer to a known image",
        )
    elif version not in image.versions:
        known = ", ".join(sorted(image.versions))
        context.report(
            file,
            path,
            f"image {name!r} has no version {version!r} (versions: {known}); "
            f"add it to images/{name}.yaml or refer to an existing version",
        )


def _check_group(context: _Context, file: str, group: Group) -> None:
    stem = _stem(file)
    if group.name != stem:
        context.report(
            file,
            ("name",),
            f"group name {group.name!r} must equal the file name "
            f"{stem!r}; rename the file or change the name",
        )
    if group.image is not None:
        _check_image(context, file, ("image",), group.image)
    if context.boot_profiles is not None and group.boot not in context.boot_profiles:
        known = ", ".join(sorted(context.boot_profiles))
        context.report(
            file,
            ("boot",),
            f"boot profile {group.boot!r} has no templates "
            f"(profiles: {known}); add templates/boot/{group.boot}/ or pick one",
        )
    indexes: dict[int, int] = {}
    for position, host in enumerate(group.hosts):
        where = f"{file} hosts[{position}]"
        path: tuple[PathPart, ...] = ("hosts", position)
        if host.index in indexes:
            context.report(
                file,
                (*path, "index"),
                f"index {host.index} is used twice in this "
                f"group (also hosts[{indexes[host.index]}]); give each host its own index",
            )
        duplicate = host.index in indexes
        indexes.setdefault(host.index, position)
        # A clash of a duplicate index's derived name and address is the same
        # problem as the index itself: one report says it. Own values are checked.
        if host.name is not None or not duplicate:
            _check_host_name(context, file=file, path=path, group=group, host=host, where=where)
        if host.address is not None or not duplicate:
            _check_host_address(context, file=file, path=path, group=group, host=host, where=where)
        if host.mac in context.macs:
            context.report(
                file,
                (*path, "mac"),
                f"MAC {host.mac} is already used by {context.macs[host.mac]}; "
                "a MAC belongs to one host: remove one entry or correct the MAC",
            )
        else:
            context.macs[host.mac] = where
        if host.image is not None:
            _check_image(context, file, (*path, "image"), host.image)
        for alias_position, alias in enumerate(host.aliases):
            alias_path = (*path, "aliases", alias_position)
            problem = _fqdn_problem(context, alias)
            if problem is not None:
                context.report(file, alias_path, problem)
            elif alias in context.hostnames:
                context.report(
                    file,
                    alias_path,
                    f"alias {alias!r} is already a name of {context.hostnames[alias]}; "
                    "pick another alias",
                )
            else:
                context.hostnames[alias] = f"{where} (alias)"


def _check_host_name(
    context: _Context,
    *,
    file: str,
    path: tuple[PathPart, ...],
    group: Group,
    host: Host,
    where: str,
) -> None:
    """The host's name (its own ``name`` or the group's format): valid and unique."""
    hostname = group.name_of(host)
    if host.name is not None:
        # The model checked the label; only the FQDN length and uniqueness are left.
        problem, field, fix = _fqdn_problem(context, hostname), "name", "change its name"
    else:
        problem = _hostname_problem(context, hostname)
        field, fix = "index", "change the index or one group's hostname format"
    if problem is not None:
        context.report(file, (*path, field), problem)
    elif hostname in context.hostnames:
        context.report(
            file,
            (*path, field),
            f"hostname {hostname!r} is already used by {context.hostnames[hostname]}; "
            f"names must be unique in the site: {fix}",
        )
    else:
        context.hostnames[hostname] = where


def _check_host_address(
    context: _Context,
    *,
    file: str,
    path: tuple[PathPart, ...],
    group: Group,
    host: Host,
    where: str,
) -> None:
    """The host's address (its own ``address`` or first_address + index): usable and unique."""
    if host.address is not None:
        address: IPv4 | None = host.address
        field, origin = "address", "its own address"
        fix = "correct the address or move the host to the group of that subnet"
    else:
        address = address_of(group, host.index)
        field, origin = "index", "first_address + index"
        fix = "change the index or the group's first_address"
    problem = _address_problem(context, group, address)
    if problem is not None:
        context.report(file, (*path, field), f"{problem}; a host's address is {origin}: {fix}")
    elif address is not None and address in context.addresses:
        context.report(
            file,
            (*path, field),
            f"address {address} ({origin}) is already used by {context.addresses[address]}; {fix}",
        )
    elif address is not None:
        context.addresses[address] = where


def _check_registration(context: _Context, file: str, group: Group) -> None:
    """Every index a new machine could take must give a valid, free name and address.

    Registration ranges can span a /8, so the indexes are not tried one by one:
    only those where a problem can start are (see ``_registration_candidates``),
    and the lowest invalid one is reported.
    """
    assert group.registration is not None
    first, last = group.registration.indexes
    path: tuple[PathPart, ...] = ("registration", "indexes")
    if last - first + 1 > group.subnet.num_addresses:
        context.report(
            file,
            path,
            f"{last - first + 1} indexes cannot fit in subnet {group.subnet}; give a smaller range",
        )
        return
    for index in sorted(_registration_candidates(context, group)):
        problem = _registration_problem(context, group, index)
        if problem is not None:
            context.report(
                file,
                path,
                f"index {index} would be invalid: {problem}; "
                "narrow the registration indexes so every one gives a free, valid name "
                "and address",
            )
            return


def _registration_problem(context: _Context, group: Group, index: int) -> str | None:
    """Why a new machine taking ``index`` would be invalid, or None."""
    hostname, address = group.hostname_of(index), address_of(group, index)
    problem = _hostname_problem(context, hostname) or _address_problem(context, group, address)
    if problem is None and hostname in context.hostnames:
        problem = f"hostname {hostname!r} is already used by {context.hostnames[hostname]}"
    if problem is None and address is not None and address in context.addresses:
        problem = f"address {address} is already used by {context.addresses[address]}"
    return problem


def _registration_candidates(context: _Context, group: Group) -> set[int]:
    """Free registration indexes that include the lowest invalid one, if any is.

    A hostname's length only grows with the index and its characters are fixed by
    the format; addresses grow with the index. So a problem starts at the first
    free index, at the first too-long name, where the address leaves the subnet,
    at a special or used address, at the start of an unregistered range, or at
    an index whose name is already taken.
    """
    assert group.registration is not None
    first, last = group.registration.indexes
    used = {host.index for host in group.hosts}
    base = int(address_of(group, 0) or 0)
    net = group.subnet
    starts = [first, last, int(net.broadcast_address) + 1 - base]
    starts += [int(a) - base for a in (net.network_address, net.broadcast_address, group.gateway)]
    starts += [int(a) - base for a in context.addresses]
    starts += [int(r_first) - base for r_first, _, _, r_net in context.ranges if r_net == net]
    starts += [index for name in context.hostnames if (index := _index_of(group, name)) is not None]
    if _hostname_problem(context, group.hostname_of(last)) is not None:
        low, high = first, last  # the lowest index whose name is invalid
        while low < high:
            middle = (low + high) // 2
            if _hostname_problem(context, group.hostname_of(middle)) is None:
                low = middle + 1
            else:
                high = middle
        starts.append(low)
    candidates = set()
    for start in starts:
        index = max(start, first)
        while index in used:
            index += 1
        if index <= last:
            candidates.add(index)
    return candidates


def _index_of(group: Group, name: str) -> int | None:
    """The index whose hostname in ``group`` is ``name``, or None."""
    prefix, _, rest = group.hostname.partition("%")
    suffix = rest.partition("d")[2]
    digits = name[len(prefix) : len(name) - len(suffix)]
    if not (name.startswith(prefix) and name.endswith(suffix) and digits.isdigit()):
        return None
    index = int(digits)
    return index if group.hostname_of(index) == name else None
