"""The watch loop: wait for a trigger, reconcile, record; until told to stop.

One thread runs passes; watchers, webhooks and signals only fire the trigger.
A pass resolves the source's revision; a new commit is verified (signature),
loaded and compiled completely before anything is applied, so an invalid
revision is never applied, not even in part, and the last good one stays in
force. Targets are then planned and applied one at a time: a failing target
is retried with backoff while the others go on, a target in ``report`` mode is
brought to a new revision but drift found later is only reported, and a stop
request (SIGTERM) is honoured between targets, never inside an apply.
"""

from __future__ import annotations

import logging
import threading
import time

from reconciler.accepted import AcceptedRevision, AcceptedStore
from reconciler.boot_templates import BootTemplateError
from reconciler.engine import Engine, PlanRefused, refuse_unsafe
from reconciler.inventory.sources import SourceError
from reconciler.model.inventory import Inventory
from reconciler.model.problems import InventoryError
from reconciler.plan import Plan, TargetPlan, build_target_plan
from reconciler.statefiles import StateFileError
from reconciler.statelock import StateLock, StateLocked
from reconciler.targets.base import LiveState, Target, TargetError
from reconciler.watch.backoff import Backoff, RetryState
from reconciler.watch.conditions import PassOutcome, settle
from reconciler.watch.debounce import Trigger
from reconciler.watch.metrics import WatchMetrics
from reconciler.watch.revision import GoodRevision
from reconciler.watch.rollouts import LoopRollouts
from reconciler.watch.settings import WatchSettings
from reconciler.watch.sources import RevisionSource, SourceUnavailable, pinned, verify_commit
from reconciler.watch.status import StatusStore, TargetStatus

log = logging.getLogger(__name__)
LOCK_WAIT_SECONDS = 2.0  # how long a pass waits for apply or a registration to finish
LOCK_RETRY_SECONDS = 1.0  # then it is postponed by this much


