"""``reconciler operator ...``: the Kubernetes operator's commands.

``crd`` writes (or with ``--check`` verifies) ``deploy/kubernetes/crd-site.yaml``
from the Site spec models, the way ``reconciler schema`` does for ``schemas/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

operator_app = typer.Typer(help="The Kubernetes operator: a Site custom resource per site.")


@operator_app.command("crd")
def crd_command(
    out: Annotated[Path, typer.Option(help="file to write")] = Path(
        "deploy/kubernetes/crd-site.yaml"
    ),
    check: Annotated[bool, typer.Option(help="exit 1 if the file is stale")] = False,
) -> None:
    """Write the Site CRD generated from the spec models (0; with --check: 1 if stale)."""
    from reconciler.operator.crd import render_crd, write_crd

    if check:
        current = out.read_text() if out.exists() else ""
        if current != render_crd():
            typer.echo(f"{out} is stale: run `reconciler operator crd`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{out} is current")
        return
    typer.echo(f"{'wrote' if write_crd(out) else 'unchanged'} {out}")
