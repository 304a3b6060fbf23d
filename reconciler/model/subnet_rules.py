"""Site-wide rules for subnets: size, gateway, overlaps, and the unregistered range.

Groups may share a subnet (then they share its gateway and at most one
unregistered range) but subnets must otherwise not overlap, since dhcpd and
the reverse zones are written per subnet.
"""

from __future__ import annotations

import ipaddress

from reconciler.model.inventory import Group
from reconciler.model.rule_context import RuleContext


def check_subnets(context: RuleContext, groups: list[tuple[str, Group]]) -> None:
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
    context: RuleContext, file: str, group: Group, members: list[tuple[str, Group]]
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
