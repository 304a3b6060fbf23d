"""An idle watch on a local repository sleeps: it does not wake on its own reads of git."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from reconciler.watch.status import StatusStore
from tests.unit.watch_fixture import WatchSite, ready

IDLE_SECONDS = 10.0
CPU_BOUND = 0.05  # share of one core, generous: idle is well under 1% when it sleeps


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_idle_watch_runs_no_pass_and_uses_almost_no_cpu(watch_site: WatchSite) -> None:
    config = watch_site.config_path
    # No timer passes in the window: every pass would be the loop waking itself.
    config.write_text(
        config.read_text() + "[watch]\ndrift_interval = 3600\nlocal_poll_interval = 3600\n"
    )
    store = StatusStore(watch_site.root / "state")
    reconciler = str(Path(sys.executable).with_name("reconciler"))
    process = subprocess.Popen(
        [reconciler, "watch", "-c", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready(store.load()):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "watch did not become Ready"
            time.sleep(0.1)
        time.sleep(1.0)  # let the first pass's own events settle
        passes, cpu = store.load().passes, cpu_seconds(process.pid)
        time.sleep(IDLE_SECONDS)
        idle_passes = store.load().passes - passes
        idle_cpu = cpu_seconds(process.pid) - cpu
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert idle_passes == 0, f"{idle_passes} passes while idle: the loop wakes itself"
    assert idle_cpu < CPU_BOUND * IDLE_SECONDS, f"{idle_cpu:.2f} s of CPU in {IDLE_SECONDS} s"
