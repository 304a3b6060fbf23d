"""The agent ships as a zipapp that needs nothing but the standard library, built reproducibly."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

from reconciler.agent.build import agent_sources, build_zipapp, write_zipapp

AGENT = Path(__file__).resolve().parents[2] / "reconciler" / "agent"


def test_the_zipapp_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    first = write_zipapp(tmp_path / "a" / "agent.pyz").read_bytes()
    (AGENT / "state.py").touch()  # a new mtime must not change the archive
    assert build_zipapp() == first
    assert first.startswith(b"#!/usr/bin/env python3\n")


def test_the_zipapp_carries_only_the_agent(tmp_path: Path) -> None:
    path = write_zipapp(tmp_path / "agent.pyz")
    names = zipfile.ZipFile(path).namelist()
    assert names == sorted(names)
    assert set(names) == set(agent_sources())
    assert all(n.startswith("reconciler/agent/") for n in names
               if n not in ("__main__.py", "reconciler/__init__.py"))  # fmt: skip


def test_the_agent_imports_only_the_standard_library_and_itself() -> None:
    for path in sorted(AGENT.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                allowed = top in sys.stdlib_module_names or module.startswith("reconciler.agent")
                assert allowed, f"{path.name} imports {module}"


def test_the_zipapp_runs_without_site_packages(tmp_path: Path) -> None:
    """-I -S: no site-packages, no user site, no PYTHONPATH: the bare interpreter of an image."""
    path = write_zipapp(tmp_path / "agent.pyz")
    version = subprocess.run(
        ["/usr/bin/python3", "-I", "-S", str(path), "--version"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert version.stdout.strip() == "reconciler-agent 1"
    no_server = subprocess.run(
        ["/usr/bin/python3", "-I", "-S", str(path), "--host", "n1", "--once"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert no_server.returncode == 2 and "no serve URL" in no_server.stderr


def test_reconciler_agent_is_the_same_program() -> None:
    from typer.testing import CliRunner

    from reconciler.cli import app

    result = CliRunner().invoke(app, ["agent", "--version"])
    assert result.exit_code == 0 and "reconciler-agent 1" in result.output
