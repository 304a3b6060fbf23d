"""The bootfiles target under a real tftpd-hpa: a PXE ROM fetches what the inventory says."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.compile import ipxe_path, pxelinux_path
from reconciler.config import BootConfig, RuntimeConfig, SourceConfig, TargetConfig
from reconciler.engine import ApplyReport, Engine
from tests.integration.tftp_server import TFTP, TFTPD, tftp_get, tftpd

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"
KEPT = "52:54:00:12:34:0a"  # node010
REMOVED = "52:54:00:12:34:0b"  # node011
UNKNOWN = "52:54:00:77:00:01"
HAND_MADE = "DEFAULT local\nLABEL local\n  LOCALBOOT 0\n"


@pytest.fixture
def boot_site(as_root: None, tmp_path: Path) -> tuple[Engine, Path, Path]:
    if not TFTPD.exists() or not TFTP.exists():
        pytest.skip("tftpd-hpa / tftp-hpa are not installed")
    inventory = tmp_path / "inventory"
    shutil.copytree(EXAMPLE, inventory)
    root = tmp_path / "tftp"
    config = RuntimeConfig(
        source=SourceConfig(path=inventory),
        state_dir=tmp_path / "state",
        boot=BootConfig(http_url="http://10.23.45.2:8080"),
        targets={"boot": TargetConfig(type="bootfiles", directory=str(root))},
        base_dir=tmp_path,
    )
    return Engine(config), inventory, root


def reconcile(engine: Engine) -> ApplyReport:
    inventory = engine.load()
    plan = engine.plan(engine.compile(inventory), revision=inventory.revision)
    report = engine.apply(plan, force=True)
    assert report.ok, [o.error for o in report.outcomes]
    return report


def test_pxe_roms_fetch_the_compiled_files_over_tftp(
    boot_site: tuple[Engine, Path, Path], tmp_path: Path
) -> None:
    engine, inventory, root = boot_site
    (root / "pxelinux.cfg").mkdir(parents=True)
    (root / "pxelinux.cfg" / "default").write_text(HAND_MADE)
    (root / "ipxe").mkdir()
    (root / "ipxe" / "menu.ipxe").write_text("#!ipxe\nshell\n")
    reconcile(engine)
    files = {f.path: f.content for f in engine.compile(engine.load()).boot_files}
    fetched = tmp_path / "fetched"

    with tftpd(root) as port:
        for mac in (KEPT, REMOVED):
            for path in (pxelinux_path(mac), ipxe_path(mac)):
                assert tftp_get(path, port=port, workdir=fetched) == files[path]
        assert "hostname=node010" in files[pxelinux_path(KEPT)]
        # No per-MAC file for a MAC the inventory does not know: pxelinux falls back to default.
        assert tftp_get(pxelinux_path(UNKNOWN), port=port, workdir=fetched) is None
        assert tftp_get(ipxe_path(UNKNOWN), port=port, workdir=fetched) is None
        assert tftp_get("pxelinux.cfg/default", port=port, workdir=fetched) == HAND_MADE

        # node011 leaves the inventory: its files go, everything else stays.
        group = inventory / "groups" / "compute.yaml"
        text = group.read_text()
        group.write_text(text.replace('  - index: 11\n    mac: "52:54:00:12:34:0b"\n', ""))
        assert group.read_text() != text
        report = reconcile(engine)
        assert report.outcomes[0].result is not None and report.outcomes[0].result.writes == 2

        assert tftp_get(pxelinux_path(REMOVED), port=port, workdir=fetched) is None
        assert tftp_get(ipxe_path(REMOVED), port=port, workdir=fetched) is None
        assert (
            tftp_get(pxelinux_path(KEPT), port=port, workdir=fetched) == files[pxelinux_path(KEPT)]
        )
        assert tftp_get("pxelinux.cfg/default", port=port, workdir=fetched) == HAND_MADE
        assert tftp_get("ipxe/menu.ipxe", port=port, workdir=fetched) == "#!ipxe\nshell\n"

    # A second pass has nothing to do.
    assert reconcile(engine).outcomes[0].result.writes == 0  # type: ignore[union-attr]
