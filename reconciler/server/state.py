"""The compiled revision the service answers from: the accepted one, never a branch head.

Boot scripts over HTTP must say exactly what the TFTP boot files say, and a
commit that ``watch`` refused (unsigned, invalid, too large a change) must not
reach a node through HTTP either. So the service never looks at the branch:
it reads the accepted revision that ``watch`` or ``apply`` recorded in the
state dir (``reconciler.accepted``), compiles exactly that revision with the
same engine, with the rollout assignments recorded beside it (the version each
node runs while its group rolls out in waves), and keeps it in memory. The
record is checked (one ``stat``) at most every ``refresh_seconds``, and on
every request while nothing is compiled yet; before any revision has been
accepted every boot answer is 503 with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.accepted import AcceptedRevision, AcceptedStore, revision_of
from reconciler.engine import Engine
from reconciler.inventory.sources import FolderSource, SourceError
from reconciler.model.inventory import Inventory
from reconciler.model.problems import InventoryError
from reconciler.resources import DesiredState, NodeImage
from reconciler.rollout.store import RolloutStateError, RolloutStore
from reconciler.server.mirror import AcceptedMirror
from reconciler.statefiles import StateFileError

log = logging.getLogger(__name__)

NOTHING_ACCEPTED = (
    "no revision has been accepted yet: run `reconciler apply` or start `reconciler watch`; "
    "boot answers come only from a revision that was applied"
)


class NotReady(Exception):
    """No accepted revision is compiled; the message says why."""


@dataclass(frozen=True, slots=True)
class Compiled:
    """One revision, compiled, with lookups by what HTTP clients ask for."""

    revision: str
    inventory: Inventory
    state: DesiredState
    files: dict[str, str] = field(default_factory=dict)  # boot file path -> content
    nodes: dict[str, NodeImage] = field(default_factory=dict)  # hostname -> assignment
    # The revision and the rollout assignments it was compiled with: changes with either.
    key: str = ""

    @classmethod
    def build(
        cls, revision: str, inventory: Inventory, state: DesiredState, *, key: str = ""
    ) -> Compiled:
        return cls(
            revision=revision,
            key=key or revision,
            inventory=inventory,
            state=state,
            files={f.path: f.content for f in state.boot_files},
            nodes={n.host: n for n in state.node_images},
        )


class CompiledInventory:
    """Holds the compile of the accepted revision; recompiles when another is accepted."""

    def __init__(
        self,
        engine: Engine,
        *,
        refresh_seconds: float,
        accepted_file: Path | None = None,
        assignments_file: Path | None = None,
        mirror: AcceptedMirror | None = None,
    ) -> None:
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        state_dir = engine.config.resolve(engine.config.state_dir)
        if accepted_file is not None and not accepted_file.is_absolute():
            accepted_file = state_dir / accepted_file
        self.store = AcceptedStore(state_dir, path=accepted_file)
        self.mirror = mirror  # serve's own copy of the accepted commit ([serve] mirror_url)
        # In a cluster both files are keys of one mounted ConfigMap, updated together.
        if assignments_file is not None and not assignments_file.is_absolute():
            assignments_file = state_dir / assignments_file
        self.rollouts = RolloutStore(state_dir, assignments_file=assignments_file)
        self._current: Compiled | None = None
        self._stamp: tuple[object, ...] | None = None
        self._checked = float("-inf")
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[Compiled], object]] = []
        self.last_error: str | None = NOTHING_ACCEPTED

    def on_new_revision(self, listener: Callable[[Compiled], object]) -> None:
        """Call ``listener`` (in the event loop) whenever another revision is compiled,
        the first one included; not when only rollout assignments moved."""
        self._listeners.append(listener)

    async def current(self, *, force: bool = False) -> Compiled:
        """The compiled accepted revision, checking the record when the interval passed."""
        if force or self._due():
            async with self._lock:
                if force or self._due():  # requests queued here: one of them checked already
                    before = self._current
                    await asyncio.to_thread(self._refresh)
                    self._announce(before)
        if self._current is None:
            raise NotReady(self.last_error or NOTHING_ACCEPTED)
        return self._current

    def _announce(self, before: Compiled | None) -> None:
        now = self._current
        if now is None or (before is not None and before.revision == now.revision):
            return
        for listener in self._listeners:
            listener(now)

    def _due(self) -> bool:
        return self._current is None or time.monotonic() - self._checked >= self.refresh_seconds

    def _refresh(self) -> None:
        self._checked = time.monotonic()
        accepted_stamp = self.store.stamp()
        stamp = (accepted_stamp, self.rollouts.assignments_stamp())
        if accepted_stamp is not None and stamp == self._stamp:
            return
        try:
            accepted = self.store.read()
            if accepted is None:
                self.last_error = NOTHING_ACCEPTED
                return
            assignments = self.rollouts.assignments()
            key = f"{accepted.revision}+{_digest(assignments)}" if assignments else ""
            current = self._current
            if current is not None and current.key == (key or accepted.revision):
                self._stamp, self.last_error = stamp, None
                return
            if current is not None and current.revision == accepted.revision:
                # Only node assignments moved (a rollout wave): no reload, a cheap compile.
                state = self.engine.compile(current.inventory, assignments=assignments)
                compiled = Compiled.build(accepted.revision, current.inventory, state, key=key)
            else:
                compiled = self._compile(accepted, assignments, key)
        except (StateFileError, SourceError, InventoryError, RolloutStateError) as error:
            self.last_error = f"cannot use the accepted revision: {error}"
            log.error("accepted revision not loaded", extra={"error": str(error)})
            return
        self._current, self._stamp, self.last_error = compiled, stamp, None
        log.info(
            "accepted revision compiled",
            extra={"revision": accepted.revision, "hosts": len(compiled.state.dhcp_hosts)},
        )

    def _compile(
        self, accepted: AcceptedRevision, assignments: dict[str, str], key: str
    ) -> Compiled:
        source = self.mirror.source(accepted) if self.mirror is not None else accepted.source()
        if isinstance(source, FolderSource) and revision_of(source) != accepted.revision:
            raise SourceError(
                f"{source.describe()} changed since revision {accepted.revision} was applied; "
                "run `reconciler apply` to apply (and serve) what it holds now"
            )
        inventory = self.engine.load(source)
        state = self.engine.compile(inventory, assignments=assignments)
        return Compiled.build(accepted.revision, inventory, state, key=key)


def _digest(assignments: dict[str, str]) -> str:
    body = json.dumps(assignments, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(body).hexdigest()[:12]
