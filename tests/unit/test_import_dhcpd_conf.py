"""The dhcpd.conf reader on the shapes real sites write, and its errors on bad input."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from reconciler.importer.dhcpd_conf import declared_hosts, read_dhcpd_conf
from reconciler.importer.records import ImportFailure, Sources

IP = ipaddress.IPv4Address


def read(tmp_path: Path, text: str, **others: str) -> Sources:
    for name, content in others.items():
        (tmp_path / name.replace("_", ".")).write_text(content)
    path = tmp_path / "dhcpd.conf"
    path.write_text(text)
    sources = Sources()
    read_dhcpd_conf(path, sources)
    return sources


def hosts(sources: Sources) -> dict[str, tuple[str | None, str | None]]:
    return {
        h.dhcp_name or "": (h.mac, str(h.address) if h.address else None) for h in sources.hosts
    }


def failure(tmp_path: Path, text: str) -> ImportFailure:
    with pytest.raises(ImportFailure) as caught:
        read(tmp_path, text)
    return caught.value


def test_flat_hosts_and_a_subnet(tmp_path: Path) -> None:
    sources = read(
        tmp_path,
        "subnet 10.0.0.0 netmask 255.255.255.0 {\n"
        "  option routers 10.0.0.1;\n"
        "  range 10.0.0.100 10.0.0.150;\n"
        "}\n"
        "host n1 { hardware ethernet 52:54:00:00:00:01; fixed-address 10.0.0.11; }\n",
    )
    assert hosts(sources) == {"n1": ("52:54:00:00:00:01", "10.0.0.11")}
    (subnet,) = sources.subnets
    assert str(subnet.network) == "10.0.0.0/24"
    assert subnet.gateway == IP("10.0.0.1")
    assert subnet.ranges == [(IP("10.0.0.100"), IP("10.0.0.150"))]
    assert str(subnet.where).endswith("dhcpd.conf:1")


def test_nested_groups_inherit_filename_and_next_server(tmp_path: Path) -> None:
    sources = read(
        tmp_path,
        "group {\n"
        '  filename "pxelinux.0";\n'
        "  next-server 10.0.0.2;\n"
        "  group {\n"
        '    filename "other.0";\n'
        "    host deep { hardware ethernet 52:54:00:00:00:02; fixed-address 10.0.0.12; }\n"
        "  }\n"
        "  host shallow { hardware ethernet 52:54:00:00:00:03; fixed-address 10.0.0.13; }\n"
        "}\n",
    )
    by_name = {h.dhcp_name: h for h in sources.hosts}
    assert by_name["deep"].filename == "other.0"
    assert by_name["deep"].next_server == "10.0.0.2"
    assert by_name["shallow"].filename == "pxelinux.0"


def test_a_subnets_or_global_boot_file_is_not_a_hosts_own(tmp_path: Path) -> None:
    """A host made over OMAPI still gets its subnet's and the global filename: only
    what the host block and the groups below its subnet say is the host's own."""
    sources = read(
        tmp_path,
        'filename "global.0";\n'
        "next-server 10.0.0.3;\n"
        "subnet 10.0.0.0 netmask 255.255.255.0 {\n"
        '  filename "pxelinux.0";\n'
        "  host plain { hardware ethernet 52:54:00:00:00:01; fixed-address 10.0.0.11; }\n"
        '  group { filename "grouped.0";\n'
        "    host grouped { hardware ethernet 52:54:00:00:00:02; fixed-address 10.0.0.12; }\n"
        "  }\n"
        "  host own { hardware ethernet 52:54:00:00:00:03; fixed-address 10.0.0.13;\n"
        '    filename "own.0"; next-server 10.0.0.9; }\n'
        "}\n"
        "host outside { hardware ethernet 52:54:00:00:00:04; fixed-address 10.0.0.14; }\n",
    )
    own = {h.dhcp_name: (h.filename, h.next_server) for h in sources.hosts}
    assert own == {
        "plain": (None, None),
        "grouped": ("grouped.0", None),
        "own": ("own.0", "10.0.0.9"),
        "outside": (None, None),
    }


def test_shared_network_with_subnets_pools_and_hosts_inside(tmp_path: Path) -> None:
    sources = read(
        tmp_path,
        "shared-network rack-a {\n"
        "  subnet 10.1.0.0 netmask 255.255.0.0 {\n"
        "    option routers 10.1.0.1, 10.1.0.2;\n"
        "    pool { range dynamic-bootp 10.1.9.0 10.1.9.50; allow unknown-clients; }\n"
        "    host inside { hardware ethernet 52:54:00:00:00:04; fixed-address 10.1.0.40; }\n"
        "  }\n"
        "  subnet 10.2.0.0 netmask 255.255.255.0 { }\n"
        "}\n",
    )
    first, second = sources.subnets
    assert (first.shared_network, second.shared_network) == ("rack-a", "rack-a")
    assert first.gateway == IP("10.1.0.1")
    assert first.ranges == [(IP("10.1.9.0"), IP("10.1.9.50"))]
    assert second.gateway is None
    assert hosts(sources) == {"inside": ("52:54:00:00:00:04", "10.1.0.40")}


