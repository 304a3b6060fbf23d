"""The embedded file targets through the engine: minimal writes, atomicity, safety, ownership."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.engine import Engine, PlanRefused
from reconciler.targets.base import TargetError
from tests.unit.site_fixture import Site


def apply_all(engine: Engine, *, force: bool = False) -> dict[str, int]:
    state = engine.compile(engine.load())
    report = engine.apply(engine.plan(state, revision="test"), force=force)
    assert report.ok, [o.error for o in report.outcomes]
    return {o.target: (o.result.writes if o.result else 0) for o in report.outcomes}


def test_first_apply_writes_every_target_and_second_writes_nothing(site: Site) -> None:
    writes = apply_all(site.engine())
    assert all(count > 0 for count in writes.values()), writes
    files = site.files()
    assert (
        "APPEND console=ttyS0 quiet hostname=node010"
        in files["tftp/pxelinux.cfg/01-52-54-00-12-34-0a"]
    )
    assert "hostname=node010" in files["tftp/ipxe/52-54-00-12-34-0a.ipxe"]
    assert "node010.cluster.example. 300 IN A 10.23.45.10" in files["zones/cluster.example.zone"]
    assert "host node010" in files["dhcpd.hosts.conf"]
    mtimes = {p: os.stat(site.root / "out" / p).st_mtime_ns for p in files}
    again = site.engine()
    plan = again.plan(again.compile(again.load()), revision="test")
    assert not plan.has_changes
    assert apply_all(again) == {name: 0 for name in writes}
    assert {p: os.stat(site.root / "out" / p).st_mtime_ns for p in files} == mtimes


def test_unknown_macs_get_the_registration_profile(site: Site) -> None:
    apply_all(site.engine())
    files = site.files()
    assert "chain http://10.23.45.2:8080/boot/${net0/mac}" in files["tftp/boot.ipxe"]
    assert "register" in files["tftp/ipxe/registration.ipxe"]
    assert "tftp/pxelinux.cfg/default" in files


def test_canary_host_gets_its_own_image(site: Site) -> None:
    apply_all(site.engine())
    files = site.files()
    assert "compute@2024.11" in files["tftp/ipxe/52-54-00-12-34-0e.ipxe"]
    assert json.loads(files["http/nodes/node014.json"])["version"] == "2024.11"
    assert json.loads(files["http/nodes/node013.json"])["version"] == "2024.10"


def test_removed_host_loses_only_its_own_files(site: Site) -> None:
    apply_all(site.engine())
    handmade = site.root / "out/tftp/pxelinux.cfg/menu"
    handmade.write_text("DEFAULT local\n")
    site.edit("groups/compute.yaml", '  - index: 12\n    mac: "52:54:00:12:34:0c"\n', "")
    engine = site.engine()
    plan = engine.plan(engine.compile(engine.load()), revision="test")
    boot = next(t for t in plan.targets if t.target == "boot")
    assert boot.counts == {"delete": 2, "create": 0, "update": 0}
    assert "pxelinux.cfg/menu" in boot.unmanaged
    apply_all(engine)
    files = site.files()
    assert "tftp/ipxe/52-54-00-12-34-0c.ipxe" not in files
    assert "tftp/ipxe/52-54-00-12-34-0b.ipxe" in files
    assert handmade.read_text() == "DEFAULT local\n"
    assert "node012" not in files["zones/cluster.example.zone"]


def test_interrupted_apply_leaves_every_file_old_or_new(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_all(site.engine())
    before = site.files()
    site.edit("groups/compute.yaml", "image: compute@2024.10", "image: compute@2024.11")
    real_replace = os.replace
    calls = {"n": 0}

    def failing_replace(src: str | Path, dst: str | Path) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    engine = site.engine()
    state = engine.compile(engine.load())
    plan = engine.plan(state, revision="test")
    monkeypatch.setattr(os, "replace", failing_replace)
    boot = next(t for t in engine.targets if t.name == "boot")
    boot_plan = next(t for t in plan.targets if t.target == "boot")
    with pytest.raises(TargetError, match="No space left"):
        boot.apply(boot_plan.changes)
    monkeypatch.setattr(os, "replace", real_replace)
    new = {c.key: c.new for c in boot_plan.changes}
    after = site.files()
    changed = 0
    for path, content in after.items():
        assert not Path(path).name.startswith("."), f"temporary file left behind: {path}"
        if path.startswith("tftp/") and path[len("tftp/") :] in new:
            wanted = new[path[len("tftp/") :]]
            assert content in (before[path], wanted.content)  # type: ignore[union-attr]
            changed += content != before[path]
    assert changed == 2  # two renames went through before the failure
    apply_all(site.engine(), force=True)  # a whole-group image change is a large change
    engine = site.engine()
    assert not engine.plan(engine.compile(engine.load()), revision="t").has_changes


def test_checksum_mismatch_is_refused_and_nothing_is_written(site: Site) -> None:
    engine = site.engine()
    plan = engine.plan(engine.compile(engine.load()), revision="test")
    with pytest.raises(PlanRefused, match="differs from the reviewed"):
        engine.apply(plan, checksum="0" * 64)
    assert not (site.root / "out").exists()
    assert engine.apply(plan, checksum=plan.checksum).ok


def test_deleting_more_than_30_percent_needs_force(site: Site) -> None:
    apply_all(site.engine())
    group = site.inventory / "groups/compute.yaml"
    text = group.read_text()
    group.write_text(text[: text.index("hosts:")] + "hosts: []\n")
    engine = site.engine()
    plan = engine.plan(engine.compile(engine.load()), revision="test")
    with pytest.raises(PlanRefused, match="--force"):
        engine.apply(plan)
    assert "tftp/ipxe/52-54-00-12-34-0a.ipxe" in site.files()
    assert engine.apply(plan, force=True).ok
    assert "tftp/ipxe/52-54-00-12-34-0a.ipxe" not in site.files()


def test_a_hand_edited_boot_file_is_drift_and_is_put_back(site: Site) -> None:
    apply_all(site.engine())
    path = site.root / "out/tftp/ipxe/52-54-00-12-34-0b.ipxe"
    original = path.read_text()
    path.write_text(original.replace("boot\n", "shell\n"))  # same size would not matter
    engine = site.engine()
    plan = engine.plan(engine.compile(engine.load()), revision="test")
    boot = next(t for t in plan.targets if t.target == "boot")
    assert [(c.action.value, c.key) for c in boot.changes] == [
        ("update", "ipxe/52-54-00-12-34-0b.ipxe")
    ]
    apply_all(engine)
    assert path.read_text() == original


def test_plans_are_right_without_the_manifest_cache(site: Site) -> None:
    apply_all(site.engine())
    for manifest in (site.root / "state").glob("*.files.json"):
        manifest.unlink()
    (site.root / "out/http/nodes/node010.json").write_text("{not json")
    engine = site.engine()
    plan = engine.plan(engine.compile(engine.load()), revision="test")
    changed = {(t.target, c.key) for t in plan.targets for c in t.changes}
    assert changed == {("images", "node010")}


def test_hand_made_file_under_a_wanted_name_is_left_alone_unless_adopting(site: Site) -> None:
    handmade = site.root / "out/tftp/ipxe/52-54-00-12-34-0b.ipxe"
    handmade.parent.mkdir(parents=True)
    handmade.write_text("#!ipxe\n# made by hand\n")
    engine = site.engine()
    plan = engine.plan(engine.compile(engine.load()), revision="test")
    boot = next(t for t in plan.targets if t.target == "boot")
    assert boot.conflicts == ("ipxe/52-54-00-12-34-0b.ipxe",)
    apply_all(engine)
    assert handmade.read_text() == "#!ipxe\n# made by hand\n"
    site.config.write_text(
        site.config.read_text().replace('type = "bootfiles"', 'type = "bootfiles"\nadopt = true')
    )
    apply_all(site.engine())
    assert "hostname=node011" in handmade.read_text()


def test_someone_elses_file_named_like_ours_in_the_other_folder_is_theirs(site: Site) -> None:
    """Files of ours are told from others' by their path from the root, not their name:
    a file in ipxe/ named like one of ours in pxelinux.cfg/ is someone else's, and a
    hidden file (an editor's swap file) is ignored."""
    apply_all(site.engine())
    tftp = site.root / "out/tftp"
    (tftp / "ipxe/01-52-54-00-12-34-0a").write_text("#!ipxe\nexit\n")
    (tftp / "pxelinux.cfg/52-54-00-12-34-0a.ipxe").write_text("DEFAULT local\n")
    (tftp / "pxelinux.cfg/.01-52-54-00-12-34-0a.swp").write_text("")
    engine = site.engine()
    plan = engine.plan(engine.compile(engine.load()), revision="test")
    boot = next(t for t in plan.targets if t.target == "boot")
    assert not boot.changes
    assert sorted(boot.unmanaged) == [
        "ipxe/01-52-54-00-12-34-0a",
        "pxelinux.cfg/52-54-00-12-34-0a.ipxe",
    ]
