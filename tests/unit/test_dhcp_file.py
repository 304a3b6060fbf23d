"""The dhcp-file target: ownership, hand-made hosts kept, no write when nothing changed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reconciler.config import ConfigError, RuntimeConfig, SourceConfig
from reconciler.plan import TargetPlan, build_target_plan
from reconciler.resources import DesiredState, DhcpHost
from reconciler.targets.base import Action, ApplyResult
from reconciler.targets.dhcp_file import DhcpFileTarget, build

HAND = "host printer {\n  hardware ethernet aa:bb:cc:dd:ee:ff;\n  fixed-address 10.0.0.9;\n}"


def host(index: int, *, ip: str | None = None) -> DhcpHost:
    mac = f"52:54:00:12:34:{index:02x}"
    return DhcpHost(
        f"node{index:03d}", mac, ip or f"10.23.45.{index}", "compute", f"ipxe/{index}.ipxe"
    )


@pytest.fixture
def target(tmp_path: Path) -> DhcpFileTarget:
    config = RuntimeConfig(source=SourceConfig(path=tmp_path), state_dir=Path("state"))
    config = config.model_copy(update={"base_dir": tmp_path})
    built = build("hosts", {"path": "dhcpd.hosts.conf"}, config)
    assert built.path == tmp_path / "dhcpd.hosts.conf"
    return built


def sync(target: DhcpFileTarget, hosts: list[DhcpHost]) -> tuple[TargetPlan, ApplyResult]:
    desired = target.desired(DesiredState(dhcp_hosts=tuple(hosts)))
    plan = build_target_plan(
        target=target.name, kind=target.kind, desired=desired, live=target.read(desired)
    )
    return plan, target.apply(plan.changes)


def test_settings_are_checked(tmp_path: Path) -> None:
    config = RuntimeConfig(source=SourceConfig(path=tmp_path))
    with pytest.raises(ConfigError, match=r"targets\.hosts\.path"):
        build("hosts", {}, config)
    with pytest.raises(ConfigError, match=r"targets\.hosts\.colour"):
        build("hosts", {"path": "x", "colour": "red"}, config)


def test_create_then_nothing_to_do(target: DhcpFileTarget) -> None:
    plan, result = sync(target, [host(20), host(21)])
    assert plan.counts["create"] == 2 and result.writes == 1
    plan, result = sync(target, [host(20), host(21)])
    assert plan.changes == () and result.writes == 0


def test_hand_made_hosts_are_unmanaged_and_kept(target: DhcpFileTarget) -> None:
    target.path.write_text(HAND + "\n")
    plan, result = sync(target, [host(20)])
    assert plan.unmanaged == ("printer",) and result.writes == 1
    assert HAND in target.path.read_text()
    plan, result = sync(target, [])
    assert [(c.action, c.key) for c in plan.changes] == [(Action.DELETE, "node020")]
    text = target.path.read_text()
    assert HAND in text and "node020" not in text


def test_update_and_adopt(target: DhcpFileTarget) -> None:
    sync(target, [host(20)])
    plan, result = sync(target, [host(20, ip="10.23.45.99")])
    assert [c.action for c in plan.changes] == [Action.UPDATE] and result.writes == 1
    assert "fixed-address 10.23.45.99;" in target.path.read_text()
    # A hand-made block under a name we now want is adopted, not duplicated.
    target.path.write_text(target.path.read_text() + HAND.replace("printer", "node021") + "\n")
    plan, _ = sync(target, [host(20, ip="10.23.45.99"), host(21)])
    assert [(c.action, c.adopt) for c in plan.changes] == [(Action.UPDATE, True)]
    assert target.path.read_text().count("host node021 ") == 1
    plan, result = sync(target, [host(20, ip="10.23.45.99"), host(21)])
    assert plan.changes == () and result.writes == 0


def test_group_change_is_an_update(target: DhcpFileTarget) -> None:
    sync(target, [host(20)])
    plan, _ = sync(target, [dataclasses.replace(host(20), group="gpu")])
    assert [c.action for c in plan.changes] == [Action.UPDATE]


def test_ten_thousand_hosts_read_back_exactly(target: DhcpFileTarget) -> None:
    hosts = [
        DhcpHost(
            f"n{i:05d}",
            f"52:54:00:00:{i >> 8:02x}:{i & 255:02x}",
            f"10.1.{i >> 8}.{i & 255}",
            "compute",
            f"ipxe/{i}.ipxe",
        )
        for i in range(10_000)
    ]
    sync(target, hosts)
    live = target.read(hosts)  # its speed: bench/bench_readers.py
    assert sorted(live.owned.values(), key=lambda h: h.key) == hosts
    plan, result = sync(target, hosts)
    assert plan.changes == () and result.writes == 0


def test_a_hand_copied_block_of_ours_is_read_last_one_wins(target: DhcpFileTarget) -> None:
    sync(target, [host(20), host(21)])
    text = target.path.read_text()
    copied = text.split("host node021", 1)[0].split("host node020", 1)[1]  # node020's block
    changed = "host node020" + copied.replace("10.23.45.20;", "10.23.45.99;")
    target.path.write_text(text + changed)
    live = target.read(target.desired(DesiredState(dhcp_hosts=(host(20), host(21)))))
    assert list(live.owned) == ["node020", "node021"] and live.unmanaged == {}
    assert live.owned["node020"] == host(20, ip="10.23.45.99")
    target.path.write_text(text + HAND + "\n")
    live = target.read([])
    assert list(live.owned) == ["node020", "node021"] and list(live.unmanaged) == ["printer"]
