"""Validation of addresses, subnets, gateways and unregistered ranges across groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.inventory_factory import (
    assert_problem,
    group,
    host,
    load,
    only_problem,
    position,
    problems,
    write_inventory,
)

GROUP = "groups/compute.yaml"
SERVICE = "groups/service.yaml"


def service(**changes: Any) -> dict[str, Any]:
    """A second group sharing the compute subnet, hosts from 10.23.45.150."""
    base: dict[str, Any] = {
        "name": "service",
        "hostname": "svc%d",
        "first_address": "10.23.45.150",
        "unregistered_range": None,
        "image": None,
        "hosts": [host(1, "52:54:00:bb:00:01")],
    }
    base.update(changes)
    return group(**base)


@pytest.mark.parametrize(
    ("index", "first_address", "says"),
    [
        (300, None, "address 10.23.46.44 is outside subnet 10.23.45.0/24"),
        (5, "10.23.44.250", "address 10.23.44.255 is outside subnet"),
        (0, None, "address 10.23.45.0 is the network address of 10.23.45.0/24"),
        (255, None, "address 10.23.45.255 is the broadcast address"),
        (1, None, "address 10.23.45.1 is the gateway"),
        (1, "10.23.45.199", "address 10.23.45.200 is inside the unregistered range of groups/"),
        (50, "10.23.45.200", "address 10.23.45.250 is inside the unregistered range"),
    ],
)
def test_host_address_not_usable(
    tmp_path: Path, index: int, first_address: str | None, says: str
) -> None:
    hosts = [host(index, "52:54:00:00:00:0a")]
    root = write_inventory(
        tmp_path, groups={"compute": group(hosts=hosts, first_address=first_address)}
    )
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=(position(root, GROUP, f"index: {index}")[0], 10),
        field="hosts[0].index",
        says=(says, "first_address + index", "change the index or the group's first_address"),
    )


def test_address_inside_the_range_another_group_gives(tmp_path: Path) -> None:
    root = write_inventory(
        tmp_path, groups={"service": service(hosts=[host(60, "52:54:00:bb:00:01")])}
    )
    problem = only_problem(root)
    assert_problem(
        problem,
        file=SERVICE,
        at=None,
        field="hosts[0].index",
        says=("10.23.45.210 is inside the unregistered range of groups/compute.yaml",),
    )


def test_address_used_twice_in_the_site(tmp_path: Path) -> None:
    # service 1 is 10.23.45.151; compute 151 is too
    root = write_inventory(
        tmp_path,
        groups={
            "compute": group(hosts=[host(151, "52:54:00:00:00:97")], unregistered_range=None),
            "service": service(),
        },
    )
    problem = only_problem(root)
    assert_problem(
        problem,
        file=SERVICE,
        at=(position(root, SERVICE, "index: 1")[0], 10),
        field="hosts[0].index",
        says=("address 10.23.45.151", "already used by groups/compute.yaml hosts[0]"),
    )


def test_groups_sharing_a_subnet_are_valid(tmp_path: Path) -> None:
    inventory = load(write_inventory(tmp_path, groups={"service": service()}))
    assert [g.name for g in inventory.groups] == ["compute", "service"]


@pytest.mark.parametrize("subnet", ["10.23.0.0/16", "10.23.44.0/23", "10.0.0.0/8", "0.0.0.0/0"])
def test_subnets_overlapping_without_being_equal(tmp_path: Path, subnet: str) -> None:
    other = service(subnet=subnet, gateway=subnet.split("/")[0][:-1] + "1", first_address=None)
    other["hosts"] = [host(1000, "52:54:00:bb:00:01")] if subnet != "0.0.0.0/0" else []
    root = write_inventory(tmp_path, groups={"service": other})
    found = [p for p in problems(root) if p.field == "subnet"]
    assert len(found) == 1, found
    assert_problem(
        found[0],
        file=SERVICE,
        at=position(root, SERVICE, subnet),
        field="subnet",
        says=(f"overlaps 10.23.45.0/24 of {GROUP}", "equal or disjoint"),
    )


def test_same_subnet_with_different_gateways(tmp_path: Path) -> None:
    root = write_inventory(tmp_path, groups={"service": service(gateway="10.23.45.254")})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=SERVICE,
        at=position(root, SERVICE, "10.23.45.254"),
        field="gateway",
        says=(f"shares subnet 10.23.45.0/24 with {GROUP}", "instead of 10.23.45.1", "one gateway"),
    )


@pytest.mark.parametrize("gateway", ["10.23.46.1", "10.23.45.0", "10.23.45.255"])
def test_gateway_not_a_host_of_its_subnet(tmp_path: Path, gateway: str) -> None:
    root = write_inventory(tmp_path, groups={"compute": group(gateway=gateway)})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=(3, 10),
        field="gateway",
        says=("must be a host address inside subnet 10.23.45.0/24", "correct the gateway"),
    )


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("10.23.45.200-10.23.46.10", "is not inside subnet 10.23.45.0/24"),
        ("10.23.44.1-10.23.44.9", "is not inside subnet"),
        ("10.23.45.0-10.23.45.9", "must not include the network, broadcast or gateway"),
        ("10.23.45.200-10.23.45.255", "must not include the network"),
        ("10.23.45.1-10.23.45.9", "gateway (10.23.45.1)"),
    ],
)
def test_unregistered_range_outside_or_on_special_addresses(
    tmp_path: Path, value: str, says: str
) -> None:
    root = write_inventory(tmp_path, groups={"compute": group(unregistered_range=value)})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=position(root, GROUP, value),
        field="unregistered_range",
        says=(says,),
    )


def test_unregistered_range_around_the_gateway(tmp_path: Path) -> None:
    compute = group(gateway="10.23.45.220")
    problem = only_problem(write_inventory(tmp_path, groups={"compute": compute}))
    assert_problem(
        problem, file=GROUP, at=None, field="unregistered_range", says=("narrow the range",)
    )


def test_groups_sharing_a_subnet_with_different_ranges(tmp_path: Path) -> None:
    other = service(unregistered_range="10.23.45.240-10.23.45.250")
    root = write_inventory(tmp_path, groups={"service": other})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=SERVICE,
        at=position(root, SERVICE, "10.23.45.240-10.23.45.250"),
        field="unregistered_range",
        says=(
            "give different unregistered ranges",
            f"{GROUP} gives 10.23.45.200-10.23.45.250",
            "in one group only, or identically",
        ),
    )


def test_different_ranges_found_behind_a_group_without_one(tmp_path: Path) -> None:
    # a (first in the subnet) gives none, compute gives one, service another
    first = service(name="a", hostname="a%d", first_address="10.23.45.100", hosts=[])
    other = service(unregistered_range="10.23.45.240-10.23.45.250")
    root = write_inventory(tmp_path, groups={"a": first, "service": other})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=SERVICE,
        at=None,
        field="unregistered_range",
        says=(f"{GROUP} gives 10.23.45.200-10.23.45.250",),
    )


def test_identical_ranges_in_groups_sharing_a_subnet_are_accepted(tmp_path: Path) -> None:
    other = service(unregistered_range="10.23.45.200-10.23.45.250")
    inventory = load(write_inventory(tmp_path, groups={"service": other}))
    assert {g.unregistered_range for g in inventory.groups} == {
        (group_range := inventory.groups[0].unregistered_range)
    }
    assert group_range is not None and str(group_range[0]) == "10.23.45.200"


def test_subnet_smaller_than_a_24(tmp_path: Path) -> None:
    compute = group(subnet="10.23.45.0/25", unregistered_range=None)
    problem = only_problem(write_inventory(tmp_path, groups={"compute": compute}))
    assert_problem(
        problem, file=GROUP, at=(2, 9), field="subnet", says=("smaller than a /24", "RFC 2317")
    )


def test_large_subnet_with_first_address(tmp_path: Path) -> None:
    compute = group(
        subnet="10.20.0.0/14", first_address="10.21.0.0", unregistered_range=None,
        registration={"indexes": "100-1100"},
    )  # fmt: skip
    inventory = load(write_inventory(tmp_path, groups={"compute": compute}))
    assert str(inventory.groups[0].address_of(11)) == "10.21.0.11"
