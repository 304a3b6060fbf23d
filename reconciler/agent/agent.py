"""The agent's decisions: compare, stage, swap, and after a swap check health or roll back.

``Agent.apply`` moves the node towards an assignment: nothing when it already
runs it, nothing when that version was refused (until a transient refusal may
be retried), otherwise stage and verify it, choose a method on the swap ladder
and hand over to the system. ``Agent.resume`` runs when the agent starts: if
``swap.json`` says a swap brought the node here, it measures the downtime,
runs the health checks, and either keeps the new version (freeing the old
one's RAM) or swaps back to the old one, which stayed staged.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reconciler.agent import AGENT_VERSION
from reconciler.agent.assignment import Assignment
from reconciler.agent.client import Server, ServerError
from reconciler.agent.cmdline import kexec_cmdline, swap_marker
from reconciler.agent.health import Health, run_checks
from reconciler.agent.ladder import KEXEC, REBOOT, SOFT_REBOOT, SWITCH_ROOT, can_roll_back
from reconciler.agent.ladder import choose_method as ladder_method
from reconciler.agent.staging import ROOTFS, Refused, Staged, Stager
from reconciler.agent.state import RunDir, Running, SwapRecord
from reconciler.agent.system import ActionFailed, System

log = logging.getLogger("reconciler.agent")

MIB = 1 << 20


@dataclass(frozen=True)
class Settings:
    host: str
    health_dir: Path = Path("/etc/reconciler/health.d")
    health_timeout: float = 60.0
    reserve_bytes: int = 64 * MIB
    retry_transient_s: float = 300.0


class Agent:
    def __init__(
        self,
        *,
        system: System,
        server: Server,
        run: RunDir,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.system = system
        self.server = server
        self.run = run
        self.settings = settings
        self.clock = clock
        self.stager = Stager(system, run, reserve_bytes=settings.reserve_bytes)
        self.phase = "running"  # or "staging", "swapping"
        self.health: Health | None = None
        self.assignment: Assignment | None = None

    # -- moving to an assignment ----------------------------------------------

    def apply(self, assignment: Assignment) -> str:
        """Act on ``assignment``; returns 'same', 'unknown', 'refused' or the swap method."""
        self.assignment = assignment
        current = self.run.current()
        if current is None:
            log.warning("no current.json: this node was not booted by the reconciler initramfs")
            return "unknown"
        if (current.rootfs_sha256, current.kernel_sha256) == (
            assignment.rootfs_sha256,
            assignment.kernel_sha256,
        ):
            if current.label != assignment.label:  # renamed, same bits: no swap
                self.run.set_current(
                    replace(current, image=assignment.image, version=assignment.version)
                )
            return "same"
        if self.run.refusal_of(assignment, self.clock()) is not None:
            return "refused"
        capabilities = self.system.capabilities()
        method = ladder_method(
            kernel_changed=assignment.kernel_sha256 != current.kernel_sha256,
            capabilities=capabilities,
        )
        if assignment.swap == "reboot":  # the group's rollout: method reboot
            method = REBOOT
        self.phase = "staging"
        self.report()
        try:
            staged = self.stager.stage(
                assignment, with_kernel=method == KEXEC, keep={Path(current.stage)}
            )
        except Refused as refused:
            self.phase = "running"
            self.refuse(assignment, refused.reason, transient=refused.transient)
            return "refused"
        target = Running(
            image=assignment.image,
            version=assignment.version,
            kernel_sha256=assignment.kernel_sha256,
            rootfs_sha256=assignment.rootfs_sha256,
            stage=str(staged.stage),
            booted_by=method,
        )
        record = SwapRecord(method, current, target, self.clock(), previous_stage=current.stage)
        return self._swap(record, staged, systemd=capabilities.systemd)

    def refuse(self, version: Any, reason: str, *, transient: bool = False) -> None:
        retry = self.settings.retry_transient_s if transient else None
        self.run.refuse(version, reason, retry_in=retry)
        log.error("version refused", extra={"version": f"{version.image}@{version.version}",
                                            "reason": reason})  # fmt: skip
        self.report()

    def _swap(self, record: SwapRecord, staged: Staged, *, systemd: bool) -> str:
        self.run.set_swap(record)
        self.phase = "swapping"
        self.report()
        log.warning("swapping", extra={"method": record.method, "from": record.source.label,
                                       "to": record.target.label})  # fmt: skip
        try:
            self._execute(record, staged, systemd=systemd)
        except ActionFailed as error:
            if record.method == KEXEC:
                log.error("kexec failed; rebooting instead", extra={"error": str(error)})
                record = replace(record, method=REBOOT)
                self.run.set_swap(record)
                try:
                    self._execute(record, staged, systemd=systemd)
                    return REBOOT
                except ActionFailed as second:
                    error = second
            self._failed(record, f"{record.method} failed: {error}")
            return "failed"
        return record.method

    def _execute(self, record: SwapRecord, staged: Staged, *, systemd: bool) -> None:
        if record.method == SWITCH_ROOT:
            self.run.set_pending(record.target)
            self.system.switch_root()
        elif record.method == SOFT_REBOOT:
            self.system.soft_reboot(squashfs=staged.squashfs, stage=staged.stage)
        elif record.method == KEXEC:
            assert staged.kernel is not None and staged.initrd is not None
            assert self.assignment is not None
            cmdline = kexec_cmdline(
                running=self.system.cmdline(),
                assignment=self.assignment,
                started=record.started,
                previous=record.source.label,
            )
            self.system.kexec(
                kernel=staged.kernel, initrd=staged.initrd, cmdline=cmdline, systemd=systemd
            )
        else:
            self.system.reboot(systemd=systemd)

    def swap_did_not_happen(self, waited: float) -> None:
        """The system action returned but the node is still here after ``waited`` seconds."""
        record = self.run.swap()
        if record is not None:
            self._failed(record, f"{record.method}: still on the old root after {waited:.0f} s")

    def _failed(self, record: SwapRecord, reason: str) -> None:
        self.run.clear_swap()
        self.phase = "running"
        self._outcome(record, "failed", reason)
        if not record.rollback:
            self._discard(Path(record.target.stage))  # its RAM, unless it is what runs
            self.refuse(record.target, reason)

    # -- after a swap ------------------------------------------------------------

    def resume(self) -> None:
        """At start: finish the swap that brought the node here, if one did; check health."""
        record = self.run.swap()
        if record is None:
            self._resume_after_kexec()
            return
        current = self.run.current()
        actual = self.system.running_rootfs_sha256() or (current.rootfs_sha256 if current else "")
        if actual == record.target.rootfs_sha256:
            self.run.set_current(record.target)
            self._after_swap(record)
        elif actual == record.source.rootfs_sha256:
            self._failed(record, f"{record.method}: the node came back on {record.source.label}")
            self.health = run_checks(self.settings.health_dir, timeout=self.settings.health_timeout)
        else:
            self.run.clear_swap()
            self._outcome(record, "failed", "the node runs neither the old nor the new version")

    def _after_swap(self, record: SwapRecord) -> None:
        self.health = run_checks(self.settings.health_dir, timeout=self.settings.health_timeout)
        if record.rollback:
            self._outcome(record, "rolled-back", record.reason)
            self._discard(Path(record.previous_stage))
            self.run.clear_swap()
        elif self.health.ok:
            self._outcome(record, "ok", "")
            self._discard(Path(record.previous_stage))
            self.run.clear_swap()
        else:
            failing = ", ".join(c.name for c in self.health.checks if not c.ok)
            reason = f"health check failed on {record.target.label}: {failing}"
            self._roll_back(record, reason)
        self.report()

    def _roll_back(self, record: SwapRecord, reason: str) -> None:
        previous = Path(record.previous_stage)
        self.run.refuse(record.target, reason, retry_in=None)
        if not can_roll_back(record.method) or not (previous / ROOTFS).is_file():
            self.run.clear_swap()
            self._outcome(record, "failed", reason + " (no way back: the old version is gone)")
            return
        self._outcome(record, "failed", reason + "; rolling back")
        back = SwapRecord(
            method=record.method,
            source=record.target,
            target=replace(record.source, booted_by=record.method),
            started=self.clock(),
            previous_stage=record.target.stage,
            rollback=True,
            reason=reason,
        )
        staged = Staged(previous, previous / ROOTFS)
        self.phase = "swapping"
        self._swap(back, staged, systemd=record.method == SOFT_REBOOT)

    def _resume_after_kexec(self) -> None:
        self.health = run_checks(self.settings.health_dir, timeout=self.settings.health_timeout)
        marker = swap_marker(self.system.cmdline())
        current = self.run.current()
        last = self.run.last_swap() or {}
        boot_id = self.system.boot_id()
        if marker is None or current is None or last.get("boot_id") == boot_id:
            return
        started, previous = marker
        self.run.set_last_swap(
            {
                "method": KEXEC,
                "from": previous,
                "to": current.label,
                "downtime_s": round(max(0.0, self.clock() - started), 3),
                "result": "ok" if self.health.ok else "failed",
                "reason": "" if self.health.ok else "health check failed after kexec",
                "boot_id": boot_id,
                "finished": self.clock(),
            }
        )

    def _discard(self, stage: Path) -> None:
        """Free the RAM of a stage no longer needed (never the one running)."""
        current = self.run.current()
        if (current is not None and Path(current.stage) == stage) or not str(stage):
            return
        try:
            self.system.release(stage)
        except ActionFailed as error:
            log.warning("could not unmount an old stage", extra={"error": str(error)})
        shutil.rmtree(stage, ignore_errors=True)

    def _outcome(self, record: SwapRecord, result: str, reason: str) -> None:
        """Record how a swap ended; a rollback is told as the forward swap it undid."""
        source, target = record.source, record.target
        if record.rollback:
            source, target = target, source
        self.run.set_last_swap(
            {
                "method": record.method,
                "from": source.label,
                "to": target.label,
                "downtime_s": round(max(0.0, self.clock() - record.started), 3),
                "result": result,
                "reason": reason,
                "boot_id": self.system.boot_id(),
                "finished": self.clock(),
            }
        )

    # -- reporting ---------------------------------------------------------------

    def check_health(self) -> None:
        """Run the image's health checks again (not during a swap: those run after it)."""
        if self.phase == "running" and self.run.swap() is None:
            self.health = run_checks(self.settings.health_dir, timeout=self.settings.health_timeout)

    def state(self) -> str:
        if self.phase != "running":
            return self.phase
        if self.health is not None and not self.health.ok:
            return "failed"
        current, assignment = self.run.current(), self.assignment
        if (
            current is not None
            and assignment is not None
            and current.rootfs_sha256 != assignment.rootfs_sha256
            and self.run.refusal_of(assignment, self.clock()) is not None
        ):
            return "refused"
        return "running"

    def report_body(self) -> dict[str, Any]:
        current = self.run.current()
        now = self.clock()
        return {
            "host": self.settings.host,
            "image": current.image if current else None,
            "version": current.version if current else None,
            "kernel_sha256": current.kernel_sha256 if current else None,
            "rootfs_sha256": current.rootfs_sha256 if current else None,
            "assigned": self.assignment.label if self.assignment else None,
            "boot_id": self.system.boot_id(),
            "agent_version": AGENT_VERSION,
            "state": self.state(),
            "health": self.health.to_dict() if self.health else None,
            "last_swap": self.run.last_swap(),
            "refused": [
                {"version": f"{r.image}@{r.version}", "reason": r.reason}
                for r in self.run.refusals
                if r.retry_after is None or r.retry_after > now
            ],
        }

    def report(self) -> bool:
        """Post the report; False (and a log line) when serve cannot take it now."""
        try:
            self.server.report(self.report_body())
        except ServerError as error:
            log.warning("report not delivered", extra={"error": str(error)})
            return False
        return True
