"""The ``reconciler`` command: validate, plan, apply, diff, schema, and the services.

Thin on purpose: each command parses options, calls the engine, renders, and
turns errors into a message and an exit code. Exit codes: 0 success (for
``plan``: no changes), 1 ``plan`` found changes, 2 an error. A user error never
shows a traceback.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reconciler.cli_errors import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    stderr_console,
    user_errors,
)
from reconciler.lazycli import DeferredGroup, command, defer
from reconciler.light_start import light_start
from reconciler.logs import setup_logging
from reconciler.plan_run import load_engine, plan_from_config, plan_from_source, progress
from reconciler.quick_exit import QUICK_EXIT_COMMANDS, run_then_exit

if TYPE_CHECKING:
    from reconciler.engine import ApplyReport
    from reconciler.inventory.sources import InventorySource
    from reconciler.model.inventory import Inventory
    from reconciler.plan import Plan

# Heavy modules (pydantic models, jinja2, YAML, network clients) are imported by
# the commands that need them, so `reconciler --help` starts fast (issue 17).

log = logging.getLogger(__name__)
DEFAULT_CONFIG = Path(os.environ.get("RECONCILER_CONFIG", "/etc/reconciler/reconciler.toml"))

app = typer.Typer(
    cls=DeferredGroup,
    help="Reconcile dhcpd, DNS, PXE boot files and node images with a git inventory.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class OutputFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="runtime config (TOML); env RECONCILER_CONFIG")
]
FormatOption = Annotated[OutputFormat, typer.Option("--format", "-f", help="output format")]
RevOption = Annotated[
    str | None, typer.Option("--rev", help="inventory revision (git source) instead of config's")
]


@app.callback()
def main_options(
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "warning",
    log_json: Annotated[bool, typer.Option("--log-json", help="logs as JSON lines")] = False,
) -> None:
    setup_logging(level=log_level, json_format=log_json)


def _source(path: Path | None, repo: Path | None, rev: str, subdir: str) -> InventorySource:
    from reconciler.inventory.sources import FolderSource, GitSource

    if repo is not None:
        return GitSource(repo, rev, subdir)
    return FolderSource(path or Path("."))


@command()
def validate(
    path: Annotated[Path | None, typer.Argument(help="inventory folder")] = None,
    repo: Annotated[Path | None, typer.Option(help="git repository (may be bare)")] = None,
    rev: Annotated[str, typer.Option(help="revision in --repo")] = "HEAD",
    subdir: Annotated[str, typer.Option(help="inventory folder inside --repo")] = "",
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="runtime config: its boot profiles")
    ] = None,
) -> None:
    """Check an inventory: exit 0 when valid, 2 with every problem listed when not.

    Needs no runtime config and no access to any service; with ``--config`` the
    site's own boot profiles count as known and every boot file is rendered.
    """
    from reconciler.boot_templates import BootTemplates
    from reconciler.inventory.load import load_inventory

    with user_errors():
        source = _source(path, repo, rev, subdir)
        if config is None:
            inventory = load_inventory(source, boot_profiles=BootTemplates().profiles)
        else:
            inventory = _validate_with_config(source, config)
    hosts = sum(len(group.hosts) for group in inventory.groups)
    typer.echo(
        f"{source.describe()}: valid ({len(inventory.groups)} groups, {hosts} hosts, "
        f"{len(inventory.images)} images)"
    )


def _validate_with_config(source: InventorySource, config: Path) -> Inventory:
    """Load with the site's boot profiles, then render every boot file (CI catches a
    template error before a node would)."""
    from reconciler.boot_templates import BootTemplates
    from reconciler.compile import CompileOptions, compile_inventory
    from reconciler.config import load_config
    from reconciler.inventory.load import load_inventory

    runtime = load_config(config)
    templates = runtime.resolve(runtime.boot.templates) if runtime.boot.templates else None
    boot_templates = BootTemplates(templates)
    inventory = load_inventory(source, boot_profiles=boot_templates.profiles)
    options = CompileOptions(http_url=runtime.boot.http_url.rstrip("/"))
    compile_inventory(inventory, templates=boot_templates, options=options)
    return inventory


@command()
def plan(
    config: ConfigOption = DEFAULT_CONFIG,
    output: FormatOption = OutputFormat.text,
    rev: RevOption = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="compute the plan in full even when the last no-op plan's inputs and "
            "output files are unchanged (state_dir/plan-cache.json), and remember nothing",
        ),
    ] = False,
) -> None:
    """Show what apply would change. Exit 0: nothing; 1: changes; 2: error or conflict."""
    from reconciler.render import RENDERERS

    with user_errors():
        _, the_plan = plan_from_config(config, rev, cached=not no_cache)
    sys.stdout.write(RENDERERS[output.value](the_plan))
    _report_conflicts(the_plan)
    if the_plan.has_errors or the_plan.has_conflicts:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_CHANGES if the_plan.has_changes else EXIT_OK)


def _report_conflicts(the_plan: Plan) -> None:
    for message in the_plan.conflict_messages():
        stderr_console().print(f"[bold red]conflict:[/] {message}", highlight=False, soft_wrap=True)


@command()
def apply(
    config: ConfigOption = DEFAULT_CONFIG,
    checksum: Annotated[
        str | None, typer.Option(help="apply only if the plan still has this checksum")
    ] = None,
    force: Annotated[bool, typer.Option(help="allow changing more than the safe share")] = False,
    output: FormatOption = OutputFormat.text,
    rev: RevOption = None,
    lock_timeout: Annotated[
        float,
        typer.Option(
            min=0,
            help="seconds to wait while another apply, a watch pass or a registration "
            "holds the state dir's lock; then give up (exit 2)",
        ),
    ] = 60.0,
) -> None:
    """Make live state match the inventory. Exit 0 when every target succeeded, else 2."""
    from reconciler.accepted import AcceptedRevision, AcceptedStore, revision_of
    from reconciler.render import RENDERERS
    from reconciler.statelock import StateLock

    with user_errors():
        engine, source = load_engine(config, rev)
        state_dir = engine.config.resolve(engine.config.state_dir)
        with StateLock(state_dir, purpose="apply", timeout=lock_timeout):
            # Pinned before loading: what is recorded as accepted is exactly what was applied.
            accepted = AcceptedRevision.of(source, revision_of(source), by="apply")
            the_plan, record_rollouts = plan_from_source(engine, source)
            if output is not OutputFormat.json:
                sys.stdout.write(RENDERERS[output.value](the_plan))
            report = engine.apply(the_plan, force=force, checksum=checksum, progress=progress())
            _print_outcomes(the_plan, report, output)
            AcceptedStore(state_dir).record(accepted)
            record_rollouts()
    _report_conflicts(the_plan)
    raise typer.Exit(EXIT_OK if report.ok and not the_plan.has_conflicts else EXIT_ERROR)


def _print_outcomes(the_plan: Plan, report: ApplyReport, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        import json

        body = {"plan": the_plan.to_dict(), "outcomes": [o.to_dict() for o in report.outcomes]}
        sys.stdout.write(json.dumps(body, indent=2, sort_keys=True) + "\n")
    for outcome in report.outcomes:
        if outcome.ok:
            writes = outcome.result.writes if outcome.result else 0
            if output is not OutputFormat.json and writes:
                typer.echo(f"{outcome.target}: applied ({writes} writes)")
        else:
            stderr_console().print(
                f"[bold red]error:[/] {outcome.error}", highlight=False, soft_wrap=True
            )


@command()
def diff(
    base: Annotated[str, typer.Argument(help="base revision (e.g. origin/main)")],
    head: Annotated[str, typer.Argument(help="head revision (e.g. the PR branch)")],
    repo: Annotated[Path, typer.Option(help="git repository")] = Path("."),
    subdir: Annotated[str, typer.Option(help="inventory folder inside the repository")] = "",
    output: FormatOption = OutputFormat.text,
) -> None:
    """Host-level changes between two revisions; needs no live access."""
    from reconciler.config import RuntimeConfig
    from reconciler.engine import Engine
    from reconciler.hostdiff import diff_inventories
    from reconciler.hostdiff_render import (
        render_diff_json,
        render_diff_markdown,
        render_diff_text,
    )
    from reconciler.inventory.sources import GitSource

    with user_errors():
        engine = Engine(RuntimeConfig.model_validate({"source": {"path": "."}}))
        old = engine.load(GitSource(repo, base, subdir))
        new = engine.load(GitSource(repo, head, subdir))
    result = diff_inventories(old, new)
    render = {
        OutputFormat.text: render_diff_text,
        OutputFormat.markdown: render_diff_markdown,
        OutputFormat.json: render_diff_json,
    }[output]
    sys.stdout.write(render(result, base, head))


@command()
def serve(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Serve iPXE boot scripts, boot files, node images and self-registration over HTTP."""
    from reconciler.server.app import serve as run_service

    with user_errors():
        run_service(config)


