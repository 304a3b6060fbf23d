"""Stateless nodes in qemu: boot through the project's initramfs, swap images live.

Real VMs (software emulation) boot the host's kernel with ``reconciler
initramfs``'s initramfs and the command line ``reconciler serve`` hands out;
they get their address from dhcpd and their rootfs from the image store, all
in namespaces the test creates (``node_lab``). Images are small squashfs files
built once and cached (``node_images``).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.integration.boot_site import IMAGES_URL
from tests.integration.node_images import MARKER, busybox_image
from tests.integration.node_lab import (
    BOOT_TIMEOUT,
    IMAGE,
    NODE_IP,
    NodeBoots,
    NodeLab,
    NodeVM,
    sha256_of,
    wait_version,
)

pytestmark = pytest.mark.integration


def current_json(lab: NodeLab) -> dict[str, object]:
    return dict(json.loads(lab.run_on_node("cat /run/reconciler/current.json")))


def stage_and_switch(lab: NodeLab, *, version: str, url: str, sha: str) -> str:
    """What the agent does for a same-kernel swap on busybox init: stage, verify, SIGQUIT 1."""
    return lab.run_on_node(
        f"""set -e
stage=/run/reconciler/stage/{sha}
mkdir -p "$stage"
wget -q -O "$stage/rootfs.squashfs" '{url}'
. /usr/lib/reconciler/mount-root.sh
verify_sha256 "$stage/rootfs.squashfs" {sha} || echo unverified
printf 'NEXT_STAGE=%s\\nNEXT_IMAGE=%s\\nNEXT_VERSION=%s\\n' "$stage" {IMAGE} {version} \\
  > /run/reconciler/pending
(sleep 0.5; kill -QUIT 1) >/dev/null 2>&1 &
echo staged
"""
    )


def test_boot_through_initramfs_then_switch_root_live(
    node_lab: NodeLab, node_boots: NodeBoots, tmp_path: Path
) -> None:
    lab = node_lab
    boot = node_boots.running
    one, two = busybox_image("1"), busybox_image("2")
    lab.add_version("1", rootfs=one, boot=boot)
    lab.add_version("2", rootfs=two, boot=boot)
    lab.start("1")
    append = lab.kernel_args()
    assert f"reconciler.rootfs_sha256={sha256_of(one)}" in append
    with NodeVM(lab, boot=boot, append=append, console=tmp_path / "c.log") as vm:
        vm.wait_console(f"{MARKER} version=1 ", timeout=BOOT_TIMEOUT)
        before = wait_version(lab, "1", timeout=60)
        assert before["ip"] == NODE_IP  # dhcpd's entry for node020, from the inventory
        current = current_json(lab)
        assert current["image"] == IMAGE and current["version"] == "1"
        assert current["booted_by"] == "initramfs" and current["rootfs_sha256"] == sha256_of(one)

        # Same kernel: busybox init's ::restart: hook switches the root, no reboot.
        assert "staged" in stage_and_switch(
            lab, version="2", url=f"{IMAGES_URL}/2/rootfs", sha=sha256_of(two)
        )
        after = wait_version(lab, "2", timeout=90)
        assert (after["boot_id"], after["ip"], after["kernel"]) == (
            before["boot_id"], NODE_IP, before["kernel"],
        )  # fmt: skip
        current = current_json(lab)
        assert (current["version"], current["booted_by"]) == ("2", "switch-root")
        root_line = next(
            line for line in lab.run_on_node("cat /proc/mounts").splitlines()
            if line.split()[1] == "/"
        )  # fmt: skip
        assert f"stage/{sha256_of(two)}/lower" in root_line, root_line

        # A pending swap to a broken stage: node-switch falls back to the running image.
        broken = "f" * 64
        mark = len(vm.text())
        lab.run_on_node(
            f"""mkdir -p /run/reconciler/stage/{broken}
echo 'not a squashfs' > /run/reconciler/stage/{broken}/rootfs.squashfs
printf 'NEXT_STAGE=/run/reconciler/stage/{broken}\\nNEXT_IMAGE=x\\nNEXT_VERSION=3\\n' \\
  > /run/reconciler/pending
(sleep 0.5; kill -QUIT 1) >/dev/null 2>&1 &
"""
        )
        vm.wait_console("node-switch: cannot mount .*staying on the current image", timeout=60,
                        start=mark)  # fmt: skip
        vm.wait_console(f"{MARKER} version=2 ", timeout=60, start=mark)
        again = wait_version(lab, "2", timeout=60)
        assert again["boot_id"] == before["boot_id"]


def test_initramfs_never_boots_a_mismatching_rootfs(
    node_lab: NodeLab, node_boots: NodeBoots, tmp_path: Path
) -> None:
    lab = node_lab
    boot = node_boots.running
    good, other = busybox_image("1"), busybox_image("2")
    lab.add_version("1", rootfs=good, boot=boot)
    lab.start("1")
    served = lab.store / "1" / "rootfs"
    shutil.copy(other, served)  # the store now serves bytes the inventory did not pin
    with NodeVM(lab, boot=boot, append=lab.kernel_args(), console=tmp_path / "c.log") as vm:
        vm.wait_console(
            f"sha256 mismatch for {IMAGES_URL}/1/rootfs: expected {sha256_of(good)}, "
            f"got {sha256_of(other)}; refusing to boot it",
            timeout=BOOT_TIMEOUT,
        )
        first = vm.wait_console(r"retrying in \d+s", timeout=30)
        vm.wait_console(r"\(attempt 2\)", timeout=60, start=first.end())
        assert MARKER not in vm.text()
        assert lab.node(timeout=1) is None  # nothing booted, so nothing answers
        # The store is fixed: a later attempt verifies and boots.
        shutil.copy(good, served)
        time.sleep(0.1)
        vm.wait_console(f"{MARKER} version=1 ", timeout=BOOT_TIMEOUT)
        wait_version(lab, "1", timeout=60)
