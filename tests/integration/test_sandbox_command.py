"""``reconciler sandbox`` as a user runs it: the exit codes of a failed check and of Ctrl-C,
and nothing left behind either way (processes, namespaces, the temporary folder)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.sandbox.demo import TOOLS
from reconciler.sandbox.netns import MissingTool, namespaces, require
from tests.integration.leftovers import processes_mentioning

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"
RECONCILER = str(Path(sys.executable).parent / "reconciler")
WHERE = re.compile(r"folder (/\S+); namespaces (\S+) \(server.*?\) and (\S+) \(client\)")


@pytest.fixture
def tools(as_root: None) -> None:
    try:
        require(*TOOLS)
    except MissingTool as error:
        pytest.skip(str(error))


def start(inventory: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [RECONCILER, "sandbox", "--inventory", str(inventory)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )  # fmt: skip


def assert_nothing_left(output: str) -> None:
    where = WHERE.search(output)
    assert where is not None, output
    folder, server, client = where.groups()
    assert not Path(folder).exists(), output
    assert not {server, client} & set(namespaces()), output
    assert processes_mentioning(folder) == [], output


def test_a_failed_check_exits_1_and_leaves_nothing(tools: None, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    shutil.copytree(EXAMPLE, inventory)
    for group in (inventory / "groups").glob("*.yaml"):  # no pool: unknown MACs get nothing
        lines = group.read_text().splitlines(keepends=True)
        group.write_text("".join(line for line in lines if "unregistered_range" not in line))
    sandbox = start(inventory)
    output, _ = sandbox.communicate(timeout=300)
    assert sandbox.returncode == 1, output
    assert "FAIL DHCP before" in output and "8/9 checks passed" in output
    assert_nothing_left(output)


def test_ctrl_c_exits_130_and_leaves_nothing(tools: None) -> None:
    sandbox = start(EXAMPLE)
    assert sandbox.stdout is not None
    seen = []
    deadline = time.monotonic() + 120
    try:
        for line in sandbox.stdout:  # until dhcpd runs: the site is half built
            seen.append(line)
            if "dhcpd: dhcpd.conf written" in line:
                break
            assert time.monotonic() < deadline, "".join(seen)
        os.killpg(sandbox.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        rest, _ = sandbox.communicate(timeout=120)
    finally:
        if sandbox.poll() is None:
            sandbox.kill()
            sandbox.wait(timeout=30)
    output = "".join(seen) + rest
    assert sandbox.returncode == 130, output
    assert "interrupted: cleaning up" in output and "cleaned up" in output
    assert_nothing_left(output)
