"""The CI templates in deploy/ci run as written: their shell steps, with the real
``reconciler`` command, on an inventory repository with a pull request branch.

Only the reconciler steps run (validate, diff, plan); the steps that post the comment
(gh, curl) are cut off, as they would reach a forge. Also ``validate --repo/--rev/--subdir``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.sandbox.site import git
from tests.unit.site_fixture import EXAMPLE, FILE_TARGETS

CI = Path(__file__).resolve().parents[2] / "deploy/ci"
BIN = str(Path(sys.executable).parent)
runner = CliRunner()


def pull_request(tmp_path: Path) -> tuple[Path, Path]:
    """An inventory repository whose branch ``pr`` re-addresses gpu01; main is applied."""
    repo = tmp_path / "inventory"
    shutil.copytree(EXAMPLE, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "site")
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(origin)], check=True)
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "fetch", "-q", "origin")
    config = tmp_path / "reconciler.toml"
    config.write_text(
        FILE_TARGETS.replace('path = "inventory"', 'repo = "inventory"\nrev = "main"')
    )
    result = runner.invoke(app, ["apply", "-c", str(config)])
    assert result.exit_code == 0, result.output
    git(repo, "checkout", "-q", "-b", "pr")
    group = repo / "groups/gpu.yaml"
    group.write_text(
        group.read_text().replace("first_address: 10.23.46.100", "first_address: 10.23.46.110")
    )
    git(repo, "commit", "-q", "-am", "gpu nodes move up by ten")
    return repo, config


def run_step(script: str, *, cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"


def check_comment(text: str, head: str) -> None:
    assert "### Host changes `origin/main` → `HEAD`" in text
    assert "| `gpu01` | readdressed | 10.23.46.101 -\\> 10.23.46.111 |" in text or (
        "| `gpu01` | readdressed | 10.23.46.101 -> 10.23.46.111 |" in text
    )
    assert f"### Reconciler plan for `{head[:12]}`" in text
    assert "10.23.46.111" in text.split("### Reconciler plan")[1]


def test_the_github_workflow_steps(tmp_path: Path) -> None:
    repo, config = pull_request(tmp_path)
    workflow = yaml.safe_load((CI / "github/inventory.yml").read_text())
    steps = {step.get("name"): step for step in workflow["jobs"]["validate"]["steps"]}
    for name in (
        "Validate",
        "Host changes",
        "Plan against the site (self-hosted runners that can reach it)",
    ):
        script = steps[name]["run"]
        script = script.replace("${{ github.base_ref }}", "main")
        script = script.replace("${{ vars.RECONCILER_CONFIG }}", str(config))
        assert "${{" not in script, script
        run_step(script, cwd=repo, env={})
    check_comment((repo / "comment.md").read_text(), git(repo, "rev-parse", "HEAD"))


def test_the_gitlab_job_script(tmp_path: Path) -> None:
    repo, config = pull_request(tmp_path)
    job = yaml.safe_load((CI / "gitlab/inventory.gitlab-ci.yml").read_text())["inventory"]
    env = {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "RECONCILER_CONFIG": str(config),
    }
    for script in job["script"]:
        if "body=" in script:  # posting the note reaches the forge: cut it off
            kept = script[: script.index("body=")].rstrip(" ")
            script = kept + "fi\n"
        assert "curl" not in script and "gh " not in script, script
        run_step(script, cwd=repo, env=env)
    check_comment((repo / "note.md").read_text(), git(repo, "rev-parse", "HEAD"))


def test_validate_a_revision_and_subfolder_of_a_repository(tmp_path: Path) -> None:
    repo = tmp_path / "site-repo"
    shutil.copytree(EXAMPLE, repo / "inventory")
    (repo / "README").write_text("the site\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "good")
    group = repo / "inventory/groups/gpu.yaml"
    group.write_text(group.read_text().replace("gateway: 10.23.46.1", "gateway: 10.23.47.1"))
    git(repo, "commit", "-q", "-am", "bad gateway")
    args = ["validate", "--repo", str(repo), "--subdir", "inventory"]
    good = runner.invoke(app, [*args, "--rev", "HEAD~1"])
    assert good.exit_code == 0 and "valid (3 groups" in good.stdout, good.output
    bad = runner.invoke(app, [*args, "--rev", "HEAD"])
    assert bad.exit_code == 2 and "groups/gpu.yaml" in bad.stderr and "gateway" in bad.stderr
    missing = runner.invoke(app, ["validate", "--repo", str(repo), "--rev", "HEAD~1"])
    assert missing.exit_code == 2  # no inventory at the top of this repository
