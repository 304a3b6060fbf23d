"""The dhcp-omapi target against a real dhcpd: what machines really get, without restarts."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import pytest

from reconciler.resources import DhcpHost
from reconciler.targets.base import Action, Change, TargetError
from tests.integration.conftest import DhcpSite
from tests.integration.dhcp_hosts import (
    BOOT_URL,
    MAC_A,
    MAC_B,
    MAC_NEW,
    MAC_UNKNOWN,
    in_pool,
    node,
    sync,
)
from tests.integration.dhcp_server import write_key
from tests.integration.netns import entered

pytestmark = pytest.mark.integration

MAC_C = "52:54:00:12:34:16"


def test_registered_and_unknown_macs(dhcp_site: DhcpSite) -> None:
    pid = dhcp_site.dhcpd.pid()
    plan, result = dhcp_site.sync_hosts([node(20, MAC_A), node(21, MAC_B)])
    assert plan.counts["create"] == 2 and result.writes == 2 and not result.restarted

    lease = dhcp_site.client.lease(MAC_A)
    assert lease is not None
    assert (lease.ip, lease.hostname) == ("10.23.45.20", "node020")
    assert lease.filename == "undionly.kpxe"  # plain PXE: the class-based file

    ipxe = dhcp_site.client.lease(MAC_A, user_class="iPXE")
    assert ipxe is not None and ipxe.filename == f"{BOOT_URL}/ipxe/52-54-00-12-34-14.ipxe"

    unknown = dhcp_site.client.lease(MAC_UNKNOWN)
    assert unknown is not None and in_pool(unknown.ip)
    unknown_ipxe = dhcp_site.client.lease(MAC_UNKNOWN, user_class="iPXE")
    assert unknown_ipxe is not None and unknown_ipxe.filename == f"{BOOT_URL}/boot.ipxe"

    # Second pass: nothing to do, nothing written.
    plan, result = dhcp_site.sync_hosts([node(20, MAC_A), node(21, MAC_B)])
    assert plan.changes == () and result.writes == 0
    assert dhcp_site.dhcpd.pid() == pid


def test_per_host_subnet_and_own_boot_files_reach_clients(dhcp_site: DhcpSite) -> None:
    """The group's dhcp_filename (per-host or subnet) and a host's own filename and
    next-server, as PXE and iPXE clients get them; read back from the leases file
    as they were written, before and after a restart."""
    per_host = node(20, MAC_A)
    subnet = dataclasses.replace(node(21, MAC_B), boot_filename="")
    legacy = dataclasses.replace(
        node(22, MAC_C), boot_filename="", filename="legacy/pxelinux.0", next_server="10.23.45.9"
    )
    plan, result = dhcp_site.sync_hosts([per_host, subnet, legacy])
    assert plan.counts["create"] == 3 and result.writes == 3

    seen = {}
    for mac in (MAC_A, MAC_B, MAC_C):
        for user_class in (None, "iPXE"):
            lease = dhcp_site.client.lease(mac, user_class=user_class)
            assert lease is not None, (mac, user_class)
            seen[mac, user_class] = (lease.filename, lease.raw.get("new_next_server"))
    assert seen == {
        (MAC_A, None): ("undionly.kpxe", "10.23.45.2"),
        (MAC_A, "iPXE"): (f"{BOOT_URL}/ipxe/52-54-00-12-34-14.ipxe", "10.23.45.2"),
        (MAC_B, None): ("undionly.kpxe", "10.23.45.2"),
        (MAC_B, "iPXE"): (f"{BOOT_URL}/boot.ipxe", "10.23.45.2"),  # the subnet's
        (MAC_C, None): ("legacy/pxelinux.0", "10.23.45.9"),
        (MAC_C, "iPXE"): ("legacy/pxelinux.0", "10.23.45.9"),  # its own, for every client
    }
    plan, result = dhcp_site.sync_hosts([per_host, subnet, legacy])
    assert plan.changes == () and result.writes == 0
    dhcp_site.dhcpd.restart()
    plan, result = dhcp_site.sync_hosts([per_host, subnet, legacy])
    assert plan.changes == () and result.writes == 0


def test_replaced_nic_removed_and_readdressed_hosts(dhcp_site: DhcpSite) -> None:
    pid = dhcp_site.dhcpd.pid()
    dhcp_site.sync_hosts([node(20, MAC_A), node(21, MAC_B)])

    # The NIC of node020 is replaced: one update, two OMAPI writes, no restart.
    plan, result = dhcp_site.sync_hosts([node(20, MAC_NEW), node(21, MAC_B)])
    assert [c.action for c in plan.changes] == [Action.UPDATE]
    assert result.writes == 2
    new = dhcp_site.client.lease(MAC_NEW)
    assert new is not None and (new.ip, new.hostname) == ("10.23.45.20", "node020")
    old = dhcp_site.client.lease(MAC_A)
    assert old is not None and in_pool(old.ip)

    # node021 gets a new address.
    dhcp_site.sync_hosts([node(20, MAC_NEW), node(21, MAC_B, "10.23.45.41")])
    moved = dhcp_site.client.lease(MAC_B)
    assert moved is not None and moved.ip == "10.23.45.41"

    # node021 is removed: its MAC is unknown now.
    plan, result = dhcp_site.sync_hosts([node(20, MAC_NEW)])
    assert [c.action for c in plan.changes] == [Action.DELETE] and result.writes == 1
    gone = dhcp_site.client.lease(MAC_B)
    assert gone is not None and in_pool(gone.ip)

    assert dhcp_site.dhcpd.pid() == pid  # host changes never restart dhcpd


def test_hosts_survive_a_restart_and_are_read_back(dhcp_site: DhcpSite) -> None:
    hosts = [node(20, MAC_A), node(21, MAC_B)]
    dhcp_site.sync_hosts(hosts)
    dhcp_site.sync_hosts([node(20, MAC_A), node(21, MAC_B, "10.23.45.33")])
    dhcp_site.dhcpd.restart()
    lease = dhcp_site.client.lease(MAC_B)
    assert lease is not None and (lease.ip, lease.hostname) == ("10.23.45.33", "node021")
    plan, result = dhcp_site.sync_hosts([node(20, MAC_A), node(21, MAC_B, "10.23.45.33")])
    assert plan.changes == () and result.writes == 0


def test_hand_made_hosts_are_drift_not_deleted(dhcp_site: DhcpSite) -> None:
    import pypureomapi

    secret = (dhcp_site.workdir / "omapi.key").read_text().strip()
    with entered(dhcp_site.pair.server):
        conn = pypureomapi.Omapi("127.0.0.1", 7911, b"omapi_key", secret.encode(), timeout=5)
        conn.add_host_supersede_name("10.23.45.60", "52:54:00:00:00:60", "handmade")
        conn.close()
    plan, _ = dhcp_site.sync_hosts([node(20, MAC_A)])
    assert plan.unmanaged == ("handmade",)
    assert [c.action for c in plan.changes] == [Action.CREATE]
    plan, _ = dhcp_site.sync_hosts([])
    assert [(c.action, c.key) for c in plan.changes] == [(Action.DELETE, "node020")]
    lease = dhcp_site.client.lease("52:54:00:00:00:60")
    assert lease is not None and lease.ip == "10.23.45.60"


def test_adopting_a_hand_made_host_with_the_wanted_name(dhcp_site: DhcpSite) -> None:
    import pypureomapi

    secret = (dhcp_site.workdir / "omapi.key").read_text().strip()
    with entered(dhcp_site.pair.server):
        conn = pypureomapi.Omapi("127.0.0.1", 7911, b"omapi_key", secret.encode(), timeout=5)
        conn.add_host_supersede_name("10.23.45.99", MAC_A, "node020")
        conn.close()
    plan, _ = dhcp_site.sync_hosts([node(20, MAC_A)])
    assert [(c.action, c.adopt) for c in plan.changes] == [(Action.UPDATE, True)]
    lease = dhcp_site.client.lease(MAC_A)
    assert lease is not None and lease.ip == "10.23.45.20"


def test_wrong_key_is_a_clear_error_without_the_key(dhcp_site: DhcpSite) -> None:
    wrong = write_key(dhcp_site.workdir / "omapi.key", seed=b"another-key-entirely-0123456789a")
    with pytest.raises(TargetError) as caught:
        sync(dhcp_site.omapi, hosts=[node(20, MAC_A)], namespace=dhcp_site.pair.server)
    message = str(caught.value)
    assert "dhcpd-hosts" in message and "key" in message and wrong not in message


def test_unreachable_dhcpd_is_a_clear_error(dhcp_site: DhcpSite) -> None:
    dhcp_site.dhcpd.stop()
    with pytest.raises(TargetError) as caught:
        sync(dhcp_site.omapi, hosts=[node(20, MAC_A)], namespace=dhcp_site.pair.server)
    assert "dhcpd-hosts" in str(caught.value) and "127.0.0.1:7911" in str(caught.value)


def test_refused_create_names_the_host(dhcp_site: DhcpSite) -> None:
    dhcp_site.sync_hosts([node(20, MAC_A)])
    # A create of a name dhcpd already has (the ledger lost track of it) is refused.
    create = Change(Action.CREATE, "node020", None, node(20, MAC_B))
    with entered(dhcp_site.pair.server), pytest.raises(TargetError) as caught:
        dhcp_site.omapi.apply([create])
    assert "dhcpd-hosts" in str(caught.value) and "node020" in str(caught.value)
    assert "already exists" in str(caught.value)


def test_dhcpd_dying_mid_sync_loses_nothing_and_says_so(dhcp_site: DhcpSite) -> None:
    """Thousands of pipelined creates; dhcpd is killed part-way. The pass fails with a
    message saying how far it got; once dhcpd is back the next pass creates only the
    rest, and every host is there exactly once."""
    hosts = [
        DhcpHost(
            hostname=f"bulk{i:04d}",
            mac=f"52:54:00:66:{i >> 8:02x}:{i & 255:02x}",
            ip=f"10.23.{100 + i // 250}.{1 + i % 250}",
            group="compute",
            boot_filename=f"ipxe/bulk{i:04d}.ipxe",
        )
        for i in range(3000)
    ]
    leases, dhcpd = dhcp_site.dhcpd.leases, dhcp_site.dhcpd
    pid = dhcpd.pid()
    assert pid is not None
    killed = threading.Event()

    def kill_part_way() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and leases.read_bytes().count(b"host bulk") < 300:
            time.sleep(0.002)
        os.kill(pid, signal.SIGKILL)
        killed.set()

    killer = threading.Thread(target=kill_part_way, daemon=True)
    killer.start()
    with pytest.raises(TargetError) as caught:
        dhcp_site.sync_hosts(hosts)
    killer.join(timeout=60)
    assert killed.is_set()
    message = str(caught.value)
    assert "dhcpd-hosts" in message and "127.0.0.1:7911" in message
    assert "requests answered" in message and "run again" in message
    created_before = leases.read_bytes().count(b"host bulk")
    assert 300 <= created_before < len(hosts)

    dhcpd.pidfile.unlink(missing_ok=True)
    dhcpd.start()
    plan, result = dhcp_site.sync_hosts(hosts)
    assert [c.action for c in plan.changes] == [Action.CREATE] * (len(hosts) - created_before)
    assert result.writes == len(plan.changes)
    again, _ = dhcp_site.sync_hosts(hosts)
    assert again.changes == ()
    assert sorted(dhcp_site.omapi.leases.hosts()) == [h.hostname for h in hosts]