def test_includes_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "hosts.conf").write_text(
        "host inc { hardware ethernet 52:54:00:00:00:05; fixed-address 10.0.0.15; }\n"
    )
    sources = read(tmp_path, 'include "conf.d/hosts.conf";\n')
    (host,) = sources.hosts
    assert host.dhcp_name == "inc"
    assert str(host.where).endswith("conf.d/hosts.conf:1")


def test_include_loop_and_missing_include_are_errors(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text('include "dhcpd.conf";\n')
    error = failure(tmp_path, 'include "a.conf";\n')
    assert "loops back" in str(error)
    error = failure(tmp_path, '\n\ninclude "missing.conf";\n')
    assert "dhcpd.conf:3:" in str(error)
    assert "cannot read" in str(error)


def test_comments_odd_spacing_and_upper_case(tmp_path: Path) -> None:
    sources = read(
        tmp_path,
        "# a comment { with braces }\n"
        "host   odd{hardware   ethernet\t52:54:00:AB:CD:EF ;# trailing } comment\n"
        "   fixed-address\n 10.0.0.16 ;\n"
        '  option host-name "odd-one"; }\n'
        'host "quoted" { hardware ethernet 5254.00ab.cd00; fixed-address 10.0.0.17; }\n',
    )
    assert hosts(sources) == {
        "odd": ("52:54:00:ab:cd:ef", "10.0.0.16"),
        "quoted": ("52:54:00:ab:cd:00", "10.0.0.17"),
    }
    assert sources.hosts[0].name == "odd-one"


def test_host_without_fixed_address_is_kept_without_one(tmp_path: Path) -> None:
    sources = read(tmp_path, "host dyn { hardware ethernet 52:54:00:00:00:06; }\n")
    assert hosts(sources) == {"dyn": ("52:54:00:00:00:06", None)}


def test_classes_and_conditionals_are_skipped_with_a_warning(tmp_path: Path) -> None:
    sources = read(
        tmp_path,
        'class "pxe" {\n'
        '  match if substring(option vendor-class-identifier, 0, 9) = "PXEClient";\n}\n'
        'subclass "pxe" 1:52:54:00:00:00:07;\n'
        'if exists user-class and option user-class = "iPXE" {\n'
        '  filename "http://boot/boot.ipxe";\n'
        "} elsif option arch = 00:07 {\n"
        '  filename "ipxe.efi";\n'
        "} else {\n"
        '  filename "undionly.kpxe";\n'
        "}\n"
        "host kept { hardware ethernet 52:54:00:00:00:08; fixed-address 10.0.0.18; }\n",
    )
    assert hosts(sources) == {"kept": ("52:54:00:00:00:08", "10.0.0.18")}
    warned = "\n".join(sources.warnings)
    assert 'dhcpd.conf:1: skipped \'class "pxe"' in warned
    assert "dhcpd.conf:5: skipped 'if exists" in warned
    assert "dhcpd.conf:7: skipped 'elsif" in warned
    assert "dhcpd.conf:9: skipped 'else" in warned


def test_keys_failover_and_global_options_are_ignored_quietly(tmp_path: Path) -> None:
    sources = read(
        tmp_path,
        'key omapi_key { algorithm hmac-md5; secret "c2VjcmV0"; }\n'
        "omapi-port 7911;\nomapi-key omapi_key;\n"
        'option domain-name "cluster.example";\n'
        "option space pxelinux;\noption pxelinux.magic code 208 = string;\n"
        'failover peer "dhcp" { primary; address 10.0.0.1; port 647; }\n'
        "authoritative;\nddns-update-style none;\n",
    )
    assert sources.hosts == [] and sources.warnings == []


def test_multiple_fixed_addresses_and_names_warn(tmp_path: Path) -> None:
    sources = read(
        tmp_path,
        "host two { hardware ethernet 52:54:00:00:00:09; fixed-address 10.0.0.19, 10.0.0.20; }\n"
        "host byname { hardware ethernet 52:54:00:00:00:0a; fixed-address byname.example; }\n",
    )
    assert hosts(sources) == {
        "two": ("52:54:00:00:00:09", "10.0.0.19"),
        "byname": ("52:54:00:00:00:0a", None),
    }
    assert any("2 fixed addresses" in w for w in sources.warnings)
    assert any("is a name" in w for w in sources.warnings)


def test_host_without_hardware_ethernet_is_skipped_with_a_warning(tmp_path: Path) -> None:
    sources = read(
        tmp_path,
        "host cid {\n  host-identifier option dhcp-client-identifier 1:2:3;\n"
        "  fixed-address 10.0.0.21;\n}\n",
    )
    assert sources.hosts == []
    (warning,) = sources.warnings
    assert warning.endswith("dhcpd.conf:1: host cid has no 'hardware ethernet'; skipped")


@pytest.mark.parametrize(
    ("text", "where", "expected"),
    [
        ("host a { hardware ethernet 52:54:00:00:00:01 }\n", ":1:", "expected ';' after"),
        ("subnet 10.0.0.0 netmask 255.255.255.0 {\n  option routers 10.0.0.1;\n", ":1:", "'}'"),
        ("host a { }\n}\n", ":2:", "no block open"),
        ('host a { option host-name "oops; }\n', ":1:", 'closing "'),
        ("\n\nsubnet 10.0.0.0 {\n}\n", ":3:", "subnet ADDRESS netmask MASK"),
        ("subnet 10.0.0.0 netmask 255.0.255.0 { }\n", ":1:", "netmask"),
        ("host a {\n  hardware ethernet 52:54:00:zz:00:01;\n}\n", ":2:", "MAC address of 6 octets"),
        ("subnet 10.0.0.0 netmask 255.255.255.0 {\n range 10.0.0.x;\n}\n", ":2:", "IPv4 address"),
        ("option routers 10.0.0.1\n", ":1:", "expected ';'"),
        ("host a b { }\n", ":1:", "host NAME {"),
    ],
)
def test_bad_input_names_file_line_and_what_was_expected(
    tmp_path: Path, text: str, where: str, expected: str
) -> None:
    message = str(failure(tmp_path, text))
    assert f"dhcpd.conf{where}" in message, message
    assert expected in message, message


XCAT_STYLE = """\
#xCAT generated dhcp configuration
authoritative;
option client-architecture code 93 = unsigned integer 16;
shared-network eth1 {
  subnet 10.0.0.0 netmask 255.255.0.0 {
    authoritative;
    max-lease-time 43200;
    option domain-name "cluster.com";
    option domain-name-servers  10.0.0.1;
    zone cluster.com. {
       primary 10.0.0.1; key xcat_key;
    }
    if option user-class-identifier = "xNBA" and option client-architecture = 00:00 { #x86
      always-broadcast on;
      filename = "http://10.0.0.1:80/tftpboot/xcat/xnba/nets/10.0.0.0_16";
    } else if option client-architecture = 00:07 { #x86_64 uefi
      filename = "xcat/xnba.efi";
    } else {
      filename = "xcat/xnba.kpxe";
    }
    option routers  10.0.0.1;
    range dynamic-bootp 10.0.200.1 10.0.200.254;
  } # 10.0.0.0/255.255.0.0 subnet_end
} # eth1 nic_end
"""

COBBLER_STYLE = """\
ddns-update-style interim;
allow booting;
allow bootp;
ignore client-updates;
set vendorclass = option vendor-class-identifier;
option pxe-system-type code 93 = unsigned integer 16;
subnet 192.168.1.0 netmask 255.255.255.0 {
     option routers             192.168.1.5;
     option domain-name-servers 192.168.1.1;
     option subnet-mask         255.255.255.0;
     range dynamic-bootp        192.168.1.100 192.168.1.254;
     default-lease-time         21600;
     max-lease-time             43200;
     next-server                192.168.1.5;
     class "pxeclients" {
          match if substring (option vendor-class-identifier, 0, 9) = "PXEClient";
          if option pxe-system-type = 00:02 {
                  filename "ia64/elilo.efi";
          } else {
                  filename "pxelinux.0";
          }
     }
}
group {
        host generic1 {
            hardware ethernet 00:16:3E:11:22:33;
            fixed-address 192.168.1.21;
            option host-name "web01";
            option subnet-mask 255.255.255.0;
            option routers 192.168.1.5;
            filename "/pxelinux.0";
            next-server 192.168.1.5;
        }
}
"""


def test_xcat_generated_config(tmp_path: Path) -> None:
    sources = read(tmp_path, XCAT_STYLE)
    (subnet,) = sources.subnets
    assert str(subnet.network) == "10.0.0.0/16"
    assert subnet.shared_network == "eth1"
    assert subnet.gateway == IP("10.0.0.1")
    assert subnet.domain == "cluster.com"
    assert subnet.ranges == [(IP("10.0.200.1"), IP("10.0.200.254"))]
    skipped = [w.split(": skipped ")[1][:8] for w in sources.warnings]
    assert skipped == ["'if opti", "'else if", "'else {."]


def test_cobbler_generated_config(tmp_path: Path) -> None:
    sources = read(tmp_path, COBBLER_STYLE)
    (host,) = sources.hosts
    assert (host.dhcp_name, host.name, host.mac, str(host.address)) == (
        "generic1",
        "web01",
        "00:16:3e:11:22:33",
        "192.168.1.21",
    )
    assert (host.filename, host.next_server) == ("/pxelinux.0", "192.168.1.5")
    assert sources.subnets[0].gateway == IP("192.168.1.5")
    assert any('skipped \'class "pxeclients"' in w for w in sources.warnings)


def test_declared_hosts_by_block_name_with_their_own_boot_file(tmp_path: Path) -> None:
    """What the dhcp-omapi target reads for hosts dhcpd.conf declares."""
    (tmp_path / "dhcpd.conf").write_text(COBBLER_STYLE)
    hosts = declared_hosts(tmp_path / "dhcpd.conf")
    assert list(hosts) == ["generic1"]
    host = hosts["generic1"]
    assert (host.mac, str(host.address)) == ("00:16:3e:11:22:33", "192.168.1.21")
    assert (host.filename, host.next_server) == ("/pxelinux.0", "192.168.1.5")
