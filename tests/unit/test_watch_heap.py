"""The watch loop freezes what a pass leaves (reconciler/gc_pause.py) and reclaims the
frozen heap's cyclic garbage after the passes that ask for it: the start-up (drift)
pass and a refused commit, never an ordinary commit; a stopped loop unfreezes."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from watch_fixture import WatchSite, ready, wait_status

from reconciler.watch.loop import WatchLoop

Start = Callable[[WatchLoop], WatchLoop]


def wait_for(predicate: Callable[[], bool], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.01)


def test_refused_commit_and_drift_reclaim_an_ordinary_commit_does_not(
    watch_site: WatchSite, running: Start
) -> None:
    loop = watch_site.loop()
    loop.heap.growth = 100.0  # only the reasons under test, never the heap's growth
    running(loop)
    wait_status(loop, ready)
    wait_for(lambda: loop.heap.full_collections == 1)  # the start-up pass: a drift pass
    assert gc.get_freeze_count() > 0
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:0b"', '"52:54:00:12:34:bb"')
    good = watch_site.commit("new NIC for node011")
    wait_status(loop, lambda s: s.applied_revision == good)
    watch_site.edit("groups/compute.yaml", '"52:54:00:12:34:0c"', '"not-a-mac"')
    bad = watch_site.commit("broken MAC")
    wait_status(loop, lambda s: s.attempted_revision == bad and not ready(s))
    wait_for(lambda: loop.heap.full_collections == 2)  # the refusal; the commit before: none
    watch_site.edit("groups/compute.yaml", '"not-a-mac"', '"52:54:00:12:34:cc"')
    fixed = watch_site.commit("fixed MAC")
    status = wait_status(loop, lambda s: s.applied_revision == fixed and ready(s))
    assert "52:54:00:12:34:cc" in watch_site.out("dhcpd.hosts.conf")
    assert status.passes >= 4
    loop.stop()
    wait_for(lambda: gc.get_freeze_count() == 0)
    assert loop.heap.full_collections == 2
