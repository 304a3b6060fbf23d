"""The plug-in interface every backend implements, and the ownership ledger they share.

A target is the only code that talks to a service (dhcpd, BIND, a folder of boot
files). It reads its live state into the resource types of ``reconciler.resources``
and applies a list of changes. The engine never knows which backend it talks to.
"""

from __future__ import annotations

import bisect
import json
import operator
import os
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from enum import StrEnum
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, ClassVar, Protocol

from reconciler.resources import AnyResource, DesiredState
from reconciler.statefiles import state_written


class TargetError(Exception):
    """A target could not read or apply; the message says which target and why."""

    def __init__(self, target: str, message: str) -> None:
        super().__init__(f"target {target!r}: {message}")
        self.target = target
        self.reason = message

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuilt from its two arguments: a plan's reads may run in a worker process
        (``reconciler.forked``) and send their error back pickled."""
        return (type(self), (self.target, self.reason), self.__dict__)


class Action(StrEnum):
    DELETE = "delete"
    CREATE = "create"
    UPDATE = "update"


# Order in which a plan lists and applies changes: removing first frees names,
# addresses and MACs that creates may reuse.
ACTION_ORDER = {Action.DELETE: 0, Action.CREATE: 1, Action.UPDATE: 2}


@dataclass(frozen=True, slots=True)
class Change:
    """One step of a plan: ``old`` is None for a create, ``new`` is None for a delete."""

    action: Action
    key: str
    old: AnyResource | None
    new: AnyResource | None
    adopt: bool = False  # an update of an object that exists but was not ours

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "key": self.key,
            "adopt": self.adopt,
            "old": self.old.to_dict() if self.old is not None else None,
            "new": self.new.to_dict() if self.new is not None else None,
        }


@dataclass(frozen=True, slots=True)
class LiveState:
    """What a target found: objects it owns, and objects someone else made."""

    owned: dict[str, AnyResource]
    unmanaged: dict[str, AnyResource] = field(default_factory=dict)


@dataclass(slots=True)
class ApplyResult:
    """What an apply did: counted so tests and benchmarks can assert "zero writes"."""

    applied: int = 0
    writes: int = 0
    restarted: bool = False
    notes: list[str] = field(default_factory=list)


class Target(Protocol):
    """A backend. Class attributes state what it can do."""

    name: str
    kind: ClassVar[str]  # e.g. "dhcp-file", "dns-rfc2136"
    live_update: ClassVar[bool]  # changes take effect without a restart
    batch_size: ClassVar[int]  # how many changes one write carries at most

    def desired(self, state: DesiredState) -> Sequence[AnyResource]:
        """Pick the resources of the compiled state that this target manages."""
        ...

    def read(self, desired: Sequence[AnyResource]) -> LiveState:
        """Read live state. ``desired`` lets targets that cannot list look objects up."""
        ...

    def apply(self, changes: Sequence[Change]) -> ApplyResult:
        """Carry out the changes, in order. Raise TargetError on failure."""
        ...


def _shape(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


class ServiceDown(TargetError):
    """The target's service does not answer at all (not running yet, on a fresh site)."""


def ledger_text(keys: Iterable[str]) -> str:
    """``json.dumps({"owned": sorted(keys)}, indent=0)`` and a newline, one key a line,
    built with json's C string encoder: given an indent, json.dumps falls back to its
    pure-Python encoder, which takes ~50 ms for a 20,000-key ledger on every apply."""
    return _ledger_text_of_lines(list(map(encode_basestring_ascii, sorted(keys))))


def _ledger_text_of_lines(lines: list[str]) -> str:
    """The ledger's text from its keys, sorted and JSON-encoded."""
    body = ",\n".join(lines)
    return '{\n"owned": [\n' + body + "\n]\n}\n" if body else '{\n"owned": []\n}\n'


# A save that adds or drops at most this many keys inserts them into the sorted keys of
# the file last read or written instead of sorting them all again (200,000 keys: ~0.2 s).
FEW_KEYS = 1000


