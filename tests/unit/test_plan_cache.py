"""The no-op plan remembered between processes: reused only when nothing it depends on moved.

Each test records a no-op plan, changes one thing the plan depends on, and checks
that ``reconciler plan`` then shows exactly what ``plan --no-cache`` shows.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler import plan_cache
from reconciler.cli import app
from reconciler.engine import Engine
from reconciler.plan_cache import LiveFiles, PlanCache, stat_signature
from reconciler.rollout.runner import RolloutPass
from reconciler.rollout.state import Decision, GroupRollout
from tests.unit.site_fixture import Site

runner = CliRunner()
COMPUTE_IPXE = "out/tftp/ipxe/52-54-00-12-34-0a.ipxe"


class Compiles:
    """How many times the engine compiled: zero means the plan came from the cache."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = Engine.compile

        def counting(engine: Engine, *args: object, **kwargs: object) -> object:
            self.count += 1
            return original(engine, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(Engine, "compile", counting)


def plan(site: Site, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["plan", "-c", str(site.config), *args])
    return result.exit_code, result.stdout


def settle() -> None:
    """Let the files an apply wrote become older than the racy margin."""
    time.sleep(plan_cache.RACY_NS / 1e9 + 0.1)


@pytest.fixture
def recorded(site: Site) -> Site:
    """An applied site whose no-op plan is recorded in state/plan-cache.json."""
    assert runner.invoke(app, ["apply", "-c", str(site.config)]).exit_code == 0
    settle()
    assert plan(site) == plan(site, "--no-cache")
    assert plan(site)[0] == 0
    assert (site.root / "state" / plan_cache.CACHE_FILE).is_file()
    return site


def same_as_without_cache(site: Site, *args: str) -> tuple[int, str]:
    cached = plan(site, *args)
    assert cached == plan(site, "--no-cache", *args)
    return cached


def test_an_unchanged_site_is_planned_without_compiling(
    recorded: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiles = Compiles(monkeypatch)
    for output in ("text", "json", "markdown"):
        compiles.count = 0
        code, out = plan(recorded, "--format", output)
        assert code == 0
        assert compiles.count == 0
        assert (code, out) == plan(recorded, "--no-cache", "--format", output)
        assert compiles.count == 1
    body = json.loads(plan(recorded, "--format", "json")[1])
    assert {t["target"]: t["owned"] for t in body["targets"]}["boot"] > 0


def test_a_hand_edit_of_the_same_size_is_seen(recorded: Site) -> None:
    path = recorded.root / COMPUTE_IPXE
    text = path.read_text()
    edited = text.replace("quiet", "QUIET", 1)
    assert edited != text and len(edited) == len(text)
    path.write_text(edited)
    code, out = same_as_without_cache(recorded)
    assert code == 1
    assert "52-54-00-12-34-0a" in out


def test_a_deleted_output_and_a_new_file_in_a_managed_folder_are_seen(recorded: Site) -> None:
    (recorded.root / COMPUTE_IPXE).unlink()
    code, out = same_as_without_cache(recorded)
    assert code == 1
    assert "1 to create" in out
    assert runner.invoke(app, ["apply", "-c", str(recorded.config)]).exit_code == 0
    settle()
    assert plan(recorded)[0] == 0  # recorded again
    (recorded.root / "out/tftp/pxelinux.cfg/default-by-hand").write_text("DEFAULT local\n")
    code, out = same_as_without_cache(recorded)
    assert "default-by-hand" in out


def test_edits_of_the_zone_and_dhcp_files_are_seen(recorded: Site) -> None:
    zone = next((recorded.root / "out/zones").glob("cluster.example.zone"))
    zone.write_text(zone.read_text().replace("10.23.45.10\n", "10.23.45.19\n", 1))
    code, out = same_as_without_cache(recorded)
    assert code == 1
    assert "dns (dns-zonefile): 0 to delete, 0 to create, 1 to update" in out
    hosts = recorded.root / "out/dhcpd.hosts.conf"
    hosts.write_text(hosts.read_text().replace("10.23.45.10;", "10.23.45.19;", 1))
    code, out = same_as_without_cache(recorded)
    assert "dhcp (dhcp-file): 0 to delete, 0 to create, 1 to update" in out


def test_a_changed_image_template_or_config_is_planned_in_full(
    recorded: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiles = Compiles(monkeypatch)
    recorded.edit("images/compute.yaml", 'console=ttyS0 quiet"', 'console=ttyS0 debug"')
    code, out = same_as_without_cache(recorded)
    assert code == 1 and compiles.count == 2
    assert "debug" in out

    templates = recorded.root / "templates"
    shutil.copytree(Path(plan_cache.__file__).parent / "templates" / "boot", templates)
    config = recorded.config.read_text()
    recorded.config.write_text(config.replace("[boot]\n", '[boot]\ntemplates = "templates"\n'))
    assert plan(recorded, "--no-cache")[0] == 1  # the image edit is still pending
    recorded.edit("images/compute.yaml", 'console=ttyS0 debug"', 'console=ttyS0 quiet"')
    settle()
    assert same_as_without_cache(recorded)[0] == 0  # the same templates: nothing to do
    for ipxe in templates.glob("*/ipxe.j2"):
        ipxe.write_text(ipxe.read_text() + "# site addition\n")
    code, out = same_as_without_cache(recorded)
    assert code == 1
    assert "site addition" in plan(recorded, "--format", "json")[1]

    recorded.config.write_text(config.replace("10.23.45.2:8080", "10.23.45.3:8080"))
    code, out = same_as_without_cache(recorded)
    assert code == 1
    assert "10.23.45.3:8080" in plan(recorded, "--format", "json")[1]


@pytest.mark.parametrize(
    "content",
    [
        "not json at all {",
        '{"format": 1, "targets": "everything"}',
        '{"format": 99, "files": null, "assigned": "", "targets": []}',
        "[]",
    ],
)
def test_a_damaged_or_foreign_cache_file_takes_the_full_path(
    recorded: Site, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    (recorded.root / "state" / plan_cache.CACHE_FILE).write_text(content)
    compiles = Compiles(monkeypatch)
    assert same_as_without_cache(recorded)[0] == 0
    assert compiles.count == 2


def test_a_cache_whose_signatures_lie_is_not_believed(
    recorded: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache file claiming no-op for files that changed: the signatures are checked."""
    path = recorded.root / "state" / plan_cache.CACHE_FILE
    kept = path.read_text()
    (recorded.root / COMPUTE_IPXE).write_text("#!ipxe\nexit\n")
    path.write_text(kept)
    compiles = Compiles(monkeypatch)
    code, _ = same_as_without_cache(recorded)
    assert code == 1 and compiles.count == 2


def test_another_code_version_takes_the_full_path(
    recorded: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiles = Compiles(monkeypatch)
    monkeypatch.setattr(plan_cache, "_CODE", ["another version of the reconciler"])
    assert plan(recorded)[0] == 0
    assert compiles.count == 1


def test_files_written_just_before_the_plan_are_not_trusted(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runner.invoke(app, ["apply", "-c", str(site.config)]).exit_code == 0
    assert plan(site)[0] == 0  # within the racy margin of the apply: nothing remembered
    compiles = Compiles(monkeypatch)
    assert plan(site)[0] == 0
    assert compiles.count == 1


def test_no_cache_remembers_nothing(site: Site) -> None:
    assert runner.invoke(app, ["apply", "-c", str(site.config)]).exit_code == 0
    settle()
    assert plan(site, "--no-cache")[0] == 0
    assert not (site.root / "state" / plan_cache.CACHE_FILE).exists()


def test_a_plan_with_changes_is_not_remembered(site: Site) -> None:
    settle()
    assert plan(site)[0] == 1
    assert not (site.root / "state" / plan_cache.CACHE_FILE).exists()


def test_moving_nodes_need_the_load_and_rollout_pass(site: Site) -> None:
    """While a rollout moves nodes, only the assignments (not the files) key the plan."""
    assert runner.invoke(app, ["apply", "-c", str(site.config)]).exit_code == 0
    settle()
    engine = site.engine()
    from reconciler.engine import source_from_config

    source = source_from_config(engine.config)
    cache = PlanCache(engine, source)
    inventory = engine.load(cache.source)
    state = engine.compile(inventory)
    the_plan = engine.plan(state, revision=inventory.revision, recorder=cache)
    moving = RolloutPass(
        assignments={"node001": "compute@2024.10"},
        decisions={
            "compute": Decision(
                assignments={},
                rollout=GroupRollout(
                    group="compute",
                    target="compute@2024.11",
                    revision="r",
                    previous={"node001": "compute@2024.10"},
                ),
                node_states={},
                events=(),
            )
        },
    )
    cache.record(the_plan, moving)
    later = PlanCache(engine, source)
    assert later.before_load() is None
    assert later.after_rollouts(moving) == the_plan
    assert later.after_rollouts(RolloutPass(assignments={"node001": "compute@2024.11"})) is None


def test_the_signature_depends_on_values_only(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    folder = str(tmp_path / "d")
    built = LiveFiles((folder, "".join([folder])), (f"{tmp_path}/d",))
    files, folders = json.loads(json.dumps([built.files, built.folders]))
    loaded = LiveFiles(tuple(files), tuple(folders))
    assert stat_signature(built) == stat_signature(loaded)
    before = stat_signature(built)
    time.sleep(0.05)  # past the file system's clock tick (see RACY_NS)
    (tmp_path / "d" / "f").write_text("y")
    assert stat_signature(built) != before


def test_a_new_commit_of_a_git_source_is_planned_in_full(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-C", str(site.inventory), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            check=True,
            capture_output=True,
            timeout=30,
        )

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-qm", "site")
    config = site.config.read_text()
    site.config.write_text(config.replace('path = "inventory"', 'repo = "inventory"\nrev = "main"'))
    assert runner.invoke(app, ["apply", "-c", str(site.config)]).exit_code == 0
    settle()
    assert plan(site)[0] == 0
    compiles = Compiles(monkeypatch)
    first = json.loads(plan(site, "--format", "json")[1])
    assert compiles.count == 0
    git("commit", "-qm", "nothing changed but the revision", "--allow-empty")
    code, out = same_as_without_cache(site, "--format", "json")
    assert code == 0 and compiles.count == 2
    assert json.loads(out)["revision"] != first["revision"]
    site.edit("images/compute.yaml", 'console=ttyS0 quiet"', 'console=ttyS0 debug"')
    assert plan(site)[0] == 0  # not committed: the revision is what is planned
    git("commit", "-qam", "debug")
    code, out = same_as_without_cache(site)
    assert code == 1
    assert "debug" in plan(site, "--format", "json")[1]


def test_a_managed_folder_swapped_for_a_link_is_seen(recorded: Site) -> None:
    """The same files behind a symbolic link: the folder's own lstat changed."""
    ipxe = recorded.root / "out/tftp/ipxe"
    elsewhere = recorded.root / "elsewhere"
    shutil.copytree(ipxe, elsewhere)
    shutil.rmtree(ipxe)
    ipxe.symlink_to(elsewhere)
    code, out = same_as_without_cache(recorded)
    assert code == 2
    assert "resolves outside" in out
