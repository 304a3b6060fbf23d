"""``reconciler watch`` and ``reconciler status``: the loop's command line.

Kept beside the loop and imported only when one of them runs, so ``reconciler
--help`` stays fast (``reconciler.lazycli``).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from reconciler.cli import DEFAULT_CONFIG, ConfigOption, FormatOption, OutputFormat
from reconciler.cli_errors import EXIT_ERROR, EXIT_OK, user_errors


def watch(
    config: ConfigOption = DEFAULT_CONFIG,
    listen: Annotated[
        str | None, typer.Option(help="serve /status, /metrics and webhooks on HOST:PORT")
    ] = None,
) -> None:
    """Keep live services at the newest good revision; SIGTERM finishes the apply, exits 0."""
    from reconciler.watch.service import run_watch
    from reconciler.watch.settings import load_watch_config

    with user_errors():
        runtime, settings = load_watch_config(config)
        run_watch(runtime, settings, listen=listen)


def status(
    config: ConfigOption = DEFAULT_CONFIG,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Show the watch loop's status (revisions, conditions, targets, drift) and the nodes'.

    Exit 2 if not Ready."""
    from reconciler.accepted import AcceptedStore
    from reconciler.server.nodereports import load_reports, render_nodes_text, summarize
    from reconciler.watch.settings import load_watch_config
    from reconciler.watch.status import StatusStore, render_status_text

    with user_errors():
        runtime, _settings = load_watch_config(config)
    state_dir = runtime.resolve(runtime.state_dir)
    with user_errors():
        current = StatusStore(state_dir).read()
        accepted = AcceptedStore(state_dir).read()
    current.accepted_revision = accepted.revision if accepted else None
    nodes = summarize(load_reports(state_dir))  # the node agents' last reports
    if output is OutputFormat.json:
        body = {**current.to_dict(), "nodes": nodes}
        sys.stdout.write(json.dumps(body, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render_status_text(current) + render_nodes_text(nodes))
    ready = current.condition("Ready")
    raise typer.Exit(EXIT_OK if ready is not None and ready.status else EXIT_ERROR)
