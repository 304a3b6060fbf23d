"""The watch loop: wait for a trigger, reconcile, record; until told to stop.

One thread runs passes; watchers, webhooks and signals only fire the trigger.
A pass resolves the source's revision; a new commit is verified (signature),
loaded and compiled completely before anything is applied, so an invalid
revision is never applied, not even in part, and the last good one stays in
force. Targets are then planned and applied one at a time
(``reconciler.watch.target_steps``): a failing target is retried with backoff
while the others go on, a target in ``report`` mode is brought to a new
revision but drift found later is only reported, and a stop request (SIGTERM)
is honoured between targets, never inside an apply.
"""

from __future__ import annotations

import logging
import threading
import time

from reconciler.accepted import AcceptedRevision, AcceptedStore
from reconciler.boot_templates import BootTemplateError
from reconciler.engine import Engine
from reconciler.gc_pause import PassHeap
from reconciler.inventory.sources import SourceError
from reconciler.model.inventory import Inventory
from reconciler.model.problems import InventoryError
from reconciler.statefiles import StateFileError
from reconciler.statelock import StateLock, StateLocked
from reconciler.targets.base import Target
from reconciler.watch.conditions import PassOutcome, settle
from reconciler.watch.debounce import Trigger
from reconciler.watch.metrics import WatchMetrics
from reconciler.watch.pulledreports import pulled_reports
from reconciler.watch.revision import GoodRevision
from reconciler.watch.rollouts import LoopRollouts
from reconciler.watch.settings import WatchSettings
from reconciler.watch.sources import RevisionSource, SourceUnavailable, pinned, verify_commit
from reconciler.watch.status import StatusStore
from reconciler.watch.target_steps import TargetSteps

log = logging.getLogger(__name__)
LOCK_WAIT_SECONDS = 2.0  # how long a pass waits for apply or a registration to finish
LOCK_RETRY_SECONDS = 1.0  # then it is postponed by this much
IDLE_BEFORE_COLLECTING = 1.0  # quiet seconds before a due full collection (gc_pause.py)


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
        self.settings = settings
        self.source = source
        self.store = store
        self.metrics = metrics or WatchMetrics()
        self.trigger = Trigger(window=settings.debounce, max_delay=settings.debounce_max)
        self.status = store.load()
        self.status.source = source.describe()
        self.good: GoodRevision | None = None
        self.previous: GoodRevision | None = None  # the good revision before ``good``
        self.bad: str | None = None  # newest commit found unusable; skipped until HEAD moves
        self.bad_reason = ""
        self.source_error: str | None = None
        self._stop = threading.Event()
        self.steps = TargetSteps(
            engine=engine,
            settings=settings,
            status=self.status,
            metrics=self.metrics,
            stop=self._stop,
            suspended=suspended,
        )
        self.retries = self.steps.retries  # target -> its failures and next attempt
        self.refused = self.steps.refused  # target -> why its plan was refused
        self._next_drift = 0.0
        self.accepted = AcceptedStore(store.path.parent)
        self.state_lock = StateLock(store.path.parent, purpose="watch", timeout=LOCK_WAIT_SECONDS)
        self._postponed: tuple[float, set[str]] | None = None  # a pass that waits for the lock
        self.rollouts = LoopRollouts(
            store.path.parent,
            interval=settings.rollout_interval,
            pulled=pulled_reports(engine.config, settings),
        )
        self._reassigned = False  # node assignments changed: every target is due
        self.heap = PassHeap()
        self._reclaim = False  # a full collection due after this pass (a refused commit)

    @property
    def suspended(self) -> bool:
        """Plan and report only: the operator's spec.suspend."""
        return self.steps.suspended

    @suspended.setter
    def suspended(self, value: bool) -> None:
        self.steps.suspended = value

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
                reasons = self._wait()
                if self._stop.is_set():
                    break
                if self._postponed is not None:
                    reasons = set(reasons or ()) | self._postponed[1]
                    self._postponed = None
                try:
                    # No collection of a 100,000-host heap mid-pass, nor at the next
                    # commit's expense: see reconciler/gc_pause.py.
                    with self.heap.paused() as end:
                        self.run_pass(reasons or {"timer"})
                        end.reclaim = self._reclaim
                except Exception as error:  # never let one pass kill the loop
                    self._pass_crashed(error)
        finally:
            self.source.stop()
            self.heap.thaw()
            log.info("watch loop stopped")

    def _wait(self) -> set[str] | None:
        """The next pass's reasons (None: a timer is due). A due full collection of the
        frozen heap runs first, once no trigger came for ``IDLE_BEFORE_COLLECTING``."""
        if self.heap.reclaim_due and self._timeout() > IDLE_BEFORE_COLLECTING:
            reasons = self.trigger.wait(IDLE_BEFORE_COLLECTING)
            if reasons is not None:
                return reasons
            self.heap.reclaim()
        return self.trigger.wait(self._timeout())

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
        self._reclaim = False
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
            self._make_key_maps()
        if self.bad is not None and result == "noop":
            result = "refused"
        elif self.source_error is not None and result == "noop":
            result = "source-error"
        self._finish(result)

    def _make_key_maps(self) -> None:
        """The key maps of the revision in force, made by a drift pass (the start-up pass,
        slow anyway) instead of by the next commit's plans: 0.3-1 s at 100,000 hosts,
        taken over by that commit's revision (``revision.py``)."""
        if self.good is not None:
            for target in self.engine.targets:
                self.good.keys(target)

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
        self._reclaim = True  # the refused load's cycles (tracebacks, partial models)
        self.status.errors = errors
        log.error(
            "revision refused",
            extra={"commit": commit, "reason": reason, "errors": errors[:20]},
        )

    def _reconcile(self, good: GoodRevision, targets: list[Target], *, drift: bool) -> str:
        self.status.set_condition(
            "Reconciling", True, reason="Progressing", message=f"reconciling {good.commit[:12]}"
        )
        self._save()
        return self.steps.reconcile(good, targets, previous=self.previous, drift=drift)

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
