"""``reconciler rollout status|pause|resume|abort``: see and brake rollouts from a shell.

Git stays the source of the version a group moves to; these commands only hold,
release or abort the move, through a brake kept in the state dir that the watch
loop reads on its next pass. ``status`` shows what the watch loop decided last
(nodes per version and state, the wave, failures) without changing anything.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from reconciler.rollout.runner import RolloutPass, run_rollouts
from reconciler.rollout.state import Brake
from reconciler.rollout.store import RolloutStateError, RolloutStore
from reconciler.watch.wakeup import request_pass

rollout_app = typer.Typer(
    help="See rollouts of image changes and hold, resume or abort them.",
    no_args_is_help=True,
)

GroupArgument = Annotated[str, typer.Argument(help="group name (groups/<name>.yaml)")]
ConfigPath = Annotated[
    Path, typer.Option("--config", "-c", help="runtime config (TOML); env RECONCILER_CONFIG")
]
DEFAULT_CONFIG = Path(os.environ.get("RECONCILER_CONFIG", "/etc/reconciler/reconciler.toml"))


def _store_and_pass(config_path: Path) -> tuple[RolloutStore, RolloutPass]:
    from reconciler.cli_errors import fail, user_errors
    from reconciler.config import load_config
    from reconciler.engine import Engine

    with user_errors():
        config = load_config(config_path)
        store = RolloutStore(config.resolve(config.state_dir))
        inventory = Engine(config).load()
        try:
            return store, run_rollouts(inventory, store, persist=False)
        except RolloutStateError as error:
            fail(str(error))


def render_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no group has an image to roll out\n"
    lines = []
    for row in rows:
        brake = " (held by rollout pause)" if row["paused"] else ""
        brake = " (aborted by rollout abort)" if row["aborted"] else brake
        lines.append(
            f"{row['group']}: {row['phase']}{brake}, target {row['target']}, "
            f"wave {row['wave']}/{row['waves']}"
        )
        versions = ", ".join(f"{v}: {n}" for v, n in row["versions"].items())
        lines.append(f"  assigned: {versions or 'no nodes'}")
        if row["states"]:
            states = ", ".join(f"{s}: {n}" for s, n in row["states"].items())
            lines.append(f"  nodes: {states}")
        for host, reason in row["failures"].items():
            lines.append(f"  failed {host}: {reason}")
    return "\n".join(lines) + "\n"


@rollout_app.command("status")
def status_command(
    group: Annotated[str | None, typer.Argument(help="only this group")] = None,
    config: ConfigPath = DEFAULT_CONFIG,
    output: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
) -> None:
    """Per group: target version, nodes per version and state, wave, brake, failures.

    Exit 0 when no rollout is Degraded, rolled back or aborted; 2 otherwise.
    """
    store, result = _store_and_pass(config)
    rows = result.rows(store.brakes(), group=group)
    if group is not None and not rows:
        from reconciler.cli_errors import fail

        fail(f"no group {group!r} with an image in the inventory")
    if output == "json":
        sys.stdout.write(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render_text(rows))
    bad = any(row["phase"] in ("Degraded", "RolledBack", "Aborted") for row in rows)
    raise typer.Exit(2 if bad else 0)


def _set_brake(config_path: Path, group: str, change: dict[str, Any], said: str) -> None:
    store, result = _store_and_pass(config_path)
    if group not in result.decisions:
        from reconciler.cli_errors import fail

        fail(f"no group {group!r} with an image in the inventory")
    brake = store.brakes().get(group, Brake())
    store.set_brake(group, replace(brake, **change))
    request_pass(store.folder.parent, "rollout")
    typer.echo(f"{group}: {said}; the watch loop acts on it at once")


@rollout_app.command("pause")
def pause_command(group: GroupArgument, config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Open no new wave in GROUP until ``rollout resume``; nodes already swapping go on."""
    _set_brake(config, group, {"paused": True}, "rollout paused")


@rollout_app.command("resume")
def resume_command(group: GroupArgument, config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Release a pause and acknowledge the failures so far: the next wave may open."""
    _set_brake(
        config, group, {"paused": False, "aborted": False, "resumed_at": time.time()}, "resumed"
    )


@rollout_app.command("abort")
def abort_command(group: GroupArgument, config: ConfigPath = DEFAULT_CONFIG) -> None:
    """Return every node of GROUP that got the new version to the one it had."""
    _set_brake(config, group, {"aborted": True}, "rollout aborted")
