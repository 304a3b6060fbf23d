"""The agent on a real node: git says which image, the node moves to it the least disruptive way.

A busybox-init node carrying python3 and the agent (``reconciler image
install-agent``) boots through the project's initramfs; each step commits a new
assignment for it to the inventory and applies it, and the node's agent,
long-polling ``reconciler serve``, does the rest: a root switch for the same
kernel, refusals that leave the running service alone, a rollback when a
health check fails, and kexec when the kernel changed. What the agent reports
is checked where a user sees it: ``reconciler status``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.sandbox.netns import wait_for
from tests.integration.node_images import MARKER, busybox_image, systemd_image
from tests.integration.node_lab import (
    BOOT_TIMEOUT,
    NODE_IP,
    NodeBoots,
    NodeLab,
    NodeVM,
    report_of,
    sha256_of,
    status_text,
    version_of,
    wait_version,
)

SWAP_TIMEOUT = 240  # the agent long-polls, stages (sha256 in TCG) and swaps: a hang guard


class Watcher:
    """Polls the node's version service every 0.2 s in a thread; records what it saw."""

    def __init__(self, lab: NodeLab) -> None:
        self.lab = lab
        self.answers: list[tuple[float, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = version_of(self.lab.node(timeout=1)).get("version")
            self.answers.append((time.monotonic(), answer))
            self._stop.wait(0.2)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def versions(self) -> set[str | None]:
        return {answer for _, answer in self.answers}

    def longest_gap(self) -> float:
        """Longest time between two answers (any version)."""
        times = [when for when, answer in self.answers if answer is not None]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


Report = dict[str, object]


def last_swap(report: Report) -> dict[str, object]:
    swap = report.get("last_swap")
    return dict(swap) if isinstance(swap, dict) else {}


def wait_report(lab: NodeLab, predicate: Callable[[Report], bool], what: str) -> Report:
    found: dict[str, object] = {}

    def matches() -> bool:
        nonlocal found
        found = report_of(lab)
        return bool(found) and predicate(found)

    try:
        wait_for(matches, timeout=SWAP_TIMEOUT, interval=0.5, what=what)
    except TimeoutError as error:
        raise TimeoutError(f"{error}; last report: {json.dumps(found)}") from None
    return found


def refused_versions(report: dict[str, object]) -> dict[str, str]:
    refused = report.get("refused") or []
    assert isinstance(refused, list)
    return {str(item.get("version")): str(item.get("reason")) for item in refused}


def test_agent_switches_root_refuses_bad_versions_rolls_back_and_kexecs(
    node_lab: NodeLab, node_boots: NodeBoots, tmp_path: Path
) -> None:
    lab = node_lab
    boot, other_boot = node_boots.running, node_boots.other
    images = {
        "1": busybox_image("1", agent=True, kexec=True),
        "2": busybox_image("2", agent=True, kexec=True),
        "3-noinit": busybox_image("3-noinit", agent=True, init=False),
        "4-tampered": busybox_image("4-tampered", agent=True),
        "5-unhealthy": busybox_image("5-unhealthy", agent=True, failing_health=True),
        "6-kernel": busybox_image("6-kernel", agent=True, kexec=True),
    }
    for version, rootfs in images.items():
        lab.add_version(version, rootfs=rootfs, boot=other_boot if version == "6-kernel" else boot)
    lab.start("1")
    # The store serves other bytes than the inventory pins for 4-tampered.
    (lab.store / "4-tampered" / "rootfs").write_bytes(images["2"].read_bytes())

    with NodeVM(lab, boot=boot, append=lab.kernel_args(), console=tmp_path / "c.log") as vm:
        vm.wait_console(f"{MARKER} version=1 ", timeout=BOOT_TIMEOUT)
        first = wait_version(lab, "1", timeout=60)
        wait_report(lab, lambda r: r.get("version") == "1", "the agent's first report")

        # 1. Same kernel: a root switch. Same boot, same address; the old image's RAM is freed.
        lab.assign("2")
        second = wait_version(lab, "2", timeout=SWAP_TIMEOUT)
        assert (second["boot_id"], second["ip"]) == (first["boot_id"], NODE_IP)
        report = wait_report(
            lab, lambda r: r.get("version") == "2" and r.get("state") == "running", "node@2"
        )
        swap = last_swap(report)
        assert (swap["method"], swap["result"]) == ("switch-root", "ok"), swap
        old_stage = f"/run/reconciler/stage/{sha256_of(images['1'])}"
        wait_for(
            lambda: "gone" in lab.run_on_node(f"test -e {old_stage} || echo gone"),
            timeout=60, interval=1, what="the old stage to be released",
        )  # fmt: skip
        loops = lab.run_on_node("cat /sys/block/loop*/loop/backing_file 2>/dev/null")
        assert sha256_of(images["1"]) not in loops and sha256_of(images["2"]) in loops
        assert "node@2 1" in status_text(lab)

        # 2. No /sbin/init, then a rootfs that does not match its sha256: both refused while
        #    the node's service keeps answering from the running image.
        with Watcher(lab) as watcher:
            for version, reason in (("3-noinit", "init"), ("4-tampered", "sha256")):
                lab.assign(version)

                def refused_now(report: Report, version: str = version) -> bool:
                    return version in str(report.get("refused"))

                report = wait_report(lab, refused_now, f"{version} refused")
                refused = refused_versions(report)
                assert any(version in key and reason in text for key, text in refused.items())
        assert watcher.versions() - {None} == {"2"}, watcher.answers  # None: a slow poll
        assert watcher.longest_gap() < 10, watcher.answers  # TCG on a loaded host: slow answers
        assert report.get("version") == "2"
        text = status_text(lab)
        assert "refused" in text and "4-tampered" in text

        # 3. A version whose health check fails: swapped to, then back to the old one.
        lab.assign("5-unhealthy")
        report = wait_report(
            lab, lambda r: last_swap(r).get("result") == "rolled-back", "the rollback"
        )
        assert "always-fails" in json.dumps(report["last_swap"])
        back = wait_version(lab, "2", timeout=SWAP_TIMEOUT)
        assert back["boot_id"] == first["boot_id"]
        assert f"{MARKER} version=5-unhealthy" in vm.text()  # it did run, briefly

        # 4. Kernel changed: kexec into it (a new boot, no firmware), same address.
        lab.assign("6-kernel")
        third = wait_version(lab, "6-kernel", timeout=SWAP_TIMEOUT)
        assert third["boot_id"] != first["boot_id"] and third["ip"] == NODE_IP
        assert third["kernel"] == other_boot.release
        report = wait_report(
            lab, lambda r: r.get("version") == "6-kernel" and bool(r.get("last_swap")), "kexec"
        )
        assert last_swap(report)["method"] == "kexec", report
        assert "SeaBIOS" not in vm.text()[vm.text().index("version=5-unhealthy") :]


def test_agent_reboots_into_a_new_kernel_when_kexec_is_unavailable(
    node_lab: NodeLab, node_boots: NodeBoots, tmp_path: Path
) -> None:
    """No kexec in the image: the agent reboots, and the node PXE boots its new assignment."""
    lab = node_lab
    other_boot = node_boots.other
    lab.add_version("1", rootfs=busybox_image("1", agent=True), boot=node_boots.running)
    lab.add_version("2-kernel", rootfs=busybox_image("2-kernel", agent=True), boot=other_boot)
    lab.start("1")
    with NodeVM(lab, boot=None, console=tmp_path / "c.log", allow_reboot=True) as vm:
        vm.wait_console(f"{MARKER} version=1 ", timeout=BOOT_TIMEOUT)
        first = wait_version(lab, "1", timeout=60)
        wait_report(lab, lambda r: r.get("version") == "1", "the agent's first report")
        lab.assign("2-kernel")
        second = wait_version(lab, "2-kernel", timeout=SWAP_TIMEOUT + BOOT_TIMEOUT)
        assert second["boot_id"] != first["boot_id"] and second["ip"] == NODE_IP
        assert second["kernel"] == other_boot.release
        after_first_boot = vm.text()[vm.text().index(f"{MARKER} version=1 ") :]
        assert "iPXE" in after_first_boot  # the firmware ran again: a real reboot
        wait_report(lab, lambda r: r.get("version") == "2-kernel", "the report from 2-kernel")


def test_systemd_node_moves_to_a_new_root_with_soft_reboot(
    node_lab: NodeLab, node_boots: NodeBoots, tmp_path: Path
) -> None:
    """systemd >= 254 (debootstrap'd, cached): same kernel, ``systemctl soft-reboot``."""
    lab = node_lab
    boot = node_boots.running
    for version in ("s1", "s2"):
        lab.add_version(version, rootfs=systemd_image(version), boot=boot)
    lab.start("s1")
    with NodeVM(
        lab, boot=boot, append=lab.kernel_args(), memory=1024,
        console=tmp_path / "c.log",
    ) as vm:  # fmt: skip
        vm.wait_console(f"{MARKER} version=s1 ", timeout=BOOT_TIMEOUT * 2)
        first = wait_version(lab, "s1", timeout=120)
        wait_report(lab, lambda r: r.get("version") == "s1", "the agent's first report")
        lab.assign("s2")
        second = wait_version(lab, "s2", timeout=SWAP_TIMEOUT)
        assert (second["boot_id"], second["ip"]) == (first["boot_id"], NODE_IP)
        report = wait_report(
            lab, lambda r: r.get("version") == "s2" and bool(r.get("last_swap")), "soft-reboot"
        )
        assert (last_swap(report)["method"], last_swap(report)["result"]) == (
            "soft-reboot", "ok",
        ), report  # fmt: skip
