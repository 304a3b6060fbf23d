"""``reconciler sandbox --dhcp kea``: the same end-to-end proof with Kea and PostgreSQL.

Runs the demo in-process with Kea, its control agent and a private PostgreSQL
cluster instead of dhcpd, then checks every check passed (the new host's
address and name from Kea, with Kea never restarted) and that nothing it
started is left: namespaces, processes, the sandbox folder and the
database's folder.
"""

from __future__ import annotations

import io

import pytest

from reconciler.sandbox.demo import KEA_TOOLS, exit_code, run
from reconciler.sandbox.netns import MissingTool, namespaces, require
from reconciler.sandbox.postgres import pg_bindir
from tests.integration.leftovers import alive, processes_mentioning
from tests.integration.test_sandbox_demo import EXAMPLE, EXPECTED

pytestmark = pytest.mark.integration


def test_sandbox_with_kea_applies_a_commit_live_and_leaves_nothing_behind(as_root: None) -> None:
    try:
        require(*KEA_TOOLS)
        pg_bindir()
    except MissingTool as error:
        pytest.skip(str(error))
    out = io.StringIO()
    report = run(example=EXAMPLE, out=out, dhcp="kea")
    printed = out.getvalue()

    assert report.error is None, printed
    assert exit_code(report) == 0, printed
    assert {c.name for c in report.checks} == EXPECTED, printed
    assert all(c.ok for c in report.checks), printed
    assert "Kea was not restarted" in printed and "Kea's host database" in printed
    assert "9/9 checks passed" in printed

    # Only what this run made is looked at (its pids, its folders), so another run on the
    # same host, or any other PostgreSQL, does not count as a leftover of this one.
    assert not set(report.namespaces) & set(namespaces())
    assert report.pids and not [pid for pid in report.pids if alive(pid)]
    names = [folder.name for folder in report.folders]
    assert report.workdir in report.folders and any(n.startswith("reconciler-pg-") for n in names)
    for folder in report.folders:  # the postmaster names its data folder in its command line
        assert not folder.exists(), folder
        assert processes_mentioning(str(folder)) == [], folder
