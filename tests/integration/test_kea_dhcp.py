"""The kea-conf and kea-hosts targets against a real Kea, control agent and PostgreSQL.

What a machine really gets (dhclient in a namespace), that host changes never
restart Kea, that hand-made reservations survive, and that a database restart
mid-apply or a config Kea rejects leave Kea serving and the next pass converges.
"""

from __future__ import annotations

import pytest

from reconciler.resources import DhcpHost
from tests.integration.conftest import BOOT_URL, SUBNET
from tests.integration.kea_site import KeaSite

pytestmark = pytest.mark.integration

MAC_A = "52:54:00:12:34:14"
MAC_B = "52:54:00:12:34:15"
MAC_C = "52:54:00:12:34:16"
MAC_NEW = "52:54:00:ab:cd:ef"
MAC_UNKNOWN = "52:54:00:99:99:99"
MAC_HAND = "52:54:00:00:00:60"


def node(index: int, mac: str, ip: str | None = None) -> DhcpHost:
    return DhcpHost(
        hostname=f"node{index:03d}",
        mac=mac,
        ip=ip or f"10.23.45.{index}",
        group="compute",
        boot_filename=f"ipxe/{mac.replace(':', '-')}.ipxe",
    )


def in_pool(ip: str) -> bool:
    return 200 <= int(ip.rsplit(".", 1)[1]) <= 250


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
