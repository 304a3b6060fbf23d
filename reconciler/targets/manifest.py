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

Writing 200,000 entries again for a one-host commit took most of a second, so the
entries changed since the manifest was loaded or written whole are appended to a
journal beside it (``<target>.journal.files.json``, one JSON line each), which
names the manifest file it continues (its inode, size and mtime): a journal
beside another file (rewritten by someone else, restored from a backup) is
ignored, and a torn line only loses its entry. Past ``JOURNAL_LINES`` the
manifest is written whole again and the journal starts over.
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
SEPARATORS = (",", ":")
JOURNAL_LINES = 5000  # entries appended to the journal before the manifest is written whole


def digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


class Manifest:
    """Entries ``key -> [size, mtime_ns, ctime_ns, inode, sha256]``, as JSON."""

    def __init__(self, state_dir: Path, target_name: str) -> None:
        self.path = state_dir / f"{target_name}.files.json"
        self.journal = state_dir / f"{target_name}.journal.files.json"
        # Checked when used (``unchanged_digest``), not when loaded: 300,000 entries.
        self.entries: dict[str, Any] = {}
        self._noted = False
        self._changed: dict[str, Any] = {}  # since loaded or saved; None: forgotten
        self._base: list[int] | None = None  # the manifest file's stamp, as loaded or written
        self._journaled = 0  # lines of the journal that continue it

    def load(self) -> None:
        self._base, self._journaled, self._changed = None, 0, {}
        try:
            raw = json.loads(self.path.read_text())
            self._base = _stamp(self.path)
        except (OSError, ValueError):
            raw = None
        self.entries = raw if isinstance(raw, dict) else {}
        if self._base is not None and isinstance(raw, dict):
            self._replay()

    def _replay(self) -> None:
        try:
            lines = self.journal.read_text().splitlines()
        except (OSError, ValueError):
            return
        if not lines or _line(lines[0]) != self._base:  # not this manifest's journal
            return
        for line in lines[1:]:
            entry = _line(line) if line else None
            if type(entry) is list and len(entry) == 2 and type(entry[0]) is str:
                if entry[1] is None:
                    self.entries.pop(entry[0], None)
                else:
                    self.entries[entry[0]] = entry[1]
        self._journaled = len(lines) - 1

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
        self.entries[key] = self._changed[key] = _entry(stat, content, looked_at)
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
        self.entries[key] = self._changed[key] = _entry(os.lstat(path), content, looked_at)

    def forget(self, key: str) -> None:
        if self.entries.pop(key, None) is not None:
            self._changed[key] = None

    def save_quietly(self) -> None:
        """Save, or leave it (disk full, read-only): a missing manifest costs only speed."""
        with contextlib.suppress(OSError):
            self.save()

    def save(self) -> None:
        """Append what changed to the journal of the manifest loaded or written last, or
        (no such manifest, a long journal) write the manifest whole."""
        changed, self._changed = self._changed, {}
        if not changed:
            return
        if (
            self._base is not None
            and self._journaled + len(changed) <= JOURNAL_LINES
            and _stamp(self.path) == self._base
        ):
            lines = [
                json.dumps([key, entry], separators=SEPARATORS) for key, entry in changed.items()
            ]
            if not self._journaled:
                lines.insert(0, json.dumps(self._base))
            with open(self.journal, "a" if self._journaled else "w") as handle:
                # Each save on a line of its own: after a torn line, the next is whole.
                handle.write("\n" + "\n".join(lines) if self._journaled else "\n".join(lines))
            self._journaled += len(changed)
            return
        self._base = None
        self.journal.unlink(missing_ok=True)
        atomic_write(self.path, json.dumps(self.entries, separators=SEPARATORS))
        self._base, self._journaled = _stamp(self.path), 0


def _stamp(path: Path) -> list[int] | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return [info.st_ino, info.st_size, info.st_mtime_ns]


def _line(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _entry(stat: os.stat_result, content: str, looked_at: int) -> list[Any]:
    racy = max(stat.st_mtime_ns, stat.st_ctime_ns) >= looked_at - RACY_NS
    ctime = UNTRUSTED if racy else stat.st_ctime_ns
    return [stat.st_size, stat.st_mtime_ns, ctime, stat.st_ino, digest(content)]
