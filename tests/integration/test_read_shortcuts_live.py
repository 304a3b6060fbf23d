"""The read shortcuts of issue 17 against the real servers, where a shortcut would be wrong.

A no-op DNS pass transfers nothing while the zone's serial stays, but a hand
edit in BIND between passes moves the serial and is seen (by IXFR; by a full
transfer when the server lost its journal); the dhcpd leases file
is read from where the last read stopped, but dhcpd rewriting it is seen.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from reconciler.resources import DhcpHost, DnsRecord
from reconciler.targets.dns_rfc2136 import Rfc2136Target
from reconciler.targets.dns_wire import transfer_zone, zone_serial
from tests.integration.conftest import DhcpSite
from tests.integration.dhcp_hosts import node as dhcp_node
from tests.integration.named import NamedServer
from tests.integration.netns import entered
from tests.integration.test_dns_rfc2136_named import make_target, plan_for, sync
from tests.unit.dns_sites import FWD, dns_site

pytestmark = pytest.mark.integration


def zone_copy(target: Rfc2136Target, zone: str) -> list[DnsRecord]:
    """What the target's read holds for ``zone`` (sorted, for comparing with an AXFR)."""
    records = target.snapshots.records(
        zone, serial=partial(zone_serial, target.endpoint, zone), transfer=list
    )
    return sorted(records, key=lambda r: (r.name, r.rtype))


def axfr(target: Rfc2136Target, zone: str) -> list[DnsRecord]:
    return sorted(transfer_zone(target.endpoint, zone), key=lambda r: (r.name, r.rtype))


def test_dns_no_op_pass_transfers_nothing_and_a_hand_edit_is_seen_by_ixfr(
    named_server: NamedServer, tmp_path: Path
) -> None:
    target = make_target(named_server, tmp_path)
    state = dns_site({"node020": 20, "node021": 21})
    sync(target, state)
    transfers, incremental = target.snapshots.transfers, target.snapshots.incremental
    plan = plan_for(target, state)  # our UPDATEs moved the serials: one IXFR per zone
    assert plan.changes == ()
    assert target.snapshots.incremental == incremental + 2
    assert target.snapshots.transfers == transfers
    assert plan_for(target, state).changes == ()
    assert target.snapshots.incremental == incremental + 2  # serial unchanged: no transfer
    # An admin edits a managed record and adds one by hand: the serial moves, the
    # differences come by IXFR, and the copy is what a full AXFR gives.
    named_server.hand_update(FWD, [("replace", f"node020.{FWD}", 300, "A 10.23.45.77")])
    named_server.hand_update(FWD, [("add", f"printer.{FWD}", 600, "A 10.23.45.99")])
    plan = plan_for(target, state)
    assert [(c.action.value, c.key) for c in plan.changes] == [("update", f"{FWD} node020.{FWD} A")]
    assert f"{FWD} printer.{FWD} A" in plan.unmanaged
    assert target.snapshots.incremental == incremental + 3
    assert target.snapshots.transfers == transfers
    assert zone_copy(target, FWD) == axfr(target, FWD)
    sync(target, state)
    assert named_server.query(f"node020.{FWD}", "A") == ["10.23.45.20"]


def test_a_zone_reloaded_without_its_journal_falls_back_to_a_full_transfer(
    named_server: NamedServer, tmp_path: Path
) -> None:
    target = make_target(named_server, tmp_path)
    state = dns_site({"node020": 20, "node021": 21})
    sync(target, state)
    assert plan_for(target, state).changes == ()
    serial = zone_serial(target.endpoint, FWD)
    # The admin stops named, writes the zone file anew with a higher serial (node021
    # gone, node020 elsewhere) and drops the journal: IXFR from our serial is impossible.
    named_server.stop()
    zone_file = named_server.directory / f"{FWD.rstrip('.')}.zone"
    zone_file.with_name(f"{zone_file.name}.jnl").unlink()
    zone_file.write_text(
        f"{FWD} 3600 IN SOA ns1.{FWD} hostmaster.{FWD} {serial + 10} 3600 600 86400 60\n"
        f"{FWD} 3600 IN NS ns1.{FWD}\nns1.{FWD} 3600 IN A 127.0.0.1\n"
        f"node020.{FWD} 300 IN A 10.23.45.88\n"
    )
    named_server.start()
    transfers = target.snapshots.transfers
    plan = plan_for(target, state)
    assert sorted((c.action.value, c.key) for c in plan.changes) == [
        ("create", f"{FWD} node021.{FWD} A"),
        ("update", f"{FWD} node020.{FWD} A"),
    ]
    assert target.snapshots.transfers == transfers + 1  # the whole zone, once
    assert zone_copy(target, FWD) == axfr(target, FWD)
    sync(target, state)
    assert named_server.query(f"node020.{FWD}", "A") == ["10.23.45.20"]
    assert plan_for(target, state).changes == ()


def node(index: int) -> DhcpHost:
    return dhcp_node(index, f"52:54:00:12:35:{index:02x}")


def test_dhcpd_rewriting_its_leases_file_is_seen(dhcp_site: DhcpSite) -> None:
    leases = dhcp_site.omapi.leases
    dhcp_site.sync_hosts([node(20), node(21), node(22)])
    dhcp_site.sync_hosts([node(20), node(21)])  # node022's deletion is appended
    plan, _ = dhcp_site.sync_hosts([node(20), node(21)])
    assert plan.changes == ()
    full_reads = leases.full_reads
    inode = leases.path.stat().st_ino
    dhcp_site.dhcpd.restart()  # dhcpd writes a new leases file and renames it over the old
    assert leases.path.stat().st_ino != inode
    plan, _ = dhcp_site.sync_hosts([node(20), node(21), node(23)])
    assert leases.full_reads == full_reads + 1
    assert [(c.action.value, c.key) for c in plan.changes] == [("create", "node023")]
    assert set(leases.hosts()) == {"node020", "node021", "node023"}
    assert dhcp_site.sync_hosts([node(20), node(21), node(23)])[0].changes == ()
    assert leases.full_reads == full_reads + 1  # appended since: read incrementally


def test_omapi_answers_are_reused_until_the_leases_file_shows_a_change(
    dhcp_site: DhcpSite,
) -> None:
    import pypureomapi

    hosts = [node(20), node(21), node(22)]
    dhcp_site.sync_hosts(hosts)
    assert dhcp_site.sync_hosts(hosts)[0].changes == ()
    asked = dhcp_site.omapi.lookups.asked
    assert dhcp_site.sync_hosts(hosts)[0].changes == ()
    assert dhcp_site.omapi.lookups.asked == asked  # nothing changed: nothing asked
    # Someone removes node021 and re-creates node022 elsewhere, by hand over OMAPI.
    secret = (dhcp_site.workdir / "omapi.key").read_text().strip()
    with entered(dhcp_site.pair.server):
        conn = pypureomapi.Omapi("127.0.0.1", 7911, b"omapi_key", secret.encode(), timeout=5)
        conn.del_host(node(21).mac)
        conn.del_host(node(22).mac)
        conn.add_host_supersede_name("10.23.45.99", node(22).mac, "node022")
        conn.close()
    plan, _ = dhcp_site.sync_hosts(hosts)
    assert sorted((c.action.value, c.key) for c in plan.changes) == [
        ("create", "node021"),
        ("update", "node022"),
    ]
    assert dhcp_site.omapi.lookups.asked - asked <= 4  # only what the leases file named
    assert dhcp_site.sync_hosts(hosts)[0].changes == ()
    lease = dhcp_site.client.lease(node(22).mac)
    assert lease is not None and lease.ip == "10.23.45.22"
