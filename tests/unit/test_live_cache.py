"""The read caches of issue 17 give what a full read gives, also when a shortcut would be wrong."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.resources import DnsRecord
from reconciler.targets.dhcp_hosts import hosts_in_leases
from reconciler.targets.live_cache import (
    Incremental,
    LeasesTail,
    RecordValue,
    ZoneDelta,
    ZoneSnapshots,
    soa_serial,
)

ZONE = "cluster.example."


def host(name: str, octet: int) -> str:
    return (
        f"host {name} {{\n  dynamic;\n  hardware ethernet 52:54:00:00:00:{octet:02x};\n"
        f"  fixed-address 10.23.45.{octet};\n}}\n"
    )


def deleted(name: str) -> str:
    return f"host {name} {{\n  dynamic;\n  deleted;\n}}\n"


LEASE = "lease 10.23.45.200 {\n  starts 4 2026/11/26 10:00:00;\n  binding state active;\n}\n"


def check(tail: LeasesTail, path: Path) -> None:
    assert tail.hosts() == hosts_in_leases(path.read_text())


def test_appended_blocks_are_parsed_alone_and_match_a_full_read(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.leases"
    path.write_text("# The format of this file is documented in dhcpd.leases(5).\n" + host("a", 1))
    tail = LeasesTail(path)
    check(tail, path)
    for more in (host("b", 2) + LEASE, deleted("a"), host("a", 3), host("b", 4) + deleted("c")):
        with path.open("a") as handle:
            handle.write(more)
        check(tail, path)
    assert set(tail.hosts()) == {"a", "b"} and tail.hosts()["a"].ip == "10.23.45.3"
    assert tail.full_reads == 1


def test_a_half_written_block_waits_for_its_end(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.leases"
    path.write_text(host("a", 1))
    tail = LeasesTail(path)
    block = host("b", 2)
    with path.open("a") as handle:
        handle.write(block[:30])
    assert set(tail.hosts()) == {"a"}
    with path.open("a") as handle:
        handle.write(block[30:])
    assert tail.hosts()["b"].ip == "10.23.45.2"
    assert tail.full_reads == 1


def test_a_rewritten_file_is_read_again_whole(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.leases"
    path.write_text(host("a", 1) + host("b", 2) + deleted("a"))
    tail = LeasesTail(path)
    check(tail, path)
    # dhcpd's rewrite: a new file renamed over the old one (a new inode), here longer
    # than what was read, so only the inode tells.
    fresh = tmp_path / "dhcpd.leases.new"
    fresh.write_text(host("c", 3) + host("d", 4) + host("e", 5) + host("f", 6))
    os.replace(fresh, path)
    check(tail, path)
    assert set(tail.hosts()) == {"c", "d", "e", "f"}
    # The same inode cut shorter (truncated and written again) is a rewrite too.
    path.write_text(host("g", 7))
    check(tail, path)
    assert set(tail.hosts()) == {"g"} and tail.full_reads == 3


def soa(serial: int) -> DnsRecord:
    return DnsRecord(
        ZONE, ZONE, "SOA", 300, (f"ns1.{ZONE} admin.{ZONE} {serial} 3600 600 86400 300",)
    )


def test_zone_snapshot_is_reused_only_while_the_serial_stays(tmp_path: Path) -> None:
    zone = {"serial": 7}
    transfers: list[int] = []

    def transfer() -> list[DnsRecord]:
        transfers.append(zone["serial"])
        a = DnsRecord(ZONE, f"n{zone['serial']}.{ZONE}", "A", 300, ("10.0.0.1",))
        return [soa(zone["serial"]), a]

    snapshots = ZoneSnapshots()

    def read() -> list[DnsRecord]:
        return snapshots.records(ZONE, serial=lambda: zone["serial"], transfer=transfer)

    first = read()
    assert read() == first and transfers == [7]
    zone["serial"] = 8  # a hand edit or our own UPDATE
    assert read()[1].name == f"n8.{ZONE}" and transfers == [7, 8]
    snapshots.max_age = 0.0  # an old snapshot is never trusted
    read()
    assert transfers == [7, 8, 8] and snapshots.reused == 1


def test_ownership_ledger_is_parsed_again_only_when_its_file_changed(tmp_path: Path) -> None:
    from reconciler.targets.base import OwnershipLedger

    ledger = OwnershipLedger(tmp_path, "dns")
    assert ledger.load() == set()
    ledger.widen(["a", "b"])
    assert ledger.load() == {"a", "b"}
    mutated = ledger.load()
    mutated.add("x")  # callers get their own copy
    assert ledger.load() == {"a", "b"}
    # Edited by hand in place (same inode, new mtime) and replaced by another file.
    ledger.path.write_text('{"owned": ["a", "b", "c"]}\n')
    os.utime(ledger.path, ns=(1, 1))
    assert ledger.load() == {"a", "b", "c"}
    other = tmp_path / "other.json"
    other.write_text('{"owned": ["z"]}\n')
    os.replace(other, ledger.path)
    assert ledger.load() == {"z"}
    ledger.narrow(["z"])
    assert ledger.load() == set() and OwnershipLedger(tmp_path, "dns").load() == set()


def a(name: str, value: str, ttl: int = 300) -> RecordValue:
    return RecordValue(f"{name}.{ZONE}", "A", ttl, value)


def soa_value(serial: int) -> RecordValue:
    return RecordValue(ZONE, "SOA", 300, soa(serial).values[0])


def test_zone_snapshot_follows_ixfr_differences_and_falls_back_when_they_do_not_fit() -> None:
    zone = {"serial": 1}
    server: dict[str, Incremental] = {}
    transfers: list[int] = []
    base = [soa(1), DnsRecord(ZONE, f"n1.{ZONE}", "A", 300, ("10.0.0.1", "10.0.0.2"))]

    def transfer() -> list[DnsRecord]:
        transfers.append(zone["serial"])
        return base if zone["serial"] == 1 else [soa(zone["serial"])]

    snapshots = ZoneSnapshots()

    def read() -> list[DnsRecord]:
        return snapshots.records(
            ZONE,
            serial=lambda: zone["serial"],
            transfer=transfer,
            changes_since=lambda serial: server["answer"],
        )

    read()
    # Two hand edits since: one value of n1 removed, n2 added, then n2's TTL changed.
    zone["serial"] = 3
    server["answer"] = Incremental(
        deltas=(
            ZoneDelta(
                1, 2, (soa_value(1), a("n1", "10.0.0.2")), (soa_value(2), a("n2", "10.0.0.9"))
            ),
            ZoneDelta(
                2, 3, (soa_value(2), a("n2", "10.0.0.9")), (soa_value(3), a("n2", "10.0.0.9", 60))
            ),
        )
    )
    got = {(r.name, r.rtype): r for r in read()}
    assert transfers == [1] and snapshots.incremental == 1
    assert got[(f"n1.{ZONE}", "A")].values == ("10.0.0.1",)
    assert got[(f"n2.{ZONE}", "A")].ttl == 60 and soa_serial(got.values()) == 3
    assert read() == list(got.values()) and snapshots.reused == 1
    # A removal of a value the copy lacks: the differences are not ours to trust.
    zone["serial"] = 4
    server["answer"] = Incremental(
        deltas=(ZoneDelta(3, 4, (soa_value(3), a("n9", "10.0.0.7")), (soa_value(4),)),)
    )
    assert read() == [soa(4)] and transfers == [1, 4]
    # A gap between serials, and "up to date" while the serial moved: full transfers too.
    zone["serial"] = 6
    server["answer"] = Incremental(deltas=(ZoneDelta(5, 6, (soa_value(5),), (soa_value(6),)),))
    read()
    zone["serial"] = 7
    server["answer"] = Incremental()
    read()
    assert transfers == [1, 4, 6, 7]
    # The server sends the whole zone (its journal lost): that is the new copy.
    zone["serial"] = 9
    server["answer"] = Incremental(full=[soa(9)])
    assert read() == [soa(9)] and transfers == [1, 4, 6, 7] and snapshots.transfers == 5
