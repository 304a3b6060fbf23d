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
that was made during a pass stays behind frozen; it is reclaimed by a full
collection (unfreeze, collect, freeze again) after the passes that may leave
much of it or are slow anyway: the first, a drift pass, a refused commit or
a failed pass (tracebacks hold whole frames), and whenever the frozen heap has
grown by ``growth`` since the last full collection.
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
    """Set ``reclaim`` inside the pass to have its frozen cyclic garbage reclaimed."""

    reclaim: bool = False


class PassHeap:
    """The collector paused during each pass of a loop and the survivors frozen after it."""

    def __init__(self, *, growth: float = 0.10) -> None:
        self.growth = growth
        self.baseline: int | None = None  # frozen objects right after the last full collection
        self.full_collections = 0

    @contextmanager
    def paused(self) -> Iterator[PassEnd]:
        """One pass: collector off inside, survivors frozen (or the heap reclaimed) after."""
        end = PassEnd()
        with collector_paused():
            try:
                yield end
            except BaseException:
                end.reclaim = True  # a traceback's frames may hold a whole revision
                raise
            finally:
                self._settle(reclaim=end.reclaim)

    def _settle(self, *, reclaim: bool) -> None:
        gc.freeze()
        frozen = gc.get_freeze_count()
        grown = self.baseline is None or frozen > self.baseline * (1 + self.growth)
        if reclaim or grown:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self.baseline = gc.get_freeze_count()
            self.full_collections += 1

    def thaw(self) -> None:
        """Back to ordinary collections (the loop stopped)."""
        gc.unfreeze()
        self.baseline = None
