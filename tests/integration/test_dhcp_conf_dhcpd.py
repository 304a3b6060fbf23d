"""dhcp-conf and dhcp-file against a real dhcpd: checked configs, restarts only on change."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler.resources import DhcpHost
from reconciler.targets.base import TargetError
from reconciler.targets.dhcp_file import DhcpFileTarget
from reconciler.targets.dhcp_file import build as build_file
from tests.integration.conftest import DhcpSite
from tests.integration.dhcp_hosts import SUBNET, sync

pytestmark = pytest.mark.integration

HOST = DhcpHost("node020", "52:54:00:12:34:14", "10.23.45.20", "compute", "ipxe/a.ipxe")
LEGACY = DhcpHost(
    "old021", "52:54:00:12:34:15", "10.23.45.21", "compute", "", "legacy/pxelinux.0", "10.23.45.9"
)


def test_structure_change_restarts_once(dhcp_site: DhcpSite) -> None:
    pid = dhcp_site.dhcpd.pid()
    plan, result = dhcp_site.sync_subnets([SUBNET])
    assert plan.changes == () and result.writes == 0 and not result.restarted

    longer = dataclasses.replace(SUBNET, lease_time=7200)
    plan, result = dhcp_site.sync_subnets([longer])
    assert len(plan.changes) == 1 and result.writes == 1 and result.restarted
    assert dhcp_site.dhcpd.running() and dhcp_site.dhcpd.pid() != pid
    lease = dhcp_site.client.lease("52:54:00:99:99:99")
    assert lease is not None and lease.raw.get("new_dhcp_lease_time") == "7200"

    pid = dhcp_site.dhcpd.pid()
    plan, result = dhcp_site.sync_subnets([longer])
    assert plan.changes == () and result.writes == 0 and dhcp_site.dhcpd.pid() == pid


def test_rejected_config_keeps_the_old_one(dhcp_site: DhcpSite) -> None:
    pid = dhcp_site.dhcpd.pid()
    before = dhcp_site.dhcpd.conf.read_text()
    broken = dataclasses.replace(SUBNET, unregistered_range=("10.99.0.10", "10.99.0.20"))
    with pytest.raises(TargetError) as caught:
        dhcp_site.sync_subnets([broken])
    message = str(caught.value)
    assert "dhcpd-conf" in message and "rejected" in message
    assert "10.99.0.10" in message  # dhcpd's own words about the bad range
    secret = (dhcp_site.workdir / "omapi.key").read_text().strip()
    assert secret not in message
    assert dhcp_site.dhcpd.conf.read_text() == before
    assert dhcp_site.dhcpd.pid() == pid
    assert not list(dhcp_site.workdir.glob(".dhcpd.conf.candidate-*"))


def test_include_file_hosts_reach_clients(dhcp_site: DhcpSite) -> None:
    include = dhcp_site.workdir / "hosts.conf"
    hosts = build_file("dhcpd-file", {"path": str(include)}, dhcp_site.config)
    assert isinstance(hosts, DhcpFileTarget)
    plan, result = sync(hosts, hosts=[HOST, LEGACY], namespace=dhcp_site.pair.server)
    assert result.writes == 1
    plan, result = sync(hosts, hosts=[HOST, LEGACY], namespace=dhcp_site.pair.server)
    assert plan.changes == () and result.writes == 0

    dhcp_site.conf.include = include
    plan, result = dhcp_site.sync_subnets([SUBNET])  # settings changed: adopted, rewritten
    assert result.restarted
    lease = dhcp_site.client.lease(HOST.mac)
    assert lease is not None and (lease.ip, lease.hostname) == ("10.23.45.20", "node020")
    ipxe = dhcp_site.client.lease(HOST.mac, user_class="iPXE")
    assert ipxe is not None and ipxe.filename.endswith("/ipxe/a.ipxe")
    for user_class in (None, "iPXE"):  # a host's own filename and next-server: every client
        legacy = dhcp_site.client.lease(LEGACY.mac, user_class=user_class)
        assert legacy is not None and legacy.ip == "10.23.45.21"
        assert (legacy.filename, legacy.raw.get("new_next_server")) == (
            "legacy/pxelinux.0",
            "10.23.45.9",
        )
