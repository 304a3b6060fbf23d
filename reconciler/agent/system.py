"""Everything the agent does to the node, behind one small interface.

The agent's decisions (compare, refuse, choose a method, roll back) are plain
Python tested without root against a fake of this interface; ``RealSystem``
(in ``realsystem``) is the one implementation that mounts, signals PID 1 and
runs kexec, and the qemu tests of the node boot path exercise it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from reconciler.agent.ladder import Capabilities


class ActionFailed(Exception):
    """A system action did not work; the message says which and why."""


class Download(Protocol):
    """An HTTP body being read: its announced length (if any) and its bytes in chunks."""

    length: int | None

    def chunks(self) -> Iterator[bytes]: ...


class System(Protocol):
    def download(self, url: str) -> AbstractContextManager[Download]:
        """Open ``url`` for reading; ActionFailed when it cannot be fetched."""
        ...

    def mem_available(self) -> int:
        """Bytes of RAM available for new tmpfs content (``MemAvailable``)."""
        ...

    def free_space(self, path: Path) -> int:
        """Bytes free on the file system holding ``path``."""
        ...

    def mount_squashfs(self, image: Path, target: Path) -> None:
        """Mount ``image`` read-only on ``target``."""
        ...

    def unmount(self, target: Path, *, lazy: bool = False) -> None: ...

    def capabilities(self) -> Capabilities: ...

    def boot_id(self) -> str: ...

    def cmdline(self) -> str:
        """The running kernel's command line."""
        ...

    def running_rootfs_sha256(self) -> str | None:
        """The rootfs sha256 whose stage is the lower layer of ``/``; None when unknown."""
        ...

    def switch_root(self) -> None:
        """Ask busybox init to run its ``::restart:`` program (``kill -QUIT 1``)."""
        ...

    def soft_reboot(self, *, squashfs: Path, stage: Path) -> None:
        """Mount the new root at ``/run/nextroot`` and ``systemctl soft-reboot``."""
        ...

    def kexec(self, *, kernel: Path, initrd: Path, cmdline: str, systemd: bool) -> None:
        """Load ``kernel`` and ``initrd`` and execute them."""
        ...

    def reboot(self, *, systemd: bool) -> None: ...

    def release(self, stage: Path) -> None:
        """Unmount whatever is still mounted under ``stage`` (lazily)."""
        ...
