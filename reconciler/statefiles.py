"""Reading the JSON files of the state dir so that damage is a clear error, never a crash.

The state dir holds what the reconciler remembers between runs (the accepted
revision, the watch status, ledgers). A file cut short by a full disk, edited
by hand or left by another version must not crash ``serve`` or ``watch`` with
a traceback: readers get a ``StateFileError`` that names the file, says what
is wrong with it and how to recover.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


class StateFileError(Exception):
    """A file in the state dir is unreadable or has the wrong shape."""

    def __init__(self, path: Path, problem: str, recovery: str) -> None:
        super().__init__(f"{path}: {problem}; to recover, {recovery}")
        self.path = path
        self.problem = problem
        self.recovery = recovery


def read_json_object(path: Path, *, recovery: str) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file does not exist.

    Raises StateFileError when it cannot be read, is not JSON (truncated), or
    holds something other than an object.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise StateFileError(path, f"cannot be read ({error})", recovery) from None
    try:
        body = json.loads(text)
    except ValueError as error:
        problem = f"is not valid JSON, perhaps cut short ({error})"
        raise StateFileError(path, problem, recovery) from None
    if not isinstance(body, dict):
        raise StateFileError(path, f"holds a JSON {type(body).__name__}, not an object", recovery)
    return body


# -- mirrors: where a state dir is also kept (the operator's ConfigMaps) ------------

StateMirror = Callable[[Path, frozenset[str] | None], object]
_MIRRORS: dict[Path, StateMirror] = {}


def mirror_state(state_dir: Path, save: StateMirror | None) -> None:
    """Call ``save(path, keys)`` after each ownership-ledger write under ``state_dir``.

    The operator keeps a Site's state in ConfigMaps; a ledger widened before a
    create must reach them before the create happens, or a replica that takes
    over after a crash would find objects it does not know it made. ``save``
    gets the path of the ledger written and the keys it now holds (None when
    the writer did not say: read the file). ``None`` removes the mirror.
    """
    if save is None:
        _MIRRORS.pop(state_dir.resolve(), None)
    else:
        _MIRRORS[state_dir.resolve()] = save


def state_written(path: Path, keys: frozenset[str] | None = None) -> None:
    """Tell the mirror of the state dir holding ``path`` (if any); its errors propagate.

    ``keys``: what the ledger just written holds, so the mirror need not parse it again.
    """
    if not _MIRRORS:
        return
    resolved = path.resolve()
    for state_dir, save in list(_MIRRORS.items()):
        if resolved.is_relative_to(state_dir):
            save(resolved, keys)
