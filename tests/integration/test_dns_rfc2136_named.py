"""The dns-rfc2136 target against a real named: AXFR reads, batched signed UPDATEs, ownership."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import RuntimeConfig, SourceConfig
from reconciler.plan import TargetPlan, build_target_plan
from reconciler.resources import DesiredState, DnsRecord, DnsZone
from reconciler.targets.base import ApplyResult, TargetError
from reconciler.targets.dns_rfc2136 import Rfc2136Target, build
from tests.integration.named import KEY_NAME, STATIC_ZONE, NamedServer, write_key_file
from tests.unit.dns_sites import FWD, REV, dns_site

pytestmark = pytest.mark.integration


def make_target(named: NamedServer, tmp_path: Path, **extra: object) -> Rfc2136Target:
    config = RuntimeConfig(
        source=SourceConfig(path=tmp_path), state_dir=tmp_path / "state", base_dir=tmp_path
    )
    settings: dict[str, object] = {
        "server": named.host,
        "port": named.port,
        "key_file": str(named.key_file),
        "timeout": 3,
        **extra,
    }
    return build("dns", settings, config)


def plan_for(target: Rfc2136Target, state: DesiredState) -> TargetPlan:
    desired = target.desired(state)
    return build_target_plan(
        target=target.name, kind=target.kind, desired=desired, live=target.read(desired)
    )


def sync(target: Rfc2136Target, state: DesiredState) -> tuple[TargetPlan, ApplyResult]:
    plan = plan_for(target, state)
    return plan, target.apply(plan.changes)


def test_apply_resolves_and_second_pass_sends_nothing(
    named_server: NamedServer, tmp_path: Path
) -> None:
    target = make_target(named_server, tmp_path)
    state = dns_site({"node020": 20, "node021": 21}, aliases={"login": "node021"})
    plan, result = sync(target, state)
    assert plan.counts["create"] == 5
    assert result.writes == 2  # one message per zone
    assert named_server.query(f"node020.{FWD}", "A") == ["10.23.45.20"]
    assert named_server.query(f"21.{REV}", "PTR") == [f"node021.{FWD}"]
    assert named_server.query(f"login.{FWD}", "CNAME") == [f"node021.{FWD}"]
    plan, result = sync(target, state)
    assert plan.changes == ()
    assert result.writes == 0
    # SOA and NS are the server's: reported unmanaged, never owned.
    assert f"{FWD} {FWD} SOA" in plan.unmanaged and f"{REV} {REV} NS" in plan.unmanaged


def test_rename_readdress_remove_and_ttl(named_server: NamedServer, tmp_path: Path) -> None:
    target = make_target(named_server, tmp_path)
    sync(target, dns_site({"node020": 20, "node021": 21, "node022": 22}))
    # node020 renamed to node030, node021 re-addressed to .31, node022 removed, TTL 60.
    state = dns_site({"node030": 20, "node021": 31}, ttl=60)
    plan, result = sync(target, state)
    assert result.writes == 2  # every change of a zone in one message
    assert named_server.query(f"node020.{FWD}", "A") == []
    assert named_server.query(f"node030.{FWD}", "A") == ["10.23.45.20"]
    assert named_server.query(f"20.{REV}", "PTR") == [f"node030.{FWD}"]
    assert named_server.query(f"node021.{FWD}", "A") == ["10.23.45.31"]
    assert named_server.query(f"21.{REV}", "PTR") == []
    assert named_server.query(f"31.{REV}", "PTR") == [f"node021.{FWD}"]
    assert named_server.query(f"node022.{FWD}", "A") == []
    assert named_server.ttl(f"node030.{FWD}", "A") == 60
    assert sync(target, state)[1].writes == 0
    # A TTL change alone is a change too.
    plan, result = sync(target, dns_site({"node030": 20, "node021": 31}, ttl=120))
    assert plan.counts["update"] == 4 and result.writes == 2
    assert named_server.ttl(f"31.{REV}", "PTR") == 120


def test_hand_made_records_survive_and_are_unmanaged(
    named_server: NamedServer, tmp_path: Path
) -> None:
    target = make_target(named_server, tmp_path)
    named_server.hand_update(FWD, [("add", f"printer.{FWD}", 600, "A 10.23.45.99")])
    named_server.hand_update(REV, [("add", f"99.{REV}", 600, f"PTR printer.{FWD}")])
    for state in (dns_site({"node020": 20}), dns_site({"node021": 21}, ttl=30), dns_site({})):
        plan, _ = sync(target, state)
        assert f"{FWD} printer.{FWD} A" in plan.unmanaged
        assert f"{REV} 99.{REV} PTR" in plan.unmanaged
        assert named_server.query(f"printer.{FWD}", "A") == ["10.23.45.99"]
        assert named_server.query(f"99.{REV}", "PTR") == [f"printer.{FWD}"]
    assert named_server.query(f"ns1.{FWD}", "A") == ["127.0.0.1"]


def test_concurrent_change_is_detected_and_next_pass_converges(
    named_server: NamedServer, tmp_path: Path
) -> None:
    target = make_target(named_server, tmp_path)
    sync(target, dns_site({"node020": 20}))
    plan = plan_for(target, dns_site({"node020": 40, "node021": 21}))
    # Between plan and apply an admin edits a record the plan updates...
    named_server.hand_update(FWD, [("replace", f"node020.{FWD}", 300, "A 10.23.45.77")])
    with pytest.raises(TargetError, match="changed since the plan was read") as caught:
        target.apply(plan.changes)
    assert FWD in str(caught.value) and str(named_server.port) in str(caught.value)
    assert named_server.query(f"node020.{FWD}", "A") == ["10.23.45.77"]  # not overwritten
    assert named_server.query(f"node021.{FWD}", "A") == []  # same message: nothing applied
    # ...and the next pass replans from what is there now and converges.
    sync(target, dns_site({"node020": 40, "node021": 21}))
    assert named_server.query(f"node020.{FWD}", "A") == ["10.23.45.40"]
    assert named_server.query(f"node021.{FWD}", "A") == ["10.23.45.21"]
    assert sync(target, dns_site({"node020": 40, "node021": 21}))[1].writes == 0


def test_concurrent_create_is_detected_and_not_claimed(
    named_server: NamedServer, tmp_path: Path
) -> None:
    target = make_target(named_server, tmp_path)
    plan = plan_for(target, dns_site({"node020": 20}))
    named_server.hand_update(FWD, [("add", f"node020.{FWD}", 300, "A 10.23.45.88")])
    with pytest.raises(TargetError, match="YXRRSET"):
        target.apply(plan.changes)
    assert named_server.query(f"node020.{FWD}", "A") == ["10.23.45.88"]
    assert f"{FWD} node020.{FWD} A" not in target.ledger.load()
    plan, _ = sync(target, dns_site({"node020": 20}))
    assert [c.adopt for c in plan.changes if c.key == f"{FWD} node020.{FWD} A"] == [True]
    assert named_server.query(f"node020.{FWD}", "A") == ["10.23.45.20"]


def test_many_changes_are_batched_and_one_host_is_one_message(
    named_server: NamedServer, tmp_path: Path
) -> None:
    target = make_target(named_server, tmp_path, max_message_bytes=4096)
    hosts = {f"node{i:03d}": i for i in range(1, 251)}
    plan, result = sync(target, dns_site(hosts))
    assert plan.counts["create"] == 500
    assert 2 < result.writes < 20
    assert target.stats.largest_message <= 4096
    assert named_server.query(f"node250.{FWD}", "A") == ["10.23.45.250"]
    assert named_server.query(f"1.{REV}", "PTR") == [f"node001.{FWD}"]
    # One host renamed: A delete + create in the forward zone, PTR update in the reverse.
    hosts["node001x"] = hosts.pop("node001")
    plan, result = sync(target, dns_site(hosts))
    assert plan.counts == {"delete": 1, "create": 1, "update": 1}
    assert result.writes == 2
    # One new alias: ONE message.
    plan, result = sync(target, dns_site(hosts, aliases={"www": "node002"}))
    assert plan.counts["create"] == 1 and result.writes == 1
    assert named_server.query(f"www.{FWD}", "CNAME") == [f"node002.{FWD}"]


def test_alias_colliding_with_hand_made_record_is_a_clear_error(
    named_server: NamedServer, tmp_path: Path
) -> None:
    target = make_target(named_server, tmp_path)
    named_server.hand_update(FWD, [("add", f"login.{FWD}", 600, "A 10.23.45.99")])
    plan = plan_for(target, dns_site({"node020": 20}, aliases={"login": "node020"}))
    with pytest.raises(TargetError, match="CNAME cannot share its name"):
        target.apply(plan.changes)
    assert named_server.query(f"login.{FWD}", "A") == ["10.23.45.99"]


def test_bad_tsig_secret_and_unknown_key(named_server: NamedServer, tmp_path: Path) -> None:
    wrong = write_key_file(
        tmp_path / "wrong.key", name=KEY_NAME, secret="c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTIzNDU2Nzg="
    )
    target = make_target(named_server, tmp_path, key_file=str(wrong))
    with pytest.raises(TargetError, match="TSIG") as caught:
        plan_for(target, dns_site({"node020": 20}))
    assert "c2VjcmV0" not in str(caught.value)
    assert str(named_server.port) in str(caught.value)
    unknown = write_key_file(
        tmp_path / "unknown.key",
        name="nobody",
        secret="c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTIzNDU2Nzg=",
    )
    target = make_target(named_server, tmp_path, key_file=str(unknown))
    with pytest.raises(TargetError, match="rejected TSIG key 'nobody'") as caught:
        plan_for(target, dns_site({"node020": 20}))
    assert REV in str(caught.value)  # zones are read in name order
    # An update signed with a wrong key is refused too (read with the right key).
    good = make_target(named_server, tmp_path)
    plan = plan_for(good, dns_site({"node020": 20}))
    bad = make_target(named_server, tmp_path, key_file=str(wrong))
    with pytest.raises(TargetError, match="TSIG"):
        bad.apply(plan.changes)
    assert named_server.query(f"node020.{FWD}", "A") == []


def test_server_down(named_server: NamedServer, tmp_path: Path) -> None:
    target = make_target(named_server, tmp_path)
    plan = plan_for(target, dns_site({"node020": 20}))
    named_server.stop()
    with pytest.raises(TargetError, match="cannot reach DNS server") as caught:
        target.apply(plan.changes)
    assert f"127.0.0.1:{named_server.port}" in str(caught.value)
    with pytest.raises(TargetError, match="cannot reach DNS server"):
        plan_for(target, dns_site({"node020": 20}))


def test_missing_and_static_zones(named_server: NamedServer, tmp_path: Path) -> None:
    target = make_target(named_server, tmp_path)
    missing = "99.23.10.in-addr.arpa."
    state = DesiredState(
        dns_zones=(DnsZone(FWD, "forward"), DnsZone(missing, "reverse")),
        dns_records=(DnsRecord(missing, f"5.{missing}", "PTR", 300, (f"node005.{FWD}",)),),
    )
    with pytest.raises(TargetError, match=r"99\.23\.10\.in-addr\.arpa\..*(NOTAUTH|REFUSED)") as e:
        plan_for(target, state)
    assert f"127.0.0.1:{named_server.port}" in str(e.value)
    static = DesiredState(
        dns_zones=(DnsZone(STATIC_ZONE, "forward"),),
        dns_records=(DnsRecord(STATIC_ZONE, f"a.{STATIC_ZONE}", "A", 300, ("10.0.0.1",)),),
    )
    plan = plan_for(target, static)  # transfer is allowed, updates are not
    with pytest.raises(TargetError, match=r"REFUSED.*not dynamic"):
        target.apply(plan.changes)


def test_zone_dropped_from_inventory_loses_our_records(
    named_server: NamedServer, tmp_path: Path
) -> None:
    target = make_target(named_server, tmp_path)
    named_server.hand_update(REV, [("add", f"99.{REV}", 600, f"PTR printer.{FWD}")])
    sync(target, dns_site({"node020": 20}))
    forward_only = DesiredState(
        dns_zones=(DnsZone(FWD, "forward"),),
        dns_records=tuple(r for r in dns_site({"node020": 20}).dns_records if r.zone == FWD),
    )
    plan, result = sync(target, forward_only)  # the reverse zone is read through the ledger
    assert plan.counts["delete"] == 1 and result.writes == 1
    assert named_server.query(f"20.{REV}", "PTR") == []
    assert named_server.query(f"99.{REV}", "PTR") == [f"printer.{FWD}"]
    assert sync(target, forward_only)[1].writes == 0
