"""The agent's decisions on a fake node: compare, refuse, choose a swap, roll back, report."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.agent.agent import Agent, Settings
from reconciler.agent.assignment import Assignment, AssignmentError, parse_assignment
from reconciler.agent.client import Fetched, ServerError
from reconciler.agent.ladder import Capabilities, choose_method
from reconciler.agent.main import Loop
from reconciler.agent.state import RunDir, Running
from tests.unit.agent_fakes import FakeServer, FakeSystem

BASE = "http://boot.example/compute"
KERNEL_A, KERNEL_B = b"kernel A" * 10, b"kernel B" * 10


def image_tree(root: Path, kind: str) -> Path:
    """An image's files: busybox (absolute /sbin/init link), merged-usr systemd, or no init."""
    root.mkdir(parents=True)
    if kind == "busybox":
        (root / "bin").mkdir()
        (root / "bin/busybox").write_text("#!/bin/sh\n")
        (root / "bin/busybox").chmod(0o755)
        (root / "sbin").mkdir()
        (root / "sbin/init").symlink_to("/bin/busybox")
    elif kind == "systemd":
        (root / "usr/lib/systemd").mkdir(parents=True)
        (root / "usr/sbin").mkdir()
        (root / "usr/lib/systemd/systemd").write_text("#!/bin/sh\n")
        (root / "usr/lib/systemd/systemd").chmod(0o755)
        (root / "sbin").symlink_to("usr/sbin")
        (root / "lib").symlink_to("usr/lib")
        (root / "usr/sbin/init").symlink_to("/lib/systemd/systemd")
    elif kind == "host-init":
        # /sbin/init points at a path that exists on the HOST (/bin/sh), not in the image
        (root / "sbin").mkdir()
        (root / "sbin/init").symlink_to("/bin/sh")
    return root


@dataclass
class Node:
    system: FakeSystem
    server: FakeServer
    run: RunDir
    agent: Agent
    trees: Path
    v1: Running

    def publish(
        self, version: str, *, tree: str = "busybox", kernel: bytes = KERNEL_A
    ) -> Assignment:
        """Put a version's files on the fake boot server; its assignment."""
        rootfs = f"rootfs of {version}".encode() * 50
        path = self.trees / version
        if not path.exists():
            image_tree(path, tree)
        data = {
            "host": "node001",
            "mac": "52:54:00:00:00:01",
            "image": "compute",
            "version": version,
            "kernel": {"url": f"{BASE}/{version}/vmlinuz",
                       "sha256": self.system.serve_file(f"{BASE}/{version}/vmlinuz", kernel)},
            "initrd": {"url": f"{BASE}/{version}/initrd.img",
                       "sha256": self.system.serve_file(f"{BASE}/{version}/initrd.img", b"ird")},
            "rootfs": {"url": f"{BASE}/{version}/root.squashfs",
                       "sha256": self.system.add_image(f"{BASE}/{version}/root.squashfs", rootfs,
                                                        path)},
            "cmdline": "console=ttyS0 quiet",
        }  # fmt: skip
        return parse_assignment(data)

    def restart_agent(self) -> Agent:
        """The agent process starting again (in the new root after a swap)."""
        self.run = RunDir(self.run.root)
        self.agent = Agent(system=self.system, server=self.server, run=self.run,
                           settings=self.agent.settings)  # fmt: skip
        return self.agent


@pytest.fixture
def node(tmp_path: Path) -> Node:
    system, server = FakeSystem(), FakeServer()
    run = RunDir(tmp_path / "run")
    health = tmp_path / "health.d"
    health.mkdir()
    agent = Agent(system=system, server=server, run=run,
                  settings=Settings(host="node001", health_dir=health, health_timeout=5,
                                    reserve_bytes=1000))  # fmt: skip
    made = Node(system, server, run, agent, tmp_path / "trees", None)  # type: ignore[arg-type]
    first = made.publish("v1")
    stage = run.stage(first.rootfs_sha256)
    stage.mkdir(parents=True)
    (stage / "rootfs.squashfs").write_bytes(system.files[first.rootfs.url])
    made.v1 = Running("compute", "v1", first.kernel_sha256, first.rootfs_sha256, str(stage))
    run.set_current(made.v1)
    system.running_sha = first.rootfs_sha256
    return made


