"""``reconciler sandbox``: a whole site on this machine, from the command line.

Imported only when the command runs (``reconciler.lazycli``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from reconciler.cli_errors import fail


class SandboxDhcp(StrEnum):
    dhcpd = "dhcpd"
    kea = "kea"


def sandbox(
    inventory: Annotated[
        Path, typer.Option(help="inventory folder copied into the sandbox's git repository")
    ] = Path("inventory-example"),
    mac: Annotated[str, typer.Option(help="MAC of the sandbox's DHCP client (the new host)")] = (
        "52:54:00:12:34:99"
    ),
    keep: Annotated[bool, typer.Option(help="keep the sandbox's folder for inspection")] = False,
    dhcp: Annotated[
        SandboxDhcp,
        typer.Option(help="DHCP server: dhcpd (OMAPI) or kea (Kea + PostgreSQL host database)"),
    ] = SandboxDhcp.dhcpd,
) -> None:
    """Run a whole site in namespaces (as root), commit a new host, prove it applied live.

    Exit 0: every check passed; 1: a check failed; 2: the sandbox could not run.
    Everything it starts is stopped and removed at the end, also on Ctrl-C.
    """
    from reconciler.sandbox.demo import exit_code, run

    if not (inventory / "site.yaml").is_file():
        fail(f"{inventory}: not an inventory folder (no site.yaml); give --inventory PATH")
    report = run(example=inventory.resolve(), mac=mac, keep=keep, dhcp=dhcp.value)
    raise typer.Exit(exit_code(report))
