"""What a sandbox run must not leave behind, as the sandbox tests look for it.

``reconciler sandbox`` starts daemons (dhcpd, named, tftpd, Kea, PostgreSQL)
in namespaces and a temporary folder; its tests check afterwards that no
process still names that folder and that none of the recorded pids still runs.
"""

from __future__ import annotations

from pathlib import Path


def processes_mentioning(text: str) -> list[str]:
    """``pid: command line`` of every process whose command line contains ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in argv:
            found.append(f"{cmdline.parent.name}: {argv}")
    return found


def alive(pid: int) -> bool:
    """Still running. A zombie is not: it has exited, and a daemon's orphaned child
    (PostgreSQL's, say) waits there until PID 1 collects its exit status."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
