"""The compiled inventory the service answers from, recompiled when the revision changes.

Boot scripts over HTTP must say exactly what the TFTP boot files say, so the
service compiles with the same engine and keeps one ``DesiredState`` in
memory. It checks the source's revision at most every ``refresh_seconds``
(a git branch head is cheap to read; a plain folder is fingerprinted by its
content) and compiles again only when it changed. A revision that does not
validate is logged and the last good one keeps being served.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field

from reconciler.engine import Engine, source_from_config
from reconciler.inventory.sources import GitSource, InventorySource, SourceError
from reconciler.model.inventory import Inventory
from reconciler.model.problems import InventoryError
from reconciler.resources import DesiredState, NodeImage

log = logging.getLogger(__name__)


class NotReady(Exception):
    """No revision has compiled yet; the message says why."""


@dataclass(frozen=True, slots=True)
class Compiled:
    """One revision, compiled, with lookups by what HTTP clients ask for."""

    revision: str
    inventory: Inventory
    state: DesiredState
    files: dict[str, str] = field(default_factory=dict)  # boot file path -> content
    nodes: dict[str, NodeImage] = field(default_factory=dict)  # hostname -> assignment

    @classmethod
    def build(cls, revision: str, inventory: Inventory, state: DesiredState) -> Compiled:
        return cls(
            revision=revision,
            inventory=inventory,
            state=state,
            files={f.path: f.content for f in state.boot_files},
            nodes={n.host: n for n in state.node_images},
        )


def _fingerprint(source: InventorySource) -> str:
    """A revision id: the commit of a git source, a content hash of a folder."""
    if isinstance(source, GitSource):
        return source.revision()
    digest = hashlib.sha256()
    for name, content in sorted(source.read_files().items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return f"folder-{digest.hexdigest()[:16]}"


class CompiledInventory:
    """Holds the newest good compile of the configured source."""

    def __init__(self, engine: Engine, *, refresh_seconds: float) -> None:
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        self._current: Compiled | None = None
        self._checked = float("-inf")
        self._lock = asyncio.Lock()
        self.last_error: str | None = None

    async def current(self, *, force: bool = False) -> Compiled:
        """The compiled revision, checking for a newer one when the interval passed."""
        if (
            not force
            and self._current is not None
            and time.monotonic() - self._checked < self.refresh_seconds
        ):
            return self._current
        async with self._lock:
            if force or time.monotonic() - self._checked >= self.refresh_seconds:
                await asyncio.to_thread(self._refresh)
        if self._current is None:
            raise NotReady(self.last_error or "the inventory has not been compiled yet")
        return self._current

    def _refresh(self) -> None:
        self._checked = time.monotonic()
        try:
            source = source_from_config(self.engine.config)
            revision = _fingerprint(source)
            if self._current is not None and self._current.revision == revision:
                return
            inventory = self.engine.load(source)
            state = self.engine.compile(inventory)
        except (SourceError, InventoryError) as error:
            self.last_error = f"cannot use the inventory: {error}"
            log.error("inventory not reloaded", extra={"error": str(error)})
            return
        self._current = Compiled.build(revision, inventory, state)
        self.last_error = None
        log.info(
            "inventory compiled",
            extra={"revision": revision, "hosts": len(state.dhcp_hosts)},
        )
