"""The image's own health checks: every executable in ``/etc/reconciler/health.d/``.

After a swap the agent runs them in name order, each bounded by a timeout, and
the node is healthy when all exit 0. Their output (the end of it) goes into
the report, so an operator sees why a node rolled back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

OUTPUT_LIMIT = 2000


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    output: str


@dataclass(frozen=True)
class Health:
    ok: bool
    checks: tuple[CheckResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(check) for check in self.checks]}


def _run_check(path: Path, timeout: float) -> CheckResult:
    """Run one check in its own process group, so a timeout kills what it started too."""
    try:
        process = subprocess.Popen(
            [str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        return CheckResult(path.name, False, f"cannot run: {error.strerror}")
    with process:
        try:
            raw, _ = process.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raw, _ = process.communicate()
            timed_out = True
    output = raw.decode(errors="replace")[-OUTPUT_LIMIT:].strip()
    if timed_out:
        return CheckResult(path.name, False, f"timed out after {timeout:g} s\n{output}".strip())
    if process.returncode != 0:
        output = f"exit code {process.returncode}\n{output}".strip()
    return CheckResult(path.name, process.returncode == 0, output)


def run_checks(folder: Path, *, timeout: float) -> Health:
    """Run each executable file of ``folder`` (missing folder: healthy, no checks)."""
    try:
        entries = sorted(folder.iterdir())
    except FileNotFoundError:
        return Health(True)
    checks = tuple(
        _run_check(path, timeout)
        for path in entries
        if path.is_file() and os.access(path, os.X_OK) and not path.name.startswith(".")
    )
    return Health(all(check.ok for check in checks), checks)