def add_check(node: Node, name: str, script: str) -> None:
    path = node.agent.settings.health_dir / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)


# -- the ladder -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kernel_changed", "capabilities", "method"),
    [
        (False, Capabilities("busybox", None, kexec=True), "switch-root"),
        (False, Capabilities("systemd", 254, kexec=True), "soft-reboot"),
        (False, Capabilities("systemd", 252, kexec=True), "kexec"),
        (False, Capabilities("systemd", 252, kexec=False), "reboot"),
        (False, Capabilities("other", None, kexec=True), "kexec"),
        (True, Capabilities("busybox", None, kexec=True), "kexec"),
        (True, Capabilities("systemd", 257, kexec=True), "kexec"),
        (True, Capabilities("busybox", None, kexec=False), "reboot"),
    ],
)
def test_ladder_picks_the_least_disruptive_method(
    kernel_changed: bool, capabilities: Capabilities, method: str
) -> None:
    assert choose_method(kernel_changed=kernel_changed, capabilities=capabilities) == method


# -- applying an assignment -------------------------------------------------------


def test_same_version_does_nothing(node: Node) -> None:
    assert node.agent.apply(node.publish("v1")) == "same"
    assert node.system.downloads == [] and node.system.actions == []


def test_same_kernel_on_busybox_switches_root_via_pending_and_sigquit(node: Node) -> None:
    v2 = node.publish("v2")
    assert node.agent.apply(v2) == "switch-root"
    stage = node.run.stage(v2.rootfs_sha256)
    assert (stage / "rootfs.squashfs").read_bytes() == node.system.files[v2.rootfs.url]
    assert not (stage / "vmlinuz").exists()  # same kernel: not downloaded
    pending = (node.run.root / "pending").read_text()
    assert f"NEXT_STAGE={stage}\n" in pending and "NEXT_VERSION=v2\n" in pending
    swap = json.loads((node.run.root / "swap.json").read_text())
    assert swap["method"] == "switch-root" and swap["to"]["version"] == "v2"
    assert swap["previous_stage"] == node.v1.stage
    # the image was checked (mounted and unmounted) before PID 1 was signalled
    assert node.system.actions == [
        ("mount", "rootfs.squashfs"),
        ("unmount", "check"),
        ("switch-root",),
    ]
    assert [r["state"] for r in node.server.reports] == ["staging", "swapping"]


def test_same_kernel_on_systemd_254_soft_reboots(node: Node) -> None:
    node.system.capabilities_ = Capabilities("systemd", 254, kexec=True)
    v2 = node.publish("v2", tree="systemd")
    assert node.agent.apply(v2) == "soft-reboot"
    assert node.system.actions[-1] == ("soft-reboot", v2.rootfs_sha256)


def test_kernel_changed_kexecs_the_verified_kernel_with_the_new_cmdline(node: Node) -> None:
    v2 = node.publish("v2", kernel=KERNEL_B)
    assert node.agent.apply(v2) == "kexec"
    name, kernel, initrd, cmdline, systemd = node.system.actions[-1]
    assert (name, kernel, initrd, systemd) == ("kexec", KERNEL_B, b"ird", False)
    words = cmdline.split()
    assert words[:2] == ["console=ttyS0", "quiet"]
    assert "hostname=node001" in words and "reconciler.server=http://10.0.0.1:8080" in words
    assert f"reconciler.rootfs_sha256={v2.rootfs_sha256}" in words
    assert f"reconciler.kernel_sha256={v2.kernel_sha256}" in words
    assert "reconciler.image=compute@v2" in words
    assert any(w.startswith("reconciler.swap=kexec,") and w.endswith(",compute@v1") for w in words)