class WatchLoop:
    def __init__(
        self,
        *,
        engine: Engine,
        settings: WatchSettings,
        source: RevisionSource,
        store: StatusStore,
        metrics: WatchMetrics | None = None,
        suspended: bool = False,
    ) -> None:
        self.engine = engine
        self.suspended = suspended  # plan and report only: the operator's spec.suspend
        self.settings = settings
        self.source = source
        self.store = store
        self.metrics = metrics or WatchMetrics()
        self.trigger = Trigger(window=settings.debounce, max_delay=settings.debounce_max)
        self.backoff = Backoff(
            initial=settings.backoff_initial,
            cap=settings.backoff_max,
            factor=settings.backoff_factor,
            jitter=settings.backoff_jitter,
        )
        self.retries = {t.name: RetryState() for t in engine.targets}
        self.status = store.load()
        self.status.source = source.describe()
        self.good: GoodRevision | None = None
        self.previous: GoodRevision | None = None  # the good revision before ``good``
        self.bad: str | None = None  # newest commit found unusable; skipped until HEAD moves
        self.bad_reason = ""
        self.source_error: str | None = None
        self.refused: dict[str, str] = {}  # target -> why its plan was refused
        self._stop = threading.Event()
        self._next_drift = 0.0
        self.accepted = AcceptedStore(store.path.parent)
        self.state_lock = StateLock(store.path.parent, purpose="watch", timeout=LOCK_WAIT_SECONDS)
        self._postponed: tuple[float, set[str]] | None = None  # a pass that waits for the lock
        self.rollouts = LoopRollouts(store.path.parent, interval=settings.rollout_interval)
        self._reassigned = False  # node assignments changed: every target is due

    # -- control -------------------------------------------------------------

    def stop(self) -> None:
        """Finish the apply in progress, then leave ``run``; safe from signal handlers."""
        self._stop.set()
        self.trigger.fire("stop")

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        self.source.start(self.trigger)
        try:
            self.status.accepted_revision = self._accepted_commit()
            self._restore_last_good()
            self.trigger.fire("startup")
            while not self._stop.is_set():
                reasons = self.trigger.wait(self._timeout())
                if self._stop.is_set():
                    break
                if self._postponed is not None:
                    reasons = set(reasons or ()) | self._postponed[1]
                    self._postponed = None
                try:
                    self.run_pass(reasons or {"timer"})
                except Exception as error:  # never let one pass kill the loop
                    self._pass_crashed(error)
        finally:
            self.source.stop()
            log.info("watch loop stopped")

    def _pass_crashed(self, error: Exception) -> None:
        """Record an unexpected failure as Stalled and wait before the next pass."""
        log.exception("pass failed unexpectedly; retrying", extra={"error": str(error)})
        message = f"{type(error).__name__}: {error}"
        self.status.set_condition("Stalled", True, reason="PassFailed", message=message)
        self.status.set_condition("Ready", False, reason="PassFailed", message=message)
        try:
            self._save()
        except OSError as save_error:
            log.error("status not saved", extra={"error": str(save_error)})
        self._stop.wait(self.settings.backoff_max)

    def _timeout(self) -> float:
        wakeups = [self._next_drift]
        if self._postponed is not None:
            wakeups.append(self._postponed[0])
        wakeups += [r.next_attempt for r in self.retries.values() if r.failures]
        for wakeup in (self.source.next_wakeup(), self.rollouts.wakeup()):
            if wakeup is not None:
                wakeups.append(wakeup)
        return max(0.0, min(wakeups) - time.monotonic())

    def _restore_last_good(self) -> None:
        """After a restart, the revision in force is the one status.json recorded."""
        commit = self.status.good_revision or self.status.applied_revision
        if commit is None:
            return
        try:
            self.good = self._compiled(commit, self.engine.load(pinned(self.source, commit)))
        except Exception as error:  # e.g. the commit was garbage-collected: start afresh
            log.warning(
                "last good revision unreadable", extra={"commit": commit, "error": str(error)}
            )

    def _compiled(self, commit: str, inventory: Inventory) -> GoodRevision:
        """A revision compiled with the node assignments its rollouts decide now."""
        return self.rollouts.compile(self.engine, commit, inventory, in_force=self.good)

    def _save_rollouts(self, good: GoodRevision) -> None:
        """Record the rollout decision the targets now hold (never one a plan refused)."""
        if good.rollouts is not None and not self.refused and not self.suspended:
            self.rollouts.save(good.rollouts)

    def _follow_rollouts(self, reasons: set[str]) -> None:
        """Between commits: new agent reports may move nodes to the next wave."""
        moved = self.rollouts.follow(self.engine, self.good, reasons)
        if moved is not None:
            self.previous, self.good, self._reassigned = self.good, moved, True

    # -- one pass ------------------------------------------------------------

    def run_pass(self, reasons: set[str]) -> None:
        now = time.monotonic()
        drift = bool(reasons & {"startup", "manual"}) or now >= self._next_drift
        try:
            commit: str | None = self.source.resolve(reasons)
            self.source_error = None
        except SourceUnavailable as error:
            commit, self.source_error = None, str(error)
        fresh = commit is not None and (self.good is None or commit != self.good.commit)
        if commit is not None and fresh and commit != self.bad:
            self._consider(commit)
        else:
            self._follow_rollouts(reasons)
        result = "noop"
        if self.good is not None:
            due = [t for t in self.engine.targets if self._due(t.name, drift=drift, now=now)]
            if due:
                try:
                    self.state_lock.acquire()
                except StateLocked as error:  # apply or a registration is writing: come back
                    log.warning("pass postponed", extra={"error": str(error)})
                    self._postponed = (now + LOCK_RETRY_SECONDS, reasons)
                    return
                try:
                    result = self._reconcile(self.good, due, drift=drift)
                    self._reassigned = False
                    self._record_accepted(self.good)
                    self._save_rollouts(self.good)
                finally:
                    self.state_lock.release()
            elif self.good.rollouts is not None and self.good.rollouts is not self.rollouts.last:
                try:
                    with self.state_lock:
                        self._save_rollouts(self.good)
                except StateLocked:
                    log.info("rollout state saved on a later pass: the state dir is busy")
        if drift:
            self._next_drift = now + self.settings.drift_interval
        if self.bad is not None and result == "noop":
            result = "refused"
        elif self.source_error is not None and result == "noop":
            result = "source-error"
        self._finish(result)

    def _record_accepted(self, good: GoodRevision) -> None:
        """A revision that every target was brought to (none refused it) is the accepted one.

        Targets that failed for a passing reason (a service down) are retried; the
        revision stays accepted. A refused plan or a stop between targets leaves the
        previous revision accepted.
        """
        if self.refused or self._accepted_commit() == good.commit:
            return
        if any(
            (t := self.status.targets.get(n)) is None or (t.ok and t.revision != good.commit)
            for n in self.retries
        ):
            return
        self.accepted.record(
            AcceptedRevision.of(pinned(self.source, good.commit), good.commit, by="watch")
        )
        self.status.accepted_revision = good.commit
        log.info("revision accepted", extra={"commit": good.commit})

    def _accepted_commit(self) -> str | None:
        try:
            record = self.accepted.read()
        except StateFileError as error:
            log.error("accepted revision record damaged; rewriting it", extra={"error": str(error)})
            return None
        return record.revision if record is not None else None

    def _due(self, name: str, *, drift: bool, now: float) -> bool:
        retry = self.retries[name]
        if not retry.due(now):
            return False
        assert self.good is not None
        target = self.status.targets.get(name)
        behind = target is None or target.revision != self.good.commit or not target.ok
        return drift or behind or self._reassigned or retry.failures > 0

    def _consider(self, commit: str) -> None:
        """Verify, load and compile a new commit; it becomes good or is set aside as bad."""
        self.status.attempted_revision = commit
        refusal = verify_commit(
            self.source.repo,
            commit,
            mode=self.settings.verify_signatures,
            allowed_signers=self.settings.allowed_signers,
            gnupghome=self.settings.gnupghome,
        )
        if refusal is not None:
            self._set_bad(commit, "UntrustedSignature", [refusal])
            return
        try:
            good = self._compiled(commit, self.engine.load(pinned(self.source, commit)))
        except InventoryError as error:
            self._set_bad(commit, "InvalidRevision", [str(p) for p in error.problems])
            return
        except BootTemplateError as error:
            self._set_bad(commit, "RenderFailed", [str(error)])
            return
        except SourceError as error:
            self._set_bad(commit, "UnreadableRevision", [str(error)])
            return
        except Exception as error:  # a corrupt object, an unreadable file, a bug: refuse it
            log.exception("revision could not be loaded", extra={"commit": commit})
            self._set_bad(commit, "UnreadableRevision", [f"{type(error).__name__}: {error}"])
            return
        self.previous = self.good
        self.good, self.bad, self.bad_reason = good, None, ""
        self.status.good_revision = commit
        self.status.errors = []
        self.refused.clear()
        log.info("new revision", extra={"commit": commit})

    def _set_bad(self, commit: str, reason: str, errors: list[str]) -> None:
        self.bad, self.bad_reason = commit, reason
        self.status.errors = errors
        log.error(
            "revision refused",
            extra={"commit": commit, "reason": reason, "errors": errors[:20]},
        )

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

    def _incremental(self, target: Target, good: GoodRevision) -> TargetPlan | None:
        """The changes between the previous good revision and this one, without reading live.

        Only when the target was brought to the previous revision and no drift check
        is due: live state is then what that revision asked for (drift checks re-read
        it on their own schedule). A target that finds live state otherwise fails the
        change (value-dependent prerequisites, missing objects) and is retried with a
        full read.
        """
        previous = self.previous
        record = self.status.targets.get(target.name)
        if previous is None or record is None or not record.ok:
            return None
        if record.revision != previous.commit:
            return None
        old = {r.key: r for r in previous.desired(target)}
        return build_target_plan(
            target=target.name,
            kind=target.kind,
            desired=good.desired(target),
            live=LiveState(owned=old),
        )

    def _reconcile(self, good: GoodRevision, targets: list[Target], *, drift: bool) -> str:
        """Plan every due target, refuse the revision whole if any plan is too large, apply."""
        self.status.set_condition(
            "Reconciling", True, reason="Progressing", message=f"reconciling {good.commit[:12]}"
        )
        self._save()
        failed = False
        planned: list[tuple[Target, TargetPlan]] = []
        for target in targets:
            outcome = self._plan_target(good, target, drift=drift)
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
            if self._stop.is_set():
                log.info("stop requested: remaining targets left for the next run")
                break
            if not self._apply_target(good, target, plan, drift=drift):
                failed = True
        return "failure" if failed else "success"

    def _refuse(self, name: str, plan: TargetPlan, reason: str) -> None:
        self.refused[name] = reason
        record = self.status.targets.setdefault(name, TargetStatus())
        record.pending = len(plan.changes)
        self._target_failed(record, self.retries[name], name, reason)

    def _plan_target(self, good: GoodRevision, target: Target, *, drift: bool) -> TargetPlan | bool:
        """The target's plan; True: nothing to apply (drift only reported); False: it failed."""
        name = target.name
        record = self.status.targets.setdefault(name, TargetStatus())
        record.mode = self.settings.drift_mode(name)
        retry = self.retries[name]
        plan = None if drift or retry.failures else self._incremental(target, good)
        if plan is None:
            try:
                plan = self._read(target, good)
            except TargetError as error:
                return self._target_failed(record, retry, name, str(error))
            except Exception as error:  # unexpected: a failed target, not a dead loop
                log.exception("target read failed unexpectedly", extra={"target": name})
                return self._target_failed(record, retry, name, f"{type(error).__name__}: {error}")
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

    def _apply_target(
        self, good: GoodRevision, target: Target, plan: TargetPlan, *, drift: bool
    ) -> bool:
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
            return self._target_failed(record, retry, name, str(error))
        except Exception as error:  # unexpected: a failed target, not a dead loop
            log.exception("target apply failed unexpectedly", extra={"target": name})
            record.pending = len(plan.changes)
            return self._target_failed(record, retry, name, f"{type(error).__name__}: {error}")
        outcome = report.outcomes[0]
        seconds = time.monotonic() - started
        if not outcome.ok:
            record.pending = len(plan.changes)
            return self._target_failed(record, retry, name, outcome.error or "apply failed")
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

    def _target_failed(
        self, record: TargetStatus, retry: RetryState, name: str, error: str
    ) -> bool:
        at = retry.failed(now=time.monotonic(), backoff=self.backoff, error=error)
        record.ok, record.error, record.failures = False, error, retry.failures
        record.next_retry = time.time() + (at - time.monotonic())
        self.metrics.target_up.labels(target=name).set(0)
        log.error(
            "target failed; will retry",
            extra={"target": name, "error": error, "retry_in": round(at - time.monotonic(), 2)},
        )
        return False

    # -- status ----------------------------------------------------------------

    def _finish(self, result: str) -> None:
        status = self.status
        status.passes += 1
        status.rollouts, status.rollout_error = self.rollouts.status(), self.rollouts.error
        waiting = [n for n, r in self.retries.items() if r.failures and n not in self.refused]
        conflicts = {n: t.conflicts for n, t in status.targets.items() if t.conflicts}
        outcome = PassOutcome(
            good=self.good.commit if self.good is not None else None,
            conflicts=conflicts,
            bad=self.bad,
            bad_reason=self.bad_reason,
            refused=self.refused,
            source_error=self.source_error,
            waiting=waiting,
            targets=list(self.retries),
        )
        settle(status, outcome)
        ready = status.condition("Ready")
        if ready is not None and ready.status:
            status.last_success = time.time()
            self.metrics.last_success.set(status.last_success)
        self.metrics.observe_pass(result)
        self.metrics.observe_revision(
            applied=status.applied_revision, attempted=status.attempted_revision
        )
        self._save()

    def _save(self) -> None:
        self.store.save(self.status)
