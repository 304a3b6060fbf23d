"""The command line as users see it: output, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.schemas import stale_schemas
from tests.unit.site_fixture import EXAMPLE, Site

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_example_inventory_is_valid() -> None:
    code, out, _ = run("validate", str(EXAMPLE))
    assert code == 0
    assert "valid (3 groups, 8 hosts, 1 images)" in out


def test_invalid_inventory_exits_2_with_located_problems_and_no_traceback(site: Site) -> None:
    site.edit("groups/gpu.yaml", 'mac: "52:54:00:aa:00:02"', 'mac: "52:54:00:12:34:0A"')
    site.edit("groups/gpu.yaml", "gateway: 10.23.46.1", "gatway: 10.23.46.1")
    code, _, err = run("validate", str(site.inventory))
    assert code == 2
    assert "Traceback" not in err
    assert "groups/gpu.yaml:" in err
    assert "unknown key 'gatway'" in err
    assert "required key 'gateway' is missing" in err


def test_plan_exit_codes_follow_changes(site: Site) -> None:
    code, out, _ = run("plan", "-c", str(site.config))
    assert code == 1
    assert "+ node010 52:54:00:12:34:0a 10.23.45.10" in out
    code, _, _ = run("apply", "-c", str(site.config))
    assert code == 0
    code, out, _ = run("plan", "-c", str(site.config))
    assert code == 0
    assert "No changes." in out


def test_plan_json_and_markdown(site: Site) -> None:
    code, out, _ = run("plan", "-c", str(site.config), "--format", "json")
    assert code == 1
    body = json.loads(out)
    assert {t["target"] for t in body["targets"]} == {"dhcp", "dns", "boot", "images"}
    code, out, _ = run("plan", "-c", str(site.config), "--format", "markdown")
    assert out.startswith("### Reconciler plan")
    assert f"Checksum: `{body['checksum']}`" in out


def test_apply_with_a_stale_checksum_changes_nothing(site: Site) -> None:
    code, _, err = run("apply", "-c", str(site.config), "--checksum", "f" * 64)
    assert code == 2
    assert "differs from the reviewed" in err
    assert not (site.root / "out").exists()


def test_apply_with_the_reviewed_checksum_applies(site: Site) -> None:
    _, out, _ = run("plan", "-c", str(site.config), "--format", "json")
    checksum = json.loads(out)["checksum"]
    code, _, _ = run("apply", "-c", str(site.config), "--checksum", checksum)
    assert code == 0
    assert (site.root / "out/dhcpd.hosts.conf").is_file()


def test_bad_config_is_a_clear_error(site: Site) -> None:
    site.config.write_text(site.config.read_text().replace('type = "bootfiles"', 'type = "boot"'))
    code, _, err = run("plan", "-c", str(site.config))
    assert code == 2
    assert "targets.boot: unknown type 'boot'" in err
    code, _, err = run("plan", "-c", str(site.root / "missing.toml"))
    assert code == 2 and "runtime config not found" in err


def test_a_failing_target_does_not_stop_the_others(site: Site) -> None:
    (site.root / "out").mkdir()
    (site.root / "out/tftp").write_text("a file where a folder should be")
    code, _, err = run("apply", "-c", str(site.config))
    assert code == 2
    assert "target 'boot'" in err
    assert (site.root / "out/dhcpd.hosts.conf").is_file()
    assert (site.root / "out/zones/cluster.example.zone").is_file()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_diff_between_revisions_in_host_terms(site: Site) -> None:
    repo = site.inventory
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "base")
    site.edit(
        "groups/compute.yaml",
        '  - index: 11\n    mac: "52:54:00:12:34:0b"\n',
        '  - index: 15\n    mac: "52:54:00:12:34:0b"\n',
    )  # renamed node011 -> node015
    site.edit("groups/compute.yaml", '"52:54:00:12:34:0c"', '"52:54:00:12:34:99"')
    site.edit(
        "groups/compute.yaml",
        "    image: compute@2024.11     # canary: tries the next image first\n",
        "",
    )
    site.edit("groups/gpu.yaml", "first_address: 10.23.46.100", "first_address: 10.23.46.110")
    site.edit(
        "groups/service.yaml",
        '  - index: 1\n    mac: "52:54:00:bb:00:01"\n    aliases: [monitor]\n',
        '  - index: 2\n    mac: "52:54:00:bb:00:02"\n',
    )
    git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qam", "head")
    code, out, err = run("diff", "HEAD~1", "HEAD", "--repo", str(repo))
    assert code == 0, err
    assert "renamed     node015" in out and "node011 -> node015" in out
    assert "MAC 52:54:00:12:34:0c -> 52:54:00:12:34:99" in out
    assert "image compute@2024.11 -> compute@2024.10" in out
    assert "10.23.46.101 -> 10.23.46.111" in out
    assert "added       svc2" in out and "removed     svc1" in out
    code, out, _ = run("diff", "HEAD~1", "HEAD", "--repo", str(repo), "--format", "markdown")
    assert "| `node015` | renamed | node011 -> node015 |" in out


def test_diff_with_unknown_revision_is_a_clear_error(site: Site) -> None:
    git(site.inventory, "init", "-q")
    code, _, err = run("diff", "nope", "HEAD", "--repo", str(site.inventory))
    assert code == 2
    assert "revision 'nope' not found" in err


def test_committed_schemas_match_the_models() -> None:
    assert stale_schemas(ROOT / "schemas") == [], "run `reconciler schema` and commit schemas/"
    code, _, _ = run(
        "schema",
        "--check",
        "--out",
        str(ROOT / "schemas"),
        "--docs",
        str(ROOT / "docs/settings.md"),
    )
    assert code == 0


def test_example_files_point_editors_at_the_schemas() -> None:
    for path in EXAMPLE.rglob("*.yaml"):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target.is_file(), f"{path} points at {target}"


def test_a_broken_site_template_is_a_clear_error(site: Site) -> None:
    templates = site.root / "templates/default"
    templates.mkdir(parents=True)
    (templates / "ipxe.j2").write_text("#!ipxe\nkernel {{ image.no_such_field }}\n")
    (templates / "pxelinux.j2").write_text("DEFAULT x\n")
    site.config.write_text(
        site.config.read_text().replace("[boot]\n", '[boot]\ntemplates = "templates"\n')
    )
    code, _, err = run("plan", "-c", str(site.config))
    assert code == 2
    assert "boot template default/ipxe.j2 fails for host" in err
    assert "no_such_field" in err
    assert "Traceback" not in err
