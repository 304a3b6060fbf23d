"""Diff order, determinism, adoption, safety threshold and checksums of plans."""

from __future__ import annotations

from reconciler.plan import Plan, build_target_plan, compute_changes
from reconciler.render import render_json, render_markdown, render_text
from reconciler.resources import AnyResource, DhcpHost
from reconciler.targets.base import Action, LiveState


def dhcp(name: str, ip: str, mac: str = "52:54:00:00:00:01") -> DhcpHost:
    return DhcpHost(name, mac, ip, "compute", f"ipxe/{name}.ipxe")


def test_changes_are_ordered_deletes_creates_updates_then_by_key() -> None:
    live = LiveState(
        owned={"b": dhcp("b", "10.0.0.2"), "z": dhcp("z", "10.0.0.9"), "a": dhcp("a", "10.0.0.1")}
    )
    desired = [dhcp("y", "10.0.0.8"), dhcp("a", "10.0.0.5"), dhcp("c", "10.0.0.3")]
    changes = compute_changes(desired, live)
    assert [(c.action, c.key) for c in changes] == [
        (Action.DELETE, "b"),
        (Action.DELETE, "z"),
        (Action.CREATE, "c"),
        (Action.CREATE, "y"),
        (Action.UPDATE, "a"),
    ]


def test_diff_is_deterministic_whatever_the_input_order() -> None:
    hosts = [dhcp(f"n{i}", f"10.0.0.{i}") for i in range(1, 30)]
    live = LiveState(owned={h.key: h for h in hosts[:10]})
    first = compute_changes(hosts, live)
    second = compute_changes(list(reversed(hosts)), live)
    assert first == second


def test_equal_state_has_no_changes() -> None:
    hosts = [dhcp(f"n{i}", f"10.0.0.{i}") for i in range(1, 5)]
    assert compute_changes(hosts, LiveState(owned={h.key: h for h in hosts})) == ()


def test_unmanaged_objects_are_never_deleted_but_adopted_when_wanted() -> None:
    foreign = dhcp("handmade", "10.0.0.50")
    wanted_foreign = dhcp("n1", "10.0.0.1")
    live = LiveState(owned={}, unmanaged={"handmade": foreign, "n1": wanted_foreign})
    changes = compute_changes([dhcp("n1", "10.0.0.2")], live)
    assert [(c.action, c.key, c.adopt) for c in changes] == [(Action.UPDATE, "n1", True)]
    plan = build_target_plan(target="t", kind="k", desired=[dhcp("n1", "10.0.0.2")], live=live)
    assert plan.unmanaged == ("handmade",)


def _plan_with(deletes: int, owned: int) -> Plan:
    hosts: dict[str, AnyResource] = {
        f"n{i:02d}": dhcp(f"n{i:02d}", f"10.0.0.{i}") for i in range(owned)
    }
    keep = list(hosts.values())[deletes:]
    target = build_target_plan(
        target="dhcp", kind="dhcp-file", desired=keep, live=LiveState(owned=hosts)
    )
    return Plan("rev", (target,))


def test_safety_refuses_more_than_30_percent_of_owned() -> None:
    assert _plan_with(deletes=3, owned=10).unsafe_targets() == []
    assert [t.target for t in _plan_with(deletes=4, owned=10).unsafe_targets()] == ["dhcp"]


def test_safety_does_not_apply_below_ten_owned_objects() -> None:
    assert _plan_with(deletes=9, owned=9).unsafe_targets() == []


def test_checksum_changes_with_content_and_is_stable() -> None:
    one, same = _plan_with(deletes=1, owned=10), _plan_with(deletes=1, owned=10)
    other = _plan_with(deletes=2, owned=10)
    assert one.checksum == same.checksum
    assert one.checksum != other.checksum
    assert len(one.checksum) == 64


def test_renderers_show_every_change() -> None:
    plan = _plan_with(deletes=2, owned=10)
    text, markdown, body = render_text(plan), render_markdown(plan), render_json(plan)
    for rendered in (text, markdown, body):
        assert "n00" in rendered and "n01" in rendered
    assert "2 to delete" in text and plan.checksum in text
    assert "| - | `n00` |" in markdown
    assert '"action": "delete"' in body


def test_without_adoption_a_hand_made_object_is_a_conflict_left_alone() -> None:
    foreign = dhcp("n1", "10.0.0.1")
    same = dhcp("n2", "10.0.0.2")
    live = LiveState(owned={}, unmanaged={"n1": foreign, "n2": same})
    desired = [dhcp("n1", "10.0.0.9"), same, dhcp("n3", "10.0.0.3")]
    plan = build_target_plan(target="t", kind="k", desired=desired, live=live, adopt=False)
    assert [(c.action, c.key) for c in plan.changes] == [(Action.CREATE, "n3")]
    assert plan.conflicts == ("n1",)
    text = render_text(Plan("rev", (plan,)))
    assert "set adopt = true" in text and "n1" in text
