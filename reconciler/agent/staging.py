"""Stage a new version in RAM while the old one runs: download, verify, mount, look for init.

Files land in ``/run/reconciler/stage/<rootfs_sha256>/`` (tmpfs, so they cost
RAM: each download is checked against ``MemAvailable`` and the free space of
the folder, minus a reserve). A file gets its final name only after its sha256
matched, so a file under a final name is a verified one. The squashfs is then
mounted read-only and ``/sbin/init`` resolved inside it. Any failure raises
``Refused`` and removes what this attempt created; the running system is not
touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from reconciler.agent.assignment import Artifact, Assignment
from reconciler.agent.rootcheck import check_init
from reconciler.agent.state import RunDir
from reconciler.agent.system import ActionFailed, System

MIB = 1 << 20
ROOTFS, KERNEL, INITRD = "rootfs.squashfs", "vmlinuz", "initrd.img"


class Refused(Exception):
    """The version cannot be used; ``transient`` ones (network, RAM) are retried later."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


@dataclass(frozen=True)
class Staged:
    stage: Path
    squashfs: Path
    kernel: Path | None = None
    initrd: Path | None = None


class Stager:
    def __init__(self, system: System, run: RunDir, *, reserve_bytes: int) -> None:
        self.system = system
        self.run = run
        self.reserve = reserve_bytes

    def stage(self, assignment: Assignment, *, with_kernel: bool, keep: set[Path]) -> Staged:
        """Download and verify ``assignment``; ``keep`` are stages never to delete on failure."""
        stage = self.run.stage(assignment.rootfs.sha256)
        created = not stage.exists()
        try:
            stage.mkdir(parents=True, exist_ok=True)
            squashfs = self._fetch(assignment.rootfs, stage / ROOTFS, "rootfs")
            kernel = initrd = None
            if with_kernel:
                kernel = self._fetch(assignment.kernel, stage / KERNEL, "kernel")
                initrd = self._fetch(assignment.initrd, stage / INITRD, "initrd")
            self._check_image(squashfs, stage)
        except BaseException:
            if created and stage not in keep:
                shutil.rmtree(stage, ignore_errors=True)
            raise
        (stage / "assignment.json").write_text(
            json.dumps({"host": assignment.host, "image": assignment.image,
                        "version": assignment.version}, sort_keys=True) + "\n"
        )  # fmt: skip
        return Staged(stage, squashfs, kernel, initrd)

    def _room(self, folder: Path) -> int:
        return min(self.system.mem_available(), self.system.free_space(folder)) - self.reserve

    def _fetch(self, artifact: Artifact, path: Path, what: str) -> Path:
        if path.exists():
            return path  # verified when it got this name
        partial = path.with_name(f".{path.name}.part")
        digest = hashlib.sha256()
        written = 0
        try:
            with self.system.download(artifact.url) as body, partial.open("wb") as out:
                room = self._room(path.parent)
                if body.length is not None and body.length > room:
                    raise Refused(_no_room(what, body.length, room + self.reserve), transient=True)
                for chunk in body.chunks():
                    written += len(chunk)
                    if written > room:
                        raise Refused(_no_room(what, written, room + self.reserve), transient=True)
                    digest.update(chunk)
                    out.write(chunk)
            if body.length is not None and written != body.length:
                raise Refused(
                    f"{what}: {artifact.url} ended after {written} of {body.length} bytes",
                    transient=True,
                )
        except ActionFailed as error:
            partial.unlink(missing_ok=True)
            raise Refused(f"{what}: download failed: {error}", transient=True) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if digest.hexdigest() != artifact.sha256:
            partial.unlink(missing_ok=True)
            raise Refused(
                f"{what}: sha256 mismatch for {artifact.url}: expected {artifact.sha256}, "
                f"got {digest.hexdigest()}"
            )
        partial.replace(path)
        return path

    def _check_image(self, squashfs: Path, stage: Path) -> None:
        mountpoint = stage / "check"
        mountpoint.mkdir(exist_ok=True)
        try:
            self.system.mount_squashfs(squashfs, mountpoint)
        except ActionFailed as error:
            mountpoint.rmdir()
            raise Refused(f"rootfs: cannot be mounted as squashfs: {error}") from None
        try:
            problem = check_init(mountpoint)
        finally:
            try:
                self.system.unmount(mountpoint)
            except ActionFailed:
                self.system.unmount(mountpoint, lazy=True)
            with contextlib.suppress(OSError):
                mountpoint.rmdir()
        if problem:
            raise Refused(f"rootfs: no usable init: {problem}")


def _no_room(what: str, size: int, available: int) -> str:
    return (
        f"{what}: not enough RAM to stage it: {size / MIB:.1f} MiB needed with "
        f"{available / MIB:.1f} MiB available (reserve kept free included)"
    )
