"""A hand-made record in the way of a wanted one, on a real named: plan, apply and status say so.

The admin added ``node010 A 10.23.45.99`` by hand before the reconciler ran.
The inventory wants ``node010 A 10.23.45.10`` (and the PTR that points back to
it), so forward and reverse would disagree: that is an error to fix, not a
success. The hand-made record is left alone unless the target adopts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reconciler.config import load_config
from reconciler.sandbox.named import FORWARD_ZONE, REVERSE_ZONE, NamedServer
from reconciler.sandbox.site import git
from reconciler.watch.service import build_loop
from reconciler.watch.status import StatusStore
from tests.unit.site_fixture import EXAMPLE

pytestmark = pytest.mark.integration
RECONCILER = str(Path(sys.executable).with_name("reconciler"))
HELD = f"{FORWARD_ZONE} node010.{FORWARD_ZONE} A"


def write_site(root: Path, named: NamedServer, *, adopt: bool = False) -> Path:
    inventory = root / "inventory"
    shutil.copytree(EXAMPLE, inventory)
    (inventory / "groups" / "gpu.yaml").unlink()  # its reverse zone is not on this named
    git(inventory, "init", "-q", "-b", "main")
    git(inventory, "add", "-A")
    git(inventory, "commit", "-q", "-m", "site")
    config = root / "reconciler.toml"
    config.write_text(
        f"""state_dir = "state"
[source]
repo = "inventory"
rev = "main"
[targets.dns]
type = "dns-rfc2136"
server = "{named.host}"
port = {named.port}
key_file = "{named.key_file}"
timeout = 3
{"adopt = true" if adopt else ""}
[watch]
debounce = 0.02
local_poll_interval = 60
"""
    )
    return config


def reconciler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RECONCILER, *args], capture_output=True, text=True, timeout=120)


def test_a_hand_made_record_in_the_way_fails_plan_apply_and_status(
    named_server: NamedServer, tmp_path: Path
) -> None:
    named_server.hand_update(
        FORWARD_ZONE, [("add", f"node010.{FORWARD_ZONE}", 600, "A 10.23.45.99")]
    )
    config = write_site(tmp_path, named_server)
    plan = reconciler("plan", "-c", str(config))
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert HELD in plan.stderr and "adopt = true" in plan.stderr
    apply = reconciler("apply", "-c", str(config))
    assert apply.returncode == 2, apply.stdout + apply.stderr
    assert HELD in apply.stderr
    # Everything else was applied; the hand-made record was left alone.
    assert named_server.query(f"node011.{FORWARD_ZONE}", "A") == ["10.23.45.11"]
    assert named_server.query(f"node010.{FORWARD_ZONE}", "A") == ["10.23.45.99"]
    assert named_server.query(f"10.{REVERSE_ZONE}", "PTR") == [f"node010.{FORWARD_ZONE}"]

    loop = build_loop(load_config(config), load_config(config).watch)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        store = StatusStore(tmp_path / "state")
        end = time.monotonic() + 60  # a hang guard
        while time.monotonic() < end:
            degraded = store.load().condition("Degraded")
            if degraded is not None and degraded.status:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"not Degraded: {store.load().to_dict()}")
    finally:
        loop.stop()
        thread.join(timeout=30)
    assert HELD in degraded.message
    status = reconciler("status", "-c", str(config))
    assert status.returncode == 2
    assert "Degraded" in status.stdout and HELD in status.stdout
    assert named_server.query(f"node010.{FORWARD_ZONE}", "A") == ["10.23.45.99"]


def test_with_adoption_the_record_is_taken_over(named_server: NamedServer, tmp_path: Path) -> None:
    named_server.hand_update(
        FORWARD_ZONE, [("add", f"node010.{FORWARD_ZONE}", 600, "A 10.23.45.99")]
    )
    config = write_site(tmp_path, named_server, adopt=True)
    apply = reconciler("apply", "-c", str(config))
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert named_server.query(f"node010.{FORWARD_ZONE}", "A") == ["10.23.45.10"]
    assert reconciler("plan", "-c", str(config)).returncode == 0