@command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def agent(ctx: typer.Context) -> None:
    """Run the node agent (the same as `python3 agent.pyz`; --help lists its options)."""
    from reconciler.agent.main import main as agent_main

    raise typer.Exit(agent_main(ctx.args))


defer(
    "schema",
    target="reconciler.schemas:schema_command",
    help="Write the JSON Schemas of the inventory files and the runtime-config reference "
    "(or check they are current).",
)


ONE_SHOT_COMMANDS = {"validate", "plan", "apply", "diff", "schema"}


def main() -> None:
    """The console script. Commands that run one pass and exit do so without the
    cyclic garbage collector: a pass builds hundreds of thousands of long-lived
    objects, and full sweeps over them cost a third of a 50,000-host plan while
    freeing nothing (reference counting still frees what is dropped). Nor does the
    help (no command): its sweeps would run over the modules rich imports to print it."""
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    if command is None or command in ONE_SHOT_COMMANDS:
        gc.disable()
    if command == "validate":
        light_start()
    if command in QUICK_EXIT_COMMANDS:
        run_then_exit(app)
    app()


# -- the watch loop and its status (reconciler.watch) ---------------------------

defer(
    "watch",
    target="reconciler.watch.commands:watch",
    help="Keep live services at the newest good revision; SIGTERM finishes the apply, exits 0.",
)
defer(
    "status",
    target="reconciler.watch.commands:status",
    help="Show the watch loop's status and the nodes'. Exit 2 if not Ready.",
)


