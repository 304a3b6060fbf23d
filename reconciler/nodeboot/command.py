"""``reconciler initramfs``: the command line of the initramfs builder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reconciler.nodeboot.initramfs import BUSYBOX, InitramfsError, build_initramfs
from reconciler.nodeboot.modules import ModuleError


def initramfs(
    out: Annotated[Path, typer.Option("--out", "-o", help="the initramfs file to write")],
    kernel_version: Annotated[
        str | None,
        typer.Option(help="kernel release (uname -r); modules from /lib/modules/VERSION"),
    ] = None,
    modules_dir: Annotated[
        Path | None,
        typer.Option(help="the kernel's module tree (default /lib/modules/KERNEL_VERSION)"),
    ] = None,
    module: Annotated[
        list[str] | None,
        typer.Option("--module", "-m", help="another module to load at boot (repeatable)"),
    ] = None,
    optional_module: Annotated[
        list[str] | None,
        typer.Option(help="a module carried but loaded only if named in reconciler.modules="),
    ] = None,
    busybox: Annotated[Path, typer.Option(help="a static busybox")] = BUSYBOX,
    default_nics: Annotated[
        bool, typer.Option(help="carry and load the common NIC drivers (else only --module)")
    ] = True,
) -> None:
    """Build the initramfs that boots a stateless node (busybox, modules, DHCP, verified rootfs).

    It loads loop, squashfs, overlay and common NIC drivers (plus --module), gets an
    address by DHCP, downloads reconciler.rootfs=, checks reconciler.rootfs_sha256=,
    mounts it under a tmpfs overlay and switches to it. Exit 2 on an error.
    """
    from reconciler.cli_errors import fail

    if kernel_version is None and modules_dir is None:
        fail("give --kernel-version (uname -r of the node's kernel) or --modules-dir")
    tree = modules_dir or Path("/lib/modules") / str(kernel_version)
    version = kernel_version or tree.name
    try:
        result = build_initramfs(
            modules_dir=tree,
            kernel_version=version,
            out=out,
            boot_modules=module or (),
            optional_modules=optional_module or (),
            busybox=busybox,
            default_nics=default_nics,
        )
    except (InitramfsError, ModuleError, OSError) as error:
        fail(str(error))
    typer.echo(
        f"wrote {result.path} ({result.size / 1e6:.2f} MB, sha256 {result.sha256}): "
        f"kernel {version}, {len(result.modules)} modules"
    )
    if result.skipped:
        typer.echo(f"not in this kernel, skipped: {', '.join(result.skipped)}")
