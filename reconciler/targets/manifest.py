"""What a file target last wrote or read: the lstat and sha256 of each file, by key.

A no-op pass over 300,000 boot files should not read 300,000 files. When a
file's lstat is still the one recorded when the reconciler wrote or read it,
its content is the recorded one, and comparing hashes is enough. The lstat
compared is size, mtime, ctime and inode: a hand edit moves the ctime even when
the size stays and the mtime is set back (``touch -d``, ``os.utime``; nothing
but the kernel sets a ctime), and a file replaced by another has another inode.

Clock ticks are coarse: a write in the same tick as the one recorded would
leave every time as it was. So an entry is trusted only when the file's times
were older than ``RACY_NS`` at the moment its lstat was taken (git's "racily
clean" rule); a file written just before (every file of an apply) is read in
full by the next pass, which records it again, trusted from then on.

Anything else, a file touched by hand, a missing, old or unreadable manifest,
falls back to reading the file. The manifest is only a cache: deleting it costs
speed, never correctness.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from reconciler.targets.base import atomic_write

# A file whose mtime or ctime is this close to the moment its lstat was taken is
# not trusted later: a write in the same clock tick would leave its times unchanged.
RACY_NS = 1_000_000_000
UNTRUSTED = -1  # the ctime kept for a racy entry: no lstat has it, so the file is read


def digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


class Manifest:
    """Entries ``key -> [size, mtime_ns, ctime_ns, inode, sha256]``, as JSON."""

    def __init__(self, state_dir: Path, target_name: str) -> None:
        self.path = state_dir / f"{target_name}.files.json"
        # Checked when used (``unchanged_digest``), not when loaded: 300,000 entries.
        self.entries: dict[str, Any] = {}
        self._noted = False

    def load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            raw = None
        self.entries = raw if isinstance(raw, dict) else {}

    def unchanged_digest(self, key: str, stat: os.stat_result) -> str | None:
        """The recorded sha256 if the file on disk is still the one recorded, else None."""
        entry = self.entries.get(key)
        if (
            type(entry) is list
            and len(entry) == 5
            and entry[2] == stat.st_ctime_ns  # first: it changes on every write
            and entry[0] == stat.st_size
            and entry[1] == stat.st_mtime_ns
            and entry[3] == stat.st_ino
            and type(entry[4]) is str
        ):
            return str(entry[4])
        return None

    def note(self, key: str, stat: os.stat_result, content: str, *, looked_at: int) -> None:
        """Remember a file read in full (``stat`` taken at or after ``looked_at``, ns)."""
        self.entries[key] = _entry(stat, content, looked_at)
        self._noted = True

    def save_if_noted(self) -> None:
        """Keep what reads learned; a cache, so a read-only state folder only costs speed."""
        if self._noted:
            self._noted = False
            with contextlib.suppress(OSError):
                self.save()

    def record(self, key: str, path: Path, content: str) -> None:
        """Remember a file just written (racy, so the next read reads it once)."""
        looked_at = time.time_ns()
        self.entries[key] = _entry(os.lstat(path), content, looked_at)

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)

    def save_quietly(self) -> None:
        """Save, or leave it (disk full, read-only): a missing manifest costs only speed."""
        with contextlib.suppress(OSError):
            self.save()

    def save(self) -> None:
        atomic_write(self.path, json.dumps(self.entries, separators=(",", ":")))


def _entry(stat: os.stat_result, content: str, looked_at: int) -> list[Any]:
    racy = max(stat.st_mtime_ns, stat.st_ctime_ns) >= looked_at - RACY_NS
    ctime = UNTRUSTED if racy else stat.st_ctime_ns
    return [stat.st_size, stat.st_mtime_ns, ctime, stat.st_ino, digest(content)]
