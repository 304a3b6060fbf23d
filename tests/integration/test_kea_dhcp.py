"""The kea-conf and kea-hosts targets against a real Kea, control agent and PostgreSQL.

What a machine really gets (dhclient in a namespace), that host changes never
restart Kea, that hand-made reservations survive, and that a database restart
mid-apply or a config Kea rejects leave Kea serving and the next pass converges.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest

from reconciler.resources import DhcpSubnet
from reconciler.targets.base import Action, TargetError
from tests.integration.dhcp_hosts import (
    BOOT_URL,
    MAC_A,
    MAC_B,
    MAC_NEW,
    MAC_UNKNOWN,
    SUBNET,
    in_pool,
    node,
)
from tests.integration.kea_site import KeaSite

pytestmark = pytest.mark.integration

MAC_C = "52:54:00:12:34:16"
MAC_HAND = "52:54:00:00:00:60"


def test_reserved_address_name_and_boot_files(kea_site: KeaSite) -> None:
    pid = kea_site.kea.pid()
    plan, result = kea_site.sync_hosts([node(20, MAC_A), node(21, MAC_B)])
    assert plan.counts["create"] == 2 and result.writes == 2

    lease = kea_site.client.lease(MAC_A)
    assert lease is not None
    assert (lease.ip, lease.hostname) == ("10.23.45.20", "node020")
    assert lease.filename == "undionly.kpxe"  # BIOS PXE
    uefi = kea_site.client.lease(MAC_A, arch=7)
    assert uefi is not None and (uefi.ip, uefi.filename) == ("10.23.45.20", "ipxe.efi")
    ipxe = kea_site.client.lease(MAC_A, user_class="iPXE")
    assert ipxe is not None and ipxe.filename == f"{BOOT_URL}/boot.ipxe"

    unknown = kea_site.client.lease(MAC_UNKNOWN)
    assert unknown is not None and in_pool(unknown.ip) and unknown.hostname == ""

    # Second pass: nothing to do, nothing written; Kea never restarted.
    plan, result = kea_site.sync_hosts([node(20, MAC_A), node(21, MAC_B)])
    assert plan.changes == () and result.writes == 0
    plan, result = kea_site.sync_subnets([SUBNET])
    assert plan.changes == () and result.writes == 0
    assert kea_site.kea.pid() == pid


def test_subnet_and_own_boot_files_reach_clients_and_read_back(kea_site: KeaSite) -> None:
    """A host of a ``dhcp_filename: subnet`` group gets the classes' files; a host's own
    filename and next-server (reservation fields) reach every client, as with dhcpd."""
    subnet = dataclasses.replace(node(20, MAC_A), boot_filename="")
    legacy = dataclasses.replace(
        node(21, MAC_B), boot_filename="", filename="legacy/pxelinux.0", next_server="10.23.45.9"
    )
    plan, result = kea_site.sync_hosts([subnet, legacy])
    assert plan.counts["create"] == 2
    seen = {}
    for mac in (MAC_A, MAC_B):
        for user_class in (None, "iPXE"):
            lease = kea_site.client.lease(mac, user_class=user_class)
            assert lease is not None, (mac, user_class)
            seen[mac, user_class] = (lease.filename, lease.raw.get("new_next_server"))
    assert seen == {
        (MAC_A, None): ("undionly.kpxe", "10.23.45.2"),
        (MAC_A, "iPXE"): (f"{BOOT_URL}/boot.ipxe", "10.23.45.2"),
        (MAC_B, None): ("legacy/pxelinux.0", "10.23.45.9"),
        (MAC_B, "iPXE"): ("legacy/pxelinux.0", "10.23.45.9"),
    }
    plan, result = kea_site.sync_hosts([subnet, legacy])
    assert plan.changes == () and result.writes == 0


def test_nic_replacement_renumbering_and_removal_in_one_revision(kea_site: KeaSite) -> None:
    pid = kea_site.kea.pid()
    kea_site.sync_hosts([node(20, MAC_A), node(21, MAC_B), node(22, MAC_C)])
    for mac, ip in ((MAC_A, "10.23.45.20"), (MAC_B, "10.23.45.21"), (MAC_C, "10.23.45.22")):
        lease = kea_site.client.lease(mac)
        assert lease is not None and lease.ip == ip  # each one holds a lease now

    # One revision: node020's NIC replaced, node021 renumbered, node022 removed.
    plan, result = kea_site.sync_hosts([node(20, MAC_NEW), node(21, MAC_B, "10.23.45.41")])
    assert sorted((c.action, c.key) for c in plan.changes) == [
        (Action.DELETE, "node022"),
        (Action.UPDATE, "node020"),
        (Action.UPDATE, "node021"),
    ]
    assert result.applied == 3

    new = kea_site.client.lease(MAC_NEW)
    assert new is not None and (new.ip, new.hostname) == ("10.23.45.20", "node020")
    moved = kea_site.client.lease(MAC_B)
    assert moved is not None and (moved.ip, moved.hostname) == ("10.23.45.41", "node021")
    for gone in (MAC_C, MAC_A):
        lease = kea_site.client.lease(gone)
        assert lease is not None and in_pool(lease.ip) and lease.hostname == ""
    assert kea_site.kea.pid() == pid  # host changes never restart Kea


def test_hand_made_reservation_survives_and_keeps_its_address(kea_site: KeaSite) -> None:
    kea_site.sql(
        "INSERT INTO hosts (dhcp_identifier, dhcp_identifier_type, dhcp4_subnet_id, "
        "ipv4_address, hostname) VALUES "
        f"(decode('{MAC_HAND.replace(':', '')}', 'hex'), 0, {0x0A172D00}, "
        f"{(10 << 24) + (23 << 16) + (45 << 8) + 60}, 'handmade')"
    )
    plan, _ = kea_site.sync_hosts([node(20, MAC_A)])
    assert plan.unmanaged == ("handmade",)
    assert [c.action for c in plan.changes] == [Action.CREATE]
    plan, _ = kea_site.sync_hosts([])
    assert [(c.action, c.key) for c in plan.changes] == [(Action.DELETE, "node020")]
    assert plan.unmanaged == ("handmade",)
    lease = kea_site.client.lease(MAC_HAND)
    assert lease is not None and (lease.ip, lease.hostname) == ("10.23.45.60", "handmade")

    # Kea's schema would take a second reservation of the same address; the target does not.
    with pytest.raises(TargetError) as caught:
        kea_site.sync_hosts([node(20, MAC_A, "10.23.45.60")])
    assert "10.23.45.60" in str(caught.value) and "handmade" in str(caught.value)
    assert kea_site.sql("SELECT count(*) FROM hosts") == "1\n"  # nothing half-applied


def _waiting_on_lock(site: KeaSite) -> bool:
    waiting = site.sql(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND application_name LIKE 'reconciler%'"
    )
    return waiting.strip() != "0"


def test_postgres_restart_mid_apply_then_next_pass_converges(kea_site: KeaSite) -> None:
    pid = kea_site.kea.pid()
    kea_site.sync_hosts([node(20, MAC_A), node(21, MAC_B)])
    before = kea_site.sql("SELECT hostname, ipv4_address FROM hosts ORDER BY hostname")
    wanted = [node(20, MAC_A, "10.23.45.30"), node(23, MAC_C)]  # node021 goes, node023 comes

    # Another session holds lease4, so the apply stops after its host rows are
    # written and before it commits; then PostgreSQL restarts under it.
    import psycopg

    from tests.integration.netns import entered

    errors: list[BaseException] = []

    def apply() -> None:
        try:
            kea_site.sync_hosts(wanted)
        except BaseException as error:
            errors.append(error)

    with entered(kea_site.pair.server):
        blocker = psycopg.connect(
            host="127.0.0.1",
            port=kea_site.postgres.port,
            dbname=kea_site.postgres.database,
            user=kea_site.postgres.user,
            password=kea_site.postgres.password,
        )
    try:
        blocker.execute("LOCK TABLE lease4 IN ACCESS EXCLUSIVE MODE")
        worker = threading.Thread(target=apply)
        worker.start()
        deadline = time.monotonic() + 30
        while not _waiting_on_lock(kea_site):
            assert worker.is_alive() and time.monotonic() < deadline, "apply never blocked"
            time.sleep(0.05)
        kea_site.postgres.restart()
        worker.join(timeout=60)
    finally:
        blocker.close()
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], TargetError)
    message = str(errors[0])
    assert "kea-hosts" in message and "rolled back" in message and "next pass" in message
    # Nothing of the interrupted apply is visible.
    assert kea_site.sql("SELECT hostname, ipv4_address FROM hosts ORDER BY hostname") == before

    # Kea reconnects by itself; the next pass does the whole change.
    plan, result = kea_site.sync_hosts(wanted)
    assert result.applied == 3
    lease = kea_site.client.lease(MAC_A, timeout=20)
    assert lease is not None and lease.ip == "10.23.45.30"
    lease = kea_site.client.lease(MAC_C)
    assert lease is not None and (lease.ip, lease.hostname) == ("10.23.45.23", "node023")
    assert kea_site.kea.pid() == pid
    plan, _ = kea_site.sync_hosts(wanted)
    assert plan.changes == ()


def test_config_kea_rejects_is_never_set_and_kea_keeps_serving(kea_site: KeaSite) -> None:
    pid = kea_site.kea.pid()
    kea_site.sync_hosts([node(20, MAC_A)])
    # A pool outside its subnet: the inventory's validation refuses it; Kea must too.
    broken = DhcpSubnet(
        network=SUBNET.network,
        gateway=SUBNET.gateway,
        lease_time=SUBNET.lease_time,
        domain=SUBNET.domain,
        unregistered_range=("10.99.0.10", "10.99.0.20"),
        groups=SUBNET.groups,
    )
    with pytest.raises(TargetError) as caught:
        kea_site.sync_subnets([broken])
    message = str(caught.value)
    assert "rejected" in message and "config-test" in message and "nothing was set" in message
    assert kea_site.postgres.password not in message

    assert kea_site.kea.pid() == pid
    lease = kea_site.client.lease(MAC_A)
    assert lease is not None and (lease.ip, lease.hostname) == ("10.23.45.20", "node020")
    plan, _ = kea_site.sync_subnets([SUBNET])  # still the old config, still ours
    assert plan.changes == ()


def test_structure_change_goes_through_config_set_without_restart(kea_site: KeaSite) -> None:
    pid = kea_site.kea.pid()
    longer = DhcpSubnet(
        network=SUBNET.network,
        gateway=SUBNET.gateway,
        lease_time=1200,
        domain=SUBNET.domain,
        unregistered_range=("10.23.45.220", "10.23.45.230"),
        groups=SUBNET.groups,
    )
    plan, result = kea_site.sync_subnets([longer])
    assert [c.action for c in plan.changes] == [Action.UPDATE] and result.writes == 1
    unknown = kea_site.client.lease(MAC_UNKNOWN)
    assert unknown is not None and 220 <= int(unknown.ip.rsplit(".", 1)[1]) <= 230
    assert unknown.raw.get("new_dhcp_lease_time") == "1200"
    assert kea_site.kea.pid() == pid
    saved = json.loads(kea_site.kea.conf.read_text())  # config-write saved it for a restart
    [subnet] = saved["Dhcp4"]["subnet4"]
    assert subnet["valid-lifetime"] == 1200
    assert subnet["pools"][0]["pool"].replace(" ", "") == "10.23.45.220-10.23.45.230"
