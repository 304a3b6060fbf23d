"""The collector is paused only for the block: a pass that fails must not leave a
long-running process (watch, serve) without cyclic garbage collection. A loop's
passes (``PassHeap``) also freeze what survives them, so no collection walks a
100,000-host heap at the next commit's expense; the cyclic garbage that freezing
keeps is reclaimed once due: a pass asked for it, a pass failed, the heap grew."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from reconciler.gc_pause import PassHeap, collector_paused


class Node:
    """Something in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def heap() -> Iterator[PassHeap]:
    heap = PassHeap()
    with heap.paused():
        pass  # the first pass
    heap.reclaim()  # the size growth is measured against, exactly
    yield heap
    heap.thaw()


def cycle_made_and_dropped() -> weakref.ref[Node]:
    return weakref.ref(Node())


def test_paused_inside_and_enabled_again_after_an_error() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("pass failed")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_pass_survivors_are_frozen_so_collections_skip_them(heap: PassHeap) -> None:
    before = gc.get_freeze_count()
    with heap.paused():
        assert not gc.isenabled()
        kept = [Node() for _ in range(5000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + 5000
    assert gc.get_count()[0] < 100  # nothing young left for the next collection to walk
    assert not any(o is kept[0] for o in gc.get_objects())  # in no generation a collection walks
    assert not heap.reclaim_due and heap.full_collections == 1


def test_a_frozen_object_is_still_freed_by_reference_counting(heap: PassHeap) -> None:
    class Plain:
        pass

    with heap.paused():
        kept = Plain()
    gone = weakref.ref(kept)
    del kept
    assert gone() is None


def test_cyclic_garbage_stays_frozen_until_a_pass_asks_for_reclaim(heap: PassHeap) -> None:
    with heap.paused():
        garbage = cycle_made_and_dropped()
    gc.collect()
    assert garbage() is not None  # frozen: why a reclaim is needed at all
    with heap.paused() as end:
        end.reclaim = True
    assert garbage() is not None and heap.reclaim_due  # due: the loop runs it when idle
    heap.reclaim()
    assert garbage() is None
    assert not heap.reclaim_due and heap.full_collections == 2


def test_a_failed_pass_is_reclaimed(heap: PassHeap) -> None:
    with pytest.raises(RuntimeError), heap.paused():
        garbage = cycle_made_and_dropped()
        raise RuntimeError("pass failed")
    assert gc.isenabled() and heap.reclaim_due
    heap.reclaim()
    assert garbage() is None


def test_growth_of_the_frozen_heap_makes_a_collection_due(heap: PassHeap) -> None:
    heap.size = 10_000
    with heap.paused():
        garbage = [cycle_made_and_dropped() for _ in range(400)]
    assert not heap.reclaim_due  # 400 of 10,000: under 10%
    with heap.paused():
        garbage += [cycle_made_and_dropped() for _ in range(700)]
    assert heap.reclaim_due  # 1,100 since the last collection: over
    heap.reclaim()
    assert all(g() is None for g in garbage)
    assert heap.size == gc.get_freeze_count() and heap.grown == 0


def test_many_passes_replacing_a_revision_do_not_grow_the_heap(heap: PassHeap) -> None:
    """As watch: each pass builds a new revision (with some cyclic garbage) and drops the
    one before; the frozen heap stays bounded and few passes pay a full collection."""
    revision: list[tuple[int, str, list[int]]] = []
    with heap.paused():
        revision = [(i, str(i), [i]) for i in range(20_000)]
    heap.reclaim()
    settled = gc.get_freeze_count()
    cycles = settled // 200 + 100  # about 1% of whatever this process holds, a pass
    for _ in range(40):
        with heap.paused():
            fresh = [(i, str(i), [i]) for i in range(20_000)]
            for _ in range(cycles):
                cycle_made_and_dropped()
            revision = fresh
        if heap.reclaim_due:
            heap.reclaim()
        assert gc.get_freeze_count() <= settled * (1 + 2 * heap.growth) + 1000
    assert len(revision) == 20_000
    assert 3 <= heap.full_collections < 21


def test_thaw_unfreezes_everything(heap: PassHeap) -> None:
    with heap.paused():
        pass
    assert gc.get_freeze_count() > 0
    heap.thaw()
    assert gc.get_freeze_count() == 0


def test_the_first_pass_is_sized_without_counting_the_heap() -> None:
    """The start-up pass's size is taken from the collector's count (a walk of 2 million
    frozen objects costs 0.5 s at 100k hosts, on the first commit's path)."""
    heap = PassHeap()
    try:
        with heap.paused():
            kept = [Node() for _ in range(5000)]
        assert 5000 <= heap.size < gc.get_freeze_count()
        assert not heap.reclaim_due and len(kept) == 5000
    finally:
        heap.thaw()
