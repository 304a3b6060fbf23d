"""Per-host ``name`` and ``address``: every rule of derived names and addresses holds for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.compile import compile_inventory
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
MAC_A, MAC_B = "52:54:00:00:00:0a", "52:54:00:00:00:0b"


def test_overrides_replace_the_format_and_the_offset(tmp_path: Path) -> None:
    hosts = [
        host(10, MAC_A, name="login-1", address="10.23.45.100"),
        host(11, MAC_B),
    ]
    inventory = load(write_inventory(tmp_path, groups={"compute": group(hosts=hosts)}))
    state = compile_inventory(inventory)
    pinned = {h.hostname: h.ip for h in state.dhcp_hosts}
    assert pinned == {"login-1": "10.23.45.100", "node011": "10.23.45.11"}
    names = {(r.name, r.rtype): r.values for r in state.dns_records}
    assert names[("login-1.cluster.example.", "A")] == ("10.23.45.100",)
    assert names[("100.45.23.10.in-addr.arpa.", "PTR")] == ("login-1.cluster.example.",)


def test_the_index_of_a_host_with_its_own_address_stays_free_of_checks(tmp_path: Path) -> None:
    # first_address + 300 would leave the subnet; the host's own address is what counts.
    hosts = [host(300, MAC_A, name="odd", address="10.23.45.77")]
    load(write_inventory(tmp_path, groups={"compute": group(hosts=hosts)}))


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("10.23.46.5", "outside subnet 10.23.45.0/24"),
        ("10.23.45.0", "network address"),
        ("10.23.45.255", "broadcast address"),
        ("10.23.45.1", "is the gateway"),
        ("10.23.45.210", "inside the unregistered range"),
        ("10.23.45.11", "already used by groups/compute.yaml hosts[0]"),
    ],
)
def test_own_address_rules(tmp_path: Path, address: str, says: str) -> None:
    hosts = [host(11, MAC_B), host(10, MAC_A, address=address)]
    problem = only_problem(write_inventory(tmp_path, groups={"compute": group(hosts=hosts)}))
    assert_problem(
        problem, file=GROUP, at=None, field="hosts[1].address", says=(says, "its own address")
    )


@pytest.mark.parametrize("address", ["10.23.45", "10.23.45.300", "node1", "10.23.45.7\n", ""])
def test_own_address_not_an_address(tmp_path: Path, address: str) -> None:
    hosts = [host(10, MAC_A, address=address)]
    problem = only_problem(write_inventory(tmp_path, groups={"compute": group(hosts=hosts)}))
    assert_problem(problem, file=GROUP, at=None, field="hosts[0].address", says=("IPv4",))


@pytest.mark.parametrize(
    "name",
    ["Login", "login\n", "-login", "a" * 64, "log in", 'x";', "login.other", "x\ninclude"],
)
def test_own_name_must_be_a_dns_label(tmp_path: Path, name: str) -> None:
    hosts = [host(10, MAC_A, name=name)]
    problem = only_problem(write_inventory(tmp_path, groups={"compute": group(hosts=hosts)}))
    assert_problem(problem, file=GROUP, at=None, field="hosts[0].name", says=("DNS label",))


def test_own_name_unique_against_derived_names(tmp_path: Path) -> None:
    hosts = [host(11, MAC_B), host(10, MAC_A, name="node011")]
    problem = only_problem(write_inventory(tmp_path, groups={"compute": group(hosts=hosts)}))
    assert_problem(
        problem,
        file=GROUP,
        at=None,
        field="hosts[1].name",
        says=("hostname 'node011' is already used by groups/compute.yaml hosts[0]", "unique"),
    )


def test_derived_name_unique_against_own_names(tmp_path: Path) -> None:
    hosts = [host(10, MAC_A, name="node011"), host(11, MAC_B)]
    problem = only_problem(write_inventory(tmp_path, groups={"compute": group(hosts=hosts)}))
    assert_problem(problem, file=GROUP, at=None, field="hosts[1].index", says=("node011",))


def test_own_name_collides_with_an_alias(tmp_path: Path) -> None:
    hosts = [host(10, MAC_A, aliases=["login"]), host(11, MAC_B, name="login")]
    problem = only_problem(write_inventory(tmp_path, groups={"compute": group(hosts=hosts)}))
    assert_problem(problem, file=GROUP, at=None, field="hosts[1].name", says=("login",))


def test_own_name_too_long_as_fqdn(tmp_path: Path) -> None:
    domain = ".".join(["d" * 60] * 3) + ".example"  # 190 characters
    hosts = [host(10, MAC_A, name="n" * 63)]  # 63 + 1 + 190 = 254
    root = write_inventory(
        tmp_path, site={"domain": domain}, groups={"compute": group(hosts=hosts)}
    )
    problem = only_problem(root)
    assert_problem(problem, file=GROUP, at=None, field="hosts[0].name", says=("253",))


def test_duplicate_index_with_own_values_reports_only_the_index(tmp_path: Path) -> None:
    hosts = [host(10, MAC_A), host(10, MAC_B, name="other", address="10.23.45.99")]
    problem = only_problem(write_inventory(tmp_path, groups={"compute": group(hosts=hosts)}))
    assert_problem(problem, file=GROUP, at=None, field="hosts[1].index", says=("used twice",))


def test_registration_avoids_own_addresses_and_names(tmp_path: Path) -> None:
    # Index 25 would give 10.23.45.25, which hosts[0] holds by its own address.
    hosts = [host(10, MAC_A, address="10.23.45.25")]
    compute = group(hosts=hosts, registration={"open": True, "indexes": "21-30"})
    problem = only_problem(write_inventory(tmp_path, groups={"compute": compute}))
    assert_problem(
        problem,
        file=GROUP,
        at=None,
        field="registration.indexes",
        says=("index 25 would be invalid", "10.23.45.25"),
    )


def test_boot_file_modes_and_a_hosts_own_boot_file(tmp_path: Path) -> None:
    """``dhcp_filename: subnet`` leaves the iPXE script out of the DHCP entry; a host's own
    filename (with its next-server) replaces what the group gives, for every client."""
    hosts = [
        host(10, MAC_A),
        host(11, MAC_B, filename="legacy/pxelinux.0", next_server="10.23.45.9"),
        host(12, "52:54:00:00:00:0c", next_server="10.23.45.9"),
    ]
    groups = {
        "compute": group(hosts=hosts),
        "legacy": group(
            name="legacy", hostname="old%d", first_address="10.23.45.100",
            dhcp_filename="subnet", hosts=[host(1, "52:54:00:00:01:01")],
        ),
    }  # fmt: skip
    state = compile_inventory(load(write_inventory(tmp_path, groups=groups)))
    entries = {h.hostname: h for h in state.dhcp_hosts}
    own = {n: (h.boot_filename, h.filename, h.next_server) for n, h in entries.items()}
    assert own == {
        "node010": ("ipxe/52-54-00-00-00-0a.ipxe", "", ""),
        "node011": ("", "legacy/pxelinux.0", "10.23.45.9"),
        "node012": ("ipxe/52-54-00-00-00-0c.ipxe", "", "10.23.45.9"),
        "old1": ("", "", ""),
    }
    assert entries["node011"].to_dict()["filename"] == "legacy/pxelinux.0"
    assert "filename" not in entries["node010"].to_dict()  # plans stay as they were


def test_a_groups_filename_and_next_server_hold_for_hosts_without_their_own(
    tmp_path: Path,
) -> None:
    hosts = [host(10, MAC_A), host(11, MAC_B, filename="other.0", next_server="10.23.45.8")]
    legacy = group(hosts=hosts, filename="grp.0", next_server="10.23.45.9")
    state = compile_inventory(load(write_inventory(tmp_path, groups={"compute": legacy})))
    own = {h.hostname: (h.boot_filename, h.filename, h.next_server) for h in state.dhcp_hosts}
    assert own == {"node010": ("", "grp.0", "10.23.45.9"), "node011": ("", "other.0", "10.23.45.8")}


@pytest.mark.parametrize(
    ("filename", "says"),
    [
        ('pxe"; next-server 6.6.6.6; "', "double quotes"),
        ("a\\b", "backslash"),
        ("with space", "spaces"),
        ("x" * 129, "1 to 128 characters"),
        ("", "1 to 128 characters"),
    ],
)
def test_a_hosts_own_filename_is_refused_where_dhcpd_or_kea_would_misread_it(
    tmp_path: Path, filename: str, says: str
) -> None:
    hosts = [host(10, MAC_A, filename=filename)]
    root = write_inventory(tmp_path, groups={"compute": group(hosts=hosts)})
    problem = only_problem(root)
    assert_problem(problem, file=GROUP, at=None, field="hosts[0].filename", says=(says,))
    assert problem.line == position(root, GROUP, "filename:")[0]  # file:line of the value


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("next_server", "boot.example", "IPv4"),
        ("dhcp_filename", "ipxe", "per-host"),
    ],
)
def test_next_server_is_an_address_and_the_mode_is_one_of_two(
    tmp_path: Path, key: str, value: str, says: str
) -> None:
    if key == "next_server":
        groups = {"compute": group(hosts=[host(10, MAC_A, next_server=value)])}
        field = "hosts[0].next_server"
    else:
        groups = {"compute": group(hosts=[host(10, MAC_A)], dhcp_filename=value)}
        field = "dhcp_filename"
    problem = only_problem(write_inventory(tmp_path, groups=groups))
    assert_problem(problem, file=GROUP, at=None, field=field, says=(says,))