def test_no_kexec_means_reboot(node: Node) -> None:
    node.system.capabilities_ = Capabilities("busybox", None, kexec=False)
    assert node.agent.apply(node.publish("v2", kernel=KERNEL_B)) == "reboot"
    assert node.system.actions[-1] == ("reboot", False)


def test_a_group_with_rollout_method_reboot_always_reboots(node: Node) -> None:
    same_kernel = replace(node.publish("v2"), swap="reboot")
    assert node.agent.apply(same_kernel) == "reboot"
    assert node.system.actions[-1] == ("reboot", False)


def test_an_unknown_swap_method_is_refused_whole() -> None:
    with pytest.raises(AssignmentError, match="'swap' must be 'live' or 'reboot'"):
        parse_assignment({
            "host": "n", "image": "i", "version": "v", "swap": "yolo", "cmdline": "",
            "kernel": {"url": "http://b/k", "sha256": "a" * 64},
            "initrd": {"url": "http://b/i", "sha256": "a" * 64},
            "rootfs": {"url": "http://b/r", "sha256": "a" * 64},
        })  # fmt: skip


def test_a_failing_kexec_falls_back_to_reboot(node: Node) -> None:
    node.system.fail.add("kexec")
    assert node.agent.apply(node.publish("v2", kernel=KERNEL_B)) == "reboot"
    assert json.loads((node.run.root / "swap.json").read_text())["method"] == "reboot"


# -- refusals ----------------------------------------------------------------------


def test_sha_mismatch_is_refused_recorded_and_not_retried(node: Node) -> None:
    v2 = node.publish("v2")
    node.system.files[v2.rootfs.url] = b"tampered"
    assert node.agent.apply(v2) == "refused"
    refused = json.loads((node.run.root / "refused.json").read_text())
    assert refused[0]["version"] == "v2" and "sha256 mismatch" in refused[0]["reason"]
    assert refused[0]["retry_after"] is None
    assert not node.run.stage(v2.rootfs_sha256).exists()  # nothing left behind
    assert not (node.run.root / "swap.json").exists()
    assert node.system.actions == []  # never mounted, nothing signalled
    # the next polls do not download it again, also after the agent restarts
    assert node.agent.apply(v2) == "refused"
    assert node.restart_agent().apply(v2) == "refused"
    assert node.system.downloads == [v2.rootfs.url]
    body = node.agent.report_body()
    assert body["state"] == "refused" and body["version"] == "v1"
    assert body["refused"][0]["version"] == "compute@v2"


def test_kernel_sha_mismatch_is_refused(node: Node) -> None:
    v2 = node.publish("v2", kernel=KERNEL_B)
    node.system.files[v2.kernel.url] = b"other kernel"
    assert node.agent.apply(v2) == "refused"
    assert "kernel: sha256 mismatch" in node.run.refusals[0].reason


def test_image_without_init_is_refused(node: Node) -> None:
    v2 = node.publish("v2", tree="empty")
    assert node.agent.apply(v2) == "refused"
    assert "no usable init" in node.run.refusals[0].reason
    assert ("switch-root",) not in node.system.actions


def test_init_link_is_resolved_inside_the_image_not_on_the_host(node: Node) -> None:
    assert Path("/bin/sh").exists()  # on the host, the link's target exists
    v2 = node.publish("v2", tree="host-init")
    assert node.agent.apply(v2) == "refused"
    assert "/sbin/init: /bin does not exist in the image" in node.run.refusals[0].reason


def test_merged_usr_systemd_init_resolves(node: Node) -> None:
    node.system.capabilities_ = Capabilities("systemd", 255, kexec=False)
    assert node.agent.apply(node.publish("v2", tree="systemd")) == "soft-reboot"


def test_not_a_squashfs_is_refused(node: Node) -> None:
    v2 = node.publish("v2")
    node.system.trees.clear()
    assert node.agent.apply(v2) == "refused"
    assert "cannot be mounted as squashfs" in node.run.refusals[0].reason


