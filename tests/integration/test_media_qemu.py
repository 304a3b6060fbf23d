"""Boot media end to end: built from the example inventory, booted BIOS/UEFI as CD and USB.

One namespace holds the site: dhcpd (written by the dhcp-conf target),
``reconciler serve`` and a web server with the image's kernel and initrd; the
machines run in the other namespace on taps bridged to the veth. The
inventory is a git copy of ``inventory-example/`` whose images point at that
web server. Net media must reach serve with the machine's MAC and boot its
host's image; per-host media must do so with dhcpd stopped, from the host's
own address; live media must boot with no network card at all; an unknown
machine with registration open must enrol as with PXE.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.boot_site import (
    IMAGES_URL,
    RECONCILER,
    REPO_ROOT,
    SERVER,
    commit_inventory,
    git,
    reconcile,
    serving,
    site_config,
    watching,
)
from tests.integration.dhcp_server import Dhcpd, write_key
from tests.integration.media_machine import (
    OVMF_CODE,
    WAYS,
    Nic,
    qemu_argv,
    start_machine,
    wait_markers,
)
from tests.integration.netns import NetnsPair, create_pair, unique_name, wait_for
from tests.integration.node_images import MARKER, busybox_image
from tests.integration.node_lab import NodeBoots, kernels
from tests.integration.pxe_machine import (
    MARKER_LINE,
    add_tap,
    add_tap_bridge,
    build_initramfs,
    host_kernel,
    sha256_of,
)
from tests.integration.qemu_vm import QEMU

pytestmark = pytest.mark.integration

# Hosts of inventory-example/groups/compute.yaml (image compute@2024.10).
HOST_MACS = {
    "node010": "52:54:00:12:34:0a",
    "node014": "52:54:00:12:34:0e",  # the canary: compute@2024.11
}
HOSTS = {
    "node010": "52:54:00:12:34:0a",
    "node011": "52:54:00:12:34:0b",
    "node012": "52:54:00:12:34:0c",
    "node013": "52:54:00:12:34:0d",
}
LIVE_VERSION = "live-1"
LIVE_CMDLINE = "console=ttyS0 panic=-1 loglevel=3 no_timer_check"
LIVE_MARKER = re.compile(MARKER + r" version=(\S+) (boot_id)=")
BOOT_TIMEOUT = 420  # four machines in software emulation on a shared 2-core box


@dataclass
class Site:
    pair: NetnsPair
    workdir: Path
    config: Path
    repo: Path
    dhcpd: Dhcpd
    serve_log: Path
    web_log: Path
    taps: list[str]

    def build(self, *args: str, name: str) -> Path:
        """``reconciler media build`` run inside the site's namespace; returns the image."""
        out = self.workdir / name
        result = subprocess.run(
            ["ip", "netns", "exec", self.pair.server, RECONCILER, "media", "build",
             "-c", str(self.config), "--out", str(out), *args],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"sha256:   {sha256_of(out)}" in result.stdout
        return out


def _images_yaml(images: Path) -> str:
    """compute@2024.10: a marker initrd (net media); compute@2024.11: a real image booting
    through the project's initramfs (live media, the example's canary node014)."""

    def version(kernel: str, initrd: str, rootfs: str, cmdline: str) -> dict[str, object]:
        return {
            "kernel": {"url": f"{IMAGES_URL}/{kernel}", "sha256": sha256_of(images / kernel)},
            "initrd": {"url": f"{IMAGES_URL}/{initrd}", "sha256": sha256_of(images / initrd)},
            "rootfs": {"url": f"{IMAGES_URL}/{rootfs}", "sha256": sha256_of(images / rootfs)},
            "cmdline": cmdline,
        }

    marker = version(
        "vmlinuz", "initrd.img", "root.squashfs", "console=ttyS0 panic=-1 loglevel=4 no_timer_check"
    )
    live = version("vmlinuz-live", "initrd-live.img", "root-live.squashfs", LIVE_CMDLINE)
    return json.dumps({"name": "compute", "versions": {"2024.10": marker, "2024.11": live}})


def _live_kernel() -> Path | None:
    """A kernel with CD and USB storage modules (Debian's cloud kernel has none)."""
    for kernel in kernels():
        version = kernel.name.removeprefix("vmlinuz-")
        if list((Path("/lib/modules") / version).rglob("usb-storage.ko*")):
            return kernel
    return None


def _write_site(workdir: Path, images: Path, dhcpd: Dhcpd) -> tuple[Path, Path]:
    repo = workdir / "inventory"
    shutil.copytree(REPO_ROOT / "inventory-example", repo)
    (repo / "images" / "compute.yaml").write_text(_images_yaml(images))  # JSON is YAML
    group = repo / "groups" / "compute.yaml"
    group.write_text(group.read_text().replace("open: false", "open: true"))
    commit_inventory(repo, "site")
    write_key(workdir / "omapi.key")
    config = workdir / "reconciler.toml"
    media = f'[media]\ndns = ["{SERVER}"]\n'
    config.write_text(site_config(workdir=workdir, dhcpd=dhcpd, extra=media))
    return config, repo


@pytest.fixture(scope="module")
def site(
    as_root: None, tmp_path_factory: pytest.TempPathFactory, node_boots: NodeBoots
) -> Iterator[Site]:
    kernel, live_kernel = host_kernel(), _live_kernel()
    needed = [QEMU, OVMF_CODE, Path("/usr/sbin/dhcpd"), Path("/dev/net/tun")]
    missing = [str(p) for p in needed if not p.exists()]
    if missing or kernel is None or live_kernel is None:
        pytest.skip(f"boot media tests need qemu, ovmf, dhcpd, a kernel: missing {missing}")
    workdir = tmp_path_factory.mktemp("media")
    pair = create_pair(server_cidr=f"{SERVER}/24")
    try:
        bridge = unique_name("br")
        add_tap_bridge(pair, tap=unique_name("tap"), bridge=bridge)
        taps = [unique_name("tap") for _ in range(4)]
        for tap in taps:
            add_tap(pair, tap=tap, bridge=bridge)
        images = workdir / "images"
        images.mkdir()
        shutil.copy(kernel, images / "vmlinuz")
        shutil.copy(build_initramfs(workdir), images / "initrd.img")
        (images / "root.squashfs").write_bytes(b"the image's root file system\n" * 64)
        live = node_boots.of(live_kernel)
        shutil.copy(live.kernel, images / "vmlinuz-live")
        shutil.copy(live.initrd, images / "initrd-live.img")
        shutil.copy(busybox_image(LIVE_VERSION), images / "root-live.squashfs")
        dhcpd = Dhcpd(pair, workdir)
        config, repo = _write_site(workdir, images, dhcpd)
        reconcile(config)
        wait_for(dhcpd.running, timeout=10, what="dhcpd")
        with serving(pair, config=config, store=images, logs=workdir):
            web_log, serve_log = workdir / "images.log", workdir / "serve.log"
            yield Site(pair, workdir, config, repo, dhcpd, serve_log, web_log, taps)
    finally:
        pair.destroy()


def _boot_all(
    site: Site,
    image: Path,
    plan: Sequence[tuple[str, str, str | None]],
    *,
    tag: str,
    pattern: re.Pattern[str] = MARKER_LINE,
) -> dict[str, tuple[str, str, float]]:
    """Boot (firmware, medium, mac) machines at once; results by 'firmware-medium'."""
    machines = []
    for number, (firmware, medium, mac) in enumerate(plan):
        name = f"{firmware}-{medium}"
        nic = Nic(site.taps[number], mac) if mac else None
        argv = qemu_argv(
            image=image, firmware=firmware, medium=medium, workdir=site.workdir,
            tag=f"{tag}-{name}", nic=nic,
        )  # fmt: skip
        machines.append(
            start_machine(
                namespace=site.pair.client if nic else None, argv=argv, name=name,
                console=site.workdir / f"{tag}-{name}.console", pair=site.pair,
            )
        )  # fmt: skip
    return wait_markers(machines, timeout=BOOT_TIMEOUT, pattern=pattern)


def test_net_medium_boots_each_host_four_ways(
    site: Site, record_property: Callable[[str, object], None]
) -> None:
    image = site.build(name="net.iso")
    plan = [(fw, medium, mac) for (fw, medium), mac in zip(WAYS, HOSTS.values(), strict=True)]
    results = _boot_all(site, image, plan, tag="net")
    for (firmware, medium, mac), hostname in zip(plan, HOSTS, strict=True):
        name = f"{firmware}-{medium}"
        assert results[name][:2] == (hostname, "compute@2024.10"), name
        assert f"GET /boot/{mac} " in site.serve_log.read_text(), name
        record_property(f"net_{name}_seconds", round(results[name][2], 1))


def test_host_medium_boots_without_dhcp_from_its_own_address(
    site: Site, record_property: Callable[[str, object], None]
) -> None:
    """dhcpd is stopped. node010 (BIOS, CD) boots the marker image; node014 (UEFI, USB
    stick) boots its real image, whose initramfs takes the address the medium set
    (reconciler.ip=) and downloads the rootfs from there: no DHCP anywhere."""
    site.dhcpd.stop()
    try:
        bios = site.build("--host", "node010", name="node010.iso")
        uefi = site.build("--host", "node014", name="node014.iso")
        assert _manifest_of(uefi)["static"] == {
            "address": "10.23.45.14", "netmask": "255.255.255.0",
            "gateway": "10.23.45.1", "dns": [SERVER],
        }  # fmt: skip
        machines = {}
        for number, (image, firmware, medium, host) in enumerate(
            [(bios, "bios", "cd", "node010"), (uefi, "uefi", "usb", "node014")]
        ):
            nic = Nic(site.taps[number], HOST_MACS[host])
            argv = qemu_argv(
                image=image, firmware=firmware, medium=medium, workdir=site.workdir,
                tag=f"static-{host}", nic=nic,
            )  # fmt: skip
            machines[host] = start_machine(
                namespace=site.pair.client, argv=argv, name=host, pair=site.pair,
                console=site.workdir / f"static-{host}.console",
            )  # fmt: skip
        marker = wait_markers([machines["node010"]], timeout=BOOT_TIMEOUT)
        live = wait_markers([machines["node014"]], timeout=BOOT_TIMEOUT, pattern=LIVE_MARKER)
    finally:
        site.dhcpd.start()
    assert marker["node010"][:2] == ("node010", "compute@2024.10")
    assert live["node014"][0] == LIVE_VERSION
    record_property("static_node010_seconds", round(marker["node010"][2], 1))
    record_property("static_node014_seconds", round(live["node014"][2], 1))
    requests = site.web_log.read_text()
    assert "10.23.45.10 - - " in requests
    assert re.search(r"10\.23\.45\.14 - - .*GET /root-live\.squashfs", requests)
    console = machines["node014"].text()
    assert "static address 10.23.45.14 on eth0 (reconciler.ip, no DHCP)" in console


def _manifest_of(image: Path) -> dict[str, object]:
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    try:
        import io

        buffer = io.BytesIO()
        iso.get_file_from_iso_fp(buffer, rr_path="/reconciler-media.json")
        result: dict[str, object] = json.loads(buffer.getvalue())
        return result
    finally:
        iso.close()


def test_live_medium_boots_four_ways_without_a_network_card(
    site: Site, record_property: Callable[[str, object], None]
) -> None:
    """node014 (the example's canary, compute@2024.11) boots its image from the medium:
    the project's initramfs finds the CD or stick by its label, checks the rootfs and
    switches to it; the image's init prints its marker. No NIC at all."""
    image = site.build("--kind", "live", "--host", "node014", name="live.iso")
    manifest = _manifest_of(image)
    assert manifest["kind"] == "live" and manifest["image"] == "compute@2024.11"
    plan = [(fw, medium, None) for fw, medium in WAYS]
    results = _boot_all(site, image, plan, tag="live", pattern=LIVE_MARKER)
    for firmware, medium in WAYS:
        name = f"{firmware}-{medium}"
        assert results[name][0] == LIVE_VERSION, name
        record_property(f"live_{name}_seconds", round(results[name][2], 1))
    console = (site.workdir / "live-uefi-usb.console").read_text(errors="replace")
    assert "booting from the medium labelled" in console and "fetching" not in console


def test_unknown_machine_with_net_medium_enrols_like_pxe(site: Site) -> None:
    image = site.build(name="net-enrol.iso")
    new_mac = "52:54:00:12:34:99"
    # The watch loop applies the registration commit, so serve then knows the new host.
    with watching(site.pair, config=site.config, log=site.workdir / "watch.log"):
        results = _boot_all(site, image, [("bios", "cd", new_mac)], tag="enrol")
    assert results["bios-cd"][:2] == ("node021", "compute@2024.10")
    subject = git(site.repo, "log", "-1", "--format=%s", "main").strip()
    assert subject == f"register node021 ({new_mac}) in compute"
    audit = (site.workdir / "audit.jsonl").read_text().splitlines()
    decisions = [json.loads(line) for line in audit]
    assert [d["decision"] for d in decisions] == ["accepted"]
