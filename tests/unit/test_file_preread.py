"""A plan with the file targets pre-read during load and compile is the plan without it."""

from __future__ import annotations

import os
import random
import time

import pytest
from typer.testing import CliRunner

from reconciler import forked
from reconciler.cli import app
from reconciler.plan import Plan
from reconciler.render import render_text
from reconciler.targets import file_preread, manifest
from reconciler.targets.file_preread import PreReading
from reconciler.targets.filetree import FileTreeTarget
from tests.unit.site_fixture import Site
from tests.unit.test_parallel_plan import applied, hand_edits


@pytest.fixture(autouse=True)
def trusted_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Manifest entries trusted as soon as written (edits wait for the clock to tick):
    the pre-read then has clean keys, as on a site applied a while ago."""
    monkeypatch.setattr(manifest, "RACY_NS", 0)


def tick() -> None:
    time.sleep(0.05)  # past the file system's clock tick: an edit moves the ctime


def plain(site: Site) -> Plan:
    engine = site.engine()
    return engine.plan(engine.compile(engine.load()), revision="r")


def pre_read(site: Site, *, between: object = None) -> tuple[Plan, dict[str, int]]:
    """As ``plan`` does: the pre-read child started before the load, its answers handed
    over after the compile (``between``: called after the hand-over, before the read)."""
    engine = site.engine()
    with PreReading(engine.targets) as reading:
        state = engine.compile(engine.load())
        reading.hand_over()
        handed = {t.name: len(t.pre_read.unclean) for t in reading.targets if t.pre_read}
        if callable(between):
            between()
        the_plan = engine.plan(state, revision="r", parallel=True)
    assert all(t.pre_read is None for t in reading.targets)  # an apply's read looks again
    return the_plan, handed


def same(site: Site) -> dict[str, int]:
    """The targets pre-read, each with its count of keys not clean."""
    with_pre_read, handed = pre_read(site)
    without = plain(site)
    assert with_pre_read.to_dict() == without.to_dict()
    assert render_text(with_pre_read) == render_text(without)
    return handed


def edits_keeping_every_file(site: Site, rng: random.Random) -> None:
    """Hand edits that leave each file there: the pre-read is used, some keys not clean."""
    tick()
    files = sorted(p for p in (site.root / "out").rglob("*") if p.is_file())
    for path in rng.sample(files, 4):
        before = path.stat()
        text = path.read_text()
        if rng.random() < 0.5:
            path.write_text(text + "# by hand\n")
        else:  # same size, mtime set back: only the ctime moved
            path.write_text(text.replace("1", "7", 1) if "1" in text else text.upper())
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    (site.root / "out/tftp/ipxe/by-hand.ipxe").write_text("#!ipxe\nshell\n")


def test_a_no_op_plan_is_read_from_the_pre_read(site: Site) -> None:
    applied(site)
    assert same(site) == {"boot": 0, "images": 0}
    with_pre_read, _ = pre_read(site)
    assert not with_pre_read.has_changes


@pytest.mark.parametrize("seed", range(4))
def test_random_hand_edits_plan_the_same(site: Site, seed: int) -> None:
    applied(site)
    edits_keeping_every_file(site, random.Random(seed))
    handed = same(site)
    assert sorted(handed) == ["boot", "images"]
    assert sum(handed.values()) >= 1


@pytest.mark.parametrize("seed", range(3))
def test_random_edits_with_deleted_files_plan_the_same(site: Site, seed: int) -> None:
    applied(site)
    tick()
    hand_edits(site, random.Random(seed))
    same(site)


def test_changed_and_removed_hosts_plan_the_same(site: Site) -> None:
    applied(site)
    site.config.write_text(site.config.read_text().replace(":8080", ":8081"))  # every boot file
    site.edit("groups/compute.yaml", '"52:54:00:12:34:0c"', '"52:54:00:12:34:99"')
    assert same(site) == {"boot": 0, "images": 0}
    assert plain(site).has_changes


def test_a_file_edited_after_the_pre_read_is_seen_by_the_next_plan(site: Site) -> None:
    applied(site)
    tick()
    path = site.root / "out/tftp/ipxe/52-54-00-12-34-0b.ipxe"

    def edit() -> None:
        before = path.stat()
        path.write_text(path.read_text().replace("boot", "exit"))  # same size
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    snapshot, _ = pre_read(site, between=edit)
    assert not snapshot.has_changes  # as the files were when the pre-read looked
    after, _ = pre_read(site)
    boot = next(t for t in after.targets if t.target == "boot")
    assert [(c.action.value, c.key) for c in boot.changes] == [
        ("update", "ipxe/52-54-00-12-34-0b.ipxe")
    ]
    assert after.to_dict() == plain(site).to_dict()


def test_a_pre_read_that_raises_or_dies_plans_the_same(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied(site)
    tick()
    hand_edits(site, random.Random(7))

    def raises(target: FileTreeTarget) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(file_preread, "pre_read", raises)
    assert same(site) == {}

    def dies(targets: object) -> None:
        os._exit(3)

    monkeypatch.setattr(file_preread, "_pre_read_all", dies)
    assert same(site) == {}


def test_the_cli_plan_with_a_pre_read_is_byte_for_byte_the_one_without(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied(site)
    monkeypatch.chdir(site.root)
    args = ["plan", "-c", "reconciler.toml", "--no-cache", "-f", "json"]
    CliRunner().invoke(app, args)
    edits_keeping_every_file(site, random.Random(5))
    handed: list[str] = []
    hand_over = PreReading.hand_over

    def counting(self: PreReading) -> None:
        hand_over(self)

        handed.extend(t.name for t in self.targets if t.pre_read is not None)

    monkeypatch.setattr(PreReading, "hand_over", counting)
    with_pre_read = CliRunner().invoke(app, args)
    assert sorted(handed) == ["boot", "images"], with_pre_read.output
    monkeypatch.setattr(forked, "can_fork", lambda: False)
    without = CliRunner().invoke(app, args)
    assert sorted(handed) == ["boot", "images"]  # not pre-read again
    assert with_pre_read.exit_code == without.exit_code == 1, without.stderr
    assert with_pre_read.stdout == without.stdout
    assert with_pre_read.stderr == without.stderr


def test_a_pre_read_not_taken_is_killed_and_taken_back(site: Site) -> None:
    applied(site)
    engine = site.engine()
    with PreReading(engine.targets) as reading:
        child = reading._child
        assert child is not None and child._child is not None
        pid = child._child.pid
    # A load that failed: the child is gone (killed and reaped), nothing handed over.
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert all(t.pre_read is None for t in reading.targets)
    assert not plain(site).has_changes
