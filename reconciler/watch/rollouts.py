"""The rollout controller as the watch loop runs it: decide, compile, apply, then record.

A group's image change does not reach all its nodes with the commit: each pass
asks the controller (``reconciler.rollout``) which version every node is
assigned now, from the agents' reports, and the loop compiles the revision with
those assignments (``nodes/<host>.json`` and the boot files name them). The
decision is saved only after the targets were brought to it, so ``serve`` never
hands a node a version whose boot files are not written yet. While a rollout
waits for nodes, the loop wakes every ``rollout_interval`` seconds to look at
new reports. A damaged rollout state file never takes the loop down: the
assignments in force stay, and status says which file to remove. When serve
keeps the reports elsewhere (``[watch] reports_url``, the operator), they are
pulled from it; while it cannot be reached the assignments in force stay too,
and status says so (``pulledreports``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from reconciler.engine import Engine
from reconciler.model.inventory import Inventory
from reconciler.rollout.runner import RolloutPass, SettledGroups, run_rollouts, save_pass
from reconciler.rollout.store import RolloutStateError, RolloutStore
from reconciler.watch.pulledreports import PulledReports, ReportsUnavailable
from reconciler.watch.revision import GoodRevision

log = logging.getLogger(__name__)


class LoopRollouts:
    """Decisions for the loop's good revision, and when to look again."""

    def __init__(
        self, state_dir: Path, *, interval: float, pulled: PulledReports | None = None
    ) -> None:
        self.store = RolloutStore(state_dir)
        self.interval = interval
        self.pulled = pulled  # the reports, when serve keeps them elsewhere
        self.error: str | None = None
        self.waiting_for_reports = False
        self.last: RolloutPass | None = None
        self._next = 0.0
        self.settled = SettledGroups()  # unchanged groups' decisions, from pass to pass

    def decide(self, inventory: Inventory) -> RolloutPass | None:
        """This pass's decision (not saved yet); None when the state files are damaged."""
        pulled = self.pulled
        if pulled is not None:
            pulled.begin_pass()
        try:
            result = run_rollouts(
                inventory,
                self.store,
                persist=False,
                reports_from=pulled,
                timeout_from=pulled.judged_from if pulled is not None else 0.0,
                settled=self.settled,
            )
        except RolloutStateError as error:
            if self.error != str(error):
                log.error("rollout state unusable; assignments kept", extra={"error": str(error)})
            self.error = str(error)
            return None
        except ReportsUnavailable as error:
            if self.error != str(error):
                log.warning("rollouts wait for node reports", extra={"error": str(error)})
            self.error, self.waiting_for_reports = str(error), True
            self._next = time.monotonic() + self.interval  # look again, not at once
            return None
        self.error, self.waiting_for_reports = None, False
        self._next = time.monotonic() + self.interval
        return result

    def compile(
        self, engine: Engine, commit: str, inventory: Inventory, *, in_force: GoodRevision | None
    ) -> GoodRevision:
        """``commit`` compiled with the assignments decided now (those in force if damaged)."""
        decided = self.decide(inventory)
        if decided is None and in_force is not None:
            decided = in_force.rollouts
        assignments = decided.assignments if decided is not None else None
        if assignments is None and self.waiting_for_reports:
            # A restart (or a takeover) while serve is away: the assignments last recorded
            # stay in force (not saved again: no decision was made).
            try:
                assignments = self.store.assignments() or None
            except RolloutStateError:
                assignments = None
        state = engine.compile(inventory, assignments=assignments)
        return GoodRevision(commit, state, inventory, decided)

    def follow(
        self, engine: Engine, good: GoodRevision | None, reasons: set[str]
    ) -> GoodRevision | None:
        """The same commit compiled again when new reports moved nodes; None when none moved."""
        if good is None or good.inventory is None or not self.following(reasons):
            return None
        decided = self.decide(good.inventory)
        if decided is None:
            return None
        if good.rollouts is not None and decided.assignments == good.rollouts.assignments:
            good.rollouts = decided  # phases and failures may have changed: status shows them
            return None
        state = engine.compile(good.inventory, assignments=decided.assignments)
        return GoodRevision(good.commit, state, good.inventory, decided)

    def save(self, result: RolloutPass) -> None:
        """Record a decision whose assignments the targets now hold."""
        try:
            save_pass(self.store, result)
        except OSError as error:
            self.error = f"rollout state not saved: {error}"
            log.error("rollout state not saved", extra={"error": str(error)})
            return
        self.last = result

    def following(self, reasons: set[str]) -> bool:
        """Whether a pass without a new commit should decide again.

        While a rollout waits for nodes (or is held, or stopped by failures that a
        ``rollout resume`` may acknowledge), and on a brake command; never for an
        idle site, so a pass stays cheap when no image moves.
        """
        if reasons & {"rollout", "manual", "startup"} or self.waiting_for_reports:
            return True
        if self.last is None:
            return False
        return any(
            d.rollout is not None and d.rollout.phase in ("Progressing", "Paused", "Degraded")
            for d in self.last.decisions.values()
        )

    def wakeup(self) -> float | None:
        """When the loop should look at reports again: only while a rollout waits for nodes."""
        if self.waiting_for_reports:
            return self._next
        if self.last is None or not self.last.active:
            return None
        return self._next

    def status(self) -> list[dict[str, Any]]:
        """Groups with a rollout (nodes that moved), for status.json, ``status`` and /status."""
        if self.last is None:
            return []
        try:
            brakes = self.store.brakes()
        except RolloutStateError:
            brakes = {}
        moving = {
            name for name, d in self.last.decisions.items() if d.rollout and d.rollout.previous
        }
        return [row for row in self.last.rows(brakes) if row["group"] in moving]