# -- rollouts of image changes (reconciler.rollout) ------------------------------

defer(
    "rollout",
    target="reconciler.rollout.cli:rollout_app",
    help="See rollouts of image changes and hold, resume or abort them.",
)
defer(
    "operator",
    target="reconciler.operator.cli:operator_app",
    help="The Kubernetes operator: a Site custom resource per site.",
)


# -- the node's boot path (reconciler.nodeboot) ---------------------------------

defer(
    "initramfs",
    target="reconciler.nodeboot.command:initramfs",
    help="Build the initramfs that boots a stateless node (busybox, modules, DHCP, "
    "verified rootfs).",
)


# -- the sandbox: a whole site on this machine (reconciler.sandbox) -------------

defer(
    "sandbox",
    target="reconciler.sandbox.command:sandbox",
    help="Run a whole site in namespaces (as root), commit a new host, prove it applied live.",
)


# -- node images and the node agent (reconciler.image, reconciler.agent) ---------

defer(
    "image",
    target="reconciler.image.commands:image_app",
    help="Prepare node images: install the agent into a tree, add a built version.",
)


# -- boot media: USB sticks and CDs (reconciler.media) --------------------------

defer(
    "media",
    target="reconciler.media.cli:media_app",
    help="Boot media (USB stick / CD, BIOS and UEFI) built from the inventory.",
)


# -- adopting an existing site (reconciler.importer) --------------------------------


# ``import``, ``adopt`` and ``hosts add`` live in their own modules (issue 16).
defer(
    "import",
    target="reconciler.importer.command:import_site",
    help="Write an inventory folder from a running site's dhcpd, BIND, pxelinux, Warewulf or CSV.",
)
defer(
    "adopt",
    target="reconciler.importer.command:adopt_command",
    help="Take ownership of live objects that exactly match the inventory, without rewriting them.",
)
defer(
    "hosts",
    target="reconciler.importer.command:hosts_app",
    help="Edit the hosts of an inventory folder.",
)
