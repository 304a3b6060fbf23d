"""``reconciler sandbox``: a newcomer's first minutes, one commit applied live and proven.

Builds a whole site on this machine (namespaces, dhcpd with OMAPI or, with
``--dhcp kea``, Kea with its PostgreSQL host database, named with
dynamic zones and TSIG, tftpd, ``reconciler serve`` and ``reconciler watch``)
on a git copy of an inventory, commits a new host whose MAC the sandbox's DHCP
client uses, and shows what that machine now really gets: its address from
dhcpd, its name from named, its boot file over TFTP and its boot script over
HTTP, each with the time since the commit. Every step is printed with its
timing; every wait is bounded by one time budget; everything started is
stopped and removed at the end, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

from reconciler.sandbox.netns import MissingTool, require
from reconciler.sandbox.site import SandboxSite, open_site
from reconciler.sandbox.steps import Budget, Check, Narrator, show_change, show_site

NEW_MAC = "52:54:00:12:34:99"
TOOLS = (
    "/usr/sbin/dhcpd", "/usr/sbin/dhclient", "/usr/sbin/named", "/usr/sbin/in.tftpd",
    "/usr/bin/tftp", "/usr/bin/git",
)  # fmt: skip
KEA_TOOLS = (
    "/usr/sbin/kea-dhcp4", "/usr/sbin/kea-ctrl-agent", "/usr/sbin/kea-admin",
    "/usr/sbin/dhclient", "/usr/sbin/named", "/usr/sbin/in.tftpd", "/usr/bin/tftp", "/usr/bin/git",
)  # fmt: skip


@dataclass
class SandboxReport:
    """What a run showed and what it made, so a test can check nothing was left behind."""

    checks: list[Check] = field(default_factory=list)
    namespaces: tuple[str, ...] = ()
    workdir: Path | None = None
    folders: tuple[Path, ...] = ()  # workdir and the daemons' own (PostgreSQL's data, Kea's)
    pids: list[int] = field(default_factory=list)
    latency: float | None = None  # commit -> applied by the watch loop, seconds
    seconds: float = 0.0
    error: str | None = None
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks) and self.error is None


class Interrupted(BaseException):
    """SIGTERM during a run: unwind like Ctrl-C so cleanup runs."""


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """In the main thread: SIGTERM raises Interrupted, SIGINT KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C stops the demo even where SIGINT came in ignored (a background job).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


@contextlib.contextmanager
def _uninterruptible() -> Iterator[None]:
    """Cleanup is not cut short by a second Ctrl-C (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = (
        signal.signal(signal.SIGINT, signal.SIG_IGN),
        signal.signal(signal.SIGTERM, signal.SIG_IGN),
    )
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def run(
    *,
    example: Path,
    mac: str = NEW_MAC,
    group: str = "compute",
    index: int = 21,
    budget_seconds: float = 100.0,
    keep: bool = False,
    dhcp: str = "dhcpd",
    out: TextIO | None = None,
) -> SandboxReport:
    """Run the whole demo; the report says which checks passed. Never leaves anything behind
    (unless ``keep``: the folder stays for inspection; processes and namespaces still go)."""
    say = Narrator(out or sys.stdout)
    report = SandboxReport()
    budget = Budget(budget_seconds)
    site: SandboxSite | None = None
    with _signals_unwind():
        try:
            if os.geteuid() != 0:
                raise MissingTool("the sandbox needs root (network namespaces, daemons)")
            require(*(KEA_TOOLS if dhcp == "kea" else TOOLS))
            say.title(
                f"reconciler sandbox ({'Kea + PostgreSQL' if dhcp == 'kea' else 'dhcpd'}): "
                "a whole site on this machine, removed at the end"
            )
            site = open_site(dhcp=dhcp)
            report.workdir, report.namespaces = site.workdir, site.namespaces
            report.folders = site.folders
            dhcpd_pid = show_site(site, say=say, budget=budget, example=example)
            report.latency = show_change(
                site,
                say=say,
                budget=budget,
                mac=mac,
                group=group,
                index=index,
                dhcpd_pid=dhcpd_pid,
                checks=report.checks,
            )
        except (KeyboardInterrupt, Interrupted):
            report.interrupted = True
            report.error = "interrupted"
            say.line("interrupted: cleaning up")
        except Exception as error:  # reported as a failed run, after cleanup
            report.error = f"{type(error).__name__}: {error}"
            say.fail(report.error)
            if site is not None:
                for name in ("watch", "serve"):
                    tail = site.log_tail(name, 1500)
                    if tail:
                        say.line(f"--- last lines of {name}.log ---\n{tail.rstrip()}")
        finally:
            with _uninterruptible():
                if site is not None:
                    report.pids = site.pids()
                    started = time.monotonic()
                    site.close(keep=keep)
                    where = f"; folder kept: {site.workdir}" if keep else ""
                    say.step(
                        f"cleaned up: processes stopped, namespaces and folder removed{where}",
                        seconds=time.monotonic() - started,
                    )
    report.seconds = say.elapsed()
    say.summary(report.checks, latency=report.latency, error=report.error)
    return report


def exit_code(report: SandboxReport) -> int:
    """0 every check passed; 1 a check failed; 2 the sandbox could not run; 130 interrupted."""
    if report.interrupted:
        return 130
    if report.ok:
        return 0
    return 1 if report.checks else 2
