"""A zone file that is exactly the render of the records we want is read as those records,
without a parse: only when the parse would give them back, and never for an edited file."""

from __future__ import annotations

import os
import random

import pytest

from reconciler.resources import DnsRecord
from reconciler.targets import dns_zonefile
from reconciler.targets.dns_records import is_zone_infrastructure, normalise
from reconciler.targets.zonefile_format import (
    SoaFields,
    parse_zone,
    records_if_rendered,
    render_zone,
)
from tests.unit.site_fixture import Site

ZONE = "cluster.example."
SOA = SoaFields("ns1.cluster.example.", "hostmaster.cluster.example.", 3600, 600, 86400, 300, 300)
NAMESERVERS = ["ns1.cluster.example."]
# Values and names a person or an odd inventory could hold; most break the fast reader.
ODD = ['"quoted; text"', "a  b", " lead", "trail ", "", "x(y)", "$dollar", "tab\there", "ok value"]


def random_records(rng: random.Random) -> list[DnsRecord]:
    records = {}
    for _ in range(rng.randrange(1, 12)):
        rtype = rng.choice(["A", "TXT", "CNAME", "PTR", "NS", "SOA", "MX", "A", "A", "A"])
        odd_name = rng.random() < 0.1
        name = rng.choice(["Big", "$x", "has space", "", "a;b"] if odd_name else ["n1", "n2", "n3"])
        name = f"{name}.{ZONE}" if rng.random() < 0.9 else ZONE
        values = tuple(
            rng.choice(ODD) if rng.random() < 0.05 else f"10.0.0.{rng.randrange(9)}"
            for _ in range(rng.randrange(0, 3))
        )
        ttl = rng.choice([300, 60, -1]) if rng.random() < 0.05 else 300
        record = normalise(DnsRecord(ZONE, name, rtype, ttl, values))
        records[record.key] = record
    return list(records.values())


@pytest.mark.parametrize("seed", range(300))
def test_when_the_shortcut_says_yes_the_parse_gives_the_same_records(seed: int) -> None:
    rng = random.Random(seed)
    records = random_records(rng)
    text = render_zone(
        zone=ZONE, soa=SOA, serial=rng.randrange(1, 10**9), nameservers=NAMESERVERS, records=[]
    ) + "".join(
        f"{r.name} {r.ttl} IN {r.rtype} {v}\n"
        for r in sorted(records, key=lambda r: (r.name, r.rtype))
        for v in r.values
    )
    same = records_if_rendered(text, zone=ZONE, soa=SOA, nameservers=NAMESERVERS, records=records)
    if same is None:
        return
    try:
        parsed = parse_zone(text, zone=ZONE, source="test")
    except Exception as error:  # the shortcut took a file the reader refuses
        pytest.fail(f"shortcut taken for an unreadable file: {error}")
    read_back = {r for r in parsed.records if not is_zone_infrastructure(r)}
    assert read_back == set(same)


def test_plain_records_take_the_shortcut() -> None:
    records = [DnsRecord(ZONE, f"node{i}.{ZONE}", "A", 300, (f"10.0.0.{i}",)) for i in range(1, 20)]
    text = render_zone(zone=ZONE, soa=SOA, serial=7, nameservers=NAMESERVERS, records=records)
    assert (
        records_if_rendered(text, zone=ZONE, soa=SOA, nameservers=NAMESERVERS, records=records)
        is records
    )
    edited = text.replace("10.0.0.5\n", "10.0.0.6\n")
    assert (
        records_if_rendered(edited, zone=ZONE, soa=SOA, nameservers=NAMESERVERS, records=records)
        is None
    )
    other_soa = text.replace("hostmaster", "postmaster")
    assert (
        records_if_rendered(other_soa, zone=ZONE, soa=SOA, nameservers=NAMESERVERS, records=records)
        is None
    )


def plan_both_ways(site: Site, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict]:  # type: ignore[type-arg]
    engine = site.engine()
    fast = engine.plan(engine.compile(engine.load()), revision="r").to_dict()
    monkeypatch.setattr(dns_zonefile, "records_if_rendered", lambda *a, **k: None)
    engine = site.engine()
    slow = engine.plan(engine.compile(engine.load()), revision="r").to_dict()
    monkeypatch.undo()
    return fast, slow


@pytest.mark.parametrize("seed", range(4))
def test_hand_edited_zone_files_plan_as_when_every_file_is_parsed(
    site: Site, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    engine = site.engine()
    assert engine.apply(engine.plan(engine.compile(engine.load()), revision="r")).ok
    fast, slow = plan_both_ways(site, monkeypatch)
    assert fast == slow
    assert not any(t["changes"] for t in fast["targets"])
    rng = random.Random(seed)
    zones = sorted((site.root / "out/zones").glob("*.zone"))
    for path in rng.sample(zones, 2):
        before = path.stat()
        text = path.read_text()
        lines = text.splitlines(keepends=True)
        at = rng.randrange(5, len(lines)) if len(lines) > 5 else len(lines) - 1
        edit = rng.choice(["same size", "added record", "removed line", "relative name"])
        if edit == "same size":
            lines[at] = lines[at].replace("1", "2", 1) if "1" in lines[at] else lines[at].upper()
        elif edit == "added record":
            lines.append(f"byhand.{path.stem}. 300 IN A 10.9.9.9\n")
        elif edit == "removed line":
            del lines[at]
        else:
            lines.append("$ORIGIN example.org.\nrelative 300 IN A 10.9.9.8\n")
        path.write_text("".join(lines))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    fast, slow = plan_both_ways(site, monkeypatch)
    assert fast == slow


def test_two_records_of_one_name_and_type_are_parsed() -> None:
    """The parse would merge them into one RRset: the shortcut must refuse them."""
    a1 = DnsRecord(ZONE, f"n1.{ZONE}", "A", 300, ("10.0.0.1",))
    a2 = DnsRecord(ZONE, f"n1.{ZONE}", "A", 60, ("10.0.0.2",))
    txt = DnsRecord(ZONE, f"n1.{ZONE}", "TXT", 300, ("a", "b"))
    other = DnsRecord(ZONE, f"n2.{ZONE}", "A", 300, ("10.0.0.3",))
    for records, taken in (([txt, other, a1], True), ([a1, txt, other, a2], False)):
        text = render_zone(zone=ZONE, soa=SOA, serial=7, nameservers=NAMESERVERS, records=records)
        same = records_if_rendered(
            text, zone=ZONE, soa=SOA, nameservers=NAMESERVERS, records=records
        )
        assert (same is records) == taken
        assert "n1.cluster.example. 300 IN TXT a\nn1.cluster.example. 300 IN TXT b\n" in text
