"""A node without root for the agent's unit tests: a fake ``System`` and a fake serve.

Files are real (the run folder is a temporary directory, downloads are written
and hashed for real); what needs root or a node is recorded instead: a
"mount" of a squashfs copies the image tree the test registered for that
file's sha256, signals and kexec are appended to ``actions``.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.agent.client import Fetched, ServerError
from reconciler.agent.ladder import Capabilities
from reconciler.agent.system import ActionFailed


@dataclass
class FakeDownload:
    data: bytes
    length: int | None

    def chunks(self) -> Iterator[bytes]:
        for start in range(0, len(self.data), 7):
            yield self.data[start : start + 7]


@dataclass
class FakeSystem:
    capabilities_: Capabilities = field(
        default_factory=lambda: Capabilities("busybox", None, kexec=True)
    )
    files: dict[str, bytes] = field(default_factory=dict)  # url -> body
    trees: dict[str, Path] = field(default_factory=dict)  # sha256 of a "squashfs" -> its tree
    memory: int = 1 << 30
    disk: int = 1 << 30
    announce_length: bool = True
    running_sha: str | None = None
    boot: str = "boot-1"
    kernel_cmdline: str = "console=ttyS0 hostname=node001 reconciler.server=http://10.0.0.1:8080"
    fail: set[str] = field(default_factory=set)  # action names that raise ActionFailed
    actions: list[tuple[Any, ...]] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)

    def serve_file(self, url: str, data: bytes) -> str:
        self.files[url] = data
        return hashlib.sha256(data).hexdigest()

    def add_image(self, url: str, data: bytes, tree: Path) -> str:
        sha = self.serve_file(url, data)
        self.trees[sha] = tree
        return sha

    def _act(self, name: str, *args: Any) -> None:
        self.actions.append((name, *args))
        if name in self.fail:
            raise ActionFailed(f"{name} failed (fake)")

    @contextmanager
    def download(self, url: str) -> Iterator[FakeDownload]:
        self.downloads.append(url)
        if url not in self.files:
            raise ActionFailed(f"GET {url}: HTTP 404 Not Found")
        data = self.files[url]
        yield FakeDownload(data, len(data) if self.announce_length else None)

    def mem_available(self) -> int:
        return self.memory

    def free_space(self, path: Path) -> int:
        return self.disk

    def mount_squashfs(self, image: Path, target: Path) -> None:
        self._act("mount", image.name)
        tree = self.trees.get(hashlib.sha256(image.read_bytes()).hexdigest())
        if tree is None:
            raise ActionFailed("mount: wrong fs type, bad superblock")
        shutil.rmtree(target)
        shutil.copytree(tree, target, symlinks=True)

    def unmount(self, target: Path, *, lazy: bool = False) -> None:
        self._act("unmount", target.name)
        shutil.rmtree(target)
        target.mkdir()

    def capabilities(self) -> Capabilities:
        return self.capabilities_

    def boot_id(self) -> str:
        return self.boot

    def cmdline(self) -> str:
        return self.kernel_cmdline

    def running_rootfs_sha256(self) -> str | None:
        return self.running_sha

    def switch_root(self) -> None:
        self._act("switch-root")

    def soft_reboot(self, *, squashfs: Path, stage: Path) -> None:
        self._act("soft-reboot", stage.name)

    def kexec(self, *, kernel: Path, initrd: Path, cmdline: str, systemd: bool) -> None:
        self._act("kexec", kernel.read_bytes(), initrd.read_bytes(), cmdline, systemd)

    def reboot(self, *, systemd: bool) -> None:
        self._act("reboot", systemd)

    def release(self, stage: Path) -> None:
        self._act("release", stage.name)


@dataclass
class FakeServer:
    answers: list[Fetched | ServerError] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    fetches: list[tuple[str | None, float]] = field(default_factory=list)

    def fetch(self, *, etag: str | None, wait: float) -> Fetched:
        self.fetches.append((etag, wait))
        answer = self.answers.pop(0) if self.answers else Fetched(304, None, etag)
        if isinstance(answer, ServerError):
            raise answer
        return answer

    def report(self, body: dict[str, Any]) -> None:
        self.reports.append(body)
