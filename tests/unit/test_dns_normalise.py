"""DNS records are normalised the same way whether or not they already were."""

from __future__ import annotations

import random

from reconciler.resources import DnsRecord
from reconciler.targets.dns_records import (
    absolute,
    classify,
    normalise,
    normalise_values,
    zones_to_read,
)


def built_anew(record: DnsRecord) -> DnsRecord:
    """The normal form, always constructed (what normalise did before its shortcut)."""
    rtype = record.rtype.upper()
    return DnsRecord(
        absolute(record.zone),
        absolute(record.name),
        rtype,
        record.ttl,
        normalise_values(rtype, record.values),
    )


def test_a_normal_record_is_kept_and_any_other_is_built_anew() -> None:
    chooser = random.Random(5)
    letters = ["a", "A", ".", " ", "\t", "b", "é", "İ", "-"]

    def word() -> str:
        return "".join(chooser.choice(letters) for _ in range(chooser.randint(0, 4)))

    kept = 0
    for _ in range(20000):
        rtype = chooser.choice(["A", "a", "PTR", "ptr", "CNAME", "TXT", "Ns"])
        values = tuple(word() for _ in range(chooser.randint(0, 3)))
        for record in (
            DnsRecord(word(), word(), rtype, 300, values),
            built_anew(DnsRecord(word(), word(), rtype, 300, values)),
        ):
            result = normalise(record)
            assert result == built_anew(record), record
            kept += result is record
    assert kept > 0  # the shortcut was taken


def test_compiled_shapes_are_kept_as_they_are() -> None:
    a = DnsRecord("cluster.example.", "n1.cluster.example.", "A", 300, ("10.0.0.1",))
    ptr = DnsRecord(
        "0.10.in-addr.arpa.", "1.0.0.10.in-addr.arpa.", "PTR", 300, ("n1.cluster.example.",)
    )
    assert normalise(a) is a and normalise(ptr) is ptr
    unsorted = DnsRecord(
        "cluster.example.", "x.cluster.example.", "A", 300, ("10.0.0.2", "10.0.0.1")
    )
    assert normalise(unsorted).values == ("10.0.0.1", "10.0.0.2")
    upper = DnsRecord("Cluster.Example", "X.cluster.example.", "cname", 300, ("Y.cluster.example",))
    assert normalise(upper) == DnsRecord(
        "cluster.example.", "x.cluster.example.", "CNAME", 300, ("y.cluster.example.",)
    )


def test_zones_and_types_seen_normal_do_not_pass_their_other_spellings() -> None:
    normal = DnsRecord("cluster.example.", "n1.cluster.example.", "A", 300, ("10.0.0.1",))
    assert normalise(normal) is normal  # "cluster.example." and "A" now known normal
    for zone, rtype in (
        ("Cluster.example.", "A"),
        ("cluster.example", "A"),
        (" cluster.example.", "a"),
    ):
        odd = DnsRecord(zone, "n1.cluster.example.", rtype, 300, ("10.0.0.1",))
        assert normalise(odd) == normal and normalise(odd) is not odd


def test_classify_splits_ours_others_and_the_apex() -> None:
    zone = "cluster.example."
    a = DnsRecord(zone, f"n1.{zone}", "A", 300, ("10.0.0.1",))
    again = DnsRecord(zone, f"n1.{zone}", "A", 60, ("10.0.0.2",))  # one key twice: last wins
    txt = DnsRecord(zone, zone, "TXT", 300, ("apex text",))
    soa = DnsRecord(zone, zone, "SOA", 300, ("ns1. host. 1 2 3 4 5",))
    mine = {a.key, txt.key}
    all_ours = classify([a, again], mine, report_infrastructure=False)
    assert all_ours.owned == {a.key: again} and all_ours.unmanaged == {}
    assert list(classify([txt, a], mine, report_infrastructure=False).owned) == [txt.key, a.key]
    with_soa = classify([soa, a, txt], mine, report_infrastructure=True)
    assert with_soa.owned == {a.key: a, txt.key: txt} and with_soa.unmanaged == {soa.key: soa}
    assert classify([soa, a], mine, report_infrastructure=False).unmanaged == {}
    other = classify([a, txt], {a.key}, report_infrastructure=False)
    assert other.owned == {a.key: a} and other.unmanaged == {txt.key: txt}
    assert zones_to_read(["b."], {"a. n.a. A", "c", "b. x.b. A"}) == ["a.", "b.", "c"]
