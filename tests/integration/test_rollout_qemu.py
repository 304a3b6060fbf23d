"""A rollout over two real nodes: qemu VMs running the real agent, ``reconciler watch`` deciding.

Two busybox-init nodes (node020, node021) carrying python3 and the agent boot
through the project's initramfs on the node lab's bridge (tests/integration/
node_lab.py: dhcpd, serve, image store in a namespace). Their group has
``rollout: {waves: [1, 100%], max_unavailable: 1, on_failure: rollback}`` and
``reconciler watch`` runs beside serve. An image change committed to git goes
to node020 first; only after its agent swapped and reported does node021 get
it. A second change whose health check fails stops after node020 (its agent
switches back by itself and reports ``rolled-back``), the rollout is
RolledBack, and node021 is never told the failing version.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox.netns import wait_for
from tests.integration import node_lab as lab_module
from tests.integration.boot_site import RECONCILER, SERVE_URL, watching
from tests.integration.node_images import MARKER, busybox_image
from tests.integration.node_lab import (
    BOOT_TIMEOUT,
    NODE,
    NODE_MAC,
    NodeBoots,
    NodeLab,
    NodeVM,
)
from tests.integration.pxe_machine import add_tap

NODE2, NODE2_MAC = "node021", "52:54:00:12:34:15"
SWAP_TIMEOUT = 240  # TCG on a shared machine: staging, sha256 and a root switch; a hang guard
POLICY = 'rollout: {waves: [1, "100%"], max_unavailable: 1, timeout: 10m, on_failure: rollback}\n'
ONE_NODE_GROUP = lab_module.group_yaml


def two_node_group(version: str) -> str:
    return ONE_NODE_GROUP(version) + f'  - index: 21\n    mac: "{NODE2_MAC}"\n' + POLICY


def commit(lab: NodeLab, version: str) -> None:
    (lab.repo / "groups" / "compute.yaml").write_text(two_node_group(version))
    lab._git("add", "-A")
    lab._git("commit", "-qm", f"compute runs node@{version}")


def report(lab: NodeLab, host: str) -> dict[str, object]:
    try:
        return dict(json.loads((lab.workdir / "state" / "reports" / f"{host}.json").read_text()))
    except (OSError, ValueError):
        return {}


def last_swap(lab: NodeLab, host: str) -> dict[str, object]:
    swap = report(lab, host).get("last_swap")
    return dict(swap) if isinstance(swap, dict) else {}


def assigned(lab: NodeLab, host: str) -> str | None:
    text = lab.get(f"{SERVE_URL}/nodes/{host}.json")
    return str(json.loads(text)["version"]) if text else None


def kernel_args(lab: NodeLab, mac: str) -> str:
    script = lab.get(f"{SERVE_URL}/boot/{mac}") or ""
    line = next(ln for ln in script.splitlines() if ln.startswith("kernel "))
    return " ".join(w for w in line.split()[2:] if not w.startswith("initrd="))


def second_tap(lab: NodeLab) -> str:
    """A second tap on the lab's bridge, for node021."""
    shown = subprocess.run(
        ["ip", "-j", "-n", lab.pair.client, "link", "show", "dev", lab.tap],
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    bridge = json.loads(shown.stdout)[0]["master"]
    tap = lab.tap[:-1] + ("b" if lab.tap[-1] != "b" else "c")
    add_tap(lab.pair, tap=tap, bridge=bridge)
    return tap


def wait(
    lab: NodeLab, predicate: Callable[[], bool], what: str, timeout: float = SWAP_TIMEOUT
) -> None:
    try:
        wait_for(predicate, timeout=timeout, interval=0.5, what=what)
    except TimeoutError as error:
        logs = "".join(
            f"--- {name}\n{(lab.workdir / name).read_text()[-2500:]}\n"
            for name in ("watch.log", "serve.log")
        )
        raise AssertionError(
            f"{error}\n{NODE}: {report(lab, NODE)}\n{NODE2}: {report(lab, NODE2)}\n{logs}"
        ) from None


def rollout_status(lab: NodeLab) -> dict[str, Any]:
    shown = subprocess.run(
        [RECONCILER, "rollout", "status", "compute",
         "--format", "json", "--config", str(lab.config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    (row,) = json.loads(shown.stdout)
    return dict(row)


def test_two_real_nodes_move_one_after_the_other_and_a_failing_image_rolls_back(
    node_lab: NodeLab, node_boots: NodeBoots, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = node_lab
    monkeypatch.setattr(lab_module, "group_yaml", two_node_group)
    boot = node_boots.running
    images = {
        "1": busybox_image("1", agent=True),
        "2": busybox_image("2", agent=True),
        "3-unhealthy": busybox_image("3-unhealthy", agent=True, failing_health=True),
    }
    for version, rootfs in images.items():
        lab.add_version(version, rootfs=rootfs, boot=boot)
    lab.start("1")
    with lab.config.open("a") as config:
        config.write("[watch]\ndebounce = 0.05\nlocal_poll_interval = 1\nrollout_interval = 1\n")
    lab._stack.enter_context(watching(lab.pair, config=lab.config, log=lab.workdir / "watch.log"))
    tap2 = second_tap(lab)
    first = NodeVM(lab, boot=boot, append=kernel_args(lab, NODE_MAC),
                   console=tmp_path / "node020.log")  # fmt: skip
    second = NodeVM(lab, boot=boot, append=kernel_args(lab, NODE2_MAC),
                    console=tmp_path / "node021.log", mac=NODE2_MAC, tap=tap2)  # fmt: skip
    with first, second:
        first.wait_console(f"{MARKER} version=1 ", timeout=BOOT_TIMEOUT)
        second.wait_console(f"{MARKER} version=1 ", timeout=BOOT_TIMEOUT)
        for host in (NODE, NODE2):

            def runs_version_1(h: str = host) -> bool:
                return report(lab, h).get("version") == "1"

            wait(lab, runs_version_1, f"{host} on 1")

        # 1. node@2: node020 first; node021 only once node020 reported it runs 2, healthy.
        commit(lab, "2")
        wait(lab, lambda: assigned(lab, NODE) == "2", "node020 assigned 2", timeout=60)
        deadline = time.monotonic() + SWAP_TIMEOUT
        while report(lab, NODE).get("version") != "2":
            assert assigned(lab, NODE2) == "1", "node021 moved before node020 reported"
            assert time.monotonic() < deadline, f"node020 did not report 2: {report(lab, NODE)}"
            time.sleep(0.3)
        wait(lab, lambda: report(lab, NODE2).get("version") == "2", "node021 on 2")
        assert last_swap(lab, NODE2).get("result") == "ok", report(lab, NODE2)
        wait(lab, lambda: rollout_status(lab)["phase"] == "Complete", "Complete", timeout=60)

        # 2. node@3-unhealthy: node020's health check fails, it comes back on 2 by
        #    itself; the rollout rolls back and node021 is never told 3-unhealthy.
        commit(lab, "3-unhealthy")
        wait(lab, lambda: assigned(lab, NODE) == "3-unhealthy", "node020 assigned 3", timeout=60)
        wait(
            lab,
            lambda: rollout_status(lab)["phase"] == "RolledBack",
            "the rollout to roll back",
        )
        row = rollout_status(lab)
        assert list(row["failures"]) == [NODE], row
        reason = str(row["failures"][NODE])
        assert "came back on node@2" in reason or "health check failed" in reason, row
        wait(lab, lambda: assigned(lab, NODE) == "2", "node020 assigned 2 again", timeout=60)
        assert assigned(lab, NODE2) == "2"
        # The agent reports the failed check on 3-unhealthy, then its switch back to 2.
        wait(
            lab,
            lambda: (
                report(lab, NODE).get("version") == "2"
                and last_swap(lab, NODE).get("result") == "rolled-back"
            ),
            "node020 reporting its switch back to 2",
        )
        assert "always-fails" in json.dumps(last_swap(lab, NODE))
        assert report(lab, NODE2)["version"] == "2"
        assert f"{MARKER} version=3-unhealthy" in first.text()
        assert "version=3-unhealthy" not in second.text()
