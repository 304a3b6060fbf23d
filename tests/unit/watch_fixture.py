"""A git repository holding inventory-example, a file-target config, and a loop runner."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.config import RuntimeConfig, load_config
from reconciler.sandbox.site import git
from reconciler.watch.loop import WatchLoop
from reconciler.watch.service import build_loop
from reconciler.watch.settings import WatchSettings
from reconciler.watch.status import Status
from tests.unit.site_fixture import EXAMPLE, FILE_TARGETS

FAST = {"debounce": 0.02, "drift_interval": 3600, "local_poll_interval": 30}


@dataclass
class WatchSite:
    root: Path

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def config_path(self) -> Path:
        return self.root / "reconciler.toml"

    def config(self) -> RuntimeConfig:
        return load_config(self.config_path)

    def loop(self, **settings: object) -> WatchLoop:
        return build_loop(self.config(), WatchSettings.model_validate({**FAST, **settings}))

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.repo / relative
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new))

    def commit(self, message: str) -> str:
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")

    def out(self, relative: str) -> str:
        return (self.root / "out" / relative).read_text()


@pytest.fixture
def watch_site(tmp_path: Path) -> WatchSite:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    config = FILE_TARGETS.replace(
        '[source]\npath = "inventory"', '[source]\nrepo = "repo"\nrev = "main"'
    )
    (tmp_path / "reconciler.toml").write_text(config)
    return WatchSite(tmp_path)


@pytest.fixture
def running() -> Iterator[Callable[[WatchLoop], WatchLoop]]:
    """Start loops in threads; they are stopped (and joined, bounded) at teardown."""
    threads: list[tuple[WatchLoop, threading.Thread]] = []

    def start(loop: WatchLoop) -> WatchLoop:
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        threads.append((loop, thread))
        return loop

    yield start
    for loop, thread in threads:
        loop.stop()
        thread.join(timeout=10)
        assert not thread.is_alive(), "watch loop did not stop"


def wait_status(
    loop: WatchLoop, predicate: Callable[[Status], bool], *, timeout: float = 30.0
) -> Status:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = loop.store.load()
        if predicate(status):
            return status
        time.sleep(0.01)
    raise AssertionError(f"status not reached in {timeout} s: {loop.store.load().to_dict()}")


def ready(status: Status) -> bool:
    condition = status.condition("Ready")
    return condition is not None and condition.status
