"""The node's shell library (mount-root.sh) under busybox sh, as the node runs it."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from reconciler.nodeboot import FILES

BUSYBOX = Path("/bin/busybox")
pytestmark = pytest.mark.skipif(not BUSYBOX.exists(), reason="busybox-static is not installed")


def call(function: str, *args: str) -> tuple[int, str]:
    """Run ``sh mount-root.sh FUNCTION ARGS`` with busybox sh; (exit code, stdout)."""
    result = subprocess.run(
        [str(BUSYBOX), "sh", str(FILES / "mount-root.sh"), function, *args],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return result.returncode, result.stdout


def test_init_is_resolved_inside_the_image_not_on_the_host(tmp_path: Path) -> None:
    root = tmp_path / "image"
    (root / "bin").mkdir(parents=True)
    (root / "usr/lib/systemd").mkdir(parents=True)
    (root / "usr/lib/systemd/systemd").write_text("#!/bin/sh\n")
    (root / "usr/lib/systemd/systemd").chmod(0o755)
    (root / "sbin").symlink_to("usr/sbin")  # merged /usr, relative
    (root / "usr/sbin").mkdir()
    (root / "usr/sbin/init").symlink_to("/lib/systemd/systemd")  # absolute: inside the image
    (root / "lib").symlink_to("usr/lib")
    assert call("image_init_path", str(root)) == (0, "/usr/lib/systemd/systemd\n")
    (root / "usr/sbin/init").unlink()
    (root / "usr/sbin/init").symlink_to("/bin/busybox")  # exists on the host, not in the image
    assert call("image_init_path", str(root))[0] != 0
    (root / "usr/sbin/init").unlink()
    (root / "usr/sbin/init").symlink_to("init")  # a loop
    assert call("image_init_path", str(root))[0] != 0


def test_cmdline_values_are_taken_whole_and_never_globbed(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    (tmp_path / "match-me").touch()
    cmdline.write_text(
        "console=ttyS0 reconciler.rootfs=http://h/a;b$(x)`y`* "
        f"reconciler.image={tmp_path}/match-* reconciler.image=x@2 quiet\n"
    )
    assert call("cmdline_value", "reconciler.rootfs", str(cmdline)) == (
        0, "http://h/a;b$(x)`y`*\n",
    )  # fmt: skip
    assert call("cmdline_value", "reconciler.image", str(cmdline)) == (0, "x@2\n")  # the last
    assert call("cmdline_value", "reconciler.server", str(cmdline)) == (1, "")


def test_verify_sha256_and_current_json(tmp_path: Path) -> None:
    image = tmp_path / "rootfs.squashfs"
    image.write_bytes(b"image bytes")
    good = hashlib.sha256(b"image bytes").hexdigest()
    assert call("verify_sha256", str(image), good)[0] == 0
    assert call("verify_sha256", str(image), "0" * 64)[0] != 0
    assert call("verify_sha256", str(image), good.upper())[0] != 0  # not 64 lower-case hex
    script = f'. {FILES / "mount-root.sh"}; RECONCILER_RUN={tmp_path}; write_current_json "$@"'
    subprocess.run(
        [str(BUSYBOX), "sh", "-c", script, "sh", 'we"ird\\name', "1.0", "", good, "/run/x",
         "switch-root"],
        check=True, timeout=30,
    )  # fmt: skip
    written = json.loads((tmp_path / "current.json").read_text())
    assert written == {
        "image": 'we"ird\\name', "version": "1.0", "kernel_sha256": None,
        "rootfs_sha256": good, "stage": "/run/x", "booted_by": "switch-root",
    }  # fmt: skip
