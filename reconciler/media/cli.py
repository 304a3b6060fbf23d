"""``reconciler media build`` and ``reconciler media write``: the typer sub-app.

Registered in ``reconciler.cli``; errors a user can cause end as a message and
exit code 2, and nothing is left half-written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from reconciler.accepted import AcceptedStore, revision_of
from reconciler.engine import Engine
from reconciler.inventory.sources import InventorySource
from reconciler.media.artifacts import Progress as ProgressCallback
from reconciler.media.scripts import MediaInputError
from reconciler.media.tools import MediaToolError

media_app = typer.Typer(
    help="Boot media (USB stick / CD, BIOS and UEFI) built from the inventory.",
    no_args_is_help=True,
)


def _bar(progress: Progress) -> ProgressCallback:
    """A progress callback (bytes done, total) drawing one rich task."""
    task: list[TaskID] = []

    def update(done: int, total: int | None) -> None:
        if not task:
            task.append(progress.add_task("", total=total))
        progress.update(task[0], completed=done, total=total)

    return update


def _progress_bar() -> Progress:
    from reconciler.cli_errors import stderr_console

    stderr = stderr_console()

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )


@media_app.command("build")
def build(
    out: Annotated[Path, typer.Option("--out", "-o", help="image file to write")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="runtime config")] = None,
    kind: Annotated[str, typer.Option(help="net (iPXE chains to serve) or live (image)")] = "net",
    host: Annotated[str | None, typer.Option(help="bake in this host (static address)")] = None,
    group: Annotated[str | None, typer.Option(help="live media: this group's image")] = None,
    rev: Annotated[str | None, typer.Option(help="inventory revision instead of config's")] = None,
    cache: Annotated[
        Path | None, typer.Option(help="folder caching live artifacts by sha256")
    ] = None,
) -> None:
    """Write one hybrid image (CD or USB, BIOS or UEFI); print its sha256, size, revision."""
    from reconciler.cli import DEFAULT_CONFIG
    from reconciler.cli_errors import fail, user_errors
    from reconciler.media.build import MediaKind, MediaRequest, build_medium

    if kind not in {k.value for k in MediaKind}:
        fail(f"--kind {kind!r}: use net or live")
    with user_errors():
        engine, source, origin = _revision_to_build(config or DEFAULT_CONFIG, rev)
        inventory = engine.load(source)
        with _progress_bar() as bars:
            try:
                built = build_medium(
                    config=engine.config,
                    inventory=inventory,
                    revision=revision_of(source),
                    request=MediaRequest(kind=MediaKind(kind), host=host, group=group),
                    out=out,
                    cache=cache,
                    progress=lambda what: _describe(bars, what),
                )
            except (MediaInputError, MediaToolError) as error:
                fail(str(error))
    typer.echo(f"wrote {built.path}")
    typer.echo(f"sha256:   {built.sha256}")
    typer.echo(f"size:     {built.size} bytes ({built.size / 1048576:.1f} MiB)")
    typer.echo(f"revision: {built.revision} ({origin})")
    typer.echo(f"kind:     {built.manifest['kind']}" + _for_whom(built.manifest))


def _revision_to_build(config: Path, rev: str | None) -> tuple[Engine, InventorySource, str]:
    """``--rev`` if given, else the accepted revision, else the config's ``[source]``."""
    from reconciler.plan_run import load_engine

    engine, source = load_engine(config, rev)
    if rev is not None:
        return engine, source, "--rev"
    accepted = AcceptedStore(engine.config.resolve(engine.config.state_dir)).read()
    if accepted is not None:
        return engine, accepted.source(), f"accepted by {accepted.accepted_by}"
    return engine, source, "nothing accepted yet: [source] of the config"


def _describe(bars: Progress, what: str) -> ProgressCallback:
    callback = _bar(bars)

    def update(done: int, total: int | None) -> None:
        callback(done, total)
        bars.update(bars.task_ids[-1], description=f"fetching {what}")

    return update


def _for_whom(manifest: dict[str, object]) -> str:
    if manifest.get("host"):
        return f" (host {manifest['host']})"
    if manifest.get("group"):
        return f" (group {manifest['group']})"
    return " (any machine)"


@media_app.command("write")
def write(
    image: Annotated[Path, typer.Argument(help="image built by `reconciler media build`")],
    device: Annotated[Path, typer.Option("--device", "-d", help="whole disk, e.g. /dev/sdb")],
    force: Annotated[
        bool, typer.Option(help="also write to a disk that does not say it is removable")
    ] = False,
) -> None:
    """Write an image to a USB stick, safely, and verify it by reading it back."""
    from reconciler.cli_errors import fail
    from reconciler.media.write import WriteRefused, write_image

    try:
        with _progress_bar() as bars:
            written = write_image(
                image=image,
                device=device,
                force=force,
                progress=_phase(bars),
            )
    except WriteRefused as error:
        fail(str(error))
    typer.echo(f"wrote and verified {written.size} bytes to {device} (sha256 {written.sha256})")


def _phase(bars: Progress) -> Callable[[str], ProgressCallback]:
    def start(what: str) -> ProgressCallback:
        callback = _bar(bars)

        def update(done: int, total: int | None) -> None:
            callback(done, total)
            bars.update(bars.task_ids[-1], description=what)

        return update

    return start
