"""How the ``reconciler`` commands turn errors into a message and an exit code.

A user error (bad inventory, config, plan refused, a target's error) prints one
red line on stderr and exits 2, never with a traceback; anything else is named
as unexpected, its traceback in the debug log. Kept apart from ``cli.py`` so the
commands read as options and calls, and so that modules defining other commands
(media, rollout, watch) share exactly these rules.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2
log = logging.getLogger("reconciler.cli")


@functools.cache
def stderr_console() -> Console:
    """rich's Console on stderr, made on first use: rich takes ~40 ms to import, which
    a command that succeeds quietly (``validate``) need not pay."""
    from rich.console import Console

    return Console(stderr=True)


def fail(message: str) -> NoReturn:
    from rich.markup import escape

    stderr_console().print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(EXIT_ERROR)


# Errors a user can cause, by the module that defines them. A module that was never
# imported cannot have raised its error, so the classes are looked up only among the
# modules already loaded: ``validate`` does not import the engine to catch PlanRefused.
USER_ERRORS = (
    ("reconciler.boot_templates", "BootTemplateError"),
    ("reconciler.config", "ConfigError"),
    ("reconciler.engine", "PlanRefused"),
    ("reconciler.inventory.sources", "SourceError"),
    ("reconciler.rollout.store", "RolloutStateError"),
    ("reconciler.settings_doc", "SettingsDocError"),
    ("reconciler.statefiles", "StateFileError"),
    ("reconciler.targets.base", "TargetError"),
)


def _is_user_error(error: Exception) -> bool:
    for module_name, class_name in USER_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(error, getattr(module, class_name)):
            return True
    return False


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn every error a user can cause into a message and exit code 2."""
    from reconciler.model.problems import InventoryError

    try:
        yield
    except InventoryError as error:
        fail(str(error))
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as error:
        if _is_user_error(error):
            fail(str(error))
        _unexpected(error)


def _unexpected(error: Exception) -> NoReturn:
    """An error no user input explains: OSError named with its file, anything else a bug."""
    if isinstance(error, OSError):  # disk full, permissions: name the file, never a traceback
        where = f"{error.filename}: " if error.filename else ""
        fail(
            f"{where}{error.strerror or error}; free space or fix permissions and run again "
            "(files are replaced whole: nothing was half-written)"
        )
    # a bug or a damaged file: still exit 2, the traceback in the log
    log.debug("unexpected error", exc_info=error)
    fail(
        f"unexpected {type(error).__name__}: {error} (run with --log-level debug for the traceback)"
    )
