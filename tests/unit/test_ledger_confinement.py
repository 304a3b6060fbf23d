"""File targets stay inside their root: a tampered ledger or a symbolic link is refused.

The ownership ledger is a file in the state directory; whoever can edit it must
not be able to make the reconciler read or delete files elsewhere. Each test
applies the example site once, then tampers with the ledger or the tree, and
checks that the boot target refuses with a message naming the entry while the
file outside the root is left exactly as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import ConfigError, load_config
from reconciler.engine import Engine
from tests.unit.site_fixture import Site

OWNED_FILE = "ipxe/52-54-00-12-34-0b.ipxe"


def apply_all(engine: Engine) -> None:
    report = engine.apply(engine.plan(engine.compile(engine.load()), revision="test"))
    assert report.ok, [o.error for o in report.outcomes]


def boot_error(site: Site) -> str:
    engine = site.engine()
    plan = engine.plan(engine.compile(engine.load()), revision="test")
    boot = next(t for t in plan.targets if t.target == "boot")
    assert boot.error is not None and not boot.changes
    report = engine.apply(plan, force=True)
    assert not next(o for o in report.outcomes if o.target == "boot").ok
    return boot.error


def add_to_ledger(site: Site, key: str) -> None:
    ledger = site.root / "state" / "boot.owned.json"
    owned = json.loads(ledger.read_text())["owned"]
    ledger.write_text(json.dumps({"owned": [*owned, key]}))


@pytest.mark.parametrize("entry", ["../../victim.txt", "ipxe/../../../victim.txt", "ABSOLUTE"])
def test_a_ledger_entry_outside_the_root_is_never_deleted(site: Site, entry: str) -> None:
    apply_all(site.engine())
    victim = site.root / "victim.txt"
    victim.write_text("precious\n")
    key = str(victim) if entry == "ABSOLUTE" else entry
    add_to_ledger(site, key)  # not wanted by the inventory: a plan would delete it
    error = boot_error(site)
    assert repr(key) in error and "outside" in error and "boot.owned.json" in error
    assert victim.read_text() == "precious\n"


def test_an_owned_file_replaced_by_a_symlink_is_not_followed(site: Site) -> None:
    apply_all(site.engine())
    secret = site.root / "secret.key"
    secret.write_text("do not read me\n")
    owned = site.root / "out/tftp" / OWNED_FILE
    owned.unlink()
    owned.symlink_to(secret)
    site.edit("groups/compute.yaml", '  - index: 11\n    mac: "52:54:00:12:34:0b"\n', "")
    error = boot_error(site)  # the host is gone: its file would be deleted
    assert "symbolic link" in error and OWNED_FILE in error
    assert secret.read_text() == "do not read me\n" and owned.is_symlink()


def test_a_managed_folder_that_links_out_of_the_root_is_refused(site: Site) -> None:
    apply_all(site.engine())
    elsewhere = site.root / "elsewhere"
    (site.root / "out/tftp/ipxe").rename(elsewhere)
    (site.root / "out/tftp/ipxe").symlink_to(elsewhere)
    keep = {p.name: p.read_text() for p in elsewhere.iterdir()}
    site.edit("groups/compute.yaml", '  - index: 11\n    mac: "52:54:00:12:34:0b"\n', "")
    error = boot_error(site)
    assert "outside" in error
    assert {p.name: p.read_text() for p in elsewhere.iterdir()} == keep


def test_a_hand_made_symlink_among_boot_files_is_listed_but_never_read(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_all(site.engine())
    secret = site.root / "secret.key"
    secret.write_text("do not read me\n")
    link = site.root / "out/tftp/pxelinux.cfg/menu"
    link.symlink_to(secret)
    read: list[str] = []
    real_read_text = Path.read_text

    def spy(path: Path, *args: Any, **kwargs: Any) -> str:
        read.append(str(path))
        return real_read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", spy)
    engine = site.engine()
    plan = engine.plan(engine.compile(engine.load()), revision="test")
    boot = next(t for t in plan.targets if t.target == "boot")
    assert boot.error is None and "pxelinux.cfg/menu" in boot.unmanaged
    assert str(link) not in read and str(secret) not in read


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "x" * 65])
def test_a_target_name_cannot_point_its_ledger_elsewhere(tmp_path: Path, name: str) -> None:
    config = tmp_path / "reconciler.toml"
    config.write_text(
        f'[source]\npath = "inventory"\n[targets."{name}"]\ntype = "bootfiles"\n'
        'directory = "tftp"\n'
    )
    with pytest.raises(ConfigError, match="a target name is letters"):
        load_config(config)
