"""desired_records reuses the normalised form of unchanged records, never a stale one."""

from __future__ import annotations

from reconciler.resources import DesiredState, DnsRecord
from reconciler.targets.dns_records import desired_records, normalise


def test_normalised_records_follow_every_change() -> None:
    first = tuple(
        DnsRecord("Cluster.Example", f"N{i}.cluster.example", "cname", 300, (f"T{i}.Example",))
        for i in range(5)
    )
    records, _ = desired_records(DesiredState(dns_records=first))
    assert records == [normalise(r) for r in first]
    assert records[0] == DnsRecord(
        "cluster.example.", "n0.cluster.example.", "CNAME", 300, ("t0.example.",)
    )
    second = (
        *first[:4],
        DnsRecord("cluster.example.", "n4.cluster.example.", "A", 60, ("10.0.0.9",)),
    )
    again, _ = desired_records(DesiredState(dns_records=second))
    assert again == [normalise(r) for r in second]
    assert again[:4] == records[:4] and again[4].values == ("10.0.0.9",)
