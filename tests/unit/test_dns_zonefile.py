"""The dns-zonefile target: rendering, the fast reader, ownership and rewrites."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.config import RuntimeConfig, SourceConfig
from reconciler.plan import build_target_plan
from reconciler.resources import DesiredState, DnsRecord, DnsZone
from reconciler.targets.dns_zonefile import ZoneFileTarget, build
from reconciler.targets.zonefile_format import parse_zone
from tests.unit.dns_sites import FWD, REV, dns_site


def make_target(tmp_path: Path, **extra: object) -> ZoneFileTarget:
    config = RuntimeConfig(source=SourceConfig(path=tmp_path), state_dir=tmp_path / "state")
    settings: dict[str, object] = {
        "directory": str(tmp_path / "zones"),
        "mname": "ns1.cluster.example.",
        "rname": "hostmaster.cluster.example.",
        "nameservers": ["ns1.cluster.example."],
        **extra,
    }
    return build("dns", settings, config)


def reconcile(target: ZoneFileTarget, state: DesiredState) -> tuple[int, int, list[str]]:
    desired = target.desired(state)
    plan = build_target_plan(
        target=target.name, kind=target.kind, desired=desired, live=target.read(desired)
    )
    result = target.apply(plan.changes)
    return len(plan.changes), result.writes, list(plan.unmanaged)


def serial_of(path: Path) -> int:
    parsed = parse_zone(path.read_text(), zone=FWD, source=str(path))
    assert parsed.serial is not None
    return parsed.serial


def test_first_pass_writes_both_zones_then_no_op(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    state = dns_site({"node020": 20, "node021": 21}, aliases={"login": "node021"})
    assert reconcile(target, state)[:2] == (5, 2)
    text = target.path_of(FWD).read_text()
    assert "node020.cluster.example. 300 IN A 10.23.45.20\n" in text
    assert "login.cluster.example. 300 IN CNAME node021.cluster.example.\n" in text
    assert "20.45.23.10.in-addr.arpa. 300 IN PTR node020.cluster.example." in (
        target.path_of(REV).read_text()
    )
    before = target.path_of(FWD).stat().st_mtime_ns
    assert reconcile(target, state)[:2] == (0, 0)
    assert target.path_of(FWD).stat().st_mtime_ns == before


def test_only_changed_zone_is_rewritten_and_serial_bumped(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    reconcile(target, dns_site({"node020": 20}))
    fwd, rev = target.path_of(FWD), target.path_of(REV)
    old_fwd, old_rev = serial_of(fwd), rev.read_text()
    # TTL change on the A record only: the reverse zone is not touched.
    state = dns_site({"node020": 20})
    state = DesiredState(
        dns_zones=state.dns_zones,
        dns_records=tuple(
            DnsRecord(r.zone, r.name, r.rtype, 60, r.values) if r.rtype == "A" else r
            for r in state.dns_records
        ),
    )
    assert reconcile(target, state)[:2] == (1, 1)
    assert serial_of(fwd) > old_fwd
    assert rev.read_text() == old_rev
    assert "node020.cluster.example. 60 IN A" in fwd.read_text()


def test_hand_made_records_are_unmanaged_and_survive(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    reconcile(target, dns_site({"node020": 20}))
    fwd = target.path_of(FWD)
    fwd.write_text(
        fwd.read_text() + "printer 600 IN A 10.23.45.99\n"  # relative name: dnspython path
        '$ORIGIN cluster.example.\ntxt 300 IN TXT "hello; world"\n'
    )
    changes, writes, unmanaged = reconcile(target, dns_site({"node021": 21}))
    assert f"{FWD} printer.{FWD} A" in unmanaged
    assert f"{FWD} txt.{FWD} TXT" in unmanaged
    assert f"{FWD} {FWD} SOA" not in unmanaged
    assert changes == 4 and writes == 2
    text = fwd.read_text()
    assert "printer.cluster.example. 600 IN A 10.23.45.99" in text
    assert "node020" not in text and "node021.cluster.example. 300 IN A" in text
    # The rewrite is canonical again, and the hand-made records stay unmanaged.
    desired = target.desired(dns_site({"node021": 21}))
    live = target.read(desired)
    assert f"{FWD} printer.{FWD} A" in live.unmanaged
    assert f"{FWD} {FWD} NS" not in live.owned


def test_hand_made_record_with_wanted_key_is_adopted(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    reconcile(target, dns_site({}))
    fwd = target.path_of(FWD)
    fwd.write_text(fwd.read_text() + "node020.cluster.example. 300 IN A 10.9.9.9\n")
    reconcile(target, dns_site({"node020": 20}))
    assert "10.9.9.9" not in fwd.read_text()
    assert f"{FWD} node020.{FWD} A" in target.ledger.load()


def test_reader_reads_back_10000_hosts_and_their_ptrs(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    hosts: list[DnsRecord] = []
    rev_records: list[DnsRecord] = []
    base = ipaddress.ip_address("10.23.0.0")
    for index in range(10_000):
        fqdn = f"node{index:05d}.{FWD}"
        address = base + index + 1
        hosts.append(DnsRecord(FWD, fqdn, "A", 300, (str(address),)))
        rev_records.append(DnsRecord(REV, f"{index}.{REV}", "PTR", 300, (fqdn,)))
    state = DesiredState(
        dns_zones=(DnsZone(FWD, "forward"), DnsZone(REV, "reverse")),
        dns_records=tuple(hosts + rev_records),
    )
    assert reconcile(target, state)[:2] == (20_000, 2)
    desired = target.desired(state)
    live = target.read(desired)  # its speed: bench/bench_readers.py
    assert len(live.owned) == 20_000
    assert set(live.owned.values()) == set(desired)
    assert reconcile(target, state)[:2] == (0, 0)


def test_deleted_zone_records_are_removed(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    reconcile(target, dns_site({"node020": 20}))
    state = DesiredState(dns_zones=(DnsZone(FWD, "forward"),), dns_records=())
    changes, writes, _ = reconcile(target, state)
    assert changes == 2 and writes == 2  # the reverse zone is still read through the ledger
    assert "PTR" not in target.path_of(REV).read_text()


@pytest.mark.skipif(shutil.which("named-checkzone") is None, reason="named-checkzone missing")
def test_named_checkzone_accepts_the_files(tmp_path: Path) -> None:
    checkzone = shutil.which("named-checkzone")
    target = make_target(tmp_path, checkzone=checkzone)
    reconcile(
        target,
        dns_site({"node020": 20, "node021": 21}, aliases={"login": "node020"}, with_glue=True),
    )
    for zone in (FWD, REV):
        completed = subprocess.run(
            [str(checkzone), zone, str(target.path_of(zone))],
            capture_output=True,
            text=True,
            check=False,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.skipif(shutil.which("named-checkzone") is None, reason="named-checkzone missing")
def test_checkzone_failure_keeps_old_file(tmp_path: Path) -> None:
    from reconciler.targets.base import TargetError

    target = make_target(tmp_path, checkzone=shutil.which("named-checkzone"))
    reconcile(target, dns_site({"node020": 20}, with_glue=True))
    old = target.path_of(FWD).read_text()
    # A CNAME next to an A record is not a valid zone.
    bad = dns_site({"node020": 20}, aliases={"node020": "node021"}, with_glue=True)
    with pytest.raises(TargetError, match="named-checkzone rejects"):
        reconcile(target, bad)
    assert target.path_of(FWD).read_text() == old


def test_a_zone_without_changes_is_looked_at_again_only_when_its_file_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An apply leaves zones it has no change for alone while their files are as it left
    them; a file someone rewrote (a header edited by hand) is checked and fixed again."""
    target = make_target(tmp_path)
    state = dns_site({"node020": 20, "node021": 21})
    reconcile(target, state)
    rendered = target.path_of(REV).read_text()
    parsed: list[str] = []
    real_parse = parse_zone

    def counting(text: str, *, zone: str, source: str) -> object:
        parsed.append(zone)
        return real_parse(text, zone=zone, source=source)

    monkeypatch.setattr("reconciler.targets.dns_zonefile.parse_zone", counting)
    change = DnsRecord(FWD, f"extra.{FWD}", "A", 300, ("10.23.45.99",))
    desired = [*target.desired(state), change]
    plan = build_target_plan(
        target=target.name, kind=target.kind, desired=desired, live=target.read(desired)
    )
    parsed.clear()
    target.apply(plan.changes)
    # Neither the zone changed (this target wrote it: its records are known) nor the one
    # left alone is parsed.
    assert parsed == [] and "extra.cluster.example." in target.path_of(FWD).read_text()
    target.path_of(REV).write_text(rendered.replace("ns1.cluster.example.", "ns9.example.", 1))
    parsed.clear()
    target.apply([])
    fixed = target.path_of(REV).read_text()
    assert parsed == [REV] and "ns9.example." not in fixed and "ns1.cluster.example." in fixed
    # A record added by hand to a file this target wrote: read again, kept in the rewrite.
    forward = target.path_of(FWD)
    forward.write_text(forward.read_text() + f"byhand.{FWD} 300 IN A 10.23.45.98\n")
    other = DnsRecord(FWD, f"other.{FWD}", "A", 300, ("10.23.45.97",))
    target.apply(build_target_plan(
        target=target.name, kind=target.kind, desired=[*desired, other],
        live=target.read([*desired, other]),
    ).changes)  # fmt: skip
    text = forward.read_text()
    assert f"byhand.{FWD}" in text and f"other.{FWD}" in text and f"extra.{FWD}" in text


def test_a_same_size_edit_with_the_mtime_set_back_is_seen(tmp_path: Path) -> None:
    """In place, same size, mtime restored, right after the write: the ctime or (within a
    clock tick) the text kept gives it away; the zone is read and fixed again."""
    target = make_target(tmp_path)
    reconcile(target, dns_site({"node020": 20}))
    path = target.path_of(REV)
    rendered = path.read_text()
    info = os.stat(path)
    with open(path, "r+") as handle:
        handle.write(rendered.replace("ns1.cluster.example.", "ns9.cluster.example.", 1))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert os.stat(path).st_size == info.st_size
    target.apply([])
    assert path.read_text().count("ns9.cluster.example.") == 0
