"""Adopting a legacy site: import from a running dhcpd and named, adopt, plan, then change one host.

The site is hand-written the way such sites are: a dhcpd.conf with a class,
a pool and host blocks (upper-case MACs, a host off the naming pattern), and
BIND zones with the hosts' A and PTR records plus records nobody imports. The
test imports it (dhcpd.conf as a file, the zones by AXFR), proves the plan
against the same servers holds only ownership adoptions, adopts, and then
changes one host through git: only that host changes, as dhclient sees.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.sandbox.dhcp import KEY_NAME, OMAPI_PORT, DhcpClient, Dhcpd, write_key
from reconciler.sandbox.named import NamedServer, start_named
from reconciler.sandbox.netns import NetnsPair, entered, netns_pair
from reconciler.sandbox.site import git

pytestmark = pytest.mark.integration

BOOT_URL = "http://10.23.45.2:8080"
FORWARD, REVERSE = "cluster.example.", "45.23.10.in-addr.arpa."
NODES = {10: "52:54:00:12:34:0A", 11: "52:54:00:12:34:0B", 12: "52:54:00:12:34:0C"}
LOGIN_MAC = "52:54:00:12:34:99"
NEW_MAC = "52:54:00:12:34:bb"

LEGACY_DHCPD = """\
# dhcpd.conf -- edited by hand since 2016, do not lose
authoritative;
ddns-update-style none;
omapi-port {port};
key {key_name} {{ algorithm hmac-md5; secret "{secret}"; }}
omapi-key {key_name};
option domain-name "cluster.example";

class "pxeclients" {{
  match if substring (option vendor-class-identifier, 0, 9) = "PXEClient";
}}

subnet 10.23.45.0 netmask 255.255.255.0 {{
  option routers 10.23.45.1;
  option subnet-mask 255.255.255.0;
  default-lease-time 600;
  next-server 10.23.45.2;
  filename "pxelinux.0";
  pool {{
    range 10.23.45.200 10.23.45.250;
  }}
}}

group {{
{hosts}
  host login {{   # the odd one
    hardware ethernet {login};
    fixed-address 10.23.45.5;
    option host-name "login";
  }}
}}
"""
LEGACY_FORWARD = """\
$TTL 600
@       IN SOA ns1.cluster.example. hostmaster.cluster.example. 2016010101 3600 600 86400 60
        IN NS  ns1.cluster.example.
ns1     IN A   127.0.0.1
printer IN A   10.23.45.7
login   IN A   10.23.45.5
{nodes}
"""
LEGACY_REVERSE = """\
$TTL 600
@  IN SOA ns1.cluster.example. hostmaster.cluster.example. 2016010101 3600 600 86400 60
   IN NS  ns1.cluster.example.
5  IN PTR login.cluster.example.
7  IN PTR printer.cluster.example.
{nodes}
"""


def config_text(*, site: LegacySite, adopt_dhcp: bool, adopt_dns: bool) -> str:
    return f"""\
