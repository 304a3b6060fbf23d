"""The kernel command line: what the agent reads from it and what it passes to a kexec'd kernel.

The boot templates put ``hostname=``, ``reconciler.server=`` and the image's
``reconciler.*`` parameters on the command line; the agent reads its defaults
from there. A kexec boots the new kernel with the command line a PXE boot of
the new assignment would have had: the assignment's own ``cmdline``, the
node's identity kept from the running line, the new image's parameters, and
``reconciler.swap=`` so the agent after the kexec can report the swap.
"""

from __future__ import annotations

import shlex

from reconciler.agent.assignment import Assignment

KEPT = ("hostname", "BOOTIF", "reconciler.server", "reconciler.modules")


def parameters(cmdline: str) -> dict[str, str]:
    """``key=value`` words of a command line (the last one wins; bare words map to '')."""
    try:
        words = shlex.split(cmdline)
    except ValueError:
        words = cmdline.split()
    found: dict[str, str] = {}
    for word in words:
        key, _, value = word.partition("=")
        found[key] = value
    return found


def kexec_cmdline(*, running: str, assignment: Assignment, started: float, previous: str) -> str:
    """The command line for kexec'ing into ``assignment`` from a node running ``running``."""
    params = parameters(running)
    words = [assignment.cmdline.strip()] if assignment.cmdline.strip() else []
    words += [f"{key}={params[key]}" for key in KEPT if params.get(key)]
    words += [
        f"reconciler.image={assignment.label}",
        f"reconciler.rootfs={assignment.rootfs.url}",
        f"reconciler.rootfs_sha256={assignment.rootfs.sha256}",
        f"reconciler.kernel_sha256={assignment.kernel.sha256}",
        f"reconciler.swap=kexec,{started:.3f},{previous}",
    ]
    return " ".join(words)


def swap_marker(cmdline: str) -> tuple[float, str] | None:
    """(started, previous label) of a ``reconciler.swap=kexec,...`` on the command line."""
    value = parameters(cmdline).get("reconciler.swap", "")
    method, _, rest = value.partition(",")
    started, _, previous = rest.partition(",")
    if method != "kexec":
        return None
    try:
        return float(started), previous
    except ValueError:
        return None
