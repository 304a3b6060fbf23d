"""``reconciler image install-agent``: agent, swap helper and service in an image tree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from reconciler.agent.build import build_zipapp
from reconciler.cli import app
from reconciler.image.install import NODE_FILES

runner = CliRunner()


def busybox_tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "sbin").mkdir()
    (root / "bin/busybox").write_text("")
    (root / "sbin/init").symlink_to("/bin/busybox")
    (root / "etc/inittab").write_text("::sysinit:/etc/rc.sysinit\n# keep this comment\n")
    return root


def systemd_tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "usr/lib/systemd").mkdir(parents=True)
    (root / "usr/bin").mkdir()
    (root / "usr/lib/systemd/systemd").write_text("")
    (root / "usr/bin/python3").write_text("")
    (root / "lib").symlink_to("usr/lib")
    (root / "sbin").symlink_to("usr/sbin")
    (root / "usr/sbin").mkdir()
    (root / "usr/sbin/init").symlink_to("/lib/systemd/systemd")
    return root


def test_busybox_image_gets_inittab_lines_once(tmp_path: Path) -> None:
    root = busybox_tree(tmp_path / "tree")
    result = runner.invoke(app, ["image", "install-agent", str(root)])
    assert result.exit_code == 0, result.output
    assert "service: inittab" in result.output
    assert "no /usr/bin/python3" in result.output  # a warning, not an error
    lib = root / "usr/lib/reconciler"
    assert (lib / "agent.pyz").read_bytes() == build_zipapp()
    assert os.access(lib / "agent.pyz", os.X_OK) and os.access(lib / "node-switch", os.X_OK)
    assert (lib / "mount-root.sh").read_bytes() == (NODE_FILES / "mount-root.sh").read_bytes()
    assert (root / "etc/reconciler/health.d").is_dir()
    inittab = (root / "etc/inittab").read_text()
    assert inittab.startswith("::sysinit:/etc/rc.sysinit\n# keep this comment\n")
    assert "::restart:/usr/lib/reconciler/node-switch\n" in inittab
    assert "/usr/lib/reconciler/agent.pyz" in inittab
    again = runner.invoke(app, ["image", "install-agent", str(root)])
    assert again.exit_code == 0 and "already up to date" in again.output
    assert (root / "etc/inittab").read_text() == inittab


def test_systemd_image_gets_an_enabled_unit(tmp_path: Path) -> None:
    root = systemd_tree(tmp_path / "tree")
    result = runner.invoke(app, ["image", "install-agent", str(root)])
    assert result.exit_code == 0, result.output
    assert "service: systemd" in result.output and "warning" not in result.output
    unit = root / "etc/systemd/system/reconciler-agent.service"
    assert "ExecStart=/usr/bin/python3 /usr/lib/reconciler/agent.pyz" in unit.read_text()
    link = root / "etc/systemd/system/multi-user.target.wants/reconciler-agent.service"
    assert os.readlink(link) == "/etc/systemd/system/reconciler-agent.service"
    assert not (root / "etc/inittab").exists()


def test_the_installed_node_switch_is_valid_shell(tmp_path: Path) -> None:
    root = busybox_tree(tmp_path / "tree")
    assert runner.invoke(app, ["image", "install-agent", str(root)]).exit_code == 0
    for name in ("node-switch", "mount-root.sh"):
        check = subprocess.run(["sh", "-n", str(root / "usr/lib/reconciler" / name)], timeout=30)
        assert check.returncode == 0


def test_not_an_image_tree_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["image", "install-agent", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "not a folder" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["image", "install-agent", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "has no etc/" in result.output