state_dir = "state"
[source]
repo = "inventory"
rev = "main"
[boot]
http_url = "{BOOT_URL}"
tftp_server = "10.23.45.2"
[targets.dhcp]
type = "dhcp-omapi"
server = "127.0.0.1"
port = {OMAPI_PORT}
key_name = "{KEY_NAME}"
key_file = "omapi.key"
leases_file = "{site.dhcpd.leases}"
timeout = 5
adopt = {str(adopt_dhcp).lower()}
[targets.dns]
type = "dns-rfc2136"
server = "127.0.0.1"
port = {site.named.port}
key_file = "{site.named.key_file}"
timeout = 5
adopt = {str(adopt_dns).lower()}
"""


@dataclass
class LegacySite:
    pair: NetnsPair
    dhcpd: Dhcpd
    named: NamedServer
    client: DhcpClient
    workdir: Path

    def cli(self, *args: str) -> tuple[int, str]:
        """Run ``reconciler ARGS`` in-process, in the server namespace (OMAPI on its loopback)."""
        with entered(self.pair.server):
            result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stdout + result.stderr

    def plan(self, config: str) -> tuple[int, dict[str, dict[str, object]]]:
        code, out = self.cli("plan", "-c", str(self.workdir / config), "--format", "json")
        assert code in (0, 1), out
        return code, {t["target"]: t for t in json.loads(out)["targets"]}

    def query(self, name: str, rdtype: str) -> list[str]:
        """What named answers (it listens on the server namespace's loopback)."""
        with entered(self.pair.server):
            return self.named.query(name, rdtype)

    def lease(self, mac: str) -> tuple[str, str]:
        lease = self.client.lease(mac)
        assert lease is not None, f"no lease for {mac}"
        return lease.ip, lease.hostname


@pytest.fixture
def legacy_site(tmp_path: Path) -> Iterator[LegacySite]:
    import os

    if os.geteuid() != 0:
        pytest.skip("integration tests need root (network namespaces)")
    if not Path("/usr/sbin/dhcpd").exists() or not Path("/usr/sbin/named").exists():
        pytest.skip("isc-dhcp-server and bind9 are needed")
    with netns_pair(server_cidr="10.23.45.2/24", prefix="ri") as pair:
        secret = write_key(tmp_path / "omapi.key")
        hosts = "\n".join(
            f"  host node{i:03d} {{ hardware ethernet {mac}; fixed-address 10.23.45.{i}; }}"
            for i, mac in NODES.items()
        )
        dhcpd = Dhcpd(pair, tmp_path)
        dhcpd.conf.write_text(
            LEGACY_DHCPD.format(
                port=OMAPI_PORT, key_name=KEY_NAME, secret=secret, hosts=hosts, login=LOGIN_MAC
            )
        )
        dhcpd.start()
        forward = "\n".join(f"node{i:03d} IN A 10.23.45.{i}" for i in NODES)
        reverse = "\n".join(f"{i} IN PTR node{i:03d}.cluster.example." for i in NODES)
        with entered(pair.server):
            named = start_named(
                tmp_path / "named",
                dynamic_zones=(FORWARD, REVERSE),
                static_zones=(),
                zone_texts={
                    FORWARD: LEGACY_FORWARD.format(nodes=forward),
                    REVERSE: LEGACY_REVERSE.format(nodes=reverse),
                },
            )
        try:
            yield LegacySite(pair, dhcpd, named, DhcpClient(pair, tmp_path / "client"), tmp_path)
        finally:
            named.stop()


def test_import_adopt_plan_and_change_one_host(legacy_site: LegacySite) -> None:
    site, work = legacy_site, legacy_site.workdir
    before = {mac: site.lease(mac) for mac in [*NODES.values(), LOGIN_MAC]}
    assert before[NODES[10]] == ("10.23.45.10", "")  # no host-name in the legacy block
    assert before[LOGIN_MAC] == ("10.23.45.5", "login")

    # Import: dhcpd.conf from its file, the zones by AXFR from the running named.
    server = f"127.0.0.1#{site.named.port}"
    code, out = site.cli(
        "import", "--out", str(work / "inventory"), "--dhcpd-conf", str(site.dhcpd.conf),
        "--axfr", f"{server}:cluster.example", "--axfr", f"{server}:45.23.10.in-addr.arpa",
        "--tsig-key", str(site.named.key_file),
    )  # fmt: skip
    assert code == 0, out
    assert "imported 4 hosts in 2 groups (domain cluster.example, ttl 600)" in out
    assert 'skipped \'class "pxeclients"' in out
    git(work / "inventory", "init", "-q", "-b", "main")
    git(work / "inventory", "add", "-A")
    git(work / "inventory", "commit", "-q", "-m", "imported from the legacy site")
    for name, (dhcp, dns) in {
        "roundtrip.toml": (True, True),
        "reconciler.toml": (True, False),
    }.items():
        (work / name).write_text(config_text(site=site, adopt_dhcp=dhcp, adopt_dns=dns))

    # Round trip: against the same servers, the plan only takes over what is there.
    _, targets = site.plan("roundtrip.toml")
    for target in targets.values():
        assert target["error"] is None
        for change in target["changes"]:  # type: ignore[attr-defined]
            assert change["action"] == "update" and change["adopt"], change
            old, new = change["old"], change["new"]
            if target["kind"] == "dns-rfc2136":
                assert old == new, change
            else:  # the same name, MAC and address; the host gains only its iPXE script
                assert {k: old[k] for k in ("hostname", "mac", "ip")} == {
                    k: new[k] for k in ("hostname", "mac", "ip")
                }, change
                assert old["boot_filename"] == ""
    assert len(targets["dhcp"]["changes"]) == 4  # type: ignore[arg-type]
    assert len(targets["dns"]["changes"]) == 8  # type: ignore[arg-type]

    # Adopt: the DNS records are exactly what the inventory says, so they become ours
    # as they are; the DHCP hosts lack the iPXE script and are listed.
    code, out = site.cli("adopt", "-c", str(work / "reconciler.toml"))
    assert code == 0, out
    assert "dns: adopted 8, already owned 0, differing (left unmanaged) 0" in out
    assert "dhcp: adopted 0, already owned 0, differing (left unmanaged) 4" in out
    assert (
        "differs: node010 (boot_filename: live '', inventory 'ipxe/52-54-00-12-34-0a.ipxe')" in out
    )
    code, targets = site.plan("reconciler.toml")
    assert targets["dns"]["changes"] == [] and targets["dns"]["owned"] == 8
    assert "printer.cluster.example. A" in " ".join(targets["dns"]["unmanaged"])  # type: ignore[arg-type]

    # dhcp has adopt = true: apply takes the hosts over (same name, MAC and address).
    code, out = site.cli("apply", "-c", str(work / "reconciler.toml"))
    assert code == 0, out
    code, targets = site.plan("reconciler.toml")
    assert code == 0, targets
    after = {mac: site.lease(mac) for mac in [*NODES.values(), LOGIN_MAC]}
    assert {m: ip for m, (ip, _) in after.items()} == {m: ip for m, (ip, _) in before.items()}
    assert after[NODES[10]] == ("10.23.45.10", "node010")
    assert site.query("node011.cluster.example.", "A") == ["10.23.45.11"]

    # One host changes through git: node011 gets a new NIC and a new address.
    group = work / "inventory" / "groups" / "node.yaml"
    text = group.read_text().replace('"52:54:00:12:34:0b"', f'"{NEW_MAC}"')
    text = text.replace(f'mac: "{NEW_MAC}"', f'mac: "{NEW_MAC}"\n    address: 10.23.45.111')
    group.write_text(text)
    git(work / "inventory", "commit", "-q", "-am", "node011: new NIC, new address")
    code, targets = site.plan("reconciler.toml")
    assert code == 1
    changed = {
        (name, c["action"], c["key"])  # type: ignore[index]
        for name, t in targets.items()
        for c in t["changes"]  # type: ignore[attr-defined]
    }
    assert changed == {
        ("dhcp", "update", "node011"),
        ("dns", "update", "cluster.example. node011.cluster.example. A"),
        ("dns", "delete", "45.23.10.in-addr.arpa. 11.45.23.10.in-addr.arpa. PTR"),
        ("dns", "create", "45.23.10.in-addr.arpa. 111.45.23.10.in-addr.arpa. PTR"),
    }
    code, out = site.cli("apply", "-c", str(work / "reconciler.toml"))
    assert code == 0, out
    assert site.lease(NEW_MAC) == ("10.23.45.111", "node011")
    old_nic_ip, _ = site.lease(NODES[11])
    assert 200 <= int(old_nic_ip.rsplit(".", 1)[1]) <= 250  # unknown now: the pool
    assert site.lease(NODES[10]) == after[NODES[10]]
    assert site.query("node011.cluster.example.", "A") == ["10.23.45.111"]
    assert site.query("printer.cluster.example.", "A") == ["10.23.45.7"]  # never ours
