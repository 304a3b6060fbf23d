"""End to end: real machines PXE boot from dhcpd and ``reconciler serve``, and enrol themselves.

One namespace holds the services (dhcpd, ``reconciler serve``, a web server
with the kernel and initrd); qemu runs in the other, its tap bridged to the
veth. A registered MAC boots its group's image and says so on its console.
An unknown MAC, while registration is open, boots the registration script,
is committed to git as the next index, boots as that host; after a reconcile
pass (dhcp + boot file targets) it boots again with its own name and address.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.boot_site import (
    IMAGES_URL,
    SERVER,
    commit_inventory,
    git,
    reconcile,
    serving,
    site_config,
    watching,
)
from tests.integration.dhcp_server import Dhcpd, write_key
from tests.integration.netns import NetnsPair, unique_name, wait_for
from tests.integration.pxe_machine import (
    BUSYBOX,
    IPXE_ROM,
    add_tap_bridge,
    boot_machine,
    build_initramfs,
    host_kernel,
    sha256_of,
)
from tests.integration.qemu_vm import QEMU

pytestmark = pytest.mark.integration

KNOWN_MAC = "52:54:00:12:34:14"  # node020
NEW_MAC = "52:54:00:12:34:99"

GROUP = """\
# Rack A: the blades of the end-to-end test. The sticker on each blade is its index.
name: compute
subnet: 10.23.45.0/24
gateway: 10.23.45.1
hostname: "node%03d"
unregistered_range: 10.23.45.200-10.23.45.250
image: e2e@1
registration:
  open: true      # new blades enrol themselves while this is true
  indexes: 21-40
hosts:
  - index: 20
    mac: "52:54:00:12:34:14"   # the one that was already there
"""


def image_yaml(images: Path) -> str:
    artifact = {
        name: {"url": f"{IMAGES_URL}/{name}", "sha256": sha256_of(images / name)}
        for name in ("vmlinuz", "initrd.img", "root.squashfs")
    }
    return json.dumps(
        {
            "name": "e2e",
            "versions": {
                "1": {
                    "kernel": artifact["vmlinuz"],
                    "initrd": artifact["initrd.img"],
                    "rootfs": artifact["root.squashfs"],
                    "cmdline": "console=ttyS0 panic=-1 loglevel=4",
                }
            },
        }
    )


def write_site(workdir: Path, images: Path, dhcpd: Dhcpd) -> Path:
    repo = workdir / "inventory"
    (repo / "groups").mkdir(parents=True)
    (repo / "images").mkdir()
    (repo / "site.yaml").write_text("domain: cluster.example\nlease_time: 600\n")
    (repo / "groups" / "compute.yaml").write_text(GROUP)
    (repo / "images" / "e2e.yaml").write_text(image_yaml(images))  # JSON is YAML
    commit_inventory(repo, "site")
    write_key(workdir / "omapi.key")
    config = workdir / "reconciler.toml"
    boot_target = '[targets.boot]\ntype = "bootfiles"\ndirectory = "tftp"\n'
    config.write_text(site_config(workdir=workdir, dhcpd=dhcpd, targets=boot_target))
    return config


@pytest.fixture
def lab_requirements(as_root: None) -> Path:
    kernel = host_kernel()
    missing = [p for p in (QEMU, IPXE_ROM, BUSYBOX, Path("/usr/sbin/dhcpd")) if not p.exists()]
    if missing or kernel is None:
        pytest.skip(f"needs qemu, ipxe-qemu, busybox-static, dhcpd and a kernel: {missing}")
    if not Path("/dev/net/tun").exists():
        pytest.skip("no /dev/net/tun for qemu's tap")
    return kernel


def test_machines_boot_and_enrol_themselves(
    lab_requirements: Path,
    make_pair: Callable[..., NetnsPair],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    pair = make_pair(server_cidr=f"{SERVER}/24")
    tap = unique_name("tap")
    add_tap_bridge(pair, tap=tap, bridge=unique_name("br"))
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(lab_requirements, images / "vmlinuz")
    shutil.copy(build_initramfs(tmp_path), images / "initrd.img")
    (images / "root.squashfs").write_bytes(b"not a real root file system\n")
    dhcpd = Dhcpd(pair, tmp_path)
    config = write_site(tmp_path, images, dhcpd)
    repo = tmp_path / "inventory"

    reconcile(config)  # writes hosts.conf, dhcpd.conf (checked) and starts dhcpd
    wait_for(dhcpd.running, timeout=10, what="dhcpd")
    with (
        serving(pair, config=config, store=images, logs=tmp_path),
        watching(pair, config=config, log=tmp_path / "watch.log"),
    ):
        # 1. A registered machine boots its group's image.
        host, image, seconds = boot_machine(
            pair, mac=KNOWN_MAC, tap=tap, console=tmp_path / "known.console"
        )
        record_property("known_boot_seconds", round(seconds, 1))
        assert (host, image) == ("node020", "e2e@1")

        # 2. An unknown machine, registration open: enrolled as the next index; once the
        # watch loop applied the registration commit, it boots as that host.
        host, image, seconds = boot_machine(
            pair, mac=NEW_MAC, tap=tap, console=tmp_path / "new.console"
        )
        record_property("enrol_boot_seconds", round(seconds, 1))
        assert (host, image) == ("node021", "e2e@1")
        subject = git(repo, "log", "-1", "--format=%s", "main").strip()
        assert subject == f"register node021 ({NEW_MAC}) in compute"
        text = git(repo, "show", "main:groups/compute.yaml")
        assert text.startswith(GROUP) and f'mac: "{NEW_MAC}"' in text
        decisions = [
            json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()
        ]
        assert [d["decision"] for d in decisions] == ["accepted"]
        assert decisions[0]["remote"].startswith("10.23.45.2")  # from the unregistered range

        # 3. The applied commit gave it its own DHCP entry: the next boot has its own address.
        reconcile(config)
        assert NEW_MAC in (tmp_path / "hosts.conf").read_text()
        dhcpd.restart()  # dhcp-file changes need a restart (dhcp-omapi would not)
        host, image, seconds = boot_machine(
            pair, mac=NEW_MAC, tap=tap, console=tmp_path / "new-again.console"
        )
        record_property("second_boot_seconds", round(seconds, 1))
        assert (host, image) == ("node021", "e2e@1")
        requests = (tmp_path / "images.log").read_text()
        assert "10.23.45.21 - - " in requests and "GET /vmlinuz" in requests
