"""File targets' owned files looked at during load and compile, on the core that idles then.

A 100,000-host ``plan`` loads and compiles on one core for ~5 s; then each
target's read starts with work that does not depend on what we want: the
ledger's keys, the manifest, the path checks, an lstat of each of 300,000 files
(~1.3 s for the two file targets). ``plan`` and ``apply`` (``parallel`` plans,
``plan_run.plan_from_source``) fork one child before the load that does it for every
file target and sends back a compact ``PreRead`` per target: its keys, which of
them were not clean, the recorded sha256 of the others, and the files in its
managed folders that the ledger does not list. The read then only hashes what
we want and compares (``owned_as_pre_read``).

What a clean key means is ``file_batch``'s rule: the path passes
``FileTreeTarget._confined``'s tests, the file is not a symbolic link, and its
lstat (size, mtime, ctime, inode) equals its manifest entry (a racy entry never
does). Every other key, and every key whose recorded digest is not the one of
what we want, goes through the careful path (``FileTreeTarget._look_at``, with
its own fresh lstat) exactly as without a pre-read. A pre-read that failed (an
odd key, a missing file, any error, a child that died) is None: the target
reads everything as before.

Decision: the plan is a snapshot of the files as of the pre-read, taken before
the inventory is loaded. A change made before the pre-read is seen; a file
edited between the pre-read and the read (a few seconds) may be seen as it was
at the pre-read, as any plan shows the files as of when it looked at them (the
next pass sees the change; the ctime moved, so the manifest no longer matches).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from collections.abc import Mapping, Sequence
from itertools import repeat
from operator import is_, methodcaller
from typing import TYPE_CHECKING, Any, NamedTuple

from reconciler import forked
from reconciler.forked import Background
from reconciler.resources import AnyResource
from reconciler.targets.file_batch import confined_paths

if TYPE_CHECKING:
    from reconciler.targets.filetree import FileTreeTarget

log = logging.getLogger(__name__)

PRE_READ_TIMEOUT = 120.0  # seconds; past it the reads do everything themselves
_DIGEST = methodcaller("digest")
_EMPTY = bytes(32)  # the recorded digest sent for a key that is not clean


class PreRead(NamedTuple):
    """What one file target's read needs that does not depend on what we want."""

    keys: list[str]  # the ledger's, sorted
    unclean: list[int]  # indexes into keys: to be looked at closely
    recorded: bytes  # 32 bytes per key: the manifest's sha256 (zeros when not clean)
    foreign: dict[str, list[str] | None]  # folder -> names not ours (None: not a folder)


def pre_read(target: FileTreeTarget) -> PreRead | None:
    """``target``'s pre-read (in the pre-read child), or None: read everything later."""
    keys = target.ledger.sorted_keys()
    target.manifest.load()
    relatives = list(map(target.path_of, keys))
    paths = confined_paths(target, relatives)
    if paths is None:
        return None
    try:
        infos = list(map(os.lstat, paths))
    except OSError:
        return None
    unchanged_digest = target.manifest.unchanged_digest
    unclean: list[int] = []
    recorded: list[bytes] = []
    for index, (key, info) in enumerate(zip(keys, infos, strict=True)):
        digest = None if stat.S_ISLNK(info.st_mode) else unchanged_digest(key, info)
        if digest is not None and len(digest) == 64:
            try:
                recorded.append(bytes.fromhex(digest))
                continue
            except ValueError:
                pass
        unclean.append(index)
        recorded.append(_EMPTY)
    owned_paths = set(relatives)
    foreign = {
        folder: target.foreign_names(folder, owned_paths) for folder in target.managed_folders
    }
    return PreRead(keys, unclean, b"".join(recorded), foreign)


def _pre_read_all(targets: Sequence[FileTreeTarget]) -> list[PreRead | None]:
    answers: list[PreRead | None] = []
    for target in targets:
        try:
            answers.append(pre_read(target))
        except Exception as error:  # the read does it all again and reports it
            log.debug("no pre-read", extra={"target": target.name, "reason": str(error)})
            answers.append(None)
    return answers


class PreReading:
    """The pre-read child of some file targets, started before the load."""

    def __init__(self, targets: Sequence[Any]) -> None:
        from reconciler.targets.filetree import FileTreeTarget

        self.targets = [target for target in targets if isinstance(target, FileTreeTarget)]
        self._child: Background[list[PreRead | None]] | None = None
        if self.targets and forked.can_fork():  # looked up here: tests turn it off
            try:
                self._child = Background(lambda: _pre_read_all(self.targets))
            except OSError as error:
                log.debug("no pre-read", extra={"reason": str(error)})

    def hand_over(self) -> None:
        """Give each target its pre-read (its next read uses it once)."""
        child, self._child = self._child, None
        if child is None:
            return
        try:
            answers = child.answer(timeout=PRE_READ_TIMEOUT).get()
        except Exception as error:  # TaskFailed too
            log.debug("no pre-read", extra={"reason": str(error)})
            return
        for target, answer in zip(self.targets, answers, strict=True):
            target.pre_read = answer

    def __enter__(self) -> PreReading:
        return self

    def __exit__(self, *_: object) -> None:
        """Kill the child if its answer was not taken (a load that failed), and take the
        pre-reads back: a later read (an apply's) must look at the files again."""
        child, self._child = self._child, None
        if child is not None:
            child.stop()
        for target in self.targets:
            target.pre_read = None


def owned_as_pre_read(
    target: FileTreeTarget, pre: PreRead, wanted: Mapping[str, AnyResource]
) -> dict[str, AnyResource]:
    """The live resources of ``pre.keys``, in key order: the wanted ones of clean keys whose
    recorded digest is the one of what we want, the others looked at closely."""
    keys = pre.keys
    wants = list(map(wanted.get, keys))
    unwanted = any(map(is_, wants, repeat(None)))
    if not unwanted and not pre.unclean:
        contents = target.contents(wants)  # type: ignore[arg-type]
        hashes = b"".join(map(_DIGEST, map(hashlib.sha256, map(str.encode, contents))))
        if hashes == pre.recorded:
            return dict(zip(keys, wants, strict=True))  # type: ignore[arg-type]
    close = set(pre.unclean)
    owned: dict[str, AnyResource] = {}
    recorded = pre.recorded
    for index, (key, want) in enumerate(zip(keys, wants, strict=True)):
        if want is None:
            close.add(index)
            continue
        if index in close:
            continue
        if (
            recorded[index * 32 : index * 32 + 32]
            == hashlib.sha256(target.encode(want).encode()).digest()
        ):
            owned[key] = want
        else:
            close.add(index)
    if close:
        target.manifest.load()
        looked_at = time.time_ns()  # before any lstat: see Manifest's racy rule
        for index in sorted(close):
            target._look_at(keys[index], wants[index], owned, looked_at=looked_at)
        owned = {key: owned[key] for key in keys if key in owned}
    return owned