def test_too_little_ram_is_refused_for_a_while_then_retried(node: Node) -> None:
    v2 = node.publish("v2")
    node.system.memory = 500  # less than the image plus the reserve
    assert node.agent.apply(v2) == "refused"
    refusal = node.run.refusals[0]
    assert "not enough RAM" in refusal.reason and refusal.retry_after is not None
    assert node.agent.apply(v2) == "refused"  # not before retry_after
    node.system.memory = 1 << 30
    node.agent.clock = lambda: refusal.retry_after + 1  # type: ignore[operator]
    assert node.agent.apply(v2) == "switch-root"


def test_ram_is_checked_while_streaming_when_no_length_is_announced(node: Node) -> None:
    node.system.announce_length = False
    node.system.memory = 1500
    assert node.agent.apply(node.publish("v2")) == "refused"
    assert "not enough RAM" in node.run.refusals[0].reason


def test_unreachable_file_is_a_transient_refusal(node: Node) -> None:
    v2 = node.publish("v2")
    del node.system.files[v2.rootfs.url]
    assert node.agent.apply(v2) == "refused"
    assert "HTTP 404" in node.run.refusals[0].reason
    assert node.run.refusals[0].retry_after is not None


def test_no_current_json_means_no_swap(node: Node) -> None:
    (node.run.root / "current.json").unlink()
    assert node.agent.apply(node.publish("v2")) == "unknown"
    assert node.system.downloads == []


# -- after the swap --------------------------------------------------------------


def swapped_to(node: Node, version: str, **publish: object) -> Assignment:
    """Apply ``version`` and act as if the swap happened: the new root runs it."""
    assignment = node.publish(version, **publish)  # type: ignore[arg-type]
    node.agent.apply(assignment)
    node.system.running_sha = assignment.rootfs_sha256
    node.system.actions.clear()
    node.server.reports.clear()
    return assignment


def test_healthy_swap_is_kept_and_the_old_stage_freed(node: Node) -> None:
    add_check(node, "10-ok", "echo fine")
    v2 = swapped_to(node, "v2")
    node.restart_agent().resume()
    current = node.run.current()
    assert current is not None and current.version == "v2" and current.booted_by == "switch-root"
    assert not Path(node.v1.stage).exists()
    assert ("release", node.v1.rootfs_sha256) in node.system.actions
    assert not (node.run.root / "swap.json").exists()
    report = node.server.reports[-1]
    assert report["version"] == "v2" and report["state"] == "running"
    assert report["health"] == {"ok": True, "checks": [{"name": "10-ok", "ok": True,
                                                         "output": "fine"}]}  # fmt: skip
    swap = report["last_swap"]
    assert (swap["method"], swap["from"], swap["to"], swap["result"]) == (
        "switch-root",
        "compute@v1",
        "compute@v2",
        "ok",
    )
    assert swap["downtime_s"] >= 0
    assert node.run.stage(v2.rootfs_sha256).exists()


def test_failing_health_check_swaps_back_to_the_previous_stage(node: Node) -> None:
    add_check(node, "20-service", "echo service down; exit 3")
    v2 = swapped_to(node, "v2")
    node.restart_agent().resume()
    # back to v1, which stayed staged, by the same method
    pending = (node.run.root / "pending").read_text()
    assert f"NEXT_STAGE={node.v1.stage}\n" in pending
    assert node.system.actions == [("switch-root",)]
    swap = json.loads((node.run.root / "swap.json").read_text())
    assert swap["rollback"] is True and swap["to"]["version"] == "v1"
    assert node.run.refusals[0].version == "v2" and "20-service" in node.run.refusals[0].reason
    # the agent in the old root finishes the rollback
    (node.agent.settings.health_dir / "20-service").unlink()
    node.system.running_sha = node.v1.rootfs_sha256
    node.restart_agent().resume()
    assert node.run.current().version == "v1"  # type: ignore[union-attr]
    assert not node.run.stage(v2.rootfs_sha256).exists()
    report = node.server.reports[-1]
    assert report["last_swap"]["result"] == "rolled-back"
    assert (report["last_swap"]["from"], report["last_swap"]["to"]) == ("compute@v1", "compute@v2")
    assert "20-service" in report["last_swap"]["reason"]
    assert report["state"] == "refused" or report["assigned"] is None
    assert node.agent.apply(v2) == "refused"  # not tried again


