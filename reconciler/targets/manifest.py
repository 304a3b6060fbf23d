"""What a file target last wrote: size, mtime and sha256 of each file, by key.

A no-op pass over 30,000 boot files should not read 30,000 files. When a
file's size and modification time are still the ones recorded when the
reconciler wrote it, its content is the recorded one, and comparing hashes
is enough (the same test git and make rely on). Anything else, a file touched
by hand, a missing or unreadable manifest, falls back to reading the file.
The manifest is only a cache: deleting it costs speed, never correctness.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from reconciler.targets.base import atomic_write

Entry = tuple[int, int, str]  # size, mtime_ns, sha256


def digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


class Manifest:
    def __init__(self, state_dir: Path, target_name: str) -> None:
        self.path = state_dir / f"{target_name}.files.json"
        self.entries: dict[str, Entry] = {}
        self._noted = False

    def load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
            self.entries = {key: (int(e[0]), int(e[1]), str(e[2])) for key, e in raw.items()}
        except (OSError, ValueError, TypeError, IndexError, AttributeError):
            self.entries = {}

    def unchanged_digest(self, key: str, stat: os.stat_result) -> str | None:
        """The recorded sha256 if the file on disk is still the one recorded, else None."""
        entry = self.entries.get(key)
        if entry is not None and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            return entry[2]
        return None

    def note(self, key: str, stat: os.stat_result, content: str) -> None:
        """Remember a file read in full, so the next pass need not read it again."""
        self.entries[key] = (stat.st_size, stat.st_mtime_ns, digest(content))
        self._noted = True

    def save_if_noted(self) -> None:
        """Keep what reads learned; a cache, so a read-only state folder only costs speed."""
        if self._noted:
            self._noted = False
            with contextlib.suppress(OSError):
                self.save()

    def record(self, key: str, path: Path, content: str) -> None:
        stat = path.stat()
        self.entries[key] = (stat.st_size, stat.st_mtime_ns, digest(content))

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)

    def save_quietly(self) -> None:
        """Save, or leave it (disk full, read-only): a missing manifest costs only speed."""
        with contextlib.suppress(OSError):
            self.save()

    def save(self) -> None:
        atomic_write(self.path, json.dumps(self.entries, separators=(",", ":")))
