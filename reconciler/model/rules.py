"""Site-wide rules: everything INVENTORY.md forbids that no single file can see.

Each check appends ``Problem`` values naming the file and the YAML path of the
offending value, so the loader can point at line and column. All rules run even
after one fails: users get every problem in one go. ``check_site`` runs them
all; the subnet and registration rules live in ``subnet_rules`` and
``registration_rules``, the group, host and image rules here.
"""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.model.inventory import Group, Host, Image, Site
from reconciler.model.problems import PathPart, Problem
from reconciler.model.registration_rules import check_registration
from reconciler.model.rule_context import (
    IPv4,
    RuleContext,
    UsableAddresses,
    address_of,
    address_problem,
    fqdn_problem,
    hostname_problem,
)
from reconciler.model.subnet_rules import check_subnets
from reconciler.model.types import LABEL, MAX_FQDN

__all__ = ["address_of", "check_group", "check_site", "site_context"]


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
    return site_context(
        site, groups, images, check_images=check_images, boot_profiles=boot_profiles
    ).problems


def site_context(
    site: Site | None,
    groups: list[tuple[str, Group]],
    images: list[tuple[str, Image]],
    *,
    check_images: bool = True,
    boot_profiles: frozenset[str] | None = None,
) -> RuleContext:
    """``check_site``, returning the whole context: its problems, and every MAC, name and
    address in use, which a later load checks only the hosts it changed against."""
    context = RuleContext(
        site=site, images={}, check_images=check_images, boot_profiles=boot_profiles
    )
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
    check_subnets(context, groups)
    for file, group in groups:
        for index_range in _unregistered(group):
            context.ranges.append((*index_range, file, group.subnet))
    for file, group in groups:
        check_group(context, file, group)
    for file, group in groups:
        if group.registration is not None:
            check_registration(context, file, group)
    return context


def _stem(file: str) -> str:
    name = file.rsplit("/", 1)[-1]
    return name[:-5] if name.endswith(".yaml") else name.rsplit(".", 1)[0]


def _unregistered(group: Group) -> Iterator[tuple[IPv4, IPv4]]:
    if group.unregistered_range is not None:
        yield group.unregistered_range


def _check_image(context: RuleContext, file: str, path: tuple[PathPart, ...], ref: str) -> None:
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


def check_group(context: RuleContext, file: str, group: Group) -> None:
    """The group's own rules, and its hosts' names, addresses and MACs against the context."""
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
    usable = UsableAddresses.of(context, group)
    first = group.first_address if group.first_address is not None else group.subnet.network_address
    base = int(first)
    # A name this long or shorter passes fqdn_problem; LABEL allows no more than 63 anyway.
    longest = MAX_FQDN - 1 - len(context.site.domain) if context.site is not None else MAX_FQDN
    hostnames, addresses, label = context.hostnames, context.addresses, LABEL.match
    for position, host in enumerate(group.hosts):
        where = f"{file} hosts[{position}]"
        path: tuple[PathPart, ...] = ("hosts", position)
        duplicate = host.index in indexes
        if duplicate:
            context.report(
                file,
                (*path, "index"),
                f"index {host.index} is used twice in this "
                f"group (also hosts[{indexes[host.index]}]); give each host its own index",
            )
        else:
            indexes[host.index] = position
        # A clash of a duplicate index's derived name and address is the same
        # problem as the index itself: one report says it. Own values are checked.
        # Each check first takes the way of a valid, unused value: noting it.
        if host.name is not None or not duplicate:
            name = group.hostname % host.index if host.name is None else None
            if name is not None and name not in hostnames and len(name) <= longest and label(name):
                hostnames[name] = where
            else:
                _check_host_name(context, file=file, path=path, group=group, host=host, where=where)
        if host.address is not None or not duplicate:
            number = int(host.address) if host.address is not None else base + host.index
            if number not in addresses and usable.usable(number):
                addresses[number] = where
            else:
                _check_host_address(
                    context,
                    file=file,
                    path=path,
                    group=group,
                    host=host,
                    where=where,
                    number=number,
                    usable=usable,
                )
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
            problem = fqdn_problem(context, alias)
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
    context: RuleContext,
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
        problem, field, fix = fqdn_problem(context, hostname), "name", "change its name"
    else:
        problem = hostname_problem(context, hostname)
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
    context: RuleContext,
    *,
    file: str,
    path: tuple[PathPart, ...],
    group: Group,
    host: Host,
    where: str,
    number: int,
    usable: UsableAddresses,
) -> None:
    """The host's address (its own ``address`` or first_address + index, as ``number``):
    usable and unique."""
    problem = None
    if not usable.usable(number):  # then address_problem says why
        address = host.address if host.address is not None else address_of(group, host.index)
        problem = address_problem(context, group, address)
    if problem is None and number not in context.addresses:
        context.addresses[number] = where
        return
    if host.address is not None:
        field, origin = "address", "its own address"
        fix = "correct the address or move the host to the group of that subnet"
    else:
        field, origin = "index", "first_address + index"
        fix = "change the index or the group's first_address"
    if problem is not None:
        context.report(file, (*path, field), f"{problem}; a host's address is {origin}: {fix}")
    else:
        context.report(
            file,
            (*path, field),
            f"address {IPv4(number)} ({origin}) is already used by {context.addresses[number]}; "
            f"{fix}",
        )