class OwnershipLedger:
    """The keys a target created, kept in the state directory as a JSON list.

    Ownership is widened before an apply (every key about to be created) and
    narrowed after it (deleted keys dropped), so an apply cut short leaves
    nothing behind that a later pass would not recognise as its own.
    """

    def __init__(self, state_dir: Path, target_name: str) -> None:
        self.path = state_dir / f"{target_name}.owned.json"
        # The keys of the file last read or written, by its (inode, mtime, size): a
        # pass loads the ledger several times, and at 10,000 hosts each parse costs.
        self._known: tuple[tuple[int, int, int], frozenset[str]] | None = None
        # Those keys sorted, and each JSON-encoded (the lines of the file), when known.
        self._order: tuple[list[str], list[str]] | None = None

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def load(self) -> set[str]:
        return set(self._current())

    def owned(self) -> frozenset[str]:
        """The keys, not copied (``load`` copies 100,000 keys into a set to be changed)."""
        return self._current()

    def sorted_keys(self) -> list[str]:
        """The keys in order: as the file lists them when it is sorted (as ``save`` writes
        it), which spares sorting 200,000 keys again."""
        keys = self._current()
        if self._known is not None and self._known[1] is keys and self._order is not None:
            return list(self._order[0])
        return sorted(keys)

    def _current(self) -> frozenset[str]:
        """The keys of the file, as known since it was last read or written."""
        identity = self._identity()
        if identity is not None and self._known is not None and self._known[0] == identity:
            return self._known[1]
        listed = self._read()
        owned = frozenset(listed)
        if identity is not None and identity == self._identity():
            self._known = (identity, owned)
            # As written by ``save``: sorted, each key once (a hand-edited file may not be).
            in_order = all(map(operator.lt, listed, listed[1:]))
            self._order = (listed, list(map(encode_basestring_ascii, listed))) if in_order else None
        return owned

    def _read(self) -> list[str]:
        recovery = "restore it from backup or remove it to adopt everything again"
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            raise TargetError(
                self.path.stem, f"ownership ledger {self.path} is unreadable ({error}); {recovery}"
            ) from error
        owned = data.get("owned", []) if isinstance(data, dict) else None
        if not isinstance(owned, list) or not all(isinstance(key, str) for key in owned):
            raise TargetError(
                self.path.stem,
                f'ownership ledger {self.path} has the wrong shape (expected {{"owned": '
                f"[keys...]}}, found {_shape(data)}); {recovery}",
            )
        return owned

    def _lines(
        self, keys: frozenset[str], *, base: frozenset[str], gone: Set[str], fresh: Set[str]
    ) -> tuple[list[str], list[str]]:
        """``keys`` sorted, and their lines. When ``base`` (``keys`` before ``gone`` left
        and ``fresh`` came) is the known file's and few changed, its sorted keys and
        lines are brought up to date (and taken: the file is about to change)."""
        known, order = self._known, self._order
        if known is None or known[1] is not base or order is None:
            order = None
        if order is None or len(gone) + len(fresh) > FEW_KEYS:
            ordered = sorted(keys)
            return ordered, list(map(encode_basestring_ascii, ordered))
        ordered, lines = order
        for key in gone:
            at = bisect.bisect_left(ordered, key)
            del ordered[at], lines[at]
        for key in fresh:
            at = bisect.bisect_left(ordered, key)
            ordered.insert(at, key)
            lines.insert(at, encode_basestring_ascii(key))
        return ordered, lines

    def save(self, keys: Iterable[str]) -> None:
        keys = frozenset(keys)
        base = self._known[1] if self._known is not None else frozenset()
        self._write(keys, base=base, gone=base - keys, fresh=keys - base)

    def _write(
        self, keys: frozenset[str], *, base: frozenset[str], gone: Set[str], fresh: Set[str]
    ) -> None:
        ordered = self._lines(keys, base=base, gone=gone, fresh=fresh)
        self._known, self._order = None, None
        try:
            atomic_write(self.path, _ledger_text_of_lines(ordered[1]))
        except OSError as error:  # e.g. disk full: the old ledger is still whole
            raise TargetError(
                self.path.name.removesuffix(".owned.json"),
                f"cannot save ownership ledger {self.path}: {error.strerror or error}; "
                "nothing was changed; free space (or fix permissions) and apply again",
            ) from error
        try:
            state_written(self.path, keys)  # the operator's ConfigMaps hold it before we go on
        except Exception as error:
            raise TargetError(
                self.path.name.removesuffix(".owned.json"),
                f"ownership ledger {self.path.name} not recorded where the state is kept "
                f"({error}); nothing was changed; the next pass tries again",
            ) from error
        identity = self._identity()
        if identity is not None:
            self._known, self._order = (identity, keys), ordered

    def widen(self, keys: Iterable[str]) -> None:
        """Record ``keys`` as ours before they are created (and mirrored, when mirrored)."""
        current = self._current()
        added = frozenset(keys) - current
        if added:
            self._write(current | added, base=current, gone=frozenset(), fresh=added)

    def narrow(self, keys: Iterable[str]) -> None:
        current = self._current()
        removed = current.intersection(keys)
        if removed:
            self._write(current - removed, base=current, gone=removed, fresh=frozenset())


def stage_file(path: Path, content: str | bytes, *, mode: int = 0o644, sync: bool = False) -> Path:
    """Write ``content`` to a hidden temporary file beside ``path`` and return its name.

    Renaming it over ``path`` (``os.replace``) then swaps the file in one step.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as error:  # say which file could not be written (disk full, permissions)
        tmp.unlink(missing_ok=True)
        if error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: Path, content: str | bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``content`` so a reader sees the old or the new file, never a mix."""
    tmp = stage_file(path, content, mode=mode, sync=True)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
