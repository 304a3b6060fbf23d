"""Python's cyclic garbage collector held off while a pass builds its big state.

Loading, compiling and planning 100,000 hosts allocates millions of objects
that all live to the end of the pass. Each allocation burst makes the
collector walk the ever larger heap again, and it finds nothing to free:
at 100k hosts that was 5 of a no-op plan's 22 seconds of CPU. Reference
counting still frees everything acyclic at once.

A one-shot command (plan, apply) pauses the collector for its one pass
(``collector_paused``). A long-running loop (watch) needs more
(``PassHeap``): the millions of objects a pass made are all still young when
the pass ends, so the first collection after it walks every one of them, at
the next commit's expense (at 100k hosts: 0.2-0.4 s each commit, a
second-generation collection 1-3 s every tenth, 1.3 s after the start-up
pass). So what survives a pass is frozen (``gc.freeze``): moved to the
permanent generation, which collections skip; reference counting still frees
a frozen object, so a dropped revision goes as before. Only cyclic garbage
made during a pass stays behind frozen (about 2,000 objects a pass at 100k
hosts). A full collection (unfreeze, collect, freeze again: seconds at 100k)
reclaims it once it is due: after a refused commit or a failed pass
(tracebacks hold whole frames), or when the frozen heap has grown by
``growth`` since the last one. The loop runs it only when no trigger came for
a while (``reconciler.watch.loop``), never on a commit's path.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block; restore its state after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(slots=True)
class PassEnd:
    """Set ``reclaim`` inside the pass to have the frozen heap's cyclic garbage reclaimed."""

    reclaim: bool = False


class PassHeap:
    """The collector paused during each pass of a loop, the survivors frozen after it, and
    a full collection when one is due and the loop is idle (``reclaim``)."""

    def __init__(self, *, growth: float = 0.10) -> None:
        self.growth = growth
        self.size = 0  # objects frozen after the last full collection (or the first pass)
        self.grown = 0  # objects frozen since: allocations less frees, as the collector counts
        self.reclaim_due = False
        self.full_collections = 0

    @contextmanager
    def paused(self) -> Iterator[PassEnd]:
        """One pass: collector off inside, survivors frozen after."""
        end = PassEnd()
        with collector_paused():
            try:
                yield end
            except BaseException:
                end.reclaim = True  # a traceback's frames may hold a whole revision
                raise
            finally:
                self._freeze(reclaim=end.reclaim)

    def _freeze(self, *, reclaim: bool) -> None:
        # The youngest generation's count: objects made less objects freed since the last
        # collection or freeze (kept in step by the interpreter; counting the frozen
        # objects instead walks all of them, 0.1-0.3 s at 100k hosts).
        young = gc.get_count()[0]
        gc.freeze()  # also zeroes that count
        if self.size == 0:  # the first pass made most of the heap; the first full
            self.size = max(1, young)  # collection counts it exactly
        else:
            self.grown += young
        if reclaim or self.grown > self.size * self.growth:
            self.reclaim_due = True

    def reclaim(self) -> None:
        """The full collection of everything frozen so far; the loop calls it when idle."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.size, self.grown = max(1, gc.get_freeze_count()), 0
        self.reclaim_due = False
        self.full_collections += 1

    def thaw(self) -> None:
        """Back to ordinary collections (the loop stopped)."""
        gc.unfreeze()
        self.size, self.grown, self.reclaim_due = 0, 0, False
