"""One reconcile pass: load, compile, read live state, plan, and apply.

Every entry point (CLI, watch loop, HTTP service, operator) goes through this
module. A target that fails to read or apply is reported and skipped; the other
targets are still reconciled, and the next pass converges.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.boot_templates import BootTemplates
from reconciler.compile import CompileOptions, compile_inventory
from reconciler.compile_cache import CompileCache
from reconciler.config import ConfigError, RuntimeConfig
from reconciler.forked import Answer, TaskFailed, can_fork, run_forked, worker_count
from reconciler.inventory.load import load_inventory
from reconciler.inventory.load_cache import LoadCache
from reconciler.inventory.sources import FolderSource, GitSource, InventorySource
from reconciler.model.inventory import Inventory
from reconciler.plan import Plan, TargetPlan, build_target_plan
from reconciler.plan_packing import PackedPlan, pack, unpack
from reconciler.resources import AnyResource, DesiredState
from reconciler.targets import build_target
from reconciler.targets.base import ApplyResult, LiveState, ServiceDown, Target, TargetError

if TYPE_CHECKING:
    from reconciler.plan_cache import PlanCache

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str], None]


# A target's read and diff in a worker process is killed past this (live servers have
# their own, shorter timeouts; this only bounds a worker that would wait forever).
READ_TIMEOUT = 3600.0


def _read_weight(target: Target, state: DesiredState) -> float:
    """Roughly how many µs a target's read and diff take, to start the longest first
    (measured at 100k hosts): a file tree ~13 per file (an lstat, a hash), any other
    target its ``read_cost_per_host`` (a zone file target ~15: two records a host), else 9.
    """
    if getattr(target, "managed_folders", None) is not None:
        return 13.0 * len(target.desired(state))
    return float(getattr(target, "read_cost_per_host", 9.0)) * len(state.dhcp_hosts)


class PlanRefused(Exception):
    """The plan is not applied at all: its checksum or its size is not what was allowed."""


@dataclass(slots=True)
class TargetOutcome:
    target: str
    ok: bool
    result: ApplyResult | None = None
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": self.ok,
            "applied": self.result.applied if self.result else 0,
            "writes": self.result.writes if self.result else 0,
            "restarted": self.result.restarted if self.result else False,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


@dataclass(slots=True)
class ApplyReport:
    plan: Plan
    outcomes: list[TargetOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


def source_from_config(config: RuntimeConfig) -> InventorySource:
    src = config.source
    if src.repo is not None:
        return GitSource(config.resolve(src.repo), src.rev, src.subdir)
    assert src.path is not None
    return FolderSource(config.resolve(src.path))


def in_service_order(targets: list[Target]) -> list[Target]:
    """Targets that start a service (dhcp-conf: dhcpd) before the ones that need it.

    Otherwise the configured order: the sort is stable.
    """
    provided = {getattr(t, "provides_service", None) for t in targets} - {None}
    return sorted(targets, key=lambda t: getattr(t, "needs_service", None) in provided)


def refuse_unsafe(plan: Plan) -> None:
    """PlanRefused when any target of ``plan`` changes too large a share of what it owns."""
    unsafe = plan.unsafe_targets()
    if unsafe:
        details = ", ".join(
            f"{t.target}: {t.counts['delete']} deletes and {t.counts['update']} updates "
            f"of {t.owned_count} owned"
            for t in unsafe
        )
        raise PlanRefused(
            f"refusing a large change ({details}; more than "
            f"{plan.max_fraction:.0%} of what the target owns); review it and use --force"
        )


class Engine:
    """Holds the targets of one runtime config; each method is one step of a pass."""

    def __init__(self, config: RuntimeConfig, *, keep_caches: bool = True) -> None:
        self.config = config
        self.templates = BootTemplates(
            config.resolve(config.boot.templates) if config.boot.templates else None
        )
        self.options = CompileOptions(http_url=config.boot.http_url.rstrip("/"))
        # Kept between passes: a new revision re-parses and re-renders only what changed.
        # A one-off command (keep_caches=False) keeps nothing: noting what a next pass
        # could reuse would only cost it time (~1 s at 100,000 hosts).
        self.load_cache = LoadCache() if keep_caches else None
        self.compile_cache = CompileCache(keep=keep_caches)
        self.targets: list[Target] = []
        problems = []
        for name, section in config.targets.items():
            try:
                self.targets.append(build_target(name, section, config))
            except ConfigError as error:  # every bad target at once, not the first only
                problems.append(str(error))
        if problems:
            raise ConfigError("; ".join(problems))
        self.targets = in_service_order(self.targets)

    def adopts(self, target: Target) -> bool:
        """Whether a target takes over hand-made objects: config, else the target's default."""
        configured = self.config.targets[target.name].adopt
        if configured is not None:
            return configured
        return bool(getattr(target, "adopts_by_default", False))

    def load(self, source: InventorySource | None = None) -> Inventory:
        return load_inventory(
            source or source_from_config(self.config),
            boot_profiles=self.templates.profiles,
            cache=self.load_cache,
        )

    def compile(
        self, inventory: Inventory, *, assignments: Mapping[str, str] | None = None
    ) -> DesiredState:
        return compile_inventory(
            inventory,
            templates=self.templates,
            options=self.options,
            cache=self.compile_cache,
            assignments=assignments,
        )

    def plan(
        self,
        state: DesiredState,
        *,
        revision: str,
        progress: ProgressCallback | None = None,
        recorder: PlanCache | None = None,
        parallel: bool = False,
    ) -> Plan:
        """Read and diff every target; ``recorder`` (``plan`` only) signs the files read.

        ``parallel`` (the CLI's plan and apply): each target is read and diffed in a
        forked worker process, as many at once as there are cores (``reconciler.forked``;
        in-process where the process has threads). The plan, the progress lines, the
        log records and the errors are the same either way.
        """
        desired: dict[str, Sequence[AnyResource]] = {}
        if recorder is not None:
            for target in self.targets:
                desired[target.name] = target.desired(state)
                recorder.before_read(target, desired[target.name])
        outcomes: Iterable[Answer[PackedPlan] | None] = [None] * len(self.targets)
        if parallel and len(self.targets) > 1 and can_fork():
            outcomes = self._outcomes_forked(state, desired)
        plans = []
        starting: set[str] = set()  # services a target planned before will (re)start
        for target, outcome in zip(self.targets, outcomes, strict=True):
            if progress:
                progress(f"reading {target.name}")
            if outcome is None:
                wanted = desired.get(target.name)
                plan = self._plan_here(
                    target, target.desired(state) if wanted is None else wanted, starting=starting
                )
            else:
                plan = self._plan_of(target, outcome, state=state, known=desired, starting=starting)
            if recorder is not None and plan.error is None:
                recorder.after_read(target, desired[target.name])
            plans.append(plan)
            service = getattr(target, "provides_service", None)
            if service is not None and plan.changes:
                starting.add(service)
        return Plan(revision, tuple(plans), self.config.max_change_fraction)

    def _plan_here(
        self, target: Target, desired: Sequence[AnyResource], *, starting: set[str]
    ) -> TargetPlan:
        """Read and diff in this process; a read that fails is the plan's error."""
        try:
            live = self._read(target, desired, starting=starting)
        except TargetError as error:
            return self._failed(target, error)
        return self._diff(target, desired, live)

    def _plan_of(
        self,
        target: Target,
        outcome: Answer[PackedPlan],
        *,
        state: DesiredState,
        known: Mapping[str, Sequence[AnyResource]],
        starting: set[str],
    ) -> TargetPlan:
        """The plan a worker process made, its error as ``_plan_here`` would report it."""
        try:
            packed = outcome.get()
        except ServiceDown as down:
            desired = target.desired(state)
            try:
                live = self._read_persisted(target, desired, down, starting=starting)
            except TargetError as error:
                return self._failed(target, error)
            return self._diff(target, desired, live)
        except TaskFailed as failed:
            return self._failed(target, TargetError(target.name, f"cannot read: {failed}"))
        except TargetError as error:
            return self._failed(target, error)
        wanted = known.get(target.name)
        return unpack(packed, lambda: target.desired(state) if wanted is None else wanted)

    def _read_and_diff(
        self, target: Target, state: DesiredState, known: Mapping[str, Sequence[AnyResource]]
    ) -> PackedPlan:
        """One target's plan, packed to be sent back by a worker (``plan_packing``);
        ServiceDown and TargetError are the caller's to handle."""
        desired = known.get(target.name)
        if desired is None:
            desired = target.desired(state)
        return pack(self._diff(target, desired, target.read(desired)), desired)

    def _diff(self, target: Target, desired: Sequence[AnyResource], live: LiveState) -> TargetPlan:
        return build_target_plan(
            target=target.name,
            kind=target.kind,
            desired=desired,
            live=live,
            adopt=self.adopts(target),
        )

    def _outcomes_forked(
        self, state: DesiredState, known: Mapping[str, Sequence[AnyResource]]
    ) -> Iterator[Answer[PackedPlan]]:
        tasks = [
            functools.partial(self._read_and_diff, target, state, known) for target in self.targets
        ]
        # The longest first: file targets with many files, then the rest, as configured.
        order = sorted(range(len(tasks)), key=lambda i: -_read_weight(self.targets[i], state))
        return run_forked(tasks, workers=worker_count(), timeout=READ_TIMEOUT, order=order)

    def _failed(self, target: Target, error: TargetError) -> TargetPlan:
        log.error("read failed", extra={"target": target.name, "error": str(error)})
        return TargetPlan(target.name, target.kind, (), 0, error=str(error))

    def _read(
        self, target: Target, desired: Sequence[AnyResource], *, starting: set[str]
    ) -> LiveState:
        """Read live state; a service that a preceding target will start is read as persisted.

        On a fresh site dhcpd is not running until dhcp-conf has written its
        config and started it; dhcp-omapi then plans from the leases file, which
        is what dhcpd loads when it starts, and applies after dhcp-conf.
        """
        try:
            return target.read(desired)
        except ServiceDown as down:
            return self._read_persisted(target, desired, down, starting=starting)

    def _read_persisted(
        self,
        target: Target,
        desired: Sequence[AnyResource],
        down: ServiceDown,
        *,
        starting: set[str],
    ) -> LiveState:
        """``down`` again, unless a preceding target starts the service (see ``_read``)."""
        needs = getattr(target, "needs_service", None)
        read_persisted = getattr(target, "read_persisted", None)
        if needs not in starting or read_persisted is None:
            raise down
        log.info("service not running yet; a preceding target starts it",
                 extra={"target": target.name, "service": needs})  # fmt: skip
        live: LiveState = read_persisted(desired)
        return live

    def apply(
        self,
        plan: Plan,
        *,
        force: bool = False,
        checksum: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ApplyReport:
        """Apply a plan; refuse it whole when the checksum or the safety check says so."""
        if checksum is not None and checksum != plan.checksum:
            raise PlanRefused(
                f"the plan computed now (checksum {plan.checksum}) differs from the reviewed "
                f"one ({checksum}); live state or the inventory changed: plan again and review"
            )
        if not force:
            refuse_unsafe(plan)
        report = ApplyReport(plan)
        by_name = {t.name: t for t in self.targets}
        for target_plan in plan.targets:
            started = time.monotonic()
            if target_plan.error is not None:
                report.outcomes.append(
                    TargetOutcome(target_plan.target, False, error=target_plan.error)
                )
                continue
            if not target_plan.changes:
                report.outcomes.append(TargetOutcome(target_plan.target, True, ApplyResult()))
                continue
            if progress:
                progress(f"applying {len(target_plan.changes)} changes to {target_plan.target}")
            try:
                result = by_name[target_plan.target].apply(target_plan.changes)
            except (TargetError, OSError) as error:  # OSError: e.g. the disk is full
                if isinstance(error, OSError):
                    error = TargetError(target_plan.target, f"cannot apply: {error}")
                log.error("apply failed", extra={"target": target_plan.target, "error": str(error)})
                report.outcomes.append(
                    TargetOutcome(
                        target_plan.target,
                        False,
                        error=str(error),
                        seconds=time.monotonic() - started,
                    )
                )
                continue
            report.outcomes.append(
                TargetOutcome(target_plan.target, True, result, seconds=time.monotonic() - started)
            )
            log.info(
                "target applied",
                extra={
                    "target": target_plan.target,
                    "applied": result.applied,
                    "writes": result.writes,
                },
            )
        return report
