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


def priority_of(pod_name: str) -> int:
    """StatefulSet ordinal -> peering priority: pod -0 is 100, -1 is 99, ... (highest wins)."""
    ordinal = pod_name.rsplit("-", 1)[-1]
    return 100 - int(ordinal) if ordinal.isdigit() else 50


@operator_app.command("run")
def run_command(
    namespace: Annotated[str, typer.Option(help="namespace whose Sites this operator runs")],
    work_dir: Annotated[Path, typer.Option(help="folder for git mirrors and key files")] = Path(
        "/var/lib/reconciler-operator"
    ),
    priority_from: Annotated[
        str | None, typer.Option(help="pod name; its StatefulSet ordinal sets the priority")
    ] = None,
    priority: Annotated[int, typer.Option(help="peering priority (highest is active)")] = 50,
    peering: Annotated[str, typer.Option(help="KopfPeering name shared by the replicas")] = (
        "reconciler-operator"
    ),
    standalone: Annotated[bool, typer.Option(help="no peering: a single replica")] = False,
    liveness: Annotated[
        str, typer.Option(help="liveness endpoint")
    ] = "http://0.0.0.0:8081/healthz",
    peering_lifetime: Annotated[
        int, typer.Option(help="seconds a replica's peering record lives: the takeover time")
    ] = 60,
    webhook_secret_file: Annotated[
        Path | None,
        typer.Option(
            help="file with the git webhook secret (a mounted Secret): listen for pushes; "
            "a file that does not exist turns webhooks off with a warning"
        ),
    ] = None,
    webhook_listen: Annotated[
        str, typer.Option(help="HOST:PORT for git webhooks (with --webhook-secret-file)")
    ] = "0.0.0.0:9180",
) -> None:
    """Run the operator: one reconcile loop per Site of NAMESPACE (SIGTERM stops it)."""
    import kopf

    from reconciler.operator import handlers

    handlers.Settings.work_root = work_dir
    handlers.Settings.namespace = namespace
    handlers.Settings.webhook_secret_file = webhook_secret_file
    handlers.Settings.webhook_listen = webhook_listen

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_: object) -> None:
        settings.peering.lifetime = peering_lifetime
        settings.peering.mandatory = not standalone

    kopf.run(
        namespaces=[namespace],
        priority=priority_of(priority_from) if priority_from else priority,
        peering_name=peering,
        standalone=standalone,
        liveness_endpoint=liveness,
    )
