"""Stopping the watch loop: the apply in progress finishes, the process exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

from reconciler.targets.base import ApplyResult, Change
from reconciler.watch.status import StatusStore
from tests.unit.watch_fixture import WatchSite, ready


def test_stop_during_apply_finishes_that_target_only(watch_site: WatchSite) -> None:
    loop = watch_site.loop()
    first = loop.engine.targets[0]
    real_apply: Callable[[Sequence[Change]], ApplyResult] = first.apply
    entered = threading.Event()

    def slow_apply(changes: Sequence[Change]) -> ApplyResult:
        entered.set()
        time.sleep(0.3)
        return real_apply(changes)

    first.apply = slow_apply  # type: ignore[method-assign]
    thread = threading.Thread(target=loop.run)
    thread.start()
    assert entered.wait(5)
    loop.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
    status = loop.store.load()
    assert status.targets[first.name].ok  # its apply was finished, not cut
    assert "node010" in watch_site.out("dhcpd.hosts.conf")
    # The others were planned but not applied: they wait for the next run.
    others = [t for name, t in status.targets.items() if name != first.name]
    assert others and all(t.revision is None for t in others)
    assert not (watch_site.root / "out" / "zones").exists()


def test_sigterm_exits_zero(watch_site: WatchSite) -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    process = subprocess.Popen(
        [sys.executable, "-c", "from reconciler.cli import main; main()",
         "watch", "-c", str(watch_site.config_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        store = StatusStore(watch_site.root / "state")
        deadline = time.monotonic() + 20
        while not ready(store.load()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "watch never became ready"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
