"""Site-wide rules for registration: every index a new machine could take must be usable.

A group with ``registration.indexes`` lets unknown machines enrol themselves
under the next free index (see ``reconciler.server``). Checking the range up
front means enrolment never produces a host the loader would refuse.
"""

from __future__ import annotations

from reconciler.model.inventory import Group
from reconciler.model.problems import PathPart
from reconciler.model.rule_context import RuleContext, address_of, address_problem, hostname_problem


def check_registration(context: RuleContext, file: str, group: Group) -> None:
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


def _registration_problem(context: RuleContext, group: Group, index: int) -> str | None:
    """Why a new machine taking ``index`` would be invalid, or None."""
    hostname, address = group.hostname_of(index), address_of(group, index)
    problem = hostname_problem(context, hostname) or address_problem(context, group, address)
    if problem is None and hostname in context.hostnames:
        problem = f"hostname {hostname!r} is already used by {context.hostnames[hostname]}"
    if problem is None and address is not None and int(address) in context.addresses:
        problem = f"address {address} is already used by {context.addresses[int(address)]}"
    return problem


def _registration_candidates(context: RuleContext, group: Group) -> set[int]:
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
    if hostname_problem(context, group.hostname_of(last)) is not None:
        low, high = first, last  # the lowest index whose name is invalid
        while low < high:
            middle = (low + high) // 2
            if hostname_problem(context, group.hostname_of(middle)) is None:
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
