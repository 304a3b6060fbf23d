"""A plan read in worker processes is the serial plan: same changes, output, errors, exit code."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from reconciler import forked
from reconciler.cli import app
from reconciler.engine import Engine
from reconciler.plan import Plan
from reconciler.render import render_text
from reconciler.resources import BootFile, DesiredState
from reconciler.targets.base import LiveState, ServiceDown, TargetError
from reconciler.targets.bootfiles import BootFilesTarget
from tests.unit.site_fixture import Site


def applied(site: Site) -> Engine:
    engine = site.engine()
    report = engine.apply(engine.plan(engine.compile(engine.load()), revision="test"))
    assert report.ok, [o.error for o in report.outcomes]
    return engine


def both_ways(site: Site, monkeypatch: pytest.MonkeyPatch) -> tuple[Plan, Plan]:
    """The serial plan and the parallel one (checked to have run in worker processes)."""
    started: list[int] = []
    start = forked._start

    def counting_start(index: int, task: Callable[[], Any]) -> forked._Running:
        started.append(index)
        return start(index, task)

    monkeypatch.setattr(forked, "_start", counting_start)
    serial_engine = site.engine()
    serial = serial_engine.plan(serial_engine.compile(serial_engine.load()), revision="r")
    assert not started
    engine = site.engine()
    parallel = engine.plan(engine.compile(engine.load()), revision="r", parallel=True)
    assert sorted(started) == list(range(len(engine.targets)))
    return serial, parallel


def hand_edits(site: Site, rng: random.Random) -> None:
    """A few edits of the kinds a person makes, picked at random."""
    out = site.root / "out"
    files = sorted(p for p in out.rglob("*") if p.is_file())
    for path in rng.sample(files, 4):
        kind = rng.choice(["same size, mtime set back", "append", "delete", "replace"])
        before = path.stat()
        text = path.read_text()
        if kind == "delete":
            path.unlink()
        elif kind == "append":
            path.write_text(text + "# by hand\n")
        elif kind == "replace":  # another file under the same name, with the same times
            other = path.with_name(path.name + ".new")
            other.write_text(text.replace("1", "2", 1))
            os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
            other.replace(path)
        else:
            path.write_text(text.replace("1", "7", 1) if "1" in text else text.upper())
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    (out / "tftp/ipxe/by-hand.ipxe").write_text("#!ipxe\nshell\n")


@pytest.mark.parametrize("seed", range(6))
def test_random_hand_edits_plan_the_same_in_workers(
    site: Site, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    applied(site)
    hand_edits(site, random.Random(seed))
    serial, parallel = both_ways(site, monkeypatch)
    assert parallel.has_changes
    assert parallel.to_dict() == serial.to_dict()
    assert render_text(parallel) == render_text(serial)


def test_a_same_size_boot_file_edit_is_seen_in_a_worker(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied(site)
    path = site.root / "out/tftp/ipxe/52-54-00-12-34-0b.ipxe"
    before = path.stat()
    path.write_text(path.read_text().replace("boot", "exit"))  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    serial, parallel = both_ways(site, monkeypatch)
    boot = next(t for t in parallel.targets if t.target == "boot")
    assert [(c.action.value, c.key) for c in boot.changes] == [
        ("update", "ipxe/52-54-00-12-34-0b.ipxe")
    ]
    assert parallel.to_dict() == serial.to_dict()


def test_a_read_that_fails_in_a_worker_is_the_same_error_and_exit_code(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied(site)

    def broken(self: BootFilesTarget, desired: object) -> object:
        raise TargetError(self.name, f"cannot read {self.root}: disk on fire")

    monkeypatch.setattr(BootFilesTarget, "read", broken)
    serial, parallel = both_ways(site, monkeypatch)
    assert parallel.to_dict() == serial.to_dict()
    boot = next(t for t in parallel.targets if t.target == "boot")
    assert boot.error == f"target 'boot': cannot read {site.root / 'out/tftp'}: disk on fire"
    monkeypatch.chdir(site.root)
    result = CliRunner().invoke(app, ["plan", "-c", "reconciler.toml", "--no-cache"])
    assert result.exit_code == 2
    assert "disk on fire" in result.stdout + result.stderr


def test_a_worker_that_dies_is_the_targets_error_and_exit_2(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied(site)

    def dies(self: BootFilesTarget, desired: object) -> object:
        os._exit(3)

    monkeypatch.setattr(BootFilesTarget, "read", dies)
    monkeypatch.chdir(site.root)
    result = CliRunner().invoke(app, ["plan", "-c", "reconciler.toml", "--no-cache"])
    assert result.exit_code == 2
    out = result.stdout + result.stderr
    assert "target 'boot': cannot read: its worker process exited 3 without an answer" in out
    assert "dns (dns-zonefile): 0 to delete" in out  # the other targets are still planned


def test_the_cli_plan_is_byte_for_byte_the_serial_one(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied(site)
    hand_edits(site, random.Random(99))
    monkeypatch.chdir(site.root)
    parallel = CliRunner().invoke(
        app, ["plan", "-c", "reconciler.toml", "--no-cache", "-f", "json"]
    )
    monkeypatch.setattr(forked, "can_fork", lambda: False)
    monkeypatch.setattr("reconciler.engine.can_fork", lambda: False)
    serial = CliRunner().invoke(app, ["plan", "-c", "reconciler.toml", "--no-cache", "-f", "json"])
    assert parallel.exit_code == serial.exit_code == 1, serial.output
    assert '"action": "update"' in parallel.stdout
    assert parallel.stdout == serial.stdout
    assert parallel.stderr == serial.stderr


class Starter:
    """Stands for dhcp-conf: wants one file it has not written yet, starts the service."""

    name, kind, provides_service = "conf", "fake-conf", "svc"

    def desired(self, state: object) -> list[BootFile]:
        return [BootFile("conf", "text")]

    def read(self, desired: object) -> LiveState:
        return LiveState(owned={})


class Needer:
    """Stands for dhcp-omapi: its service is down until the starter applies."""

    name, kind, needs_service = "omapi", "fake-omapi", "svc"

    def desired(self, state: object) -> list[BootFile]:
        return [BootFile("host", "a")]

    def read(self, desired: object) -> LiveState:
        raise ServiceDown(self.name, "svc does not answer")

    def read_persisted(self, desired: object) -> LiveState:
        return LiveState(owned={"host": BootFile("host", "old")})


@pytest.mark.parametrize("starter_changes", [True, False])
def test_a_service_down_in_a_worker_is_read_as_persisted_as_in_a_serial_plan(
    site: Site, monkeypatch: pytest.MonkeyPatch, starter_changes: bool
) -> None:
    if not starter_changes:
        monkeypatch.setattr(Starter, "desired", lambda self, state: [])
    plans = []
    for parallel in (False, True):
        engine = site.engine()
        engine.targets = [Starter(), Needer()]  # type: ignore[list-item]
        monkeypatch.setattr(engine, "adopts", lambda target: True)
        plans.append(engine.plan(DesiredState(), revision="r", parallel=parallel).to_dict())
    assert plans[0] == plans[1]
    omapi = plans[1]["targets"][1]
    if starter_changes:  # read from what the service loads when it starts
        assert [c["action"] for c in omapi["changes"]] == ["update"]
    else:
        assert omapi["error"] == "target 'omapi': svc does not answer"


def test_a_first_plan_in_workers_hands_back_the_compiled_resources_themselves(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial, parallel = both_ways(site, monkeypatch)  # nothing applied: everything to create
    assert parallel.to_dict() == serial.to_dict()
    assert render_text(parallel) == render_text(serial)
    engine = site.engine()
    state = engine.compile(engine.load())
    plan = engine.plan(state, revision="r", parallel=True)
    boot = next(t for t in plan.targets if t.target == "boot")
    assert boot.changes and all(c.action.value == "create" for c in boot.changes)
    compiled = {id(resource) for resource in state.boot_files}
    assert all(id(change.new) in compiled for change in boot.changes)  # not pickled copies
