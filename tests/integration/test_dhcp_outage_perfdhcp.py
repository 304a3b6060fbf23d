"""Host changes over OMAPI while DHCP clients keep asking: none of them goes unanswered.

perfdhcp (Kea's load generator) plays machines booting at a steady rate
against the real dhcpd while the dhcp-omapi target adds and removes host
reservations one pass at a time. A restart of dhcpd at any point would lose
the requests sent meanwhile; OMAPI must lose none. The benchmark
``bench/bench_dhcp_outage.py`` does the same at 10,000 hosts against the
rewrite-and-restart way.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.resources import DhcpHost
from reconciler.sandbox.netns import run_in
from reconciler.sandbox.perfdhcp import PERFDHCP, Perfdhcp
from tests.integration.conftest import DhcpSite
from tests.integration.dhcp_hosts import node as dhcp_node

pytestmark = pytest.mark.integration


def node(index: int) -> DhcpHost:
    return dhcp_node(index, f"52:54:00:77:00:{index:02x}")


def test_omapi_host_changes_under_dhcp_load_lose_no_answer(dhcp_site: DhcpSite) -> None:
    if not Path(PERFDHCP).exists():
        pytest.skip("perfdhcp is not installed (Debian package kea-admin)")
    pair, dhcpd = dhcp_site.pair, dhcp_site.dhcpd
    # perfdhcp relays from its own address; pool offers go out at once, without
    # dhcpd's ping of each pool address first (1 s with nobody there to answer).
    run_in(pair.client, ["ip", "addr", "add", "10.23.45.3/24", "dev", pair.client_if])
    dhcpd.conf.write_text(
        dhcpd.conf.read_text().replace("authoritative;", "authoritative;\nping-check false;")
    )
    dhcpd.restart()
    hosts = [node(i) for i in range(10, 30)]
    dhcp_site.sync_hosts(hosts)
    pid = dhcpd.pid()

    # 40 clients fit the 51-address pool; a request unanswered after 4 s is lost
    # (generous: a loaded CI machine must not turn slowness into a drop).
    load = Perfdhcp(pair, rate=40, seconds=10, clients=40, drop_after=4.0)
    time.sleep(1.0)
    changed = list(hosts)
    for i in range(10):  # 20 host changes, each a whole target pass
        changed = [h for h in changed if h.hostname != f"node{10 + i:03d}"]
        dhcp_site.sync_hosts(changed)
        changed = [*changed, node(40 + i)]
        dhcp_site.sync_hosts(changed)
        time.sleep(0.3)
    report = load.wait()

    assert report.discover.sent >= 100 and report.request.sent >= 100, report.output
    assert report.discover.unanswered == 0, report.output
    assert report.request.unanswered == 0, report.output
    assert dhcpd.pid() == pid  # changed live, never restarted
    added = dhcp_site.client.lease(node(49).mac)
    assert added is not None and (added.ip, added.hostname) == ("10.23.45.49", "node049")
    removed = dhcp_site.client.lease(node(10).mac)
    assert removed is not None and removed.ip != "10.23.45.10"
