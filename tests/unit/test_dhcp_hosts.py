"""Host block rendering and parsing: the include file and dhcpd's leases file."""

from __future__ import annotations

from reconciler.resources import DhcpHost
from reconciler.targets.dhcp_hosts import (
    host_statements,
    hosts_in_host_file,
    hosts_in_leases,
    iter_host_blocks,
    parse_host_file,
    render_host_block,
)

BOOT = "http://10.0.0.2:8080"
HOST = DhcpHost("node020", "52:54:00:12:34:14", "10.23.45.20", "compute", "ipxe/a.ipxe")


def many(count: int) -> list[DhcpHost]:
    return [
        DhcpHost(
            f"node{i:05d}",
            f"52:54:00:00:{i >> 8 & 255:02x}:{i & 255:02x}",
            f"10.30.{i // 250}.{i % 250 + 1}",
            "compute",
            f"ipxe/{i}.ipxe",
        )
        for i in range(count)
    ]


def test_statements_set_name_and_ipxe_script_only_for_ipxe() -> None:
    text = host_statements(HOST, boot_url=BOOT + "/")
    assert text == (
        'option host-name "node020"; if exists user-class and option user-class = "iPXE" '
        '{ filename "http://10.0.0.2:8080/ipxe/a.ipxe"; }'
    )


def test_render_then_parse_round_trips() -> None:
    text = render_host_block(HOST, boot_url=BOOT)
    assert text.startswith("host node020 {  # group=compute\n")
    (block,) = parse_host_file(text)
    assert block.to_host(boot_url=BOOT) == HOST
    (slow,) = iter_host_blocks(text)
    assert slow.to_host(boot_url=BOOT) == HOST


def test_hand_made_blocks_between_canonical_ones_are_found_verbatim() -> None:
    hand = "host printer { hardware ethernet AA:BB:CC:DD:EE:FF; fixed-address 10.0.0.9; }"
    text = (
        render_host_block(HOST, boot_url=BOOT)
        + "# a comment with a { brace\n"
        + hand
        + "\n"
        + render_host_block(many(1)[0], boot_url=BOOT)
    )
    blocks = parse_host_file(text)
    assert [b.name for b in blocks] == ["node020", "printer", "node00000"]
    assert blocks[1].text == hand
    printer = blocks[1].to_host(boot_url=BOOT)
    assert (printer.mac, printer.ip, printer.group, printer.boot_filename) == (
        "aa:bb:cc:dd:ee:ff",
        "10.0.0.9",
        "",
        "",
    )


def test_a_url_under_another_base_is_kept_whole() -> None:
    (block,) = parse_host_file(render_host_block(HOST, boot_url="http://old:80"))
    assert block.to_host(boot_url=BOOT).boot_filename == "http://old:80/ipxe/a.ipxe"


def test_leases_file_tombstones_and_later_blocks_win() -> None:
    leases = """
lease 10.23.45.200 {
  starts 4 2024/01/01 00:00:00;
  hardware ethernet 52:54:00:99:99:99;
  client-hostname "x{y}";
}
host node020 {
  dynamic;
  hardware ethernet 52:54:00:12:34:14;
  fixed-address 10.23.45.20;
        supersede host-name = "node020";
        if exists user-class and option user-class = "iPXE" {
          supersede server.filename = "http://10.0.0.2:8080/ipxe/a.ipxe";
        }
}
host node021 {
  dynamic;
  hardware ethernet 52:54:00:12:34:15;
  fixed-address 10.23.45.21;
}
host node021 {
  dynamic;
  deleted;
}
host node022 {
  dynamic;
  hardware ethernet 52:54:00:12:34:16;
  fixed-address 10.23.45.22;
}
host node022 {
  dynamic;
  hardware ethernet 52:54:00:12:34:16;
  fixed-address 10.23.45.99;
}
"""
    hosts = hosts_in_leases(leases)
    assert sorted(hosts) == ["node020", "node022"]
    node020 = hosts["node020"].to_host(boot_url=BOOT)
    assert (node020.mac, node020.ip, node020.boot_filename) == (
        "52:54:00:12:34:14",
        "10.23.45.20",
        "ipxe/a.ipxe",
    )
    assert hosts["node022"].ip == "10.23.45.99"


