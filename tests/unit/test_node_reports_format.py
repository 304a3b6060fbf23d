"""The report format serve keeps: known keys only, checked, bounded; counts per version/state."""

from __future__ import annotations

import pytest

from reconciler.server.nodereports import (
    ReportError,
    normalize_report,
    render_nodes_text,
    summarize,
)


def body(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"host": "n1", "state": "running", "image": "c", "version": "2"}
    base.update(changes)
    return base


def test_unknown_keys_are_dropped_and_long_values_cut() -> None:
    checks = [{"name": f"c{i}", "ok": True, "output": "x" * 5000} for i in range(100)]
    report = normalize_report(
        "n1", body(extra=1, boot_id="b" * 1000, health={"ok": True, "checks": checks})
    )
    assert "extra" not in report and len(report["boot_id"]) == 200
    assert len(report["health"]["checks"]) == 32
    assert len(report["health"]["checks"][0]["output"]) == 2000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"host": "n2"}, "posted for 'n1'"),
        ({"state": "fine"}, "'state' must be one of"),
        ({"version": 2}, "'version' must be a string"),
        ({"health": {"ok": "yes"}}, "'health.ok' must be true or false"),
        ({"last_swap": {"method": "teleport", "result": "ok"}}, "'last_swap.method'"),
        ({"last_swap": {"method": "kexec", "result": "ok", "downtime_s": -1}}, "downtime_s"),
        ({"refused": "all"}, "'refused' must be a list"),
    ],
)
def test_wrong_reports_are_refused_with_the_field_named(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ReportError, match=message.replace("(", r"\(")):
        normalize_report("n1", body(**changes))


def test_summary_counts_versions_states_and_silent_nodes() -> None:
    reports = {
        "n1": {**body(), "received_at": 1000.0},
        "n2": {**body(host="n2", state="failed", last_swap={"reason": "health"}),
               "received_at": 1000.0},
        "n3": {**body(host="n3", version="1"), "received_at": 0.0},
    }  # fmt: skip
    summary = summarize(reports, now=1100.0)
    assert summary["by_version"] == {"c@1": 1, "c@2": 2}
    assert summary["by_state"] == {"failed": 1, "running": 1, "silent": 1}
    assert [a["host"] for a in summary["attention"]] == ["n2", "n3"]
    text = render_nodes_text(summary)
    assert "3 reporting" in text and "n2 failed on c@2: health" in text
    assert render_nodes_text(summarize({})) == "nodes:      no agent has reported yet\n"
