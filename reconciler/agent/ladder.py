"""The swap ladder: which way to move a node to a new image, least disruptive first.

Pure decision logic, so it is tested without a node: a root switch keeps the
kernel, the network and every hardware state, and costs a couple of seconds;
it needs the same kernel (the new image's modules must match it) and a PID 1
that can change root (systemd >= 254's soft-reboot, busybox init's
``::restart:`` hook). A kexec skips firmware and PXE. A reboot always works.
"""

from __future__ import annotations

from dataclasses import dataclass

SWITCH_ROOT = "switch-root"
SOFT_REBOOT = "soft-reboot"
KEXEC = "kexec"
REBOOT = "reboot"
METHODS = (SWITCH_ROOT, SOFT_REBOOT, KEXEC, REBOOT)

SOFT_REBOOT_SINCE = 254  # first systemd with ``systemctl soft-reboot``


@dataclass(frozen=True)
class Capabilities:
    """What the running node can do: its PID 1 and whether kexec works."""

    init: str  # "systemd", "busybox" or "other"
    systemd_version: int | None = None
    kexec: bool = False

    @property
    def systemd(self) -> bool:
        return self.init == "systemd"


def choose_method(*, kernel_changed: bool, capabilities: Capabilities) -> str:
    """The least disruptive method that works for this change on this node."""
    if not kernel_changed:
        if (
            capabilities.systemd
            and capabilities.systemd_version is not None
            and capabilities.systemd_version >= SOFT_REBOOT_SINCE
        ):
            return SOFT_REBOOT
        if capabilities.init == "busybox":
            return SWITCH_ROOT
    return KEXEC if capabilities.kexec else REBOOT


def can_roll_back(method: str) -> bool:
    """Whether the previous version is still in RAM after ``method`` (a root switch keeps /run)."""
    return method in (SWITCH_ROOT, SOFT_REBOOT)