def test_swap_that_did_not_happen_is_refused(node: Node) -> None:
    v2 = swapped_to(node, "v2")
    node.system.running_sha = node.v1.rootfs_sha256  # node-switch fell back to the old init
    node.restart_agent().resume()
    assert node.run.current().version == "v1"  # type: ignore[union-attr]
    assert node.run.last_swap()["result"] == "failed"  # type: ignore[index]
    assert node.agent.apply(v2) == "refused"
    assert not node.run.stage(v2.rootfs_sha256).exists()  # its RAM given back
    assert Path(node.v1.stage, "rootfs.squashfs").exists()  # what runs is kept


def test_health_check_timeout_counts_as_failure(node: Node) -> None:
    node.agent = Agent(system=node.system, server=node.server, run=node.run,
                       settings=Settings(host="node001", health_dir=node.agent.settings.health_dir,
                                         health_timeout=0.5))  # fmt: skip
    add_check(node, "30-slow", "sleep 30 & wait")
    swapped_to(node, "v2")
    node.agent.resume()
    check = node.agent.health.checks[0]  # type: ignore[union-attr]
    assert not check.ok and "timed out" in check.output


def test_kexec_swap_is_reported_from_the_command_line_marker(node: Node) -> None:
    v2 = node.publish("v2", kernel=KERNEL_B)
    node.agent.apply(v2)
    cmdline = node.system.actions[-1][3]
    # a new boot: /run is fresh, the initramfs wrote current.json for v2
    for entry in node.run.root.iterdir():
        if entry.is_file():
            entry.unlink()
    node.run.set_current(Running("compute", "v2", v2.kernel_sha256, v2.rootfs_sha256, "x"))
    node.system.kernel_cmdline, node.system.boot = cmdline, "boot-2"
    node.restart_agent().resume()
    swap = node.run.last_swap()
    assert swap is not None and (swap["method"], swap["from"], swap["to"], swap["result"]) == (
        "kexec",
        "compute@v1",
        "compute@v2",
        "ok",
    )
    before = dict(swap)
    node.restart_agent().resume()  # an agent restart in the same boot does not report it anew
    assert node.run.last_swap() == before


def test_report_has_the_protocol_fields(node: Node) -> None:
    body = node.agent.report_body()
    assert set(body) >= {"host", "image", "version", "kernel_sha256", "boot_id", "agent_version",
                         "state", "health", "last_swap", "refused"}  # fmt: skip
    assert body["host"] == "node001" and body["boot_id"] == "boot-1"
    assert json.loads(json.dumps(body)) == body


