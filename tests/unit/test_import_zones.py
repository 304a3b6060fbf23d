"""Zone files in an import: origins, names for hosts without an address, and the cross-checks."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from reconciler.importer.dhcpd_conf import read_dhcpd_conf
from reconciler.importer.records import ImportFailure, Sources
from reconciler.importer.run import infer_site
from reconciler.importer.zones import origin_from_file_name, read_zone_file

SOA = "@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A 10.0.0.1\n"


@pytest.mark.parametrize(
    ("name", "origin"),
    [
        ("db.cluster.example", "cluster.example"),
        ("cluster.example.zone", "cluster.example"),
        ("45.23.10.in-addr.arpa.zone", "45.23.10.in-addr.arpa"),
        ("cluster.example.db", "cluster.example"),
        ("zonefile", None),
    ],
)
def test_origin_from_the_file_name(name: str, origin: str | None) -> None:
    assert origin_from_file_name(Path(name)) == origin


def test_origin_given_on_the_command_line_or_missing(tmp_path: Path) -> None:
    (tmp_path / "zonefile").write_text("$TTL 300\n" + SOA + "n1 IN A 10.0.0.11\n")
    sources = Sources()
    read_zone_file(f"lab.example={tmp_path / 'zonefile'}", sources)
    assert [(n.name, str(n.address), n.ttl) for n in sources.forward][-1] == (
        "n1.lab.example",
        "10.0.0.11",
        300,
    )
    with pytest.raises(ImportFailure) as caught:
        read_zone_file(str(tmp_path / "zonefile"), Sources())
    assert "expected $ORIGIN in the file or an origin" in str(caught.value)


def site(tmp_path: Path, *, hosts: str, forward: str, reverse: str) -> Sources:
    (tmp_path / "dhcpd.conf").write_text(
        "subnet 10.0.0.0 netmask 255.255.255.0 { option routers 10.0.0.254; }\n" + hosts
    )
    (tmp_path / "db.lab.example").write_text("$TTL 300\n" + SOA + forward)
    (tmp_path / "0.0.10.in-addr.arpa.zone").write_text(
        "$TTL 300\n@ IN SOA ns1.lab.example. h.lab.example. 1 2 3 4 5\n"
        "@ IN NS ns1.lab.example.\n" + reverse
    )
    sources = Sources()
    read_dhcpd_conf(tmp_path / "dhcpd.conf", sources)
    read_zone_file(str(tmp_path / "db.lab.example"), sources)
    read_zone_file(str(tmp_path / "0.0.10.in-addr.arpa.zone"), sources)
    return sources


def test_a_host_without_fixed_address_takes_its_a_record(tmp_path: Path) -> None:
    sources = site(
        tmp_path,
        hosts="host n1 { hardware ethernet 52:54:00:00:00:01; }\n"
        "host n2 { hardware ethernet 52:54:00:00:00:02; fixed-address 10.0.0.12; }\n"
        "host ghost { hardware ethernet 52:54:00:00:00:03; }\n",
        forward="n1 IN A 10.0.0.11\nn2 IN A 10.0.0.12\n",
        reverse="11 IN PTR n1.lab.example.\n12 IN PTR n2.lab.example.\n",
    )
    result = infer_site(sources, domain=None)
    assert result.domain == "lab.example"
    assert {m.name: str(m.address) for m in result.machines} == {
        "n1": "10.0.0.11",
        "n2": "10.0.0.12",
    }
    (conflict,) = result.conflicts
    assert "MAC 52:54:00:00:00:03" in str(conflict) and "no fixed address" in str(conflict)


def test_forward_reverse_and_dhcp_disagreeing_are_conflicts(tmp_path: Path) -> None:
    sources = site(
        tmp_path,
        hosts="host n1 { hardware ethernet 52:54:00:00:00:01; fixed-address 10.0.0.11; }\n"
        "host n2 { hardware ethernet 52:54:00:00:00:02; fixed-address 10.0.0.12; }\n",
        forward="n1 IN A 10.0.0.99\nn2 IN A 10.0.0.12\n",
        reverse="11 IN PTR n1.lab.example.\n12 IN PTR other.lab.example.\n",
    )
    result = infer_site(sources, domain=None)
    messages = sorted(str(c) for c in result.conflicts)
    assert len(messages) == 2, messages
    assert messages[0].startswith("[dns] PTR of 10.0.0.12 names other.lab.example (")
    assert "but the machine there is n2.lab.example" in messages[0]
    assert messages[1].startswith("[dns] n1.lab.example has A 10.0.0.99 (")
    assert "but DHCP gives 52:54:00:00:00:01 the address 10.0.0.11" in messages[1]
    # Reported, not resolved: the DHCP facts stand, the machines are kept.
    assert {m.name: m.address for m in result.machines} == {
        "n1": ipaddress.IPv4Address("10.0.0.11"),
        "n2": ipaddress.IPv4Address("10.0.0.12"),
    }


def test_a_name_in_two_sources_that_disagree_is_a_conflict(tmp_path: Path) -> None:
    sources = site(
        tmp_path,
        hosts="host n1 { hardware ethernet 52:54:00:00:00:01; fixed-address 10.0.0.11; "
        'option host-name "compute-1"; }\n',
        forward="",
        reverse="",
    )
    result = infer_site(sources, domain=None)
    (conflict,) = result.conflicts
    assert "has the names compute-1, n1; imported as compute-1" in str(conflict)


def test_a_host_on_the_router_or_broadcast_address_is_a_conflict(tmp_path: Path) -> None:
    sources = site(
        tmp_path,
        hosts="host n1 { hardware ethernet 52:54:00:00:00:01; fixed-address 10.0.0.11; }\n"
        "host n2 { hardware ethernet 52:54:00:00:00:02; fixed-address 10.0.0.254; }\n"
        "host n3 { hardware ethernet 52:54:00:00:00:03; fixed-address 10.0.0.255; }\n",
        forward="",
        reverse="",
    )
    result = infer_site(sources, domain="lab.example")
    messages = sorted(str(c) for c in result.conflicts)
    assert "has 10.0.0.254, the router address of 10.0.0.0/24; left out" in messages[0]
    assert "has 10.0.0.255, the broadcast address of 10.0.0.0/24; left out" in messages[1]
    assert [m.name for g in result.groups for m in (x.machine for x in g.members)] == ["n1"]
