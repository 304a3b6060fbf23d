"""The agent's real system actions on this machine (root): HTTP download, squashfs, overlay.

The decisions are unit-tested on a fake; here ``RealSystem`` does the real
thing with real files: images made by ``mksquashfs`` are fetched over HTTP
from loopback, verified, loop-mounted read-only and looked into for an init,
and a stage mounted as an overlay (as ``mount-root.sh`` does) is recognised
from ``/proc/self/mountinfo`` and released. The qemu tests of the node boot
path run the same code on a booted node.
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from reconciler.agent.assignment import parse_assignment
from reconciler.agent.realsystem import RealSystem, lowerdir_stage, mounts
from reconciler.agent.staging import Refused, Stager
from reconciler.agent.state import RunDir

pytestmark = pytest.mark.integration


@pytest.fixture
def web_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A static HTTP server on loopback serving ``tmp_path/www``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def squashfs(tree: Path, target: Path) -> str:
    subprocess.run(
        ["mksquashfs", str(tree), str(target), "-noappend", "-quiet", "-comp", "gzip"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return hashlib.sha256(target.read_bytes()).hexdigest()


def image_tree(root: Path, *, init: bool) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "sbin").mkdir()
    (root / "etc").mkdir()
    shutil.copy("/bin/busybox", root / "bin/busybox")
    if init:
        (root / "sbin/init").symlink_to("/bin/busybox")
    else:  # points at a file the HOST has, the image not
        (root / "sbin/init").symlink_to("/usr/bin/env")
    return root


def assignment(base: str, name: str, sha: str) -> dict[str, object]:
    kernel = {"url": f"{base}/vmlinuz", "sha256": "0" * 64}
    return {"host": "n1", "image": "img", "version": name, "kernel": kernel, "initrd": kernel,
            "rootfs": {"url": f"{base}/{name}.squashfs", "sha256": sha}, "cmdline": ""}  # fmt: skip


def mounted_under(folder: Path) -> list[str]:
    return [point for point, _, _ in mounts() if point.startswith(str(folder))]


def test_stage_verify_mount_and_release_for_real(
    as_root: None, tmp_path: Path, web_root: tuple[Path, str]
) -> None:
    www, base = web_root
    good = squashfs(image_tree(tmp_path / "good", init=True), www / "good.squashfs")
    bad = squashfs(image_tree(tmp_path / "bad", init=False), www / "bad.squashfs")
    run = RunDir(tmp_path / "run")
    system = RealSystem()
    stager = Stager(system, run, reserve_bytes=16 << 20)

    staged = stager.stage(parse_assignment(assignment(base, "good", good)),
                          with_kernel=False, keep=set())  # fmt: skip
    assert hashlib.sha256(staged.squashfs.read_bytes()).hexdigest() == good
    assert mounted_under(tmp_path) == []  # the check mount is gone again

    with pytest.raises(Refused) as refused:
        stager.stage(parse_assignment(assignment(base, "bad", bad)), with_kernel=False, keep=set())
    assert "/usr does not exist in the image" in refused.value.reason
    assert not run.stage(bad).exists() and mounted_under(tmp_path) == []

    wrong = assignment(base, "good", "f" * 64)  # the served file is not what git says
    with pytest.raises(Refused) as mismatch:
        stager.stage(parse_assignment(wrong), with_kernel=False, keep=set())
    assert "sha256 mismatch" in mismatch.value.reason and not mismatch.value.transient

    # the stage as root: squashfs lower + tmpfs-style overlay, as mount-root.sh mounts it
    stage, target = staged.stage, tmp_path / "newroot"
    for folder in ("lower", "upper", "work"):
        (stage / folder).mkdir()
    target.mkdir()
    system.mount_squashfs(staged.squashfs, stage / "lower")
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={stage}/lower,upperdir={stage}/upper,workdir={stage}/work", str(target)],
        check=True, timeout=30,
    )  # fmt: skip
    try:
        overlay = [opts for point, kind, opts in mounts() if point == str(target)]
        assert overlay and lowerdir_stage(overlay[0]) == good
        assert (target / "bin/busybox").is_file()
    finally:
        subprocess.run(["umount", str(target)], check=False, timeout=30)
        system.release(stage)
    assert mounted_under(tmp_path) == []
