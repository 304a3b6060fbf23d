"""Commands of the ``reconciler`` CLI whose modules are imported only when run.

``reconciler --help`` lists every command, but building a command imports its
module, and the sub-apps (image, media, import, rollout...) pull in pydantic
models, YAML, jinja2 and network libraries. A deferred command is listed with a
one-line help written where it is registered; its module is imported only when
the command itself (or its own ``--help``) is resolved. ``tests/unit/
test_cli_imports.py`` checks that ``--help`` imports no heavy library.

The commands written in ``cli.py`` itself are registered with ``command``: typer
reads a command's options (its signature and type hints) only when that command
runs, so ``reconciler validate`` does not pay for building ``plan``, ``apply``
and the others; they are listed under their docstring's first paragraph, as
typer lists any command.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import typer
from typer import _click as click  # typer 0.29 vendors its own click (pinned in pyproject)
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class DeferredCommand:
    """A command named ``name`` built from ``target`` when run.

    ``target`` is a command function, or "module:attribute" naming a
    ``typer.Typer`` (a sub-app, e.g. ``image``) or a command function (e.g.
    ``import``). ``short_help`` is the listing's line; None: the first paragraph
    of ``help``. ``settings`` are ``typer.Typer.command``'s keyword arguments."""

    name: str
    target: str | Callable[..., Any]
    help: str
    short_help: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def load(self) -> click.Command:
        obj: Any = self.target
        if isinstance(obj, str):
            module_name, _, attribute = obj.partition(":")
            obj = getattr(importlib.import_module(module_name), attribute)
        if isinstance(obj, typer.Typer):
            command: click.Command = typer.main.get_group(obj)
        else:
            single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
            single.command(self.name, **self.settings)(obj)
            command = typer.main.get_command(single)
        command.name = self.name
        return command


class _Placeholder(TyperCommand):
    """What the help listing sees of a deferred command: its name and help."""

    def __init__(self, deferred: DeferredCommand) -> None:
        super().__init__(deferred.name, help=deferred.help, short_help=deferred.short_help)
        self.deferred = deferred


class DeferredGroup(TyperGroup):
    """The root command group: eager commands as usual, deferred ones on first use."""

    deferred: ClassVar[dict[str, DeferredCommand]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, deferred in self.deferred.items():
            self.commands.setdefault(name, _Placeholder(deferred))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if isinstance(command, _Placeholder) and not _listing(ctx):
            command = self.commands[cmd_name] = command.deferred.load()
        return command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        ctx.meta[_LISTING] = True  # the listing needs only the placeholders' one line
        try:
            super().format_help(ctx, formatter)
        finally:
            ctx.meta[_LISTING] = False


_LISTING = "reconciler.lazycli.listing"


def _listing(ctx: click.Context) -> bool:
    return bool(ctx.meta.get(_LISTING))


def defer(name: str, *, target: str, help: str) -> None:
    """Register command ``name`` of the root app, built from ``target`` when used."""
    DeferredGroup.deferred[name] = DeferredCommand(
        name=name, target=target, help=help, short_help=help
    )


CommandT = TypeVar("CommandT", bound=Callable[..., Any])


def command(**settings: Any) -> Callable[[CommandT], CommandT]:
    """``@app.command()`` for the root app, but typer builds the command only when it runs.

    The command is named after the function and listed (and its ``--help`` written)
    from its docstring, exactly as ``@app.command()`` would."""

    def register(function: CommandT) -> CommandT:
        name = function.__name__.replace("_", "-")
        DeferredGroup.deferred[name] = DeferredCommand(
            name=name, target=function, help=inspect.getdoc(function) or "", settings=settings
        )
        return function

    return register
