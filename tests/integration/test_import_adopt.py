"""Adopting a legacy site: import from a running dhcpd and named, adopt, plan, then change hosts.

The site is hand-written the way such sites are: a dhcpd.conf with a class,
a pool and host blocks (upper-case MACs, hosts off the naming pattern, one with
its own ``filename`` and ``next-server``, one inheriting a ``filename`` from its
``group``), and BIND zones with the hosts' A and PTR records plus records nobody
imports. The test imports it (dhcpd.conf as a file, the zones by AXFR) and
proves the issue's round trip: against the same servers the plan holds nothing
but ownership adoptions of objects exactly as they are (no address, name or
boot file changes), ``adopt`` takes every one of them over without a write,
and the plan is then empty (exit 0), with what dhclient gets unchanged. Then
one host changes through git, and only that host changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
OLDBOX_MAC = "52:54:00:12:34:77"
NEW_MAC = "52:54:00:12:34:bb"
ALL_MACS = [*NODES.values(), LOGIN_MAC, OLDBOX_MAC]

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
  next-server 10.23.45.2;   # the racks' boot server, said again
{hosts}
}}
group {{
  filename   "login/pxelinux.0";   # the login node boots its own menu
  host login {{   # the odd one
    hardware ethernet {login};
    fixed-address 10.23.45.5;
    option host-name "login";
  }}
}}
host oldbox {{
  hardware ethernet {oldbox};
  fixed-address 10.23.45.6;
  filename "legacy/pxelinux.0";
  next-server 10.23.45.9;
}}
"""
LEGACY_FORWARD = """\
$TTL 600
@       IN SOA ns1.cluster.example. hostmaster.cluster.example. 2016010101 3600 600 86400 60
        IN NS  ns1.cluster.example.
ns1     IN A   127.0.0.1
printer IN A   10.23.45.7
login   IN A   10.23.45.5
oldbox  IN A   10.23.45.6
{nodes}
"""
LEGACY_REVERSE = """\
$TTL 600
@  IN SOA ns1.cluster.example. hostmaster.cluster.example. 2016010101 3600 600 86400 60
   IN NS  ns1.cluster.example.
5  IN PTR login.cluster.example.
6  IN PTR oldbox.cluster.example.
7  IN PTR printer.cluster.example.
{nodes}
"""


def config_text(site: LegacySite) -> str:
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
config_file = "{site.dhcpd.conf}"
timeout = 5
adopt = true
[targets.dns]
type = "dns-rfc2136"
server = "127.0.0.1"
port = {site.named.port}
key_file = "{site.named.key_file}"
timeout = 5
adopt = true
"""


Offer = tuple[str, str, str, str]  # address, host name, filename, next-server


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

    def plan(self) -> tuple[int, dict[str, dict[str, Any]]]:
        config = str(self.workdir / "reconciler.toml")
        code, out = self.cli("plan", "-c", config, "--format", "json")
        assert code in (0, 1), out
        return code, {t["target"]: t for t in json.loads(out)["targets"]}

    def changed(self) -> set[tuple[str, str, str]]:
        code, targets = self.plan()
        found = {(n, c["action"], c["key"]) for n, t in targets.items() for c in t["changes"]}
        assert (code == 1) == bool(found)
        return found

    def query(self, name: str, rdtype: str) -> list[str]:
        """What named answers (it listens on the server namespace's loopback)."""
        with entered(self.pair.server):
            return self.named.query(name, rdtype)

    def offer(self, mac: str, *, user_class: str | None = None) -> Offer:
        lease = self.client.lease(mac, user_class=user_class)
        assert lease is not None, f"no lease for {mac}"
        return lease.ip, lease.hostname, lease.filename, lease.raw.get("new_next_server", "")

    def offers(self) -> dict[str, Offer]:
        """What every legacy machine gets: PXE ROMs and, for one node, iPXE too."""
        found = {mac: self.offer(mac) for mac in ALL_MACS}
        found["iPXE " + NODES[10]] = self.offer(NODES[10], user_class="iPXE")
        return found


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
                port=OMAPI_PORT, key_name=KEY_NAME, secret=secret, hosts=hosts,
                login=LOGIN_MAC, oldbox=OLDBOX_MAC,
            )
        )  # fmt: skip
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


def commit(site: LegacySite, message: str, edit: Callable[[str], str]) -> None:
    group = site.workdir / "inventory" / "groups" / "node.yaml"
    if "oldbox" in message:
        group = site.workdir / "inventory" / "groups" / "other.yaml"
    group.write_text(edit(group.read_text()))
    git(site.workdir / "inventory", "commit", "-q", "-am", message)


