"""Validation of hosts: MACs, indexes, hostnames and their formats, aliases, registration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.model.types import normalize_mac
from tests.unit.inventory_factory import (
    assert_problem,
    group,
    host,
    load,
    only_problem,
    position,
    write_inventory,
)

GROUP = "groups/compute.yaml"


def gpu(**changes: Any) -> dict[str, Any]:
    """A second group on its own subnet, no hosts unless given."""
    base: dict[str, Any] = {
        "name": "gpu",
        "subnet": "10.23.46.0/24",
        "gateway": "10.23.46.1",
        "hostname": "gpu%02d",
        "unregistered_range": None,
        "image": None,
        "hosts": [],
    }
    base.update(changes)
    return group(**base)


@pytest.mark.parametrize(
    "spelling",
    [
        "52:54:00:ab:cd:ef",
        "52:54:00:AB:CD:EF",
        "52-54-00-ab-cd-ef",
        "52.54.00.ab.cd.ef",
        "5254.00ab.cdef",
        "5254.00AB.CDEF",
        "525400abcdef",
        " 52:54:00:ab:cd:ef ",
    ],
)
def test_mac_spellings_normalise_to_one(spelling: str) -> None:
    assert normalize_mac(spelling) == "52:54:00:ab:cd:ef"


def test_mac_single_digit_octets_are_padded() -> None:
    assert normalize_mac("2:54:0:ab:c:ef") == "02:54:00:ab:0c:ef"


@pytest.mark.parametrize(
    "mac",
    [
        "52:54:00:ab:cd",  # 5 octets
        "52:54:00:ab:cd:ef:01",  # 7 octets
        "52:54:00:ab:cd:eg",  # not hex
        "52:54:00:ab:cd:ef:",  # trailing separator
        "52:5400:ab:cd:ef",  # mixed grouping
        "52:54-00:ab:cd:ef",  # mixed separators
        "5254.00ab.cdef.01",
        "52:54:00:ab:cd:eff",
        "",
    ],
)
def test_mac_not_six_octets(tmp_path: Path, mac: str) -> None:
    root = write_inventory(tmp_path, groups={"compute": group(hosts=[host(10, mac)])})
    problem = only_problem(root)
    line, _ = position(root, GROUP, "mac:")
    assert_problem(
        problem,
        file=GROUP,
        at=(line, 8),
        field="hosts[0].mac",
        says=("not a MAC address of 6 octets", 'write it like "52:54:00:12:34:56"'),
    )


@pytest.mark.parametrize(
    ("mac", "says"),
    [
        ("00:00:00:00:00:00", "all-zero MAC"),
        ("ff:ff:ff:ff:ff:ff", "broadcast MAC"),
        ("FF-FF-FF-FF-FF-FF", "broadcast MAC"),
        ("01:00:5e:00:00:fb", "multicast (group bit set)"),
        ("33:33:00:00:00:01", "multicast (group bit set)"),
        ("53:54:00:12:34:56", "multicast (group bit set)"),
    ],
)
def test_macs_no_network_card_has_are_refused(tmp_path: Path, mac: str, says: str) -> None:
    root = write_inventory(tmp_path, groups={"compute": group(hosts=[host(10, mac)])})
    problem = only_problem(root)
    line, _ = position(root, GROUP, "mac:")
    assert_problem(problem, file=GROUP, at=(line, 8), field="hosts[0].mac", says=(says,))


@pytest.mark.parametrize("mac", ["52:54:00:12:34:56", "02:00:00:00:00:01", "fe:ff:ff:ff:ff:ff"])
def test_locally_administered_macs_stay_valid(tmp_path: Path, mac: str) -> None:
    inventory = load(write_inventory(tmp_path, groups={"compute": group(hosts=[host(10, mac)])}))
    assert inventory.groups[0].hosts[0].mac == mac


@pytest.mark.parametrize(
    "second",
    [
        "52:54:00:AB:CD:EF",
        "52-54-00-ab-cd-ef",
        "52.54.00.ab.cd.ef",
        "5254.00ab.cdef",
        "525400ABCDEF",
    ],
)
def test_same_mac_twice_in_a_group_whatever_the_spelling(tmp_path: Path, second: str) -> None:
    hosts = [host(10, "52:54:00:ab:cd:ef"), host(11, second)]
    root = write_inventory(tmp_path, groups={"compute": group(hosts=hosts)})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=position(root, GROUP, second),
        field="hosts[1].mac",
        says=(
            "MAC 52:54:00:ab:cd:ef is already used by groups/compute.yaml hosts[0]",
            "remove one entry or correct the MAC",
        ),
    )


def test_same_mac_across_groups(tmp_path: Path) -> None:
    root = write_inventory(tmp_path, groups={"gpu": gpu(hosts=[host(5, "5254.0000.000B")])})
    problem = only_problem(root)
    assert_problem(
        problem,
        file="groups/gpu.yaml",
        at=position(root, "groups/gpu.yaml", "5254.0000.000B"),
        field="hosts[0].mac",
        says=("already used by groups/compute.yaml hosts[1]",),
    )


def test_same_index_twice(tmp_path: Path) -> None:
    text = (
        "name: compute\nsubnet: 10.23.45.0/24\ngateway: 10.23.45.1\nhostname: node%03d\n"
        "hosts:\n"
        "  - index: 7\n    mac: 52:54:00:00:00:01\n"
        "  - index: 7\n    mac: 52:54:00:00:00:02\n"
    )
    problem = only_problem(write_inventory(tmp_path, groups={"compute": text}))
    assert_problem(
        problem,
        file=GROUP,
        at=(8, 12),
        field="hosts[1].index",
        says=("index 7 is used twice", "also hosts[0]", "give each host its own index"),
    )


def test_hostname_twice_in_the_site(tmp_path: Path) -> None:
    # "n%d" for 100 and "n1%02d" for 0 both give n100
    compute = group(hostname="n%d", hosts=[host(100, "52:54:00:00:01:00")])
    other = gpu(
        hostname="n1%02d", first_address="10.23.46.100", hosts=[host(0, "52:54:00:00:02:00")]
    )
    root = write_inventory(tmp_path, groups={"compute": compute, "gpu": other})
    problem = only_problem(root)
    line, _ = position(root, "groups/gpu.yaml", "index: 0")
    assert_problem(
        problem,
        file="groups/gpu.yaml",
        at=(line, 10),
        field="hosts[0].index",
        says=("hostname 'n100' is already used by groups/compute.yaml hosts[0]", "unique"),
    )


def test_alias_colliding_with_a_hostname(tmp_path: Path) -> None:
    hosts = [host(10, "52:54:00:00:00:0a"), host(11, "52:54:00:00:00:0b", aliases=["node010"])]
    root = write_inventory(tmp_path, groups={"compute": group(hosts=hosts)})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=None,
        field="hosts[1].aliases[0]",
        says=("'node010' is already a name of", "pick another alias"),
    )


@pytest.mark.parametrize("alias", ["Login", "login\n", "-login", "a" * 64, "log in"])
def test_alias_not_a_dns_label(tmp_path: Path, alias: str) -> None:
    hosts = [host(10, "52:54:00:00:00:0a", aliases=["ok", alias])]
    problem = only_problem(write_inventory(tmp_path, groups={"compute": group(hosts=hosts)}))
    assert_problem(problem, file=GROUP, at=None, field="hosts[0].aliases[1]", says=("DNS label",))


def test_hostname_of_63_characters_is_accepted(tmp_path: Path) -> None:
    fmt = "n" * 60 + "%d"
    hosts = [host(100, "52:54:00:00:00:0a")]
    inventory = load(
        write_inventory(tmp_path, groups={"compute": group(hostname=fmt, hosts=hosts)})
    )
    assert len(inventory.groups[0].hostname_of(100)) == 63


def test_hostname_of_64_characters_is_refused(tmp_path: Path) -> None:
    fmt = "n" * 61 + "%d"
    hosts = [host(9, "52:54:00:00:00:0a"), host(100, "52:54:00:00:00:0b")]
    root = write_inventory(tmp_path, groups={"compute": group(hostname=fmt, hosts=hosts)})
    problem = only_problem(root)  # n*61 + "9" is 62 characters; n*61 + "100" is 64
    line, _ = position(root, GROUP, "index: 100")
    assert_problem(
        problem,
        file=GROUP,
        at=(line, 10),
        field="hosts[1].index",
        says=("not a valid DNS label", "shorten the hostname format"),
    )


LONG_DOMAIN = ".".join(["d" * 63] * 3) + "." + "e" * 50  # 242 characters: 10 left for a name


def test_fqdn_longer_than_253(tmp_path: Path) -> None:
    hosts = [host(10, "52:54:00:00:00:0a")]
    root = write_inventory(
        tmp_path,
        site={"domain": LONG_DOMAIN},
        groups={"compute": group(hostname="abcdefg%04d", hosts=hosts)},
    )
    problem = only_problem(root)  # abcdefg0010.<domain> is 254 characters
    assert_problem(
        problem,
        file=GROUP,
        at=(position(root, GROUP, "index: 10")[0], 10),
        field="hosts[0].index",
        says=("254 characters, longer than the 253", "shorten the name or the site's domain"),
    )


def test_fqdn_of_253_is_accepted_but_an_alias_over_it_is_not(tmp_path: Path) -> None:
    assert len(LONG_DOMAIN) == 242
    hosts = [host(10, "52:54:00:00:00:0a", aliases=["abcdefghij", "abcdefghijk"])]
    root = write_inventory(
        tmp_path,
        site={"domain": LONG_DOMAIN},
        groups={"compute": group(hostname="abcdef%04d", hosts=hosts)},
    )
    problem = only_problem(root)
    assert_problem(
        problem, file=GROUP, at=None, field="hosts[0].aliases[1]", says=("254 characters",)
    )


@pytest.mark.parametrize(
    "fmt",
    [
        "node%d; evil",
        "node%d\n",
        "node%d\nhost evil { }",
        "%s",
        "x%d%d",
        'node"%d',
        "node{%d}",
        "node %d",
        "Node%d",
        "node%x",
        "node%3d",  # space padded
        "node%-3d",
        "node",
        "node%%d",
        "node.%d",
        "node_%d",
    ],
)
def test_hostname_format_that_could_inject_is_refused(tmp_path: Path, fmt: str) -> None:
    root = write_inventory(tmp_path, groups={"compute": group(hostname=fmt)})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=(4, 11),
        field="hostname",
        says=("lower-case letters, digits and '-'", "exactly one integer conversion", "node%03d"),
    )


@pytest.mark.parametrize("fmt", ["node%d", "node%03d", "%d", "rack-a-%02d-x", "n%010d"])
def test_hostname_formats_accepted(tmp_path: Path, fmt: str) -> None:
    load(write_inventory(tmp_path, groups={"compute": group(hostname=fmt)}))


def test_registration_indexes_giving_an_invalid_hostname(tmp_path: Path) -> None:
    fmt = "n" * 61 + "%d"
    root = write_inventory(
        tmp_path,
        groups={"compute": group(hostname=fmt, registration={"indexes": "95-105"})},
    )
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=position(root, GROUP, "95-105"),
        field="registration.indexes",
        says=("index 100 would be invalid", "not a valid DNS label", "narrow the registration"),
    )


@pytest.mark.parametrize(
    ("indexes", "says"),
    [
        ("250-260", "index 250 would be invalid: address 10.23.45.250 is inside the unregistered"),
        ("0-5", "index 0 would be invalid: address 10.23.45.0 is the network address"),
        ("2-300", "299 indexes cannot fit"),
        ("190-255", "index 200 would be invalid"),
    ],
)
def test_registration_indexes_giving_an_invalid_address(
    tmp_path: Path, indexes: str, says: str
) -> None:
    root = write_inventory(tmp_path, groups={"compute": group(registration={"indexes": indexes})})
    problem = only_problem(root)
    assert_problem(problem, file=GROUP, at=None, field="registration.indexes", says=(says,))


def test_registration_index_taken_by_another_group(tmp_path: Path) -> None:
    other = group(
        name="service", hostname="svc%d", unregistered_range=None,
        first_address="10.23.45.100", hosts=[host(5, "52:54:00:00:05:05")],
    )  # fmt: skip
    root = write_inventory(
        tmp_path,
        groups={"compute": group(registration={"indexes": "100-110"}), "service": other},
    )
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=None,
        field="registration.indexes",
        says=("index 105 would be invalid: address 10.23.45.105", "groups/service.yaml hosts[0]"),
    )


def test_registration_skips_indexes_of_its_own_hosts(tmp_path: Path) -> None:
    root = write_inventory(
        tmp_path, groups={"compute": group(registration={"open": True, "indexes": "10-40"})}
    )
    registration = load(root).groups[0].registration
    assert registration is not None and registration.open and registration.indexes == (10, 40)


def test_huge_index_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    hosts = [host(5_000_000_000, "52:54:00:00:00:0a")]
    root = write_inventory(tmp_path, groups={"compute": group(hosts=hosts)})
    problem = only_problem(root)
    assert_problem(
        problem,
        file=GROUP,
        at=None,
        field="hosts[0].index",
        says=("outside subnet 10.23.45.0/24", "change the index or the group's first_address"),
    )