def test_ten_thousand_hosts_round_trip() -> None:
    hosts = many(10_000)
    text = "".join(render_host_block(h, boot_url=BOOT) for h in hosts)
    parsed = [b.to_host(boot_url=BOOT) for b in parse_host_file(text)]  # speed: bench/
    assert parsed == hosts


LEGACY = DhcpHost(
    "old021", "52:54:00:12:34:15", "10.23.45.21", "legacy", "", "legacy/pxelinux.0", "10.23.45.9"
)


def test_a_hosts_own_filename_and_next_server_are_plain_statements() -> None:
    assert host_statements(LEGACY, boot_url=BOOT) == (
        'option host-name "old021"; filename "legacy/pxelinux.0"; next-server 10.23.45.9;'
    )
    subnet = DhcpHost("node021", "52:54:00:12:34:15", "10.23.45.21", "compute", "")
    assert host_statements(subnet, boot_url=BOOT) == 'option host-name "node021";'
    for host in (LEGACY, subnet):
        text = render_host_block(host, boot_url=BOOT)
        (fast,) = parse_host_file(text)
        (slow,) = iter_host_blocks(text)
        assert fast.to_host(boot_url=BOOT) == slow.to_host(boot_url=BOOT) == host


def test_leases_spelling_of_boot_statements_is_read() -> None:
    """dhcpd writes an OMAPI host's statements into its leases file in its own spelling."""
    text = (
        "host old021 {\n  dynamic;\n  hardware ethernet 52:54:00:12:34:15;\n"
        "  fixed-address 10.23.45.21;\n"
        '        supersede host-name = "old021";\n'
        '        supersede server.filename = "legacy/pxelinux.0";\n'
        "        supersede server.next-server = 0a:17:2d:09;\n"
        '        if exists user-class and option user-class = "iPXE" {\n'
        '          supersede server.filename = "http://10.0.0.2:8080/ipxe/b.ipxe";\n'
        "        }\n}\n"
    )
    host = hosts_in_leases(text)["old021"].to_host(boot_url=BOOT)
    assert (host.filename, host.next_server, host.boot_filename) == (
        "legacy/pxelinux.0",
        "10.23.45.9",
        "ipxe/b.ipxe",
    )


def test_hosts_of_an_include_file_are_its_blocks_hosts() -> None:
    """``hosts_in_host_file`` (a plan's read) gives what the blocks say, hand-edited too."""
    renamed = render_host_block(HOST, boot_url=BOOT).replace(
        'host-name "node020"', 'host-name "other"'
    )
    text = (
        render_host_block(LEGACY, boot_url=BOOT)
        + "host printer { hardware ethernet AA:BB:CC:DD:EE:FF; fixed-address 10.0.0.9; }\n"
        + renamed  # a canonical shape whose host-name differs: the general scanner reads it
        + render_host_block(HOST, boot_url="http://old:80")  # another base: the URL kept whole
        + render_host_block(HOST, boot_url=BOOT).replace("  fixed", "\tfixed")  # hand-edited
        + "".join(render_host_block(h, boot_url=BOOT + "/") for h in many(3))
        + "host last { # no closing brace"
    )
    expected = [b.to_host(boot_url=BOOT) for b in parse_host_file(text)]
    assert hosts_in_host_file(text, boot_url=BOOT) == expected
    assert [h.hostname for h in expected] == [
        "old021",
        "printer",
        "node020",
        "node020",
        "node020",
        "node00000",
        "node00001",
        "node00002",
    ]
    assert expected[3].boot_filename == "http://old:80/ipxe/a.ipxe"
    assert expected[1].mac == "aa:bb:cc:dd:ee:ff" and expected[4] == HOST
    assert expected[5:] == many(3)