def test_import_adopt_plan_and_change_one_host(legacy_site: LegacySite) -> None:
    site, work = legacy_site, legacy_site.workdir
    before = site.offers()
    assert before[NODES[10]] == ("10.23.45.10", "", "pxelinux.0", "10.23.45.2")  # the subnet's
    assert before["iPXE " + NODES[10]][2] == "pxelinux.0"  # no iPXE class in this dhcpd.conf
    assert before[LOGIN_MAC] == ("10.23.45.5", "login", "login/pxelinux.0", "10.23.45.2")
    assert before[OLDBOX_MAC] == ("10.23.45.6", "", "legacy/pxelinux.0", "10.23.45.9")

    # Import: dhcpd.conf from its file, the zones by AXFR from the running named.
    server = f"127.0.0.1#{site.named.port}"
    code, out = site.cli(
        "import", "--out", str(work / "inventory"), "--dhcpd-conf", str(site.dhcpd.conf),
        "--axfr", f"{server}:cluster.example", "--axfr", f"{server}:45.23.10.in-addr.arpa",
        "--tsig-key", str(site.named.key_file),
    )  # fmt: skip
    assert code == 0, out
    assert "imported 5 hosts in 2 groups (domain cluster.example, ttl 600)" in out
    assert 'skipped \'class "pxeclients"' in out
    other = (work / "inventory" / "groups" / "other.yaml").read_text()
    assert 'filename: "legacy/pxelinux.0"' in other and "next_server: 10.23.45.9" in other
    assert 'filename: "login/pxelinux.0"' in other  # inherited from its group: its own
    node = (work / "inventory" / "groups" / "node.yaml").read_text()
    assert "dhcp_filename: subnet" in node and "\nnext_server: 10.23.45.2" in node
    git(work / "inventory", "init", "-q", "-b", "main")
    git(work / "inventory", "add", "-A")
    git(work / "inventory", "commit", "-q", "-m", "imported from the legacy site")
    (work / "reconciler.toml").write_text(config_text(site))

    # Round trip: against the same servers the plan only takes over what is there,
    # every object exactly as it is.
    code, targets = site.plan()
    assert code == 1
    for target in targets.values():
        assert target["error"] is None and target["conflicts"] == []
        for change in target["changes"]:
            assert change["action"] == "update" and change["adopt"], change
            assert change["old"] == change["new"], change  # no address, name or boot file
    assert len(targets["dhcp"]["changes"]) == 5
    assert len(targets["dns"]["changes"]) == 10

    # Adopt: every host and record becomes ours as it is, with no write.
    leases_before = site.dhcpd.leases.read_text()
    code, out = site.cli("adopt", "-c", str(work / "reconciler.toml"))
    assert code == 0, out
    assert "dns: adopted 10, already owned 0, differing (left unmanaged) 0" in out
    assert "dhcp: adopted 5, already owned 0, differing (left unmanaged) 0" in out
    assert "host " not in site.dhcpd.leases.read_text().replace(leases_before, "")
    code, targets = site.plan()
    assert code == 0 and all(t["changes"] == [] for t in targets.values()), targets
    assert targets["dhcp"]["owned"] == 5 and targets["dns"]["owned"] == 10
    assert "printer.cluster.example. A" in " ".join(targets["dns"]["unmanaged"])
    code, out = site.cli("apply", "-c", str(work / "reconciler.toml"))
    assert code == 0, out
    assert site.offers() == before  # what every machine gets, unchanged
    assert site.query("node011.cluster.example.", "A") == ["10.23.45.11"]

    # One host changes through git: node011 gets a new NIC and a new address.
    commit(
        site,
        "node011: new NIC, new address",
        lambda text: text.replace('"52:54:00:12:34:0b"', f'"{NEW_MAC}"\n    address: 10.23.45.111'),
    )
    assert site.changed() == {
        ("dhcp", "update", "node011"),
        ("dns", "update", "cluster.example. node011.cluster.example. A"),
        ("dns", "delete", "45.23.10.in-addr.arpa. 11.45.23.10.in-addr.arpa. PTR"),
        ("dns", "create", "45.23.10.in-addr.arpa. 111.45.23.10.in-addr.arpa. PTR"),
    }
    code, out = site.cli("apply", "-c", str(work / "reconciler.toml"))
    assert code == 0, out
    assert site.offer(NEW_MAC) == ("10.23.45.111", "node011", "pxelinux.0", "10.23.45.2")
    old_nic_ip, *_ = site.offer(NODES[11])
    assert 200 <= int(old_nic_ip.rsplit(".", 1)[1]) <= 250  # unknown now: the pool
    assert site.query("node011.cluster.example.", "A") == ["10.23.45.111"]
    assert site.query("printer.cluster.example.", "A") == ["10.23.45.7"]  # never ours

    # oldbox's own boot file is managed from now on: a new one, and only it changes.
    commit(
        site,
        "oldbox: boots the new menu",
        lambda text: text.replace('"legacy/pxelinux.0"', '"legacy/pxelinux-2.0"'),
    )
    assert site.changed() == {("dhcp", "update", "oldbox")}
    code, out = site.cli("apply", "-c", str(work / "reconciler.toml"))
    assert code == 0, out
    assert site.changed() == set()
    after = site.offers() | {NODES[11]: before[NODES[11]]}
    assert after == before | {
        OLDBOX_MAC: ("10.23.45.6", "oldbox", "legacy/pxelinux-2.0", "10.23.45.9")
    }
