"""Waking the watch loop from another process: a file in the state folder.

``reconciler serve`` receives webhooks, but the loop runs in ``reconciler
watch``. The service writes ``state_dir/watch/wakeup``; the loop watches that
folder (watchdog) and fires its trigger, so a push announced by GitHub or
GitLab is fetched at once instead of at the next poll.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from reconciler.targets.base import atomic_write

WAKEUP_FILE = "wakeup"


def wakeup_path(state_dir: Path) -> Path:
    return state_dir / "watch" / WAKEUP_FILE


def request_pass(state_dir: Path, reason: str) -> None:
    """Ask the watch loop using ``state_dir`` for a pass now."""
    atomic_write(wakeup_path(state_dir), json.dumps({"reason": reason, "time": time.time()}))


def read_reason(path: Path) -> str:
    """The reason the requester gave ("webhook" makes a remote source fetch at once)."""
    try:
        return str(json.loads(path.read_text()).get("reason", "webhook"))
    except (OSError, ValueError, AttributeError):
        return "webhook"


class _WakeupEvents(FileSystemEventHandler):
    def __init__(self, path: Path, trigger: Callable[[str], None]) -> None:
        self.path = str(path)
        self.trigger = trigger

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = {str(event.src_path), str(getattr(event, "dest_path", ""))}
        if self.path in paths and event.event_type in ("created", "modified", "moved"):
            self.trigger(read_reason(Path(self.path)))


class WakeupWatcher:
    """Fires ``trigger`` whenever another process calls ``request_pass``."""

    def __init__(self, state_dir: Path, trigger: Callable[[str], None]) -> None:
        self.path = wakeup_path(state_dir)
        self.trigger = trigger
        self._observer: Observer | None = None  # type: ignore[valid-type]

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(_WakeupEvents(self.path, self.trigger), str(self.path.parent))
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
