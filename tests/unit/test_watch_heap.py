"""The watch loop freezes what a pass leaves (reconciler/gc_pause.py) and reclaims the
frozen heap's cyclic garbage once the loop is idle after a refused commit, never
after an ordinary one; a stopped loop unfreezes."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from reconciler.watch.loop import WatchLoop
from tests.unit.watch_fixture import WatchSite, ready, wait_status

Start = Callable[[WatchLoop], WatchLoop]


def wait_for(predicate: Callable[[], bool], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.01)


def test_a_refused_commit_is_reclaimed_when_idle_an_ordinary_one_is_not(
    watch_site: WatchSite, running: Start
) -> None:
    loop = watch_site.loop()
    loop.heap.growth = 100.0  # only the reasons under test, never the heap's growth
    running(loop)
    wait_status(loop, ready)
    wait_for(lambda: gc.get_freeze_count() > 0)  # after the status is saved
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:0b"', '"52:54:00:12:34:bb"')
    good = watch_site.commit("new NIC for node011")
    wait_status(loop, lambda s: s.applied_revision == good)
    time.sleep(1.5)  # idle longer than the loop waits before a due collection
    assert loop.heap.full_collections == 0
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:0c"', '"not-a-mac"')
    bad = watch_site.commit("broken MAC")
    wait_status(loop, lambda s: s.attempted_revision == bad and not ready(s))
    wait_for(lambda: loop.heap.full_collections == 1)  # the refusal, once idle
    watch_site.edit("groups/compute.yaml", '"not-a-mac"', '"52:54:00:12:34:cc"')
    fixed = watch_site.commit("fixed MAC")
    status = wait_status(loop, lambda s: s.applied_revision == fixed and ready(s))
    assert "52:54:00:12:34:cc" in watch_site.out("dhcpd.hosts.conf")
    assert status.passes >= 4
    loop.stop()
    wait_for(lambda: gc.get_freeze_count() == 0)
    assert loop.heap.full_collections == 1