def test_pending_file_is_shell_quoted(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.set_pending(Running("img", "1.0", "k", "r", "/run/reconciler/stage/a b"))
    out = os.popen(f'. {tmp_path / "pending"}; printf %s "$NEXT_STAGE"').read()
    assert out == "/run/reconciler/stage/a b"


# -- the main loop ---------------------------------------------------------------


def make_loop(node: Node) -> tuple[Loop, list[float]]:
    slept: list[float] = []
    loop = Loop(node.agent, node.server, wait=55, report_interval=300, swap_timeout=3,
                sleep=slept.append, clock=lambda: sum(slept))  # fmt: skip
    return loop, slept


def assignment_body(node: Node, version: str) -> dict[str, object]:
    a = node.publish(version)
    return {"host": a.host, "image": a.image, "version": a.version, "cmdline": a.cmdline,
            **{k: {"url": getattr(a, k).url, "sha256": getattr(a, k).sha256}
               for k in ("kernel", "initrd", "rootfs")}}  # fmt: skip


def test_loop_long_polls_with_the_etag_and_reports_changes_only(node: Node) -> None:
    loop, _ = make_loop(node)
    node.server.answers = [Fetched(200, assignment_body(node, "v1"), '"e1"')]
    assert loop.once() == "same"
    assert loop.once() == "same"  # 304: the fake answers unchanged
    assert node.server.fetches == [(None, 0), ('"e1"', 55)]
    assert len(node.server.reports) == 1  # the first report; nothing changed since


def test_loop_sends_a_refused_report_again_soon(node: Node) -> None:
    """A report serve refused (429: too many from this node) is not lost until the next
    heartbeat: the next round polls briefly and sends it again."""
    loop, _ = make_loop(node)
    node.server.answers = [Fetched(200, assignment_body(node, "v1"), '"e1"')]
    refused = [ServerError("HTTP 429 too many reports")]
    sent = node.server.report

    def flaky(body: dict[str, Any]) -> None:
        if refused:
            raise refused.pop()
        sent(body)

    node.server.report = flaky  # type: ignore[method-assign]
    loop.once()
    assert node.server.reports == []
    loop.once()
    assert len(node.server.reports) == 1
    assert node.server.fetches[-1] == ('"e1"', 10.0)  # a short poll, not a 55 s one
    loop.once()
    assert node.server.fetches[-1] == ('"e1"', 55)


def test_loop_backs_off_while_serve_is_unreachable(node: Node) -> None:
    loop, slept = make_loop(node)
    node.server.answers = [ServerError("down")] * 4
    assert [loop.once() for _ in range(4)] == ["unreachable"] * 4
    assert slept[3] > slept[0] and all(s <= 60 for s in slept)


def test_loop_refuses_an_unusable_assignment_without_acting(node: Node) -> None:
    loop, _ = make_loop(node)
    body = assignment_body(node, "v2")
    body["rootfs"] = {"url": "http://x/a b", "sha256": "0" * 64}
    node.server.answers = [Fetched(200, body, '"e2"')]
    assert loop.once() == "none"
    assert node.system.downloads == []


def test_loop_notices_a_swap_that_never_took_the_agent_down(node: Node) -> None:
    loop, slept = make_loop(node)
    node.server.answers = [Fetched(200, assignment_body(node, "v2"), '"e2"')]
    assert loop.once() == "switch-root"
    assert sum(slept) >= 3  # waited for init to act
    assert node.run.last_swap()["result"] == "failed"  # type: ignore[index]
    assert "still on the old root" in node.run.refusals[0].reason


def test_loop_survives_an_unexpected_error(
    node: Node, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Stop(Exception):
        pass

    def sleep(seconds: float) -> None:
        raise Stop(seconds)

    loop = Loop(node.agent, node.server, wait=55, report_interval=300, swap_timeout=3,
                sleep=sleep)  # fmt: skip

    def apply_with_a_bug(_assignment: Assignment) -> str:
        return str(1 / 0)

    monkeypatch.setattr(node.agent, "apply", apply_with_a_bug)
    node.server.answers = [Fetched(200, assignment_body(node, "v2"), '"e"')]
    with pytest.raises(Stop) as stopped:
        loop.forever()
    assert stopped.value.args[0] == 30.0  # paused, then it would go on
    assert "agent round failed" in caplog.text and "ZeroDivisionError" in caplog.text


def test_each_heartbeat_runs_the_health_checks_again(node: Node) -> None:
    loop, _ = make_loop(node)
    node.agent.resume()
    assert node.agent.report_body()["state"] == "running"
    add_check(node, "40-disk", "echo disk full; exit 1")
    loop.once()  # the first report is due at once: it carries the failing check
    report = node.server.reports[-1]
    assert report["state"] == "failed" and report["health"]["checks"][0]["name"] == "40-disk"
