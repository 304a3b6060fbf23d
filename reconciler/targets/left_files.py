"""What a file target last left in a whole-file output, kept in memory between passes.

At 100,000 hosts, a one-host commit should not parse and re-render a 20 MB
dhcpd include file or a zone of 100,000 records: the target that wrote a file
(or found it as it should be) still knows its text and what it means. That
knowledge holds only while the file on disk is provably that text:

- its lstat (inode, size, mtime, ctime) is the one taken when it was left: a
  file replaced has another inode, an edit moves the ctime (only the kernel
  sets it), and
- the stamp is not racy (``manifest.RACY_NS``, git's "racily clean" rule): a
  file whose times are within a clock tick of the moment its lstat was taken
  could be edited again without moving them, so it is read and compared with
  the text kept; equal, it is stamped again and trusted.

Anything else (a hand edit, a file swapped in or removed, a restart: memory is
empty) is forgotten, and the target reads and parses the file as it always did.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from reconciler.targets.manifest import RACY_NS

Value = TypeVar("Value")
Stamp = tuple[int, int, int, int]  # inode, size, mtime_ns, ctime_ns


def stamp_of(path: Path) -> tuple[Stamp, int] | None:
    """The file's lstat stamp and its newest time (ns), or None when it is not there."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns), max(
        info.st_mtime_ns, info.st_ctime_ns
    )


@dataclass(slots=True)
class _Left(Generic[Value]):
    stamp: Stamp
    settled: bool  # the stamp is not racy: equal stamps mean equal content
    text: str
    value: Value


class LeftFiles(Generic[Value]):
    """By path: the text a target left there and what it knows of it (``Value``)."""

    def __init__(self) -> None:
        self._left: dict[Path, _Left[Value]] = {}

    def keep(self, path: Path, *, text: str, value: Value) -> None:
        """``path`` holds ``text`` now (just written, or read and found as it should be)."""
        looked_at = time.time_ns()
        found = stamp_of(path)
        if found is None:
            self._left.pop(path, None)
            return
        stamp, newest = found
        self._left[path] = _Left(stamp, newest < looked_at - RACY_NS, text, value)

    def recall(self, path: Path) -> Value | None:
        """What was kept for ``path`` if the file still holds the text left there, else None."""
        left = self._left.pop(path, None)
        if left is None:
            return None
        looked_at = time.time_ns()
        found = stamp_of(path)
        if found is None or found[0] != left.stamp:
            return None
        if not left.settled:
            try:
                with open(path, "rb") as handle:
                    if handle.read() != left.text.encode():
                        return None
            except OSError:
                return None
            again = stamp_of(path)  # compared with the text: trusted from now on if not racy
            if again is None or again[0] != left.stamp:
                return None
            left.settled = again[1] < looked_at - RACY_NS
        self._left[path] = left
        return left.value

    def text(self, path: Path) -> str | None:
        """The text kept for ``path`` (call after ``recall`` said it still holds)."""
        left = self._left.get(path)
        return None if left is None else left.text

    def forget(self, path: Path) -> None:
        self._left.pop(path, None)
