"""``reconciler initramfs``: the cpio writer, module resolution, and the archive it builds."""

from __future__ import annotations

import gzip
import lzma
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.nodeboot.cpio import Member, write_newc
from reconciler.nodeboot.initramfs import build_initramfs
from reconciler.nodeboot.modules import ModuleError, ModuleTree, modinfo, select_modules

BUSYBOX = Path("/bin/busybox")


def fake_module(info: dict[str, str]) -> bytes:
    """A minimal ELF64 file whose only named sections are .shstrtab and .modinfo."""
    names = b"\0.shstrtab\0.modinfo\0"
    payload = b"".join(f"{key}={value}\0".encode() for key, value in info.items())
    data_at = 64
    names_at = data_at + len(payload)
    shoff = names_at + len(names)
    header = bytearray(64)
    header[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 1)

    def section(name: int, offset: int, size: int) -> bytes:
        entry = bytearray(64)
        struct.pack_into("<I", entry, 0, name)
        struct.pack_into("<QQ", entry, 24, offset, size)
        return bytes(entry)

    sections = (
        section(0, 0, 0) + section(1, names_at, len(names)) + section(11, data_at, len(payload))
    )
    return bytes(header) + payload + names + sections


def module_tree(root: Path) -> Path:
    """loop, squashfs, overlay, virtio_net (needing virtio, failover) and an xz'd one."""
    files = {
        "kernel/drivers/block/loop.ko": {"depends": ""},
        "kernel/fs/squashfs/squashfs.ko": {"depends": ""},
        "kernel/fs/overlayfs/overlay.ko": {"depends": ""},
        "kernel/drivers/virtio/virtio.ko": {"depends": ""},
        "kernel/net/core/failover.ko": {"depends": ""},
        "kernel/drivers/net/net_failover.ko": {"depends": "failover"},
        "kernel/drivers/net/virtio_net.ko": {"depends": "net_failover,virtio"},
    }
    for relative, info in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fake_module({"license": "GPL", **info}))
    xz = root / "kernel/drivers/net/ethernet/e1000-x.ko.xz"
    xz.parent.mkdir(parents=True, exist_ok=True)
    xz.write_bytes(lzma.compress(fake_module({"depends": ""})))
    (root / "modules.builtin").write_text("kernel/net/packet/af_packet.ko\n")
    return root


def test_modinfo_reads_depends_from_the_elf_section() -> None:
    elf = fake_module({"license": "GPL", "depends": "a,b", "name": "x"})
    assert modinfo(elf) == {"license": "GPL", "depends": "a,b", "name": "x"}
    with pytest.raises(ModuleError, match="not an ELF64"):
        modinfo(b"hello")


def test_closure_lists_dependencies_first_and_names_what_is_missing(tmp_path: Path) -> None:
    tree = ModuleTree(module_tree(tmp_path))
    order = [module.name for module in tree.closure("virtio-net")]
    assert order == ["failover", "net_failover", "virtio", "virtio_net"]
    assert tree.module("e1000_x").relative == "kernel/drivers/net/ethernet/e1000-x.ko"
    (tmp_path / "kernel/fs/needy.ko").write_bytes(fake_module({"depends": "ghost"}))
    with pytest.raises(ModuleError, match="module ghost \\(needed by needy\\) is not in"):
        ModuleTree(tmp_path).closure("needy")


def test_selection_skips_absent_default_nics_but_not_a_users_module(tmp_path: Path) -> None:
    tree = ModuleTree(module_tree(tmp_path))
    selection = select_modules(tree, boot=["af_packet"])
    assert selection.boot[:3] == ("loop", "squashfs", "overlay")
    assert "virtio_net" in selection.boot and "igb" in selection.skipped
    assert "af_packet" not in selection.boot  # built into the kernel: nothing to load
    with pytest.raises(ModuleError, match="module nosuch is not in"):
        select_modules(tree, boot=["nosuch"])
    lean = select_modules(tree, boot=[], optional=["e1000-x"], default_nics=False)
    assert lean.boot == ("loop", "squashfs", "overlay")
    assert "e1000_x" in lean.closures and not lean.skipped


def test_newc_archive_is_read_back_by_gnu_cpio(tmp_path: Path) -> None:
    archive = write_newc(
        [
            Member.directory("bin"),
            Member.file("bin/hello", b"hi\n", perm=0o755),
            Member.symlink("bin/sh", "/bin/busybox"),
            Member.char_device("console", 5, 1),
        ]
    )
    listing = subprocess.run(
        ["cpio", "-itv", "--quiet"], input=archive, capture_output=True, check=True, timeout=30
    ).stdout.decode()
    assert "bin/sh -> /bin/busybox" in listing
    assert "-rwxr-xr-x" in listing and "crw-------" in listing
    with pytest.raises(ValueError, match="given twice"):
        write_newc([Member.directory("a"), Member.directory("a/")])


@pytest.mark.skipif(not BUSYBOX.exists(), reason="busybox-static is not installed")
def test_initramfs_is_deterministic_and_holds_init_modules_and_applets(tmp_path: Path) -> None:
    tree = module_tree(tmp_path / "modules")
    first, second = tmp_path / "a.img", tmp_path / "b.img"
    for out in (first, second):
        result = build_initramfs(
            modules_dir=tree,
            kernel_version="6.0-test",
            out=out,
            boot_modules=["virtio_net"],
            optional_modules=["e1000-x"],
        )
    assert first.read_bytes() == second.read_bytes()
    assert result.sha256 and "virtio_net" in result.modules
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(
        ["cpio", "-idm", "--quiet"], cwd=unpacked, input=gzip.decompress(first.read_bytes()),
        check=True, timeout=30,
    )  # fmt: skip
    assert (unpacked / "init").stat().st_mode & 0o111
    assert not (unpacked / "bin/busybox").is_symlink()  # never a self-link
    assert (unpacked / "sbin/switch_root").readlink() == Path("/bin/busybox")
    deps = (unpacked / "lib/reconciler/modules.deps").read_text()
    assert (
        "virtio_net /lib/modules/6.0-test/kernel/net/core/failover.ko "
        "/lib/modules/6.0-test/kernel/drivers/net/net_failover.ko "
        "/lib/modules/6.0-test/kernel/drivers/virtio/virtio.ko "
        "/lib/modules/6.0-test/kernel/drivers/net/virtio_net.ko\n"
    ) in deps
    assert (unpacked / "lib/modules/6.0-test/kernel/drivers/net/ethernet/e1000-x.ko").exists()
    boot = (unpacked / "lib/reconciler/modules.boot").read_text().split()
    assert boot[:3] == ["loop", "squashfs", "overlay"]


def test_cli_needs_a_kernel_and_names_missing_modules(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["initramfs", "--out", str(tmp_path / "x.img")])
    assert result.exit_code == 2 and "--kernel-version" in result.stderr
    tree = module_tree(tmp_path / "modules")
    shutil.rmtree(tree / "kernel/fs/squashfs")
    result = runner.invoke(
        app, ["initramfs", "--modules-dir", str(tree), "--out", str(tmp_path / "x.img")]
    )
    assert result.exit_code == 2
    assert "module squashfs is not in" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.img").exists()
