"""One watch pass over the due targets: plan each, refuse the revision whole or apply each.

The loop (``reconciler.watch.loop``) decides when a pass runs and which revision
is in force; this module does the per-target work of a pass and records how it
went: each target's status, its retry schedule (a failing target is retried with
backoff while the others go on), and the plans refused for their size. A target
brought to the previous revision is planned from the difference of the two
revisions alone, without reading live state (drift checks re-read it on their
own schedule).
"""

from __future__ import annotations

import logging
import threading
import time

from reconciler.engine import Engine, PlanRefused, refuse_unsafe
from reconciler.plan import Plan, TargetPlan, build_target_plan
from reconciler.targets.base import Target, TargetError
from reconciler.watch.backoff import Backoff, RetryState
from reconciler.watch.metrics import WatchMetrics
from reconciler.watch.revision import GoodRevision
from reconciler.watch.settings import WatchSettings
from reconciler.watch.status import Status, TargetStatus

log = logging.getLogger(__name__)


class TargetSteps:
    """Plans and applies targets for the loop; keeps their retries and refusals."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: WatchSettings,
        status: Status,
        metrics: WatchMetrics,
        stop: threading.Event,
        suspended: bool,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.status = status
        self.metrics = metrics
        self.stop = stop
        self.suspended = suspended  # plan and report only: the operator's spec.suspend
        self.backoff = Backoff(
            initial=settings.backoff_initial,
            cap=settings.backoff_max,
            factor=settings.backoff_factor,
            jitter=settings.backoff_jitter,
        )
        self.retries = {t.name: RetryState() for t in engine.targets}
        self.refused: dict[str, str] = {}  # target -> why its plan was refused

    def reconcile(
        self,
        good: GoodRevision,
        targets: list[Target],
        *,
        previous: GoodRevision | None,
        drift: bool,
    ) -> str:
        """Plan every due target, refuse the revision whole if any plan is too large, apply.

        ``previous`` is the good revision before ``good``: targets brought to it are
        planned from the difference. Returns the pass result, success or failure.
        """
        failed = False
        planned: list[tuple[Target, TargetPlan]] = []
        for target in targets:
            outcome = self._plan(good, target, previous=previous, drift=drift)
            if isinstance(outcome, TargetPlan):
                planned.append((target, outcome))
            elif not outcome:
                failed = True
        if not self.settings.force:
            fraction = self.engine.config.max_change_fraction
            whole = Plan(good.commit, tuple(p for _, p in planned), fraction)
            try:
                refuse_unsafe(whole)
            except PlanRefused as error:  # no target gets a part of a refused revision
                for target, plan in planned:
                    self._refuse(target.name, plan, str(error))
                return "failure"
        for target, plan in planned:
            if self.stop.is_set():
                log.info("stop requested: remaining targets left for the next run")
                break
            if not self._apply(good, target, plan, drift=drift):
                failed = True
        return "failure" if failed else "success"

    def _read(self, target: Target, good: GoodRevision) -> TargetPlan:
        desired = good.desired(target)
        live = target.read(desired)
        return build_target_plan(
            target=target.name,
            kind=target.kind,
            desired=desired,
            live=live,
            adopt=self.engine.adopts(target),  # as plan and apply: hand-made objects stay
        )

    def _incremental(
        self, target: Target, good: GoodRevision, previous: GoodRevision | None
    ) -> TargetPlan | None:
        """The changes between the previous good revision and this one, without reading live.

        Only when the target was brought to the previous revision and no drift check
        is due: live state is then what that revision asked for (drift checks re-read
        it on their own schedule). A target that finds live state otherwise fails the
        change (value-dependent prerequisites, missing objects) and is retried with a
        full read.
        """
        record = self.status.targets.get(target.name)
        if previous is None or record is None or not record.ok:
            return None
        if record.revision != previous.commit:
            return None
        owned = len(previous.keys(target))  # before this revision takes that key map over
        changes = good.changes_since(previous, target)
        return TargetPlan(target.name, target.kind, changes, owned)

    def _refuse(self, name: str, plan: TargetPlan, reason: str) -> None:
        self.refused[name] = reason
        record = self.status.targets.setdefault(name, TargetStatus())
        record.pending = len(plan.changes)
        self._failed(record, self.retries[name], name, reason)

    def _plan(
        self, good: GoodRevision, target: Target, *, previous: GoodRevision | None, drift: bool
    ) -> TargetPlan | bool:
        """The target's plan; True: nothing to apply (drift only reported); False: it failed."""
        name = target.name
        record = self.status.targets.setdefault(name, TargetStatus())
        record.mode = self.settings.drift_mode(name)
        retry = self.retries[name]
        plan = None if drift or retry.failures else self._incremental(target, good, previous)
        if plan is None:
            try:
                plan = self._read(target, good)
            except TargetError as error:
                return self._failed(record, retry, name, str(error))
            except Exception as error:  # unexpected: a failed target, not a dead loop
                log.exception("target read failed unexpectedly", extra={"target": name})
                return self._failed(record, retry, name, f"{type(error).__name__}: {error}")
            record.unmanaged = len(plan.unmanaged)
            record.conflicts = list(plan.conflicts)
        at_revision = record.revision == good.commit and record.ok
        if plan.changes and (self.suspended or (record.mode == "report" and at_revision)):
            record.pending = len(plan.changes)
            self.metrics.observe_drift(
                target=name, unmanaged=record.unmanaged, pending=record.pending
            )
            log.warning("drift reported", extra={"target": name, "pending": record.pending})
            return True
        return plan

    def _apply(self, good: GoodRevision, target: Target, plan: TargetPlan, *, drift: bool) -> bool:
        name = target.name
        record = self.status.targets.setdefault(name, TargetStatus())
        retry = self.retries[name]
        started = time.monotonic()
        one = Plan(good.commit, (plan,), self.engine.config.max_change_fraction)
        try:
            report = self.engine.apply(one, force=self.settings.force)
        except PlanRefused as error:
            self.refused[name] = str(error)
            record.pending = len(plan.changes)
            return self._failed(record, retry, name, str(error))
        except Exception as error:  # unexpected: a failed target, not a dead loop
            log.exception("target apply failed unexpectedly", extra={"target": name})
            record.pending = len(plan.changes)
            return self._failed(record, retry, name, f"{type(error).__name__}: {error}")
        outcome = report.outcomes[0]
        seconds = time.monotonic() - started
        if not outcome.ok:
            record.pending = len(plan.changes)
            return self._failed(record, retry, name, outcome.error or "apply failed")
        self.refused.pop(name, None)
        retry.succeeded()
        record.ok, record.error, record.failures, record.next_retry = True, None, 0, None
        record.revision, record.pending = good.commit, 0
        record.applied = outcome.result.applied if outcome.result else 0
        if plan.changes:
            record.last_apply = time.time()
            self.metrics.observe_apply(target=name, seconds=seconds, counts=plan.counts)
            log.info(
                "changes applied",
                extra={"target": name, "commit": good.commit, "drift": drift, **plan.counts},
            )
        self.metrics.observe_drift(target=name, unmanaged=record.unmanaged, pending=0)
        self.metrics.target_up.labels(target=name).set(1)
        return True

    def _failed(self, record: TargetStatus, retry: RetryState, name: str, error: str) -> bool:
        at = retry.failed(now=time.monotonic(), backoff=self.backoff, error=error)
        record.ok, record.error, record.failures = False, error, retry.failures
        record.next_retry = time.time() + (at - time.monotonic())
        self.metrics.target_up.labels(target=name).set(0)
        log.error(
            "target failed; will retry",
            extra={"target": name, "error": error, "retry_in": round(at - time.monotonic(), 2)},
        )
        return False
