"""The ``reconciler image`` commands and ``reconciler agent`` (registered in ``reconciler.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from reconciler.image.install import InstallError, install_agent
from reconciler.image.versions import (
    ARTIFACTS,
    ArtifactFile,
    VersionError,
    add_version_file,
    artifact_url,
)

EXIT_ERROR = 2
image_app = typer.Typer(
    help="Prepare node images: install the agent into a tree, add a built version.",
    no_args_is_help=True,
)
stderr = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_ERROR)


@image_app.command("install-agent")
def install_agent_command(
    root: Annotated[Path, typer.Argument(help="root of the image tree (before mksquashfs)")],
    init: Annotated[
        str, typer.Option(help="service style: auto, systemd or inittab (busybox init)")
    ] = "auto",
) -> None:
    """Install the agent, its service, the swap helper, mount-root.sh and health.d/."""
    if init not in ("auto", "systemd", "inittab"):
        raise _fail(f"--init {init!r}: use auto, systemd or inittab")
    try:
        installed = install_agent(root, init=init)
    except (InstallError, OSError) as error:
        raise _fail(str(error)) from None
    for path in installed.written:
        typer.echo(f"installed {path}")
    if not installed.written:
        typer.echo(f"{root}: already up to date")
    typer.echo(f"service: {installed.init}")
    for warning in installed.warnings:
        stderr.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


@image_app.command("add")
def add_command(
    image_file: Annotated[Path, typer.Argument(help="images/<name>.yaml (created if missing)")],
    version: Annotated[str, typer.Argument(help="the new version, such as 2024.12")],
    kernel: Annotated[Path, typer.Option(help="kernel file (vmlinuz)")],
    initrd: Annotated[Path, typer.Option(help="initramfs file")],
    rootfs: Annotated[Path, typer.Option(help="root filesystem (squashfs)")],
    url_base: Annotated[
        str | None, typer.Option(help="URL folder the three files are served from")
    ] = None,
    kernel_url: Annotated[str | None, typer.Option(help="the kernel's own URL")] = None,
    initrd_url: Annotated[str | None, typer.Option(help="the initrd's own URL")] = None,
    rootfs_url: Annotated[str | None, typer.Option(help="the rootfs's own URL")] = None,
    cmdline: Annotated[
        str | None, typer.Option(help="kernel command line (default: the newest version's)")
    ] = None,
    replace: Annotated[bool, typer.Option(help="overwrite the version if it exists")] = False,
) -> None:
    """Hash kernel, initrd and rootfs and add them as a version to images/<name>.yaml."""
    paths = {"kernel": kernel, "initrd": initrd, "rootfs": rootfs}
    urls = {"kernel": kernel_url, "initrd": initrd_url, "rootfs": rootfs_url}
    try:
        files = {
            kind: ArtifactFile(paths[kind], artifact_url(paths[kind], url=urls[kind],
                                                         url_base=url_base))
            for kind in ARTIFACTS
        }  # fmt: skip
        total = sum(path.stat().st_size for path in paths.values() if path.is_file())
        with Progress(
            TextColumn("sha256"), BarColumn(), DownloadColumn(), console=stderr, transient=True,
            disable=not stderr.is_terminal,
        ) as progress:  # fmt: skip
            task = progress.add_task("hashing", total=total)
            digests = add_version_file(
                image_file,
                version=version,
                files=files,
                cmdline=cmdline,
                replace=replace,
                progress=lambda done: progress.advance(task, done),
            )
    except (VersionError, OSError) as error:
        raise _fail(str(error)) from None
    typer.echo(f"{image_file}: added version {version}")
    for kind in ARTIFACTS:
        typer.echo(f"  {kind}: {files[kind].url} sha256 {digests[kind]}")
