"""``reconciler import``: the command line of the importer (registered by ``reconciler.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from reconciler.importer.records import ImportFailure
from reconciler.importer.run import ImportRequest, render_report, run_import

EXIT_OK, EXIT_CONFLICTS, EXIT_ERROR = 0, 1, 2


def import_site(
    out: Annotated[Path, typer.Option("--out", help="new inventory folder to write")],
    dhcpd_conf: Annotated[
        list[Path] | None, typer.Option("--dhcpd-conf", help="dhcpd.conf (includes followed)")
    ] = None,
    leases: Annotated[
        Path | None, typer.Option(help="dhcpd leases file (hosts made over OMAPI)")
    ] = None,
    zone: Annotated[
        list[str] | None, typer.Option("--zone", help="BIND zone file, or ORIGIN=FILE")
    ] = None,
    axfr: Annotated[
        list[str] | None,
        typer.Option("--axfr", help="zone transfer: SERVER:ZONE or SERVER#PORT:ZONE"),
    ] = None,
    tsig_key: Annotated[
        Path | None, typer.Option("--tsig-key", help="BIND key file for --axfr")
    ] = None,
    pxelinux: Annotated[
        Path | None, typer.Option(help="pxelinux.cfg folder; its parent is the TFTP root")
    ] = None,
    warewulf: Annotated[Path | None, typer.Option(help="Warewulf 4 nodes.conf")] = None,
    csv: Annotated[Path | None, typer.Option(help="CSV of name,mac,address[,group]")] = None,
    domain: Annotated[str | None, typer.Option(help="DNS domain (default: from zones)")] = None,
    tftp_server: Annotated[
        str | None, typer.Option(help="host in tftp:// URLs of images (default: next-server)")
    ] = None,
    strict: Annotated[bool, typer.Option(help="any conflict is an error")] = False,
) -> None:
    """Write an inventory folder from a running site's dhcpd, BIND, pxelinux, Warewulf or CSV.

    Exit 0: written, no conflicts. 1: written, with conflicts listed (the machines
    concerned are left out). 2: nothing written (bad input, or --strict and conflicts).
    """
    console, errors = Console(), Console(stderr=True)
    request = ImportRequest(
        out=out,
        dhcpd_conf=tuple(dhcpd_conf or ()),
        leases=leases,
        zones=tuple(zone or ()),
        axfr=tuple(axfr or ()),
        tsig_key=tsig_key,
        pxelinux=pxelinux,
        warewulf=warewulf,
        csv=csv,
        domain=domain,
        tftp_server=tftp_server,
        strict=strict,
    )

    def progress(step: str) -> None:
        if errors.is_terminal:
            errors.print(f"[dim]{escape(step)}...[/]", highlight=False)

    try:
        report = run_import(request, progress=progress)
    except ImportFailure as error:
        errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        errors.print("nothing was written", highlight=False)
        raise typer.Exit(EXIT_ERROR) from None
    console.print(render_report(report), highlight=False, soft_wrap=True, markup=False)
    if not report.written:
        errors.print(
            f"error: --strict and {len(report.result.conflicts)} conflicts: nothing was written",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(EXIT_ERROR)
    console.print(f"wrote {out} ({len(report.files)} files)", highlight=False, markup=False)
    if report.result.conflicts:
        raise typer.Exit(EXIT_CONFLICTS)


def adopt_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="runtime config (TOML)")] = Path(
        "/etc/reconciler/reconciler.toml"
    ),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list only, record nothing")] = False,
    lock_timeout: Annotated[
        float, typer.Option(min=0, help="seconds to wait for the state dir's lock (exit 2)")
    ] = 60.0,
) -> None:
    """Take ownership of live objects that exactly match the inventory, without rewriting them.

    Objects that differ stay unmanaged and are listed with the fields that differ.
    Exit 0: done (see the list); 2: a target could not be read or the config is wrong.
    """
    from reconciler.config import ConfigError, load_config
    from reconciler.engine import Engine
    from reconciler.importer.adopt import adopt_site, render_adoption
    from reconciler.inventory.sources import SourceError
    from reconciler.model.problems import InventoryError
    from reconciler.statelock import StateLock, StateLocked

    errors = Console(stderr=True)
    try:
        engine = Engine(load_config(config))
        state_dir = engine.config.resolve(engine.config.state_dir)
        # Ledgers are written: one writer at a time, like apply and the watch loop.
        with StateLock(state_dir, purpose="adopt", timeout=lock_timeout):
            outcomes = adopt_site(engine, dry_run=dry_run)
    except (ConfigError, SourceError, InventoryError, StateLocked) as error:
        errors.print(f"error: {error}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_ERROR) from None
    Console().print(
        render_adoption(outcomes, dry_run=dry_run), highlight=False, markup=False, soft_wrap=True
    )
    if any(o.error for o in outcomes):
        raise typer.Exit(EXIT_ERROR)


hosts_app = typer.Typer(help="Edit the hosts of an inventory folder.", no_args_is_help=True)


@hosts_app.command("add")
def hosts_add(
    group: Annotated[str, typer.Argument(help="group name (groups/GROUP.yaml)")],
    macs: Annotated[Path, typer.Option("--macs", help="file with one MAC a line, in boot order")],
    inventory: Annotated[Path, typer.Option(help="inventory folder")] = Path("."),
    start: Annotated[
        int | None, typer.Option(help="first index to use (default: after the highest)")
    ] = None,
) -> None:
    """Append MACs as the next free indexes of GROUP, keeping the file's comments."""
    from reconciler.importer.bulk_add import BulkAddError, add_hosts, read_macs

    try:
        added = add_hosts(inventory, group, read_macs(macs), start=start)
    except BulkAddError as error:
        Console(stderr=True).print(f"error: {error}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_ERROR) from None
    for host in added:
        Console().print(f"{host.hostname}: index {host.index}, {host.mac}", highlight=False)
    Console().print(f"added {len(added)} hosts to groups/{group}.yaml", highlight=False)
