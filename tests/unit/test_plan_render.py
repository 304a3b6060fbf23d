"""Update lines say which fields change; unsafe plans are flagged in text and Markdown."""

from __future__ import annotations

from reconciler.plan import Plan, build_target_plan
from reconciler.render import render_markdown, render_text
from reconciler.resources import AnyResource, DhcpHost
from reconciler.targets.base import LiveState


def test_update_line_names_the_changed_fields_only() -> None:
    old = DhcpHost("node020", "52:54:00:00:00:14", "10.0.0.20", "compute", "ipxe/a.ipxe")
    new = DhcpHost("node020", "52:54:00:00:00:99", "10.0.0.20", "compute", "ipxe/a.ipxe")
    target = build_target_plan(
        target="dhcp", kind="dhcp-file", desired=[new], live=LiveState(owned={"node020": old})
    )
    text = render_text(Plan("rev", (target,)))
    assert "~ node020: mac 52:54:00:00:00:14 -> 52:54:00:00:00:99" in text
    assert "ip" not in text.split("~ node020:")[1].splitlines()[0]


def test_unsafe_plan_is_flagged() -> None:
    owned: dict[str, AnyResource] = {
        f"n{i}": DhcpHost(f"n{i}", f"52:54:00:00:00:{i:02x}", f"10.0.0.{i}", "g", "x")
        for i in range(10)
    }
    target = build_target_plan(
        target="dhcp", kind="dhcp-file", desired=[], live=LiveState(owned=owned)
    )
    plan = Plan("rev", (target,))
    assert "needs --force" in render_text(plan)
    assert "--force" in render_markdown(plan)
