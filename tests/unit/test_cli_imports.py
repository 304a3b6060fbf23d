"""`reconciler --help` and `validate` start fast: they import no heavy library (issue 17).

Heavy libraries (network clients, the watch and operator stacks, ISO tools,
databases) are imported by the commands that use them; deferred commands are
listed with a one-line help and loaded only when run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.lazycli import DeferredGroup

HEAVY = {
    "aiohttp",
    "dns",
    "pypureomapi",
    "prometheus_client",
    "watchdog",
    "kopf",
    "pycdlib",
    "psycopg",
    "asyncio",
    "http",
    "git",  # GitPython: only a git source needs it
}
EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"

PROBE = """
import json, sys
sys.argv = ["reconciler", *json.loads(sys.argv[1])]
import reconciler.quick_exit
from reconciler.cli import main
reconciler.quick_exit._end_process = sys.exit  # to list the modules after the command
try:
    main()
except SystemExit as stop:
    code = stop.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


_WITHOUT_PLUGIN_SETTING = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, set[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**_WITHOUT_PLUGIN_SETTING, **(env or {})},
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    modules = set(report["modules"])
    output = done.stdout + "".join(done.stderr.strip().splitlines(keepends=True)[:-1])
    return report["code"], modules | {m.split(".")[0] for m in modules}, output


def test_help_lists_every_command_without_importing_heavy_libraries() -> None:
    code, modules, out = _run("--help")
    assert code == 0
    assert modules & HEAVY == set()
    assert "pydantic" not in modules and "yaml" not in modules
    for name in DeferredGroup.deferred:  # deferred commands are still listed
        assert f" {name} " in out


def test_validate_imports_only_what_loading_an_inventory_needs() -> None:
    code, modules, out = _run("validate", str(EXAMPLE))
    assert code == 0, out
    assert "valid (" in out
    assert modules & HEAVY == set()
    assert "jinja2" not in modules  # no config: nothing is rendered
    # nor compiled; and a quiet success prints nothing through rich
    unused = {"reconciler.compile", "reconciler.engine", "reconciler.config", "rich"}
    # nor kept for a next load: no load cache, no group file cut into host entries
    unused |= {"reconciler.inventory.load_cache", "reconciler.inventory.host_entries"}
    assert unused & modules == set()
    # pydantic looks for no plugins: importlib.metadata and what it imports stay unloaded
    assert {"email", "zipfile", "csv", "importlib.metadata._meta"} & modules == set()


def test_validate_looks_for_pydantic_plugins_when_the_user_set_the_variable() -> None:
    """PYDANTIC_DISABLE_PLUGINS set by the user wins; empty: every plugin is loaded, so
    pydantic reads the installed distributions' entry points (importlib.metadata)."""
    code, modules, out = _run("validate", str(EXAMPLE), env={"PYDANTIC_DISABLE_PLUGINS": ""})
    assert code == 0, out
    assert "importlib.metadata._meta" in modules


def test_validate_reports_the_same_problems_as_without_the_light_start(tmp_path: Path) -> None:
    """The console script (light start: no pydantic plugins, PyYAML's patterns compiled
    on first use) prints what the command prints run in-process without it."""
    shutil.copytree(EXAMPLE, tmp_path / "inventory")
    group = tmp_path / "inventory" / "groups" / "compute.yaml"
    text = group.read_text().replace('"52:54:00:12:34:0b"', '"52:54:00:12:34"', 1)
    group.write_text(text + "name: twice\n")
    (tmp_path / "inventory" / "site.yaml").write_text("domain: bad_domain\nttl: yes\n")
    code, _, out = _run("validate", str(tmp_path / "inventory"))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "inventory")])
    assert (code, out) == (result.exit_code, result.output)
    assert code == 2 and "compute.yaml" in out and "site.yaml" in out, out


def test_every_deferred_command_loads_and_runs_its_help() -> None:
    runner = CliRunner()
    assert {"image", "media", "import", "adopt", "hosts", "rollout"} <= set(DeferredGroup.deferred)
    for name, deferred in DeferredGroup.deferred.items():
        assert deferred.load().name == name
        result = runner.invoke(app, [name, "--help"], prog_name="reconciler")
        assert result.exit_code == 0, (name, result.output)
        # agent passes --help on to the node agent's own parser
        usage = "reconciler-agent" if name == "agent" else f"reconciler {name}"
        assert usage in result.output


def test_commands_of_cli_py_are_listed_in_order_under_their_docstring() -> None:
    """They are built only when run, yet --help lists them as typer lists any command."""
    result = CliRunner().invoke(app, ["--help"], prog_name="reconciler", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [line.strip("│ ").split(None, 1) for line in result.output.splitlines()]
    listed = [words[0] for words in lines if words and words[0] in DeferredGroup.deferred]
    assert listed[:7] == ["validate", "plan", "apply", "diff", "serve", "agent", "schema"]
    assert [
        "validate",
        "Check an inventory: exit 0 when valid, 2 with every problem listed when not.",
    ] in lines
    assert not any("Needs no runtime config" in line for line in result.output.splitlines())


def test_running_one_command_builds_no_other() -> None:
    group = typer.main.get_command(app)
    ctx = group.make_context("reconciler", ["validate", "--help"], resilient_parsing=True)
    assert isinstance(group, DeferredGroup)
    validate = group.get_command(ctx, "validate")
    assert validate is not None and validate.params  # built: typer read its options
    others = {name: group.commands[name] for name in ("plan", "apply", "diff", "serve", "agent")}
    assert all(not command.params for command in others.values())  # listed, not built


def test_a_deferred_command_runs_and_reports_its_errors() -> None:
    result = CliRunner().invoke(app, ["hosts", "add", "--help"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["rollout", "nonsense"])
    assert result.exit_code == 2
    assert "No such command" in result.output
