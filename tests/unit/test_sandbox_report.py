"""The sandbox's bookkeeping without root: exit codes, the time budget, what is printed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from reconciler.sandbox.demo import SandboxReport, exit_code
from reconciler.sandbox.steps import Budget, Check, Narrator


def test_exit_codes() -> None:
    passed = Check("DHCP", True, "got 10.23.45.21")
    failed = Check("DNS A", False, "no answer")
    assert exit_code(SandboxReport(checks=[passed])) == 0
    assert exit_code(SandboxReport(checks=[passed, failed])) == 1
    assert exit_code(SandboxReport(error="MissingTool: not installed: /usr/sbin/named")) == 2
    assert exit_code(SandboxReport(checks=[passed], error="TimeoutError: budget")) == 1
    assert exit_code(SandboxReport(checks=[passed], interrupted=True, error="interrupted")) == 130
    assert not SandboxReport().ok  # no checks ran: not a success


def test_budget_caps_each_wait_and_runs_out() -> None:
    budget = Budget(5)
    assert budget.left(1) == 1
    assert 4 < budget.left(30) <= 5
    with pytest.raises(TimeoutError, match="budget"):
        Budget(0).left(1)


def test_narrator_prints_checks_and_summary() -> None:
    out = io.StringIO()
    say = Narrator(out)
    say.check(Check("DHCP", True, "got 10.23.45.21", after_commit=0.25))
    say.check(Check("TFTP", False, "refused"))
    say.summary([Check("DHCP", True, ""), Check("TFTP", False, "")], latency=0.1, error=None)
    text = out.getvalue()
    assert "PASS DHCP: got 10.23.45.21  (+0.25 s after the commit)" in text
    assert "FAIL TFTP: refused" in text
    assert "1/2 checks passed; commit applied by the watch loop in 0.10 s" in text


def test_cli_refuses_a_folder_that_is_not_an_inventory(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from reconciler.cli import app

    result = CliRunner().invoke(app, ["sandbox", "--inventory", str(tmp_path)])
    assert result.exit_code == 2
    assert "not an inventory folder" in result.output
