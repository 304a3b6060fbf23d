"""``reconciler image add``: sha256s computed, the version written, comments kept, still valid."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from typer.testing import CliRunner

from reconciler.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"
runner = CliRunner()


def built(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for kind, name in (("kernel", "vmlinuz"), ("initrd", "initrd.img"), ("rootfs", "root.sq")):
        files[kind] = tmp_path / "build" / name
        files[kind].parent.mkdir(exist_ok=True)
        files[kind].write_bytes(f"{kind} bytes".encode() * 1000)
    return files


def test_add_writes_the_version_keeps_comments_and_validates(tmp_path: Path) -> None:
    inventory = shutil.copytree(EXAMPLE, tmp_path / "inventory")
    image_file = inventory / "images" / "compute.yaml"
    before = image_file.read_text()
    files = built(tmp_path)
    result = runner.invoke(app, [
        "image", "add", str(image_file), "2024.12",
        "--kernel", str(files["kernel"]), "--initrd", str(files["initrd"]),
        "--rootfs", str(files["rootfs"]), "--url-base", "http://boot.cluster.example/c/2024.12",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    after = image_file.read_text()
    assert after.startswith(before)  # comments, order and quoting of what was there: unchanged
    rootfs_sha = hashlib.sha256(files["rootfs"].read_bytes()).hexdigest()
    added = after[len(before) :]
    assert added.startswith('  "2024.12":\n')
    assert (
        f'rootfs: {{url: "http://boot.cluster.example/c/2024.12/root.sq", sha256: "{rootfs_sha}"}}'
        in added
    )
    assert 'cmdline: "console=ttyS0 quiet mitigations=auto"' in added  # copied from 2024.11
    validated = runner.invoke(app, ["validate", str(inventory)])
    assert validated.exit_code == 0, validated.output
    assert "valid (" in validated.output and "1 images)" in validated.output


def test_add_refuses_an_existing_version(tmp_path: Path) -> None:
    inventory = shutil.copytree(EXAMPLE, tmp_path / "inventory")
    image_file = inventory / "images" / "compute.yaml"
    before = image_file.read_text()
    files = built(tmp_path)
    result = runner.invoke(app, [
        "image", "add", str(image_file), "2024.11", "--url-base", "http://b/x",
        "--kernel", str(files["kernel"]), "--initrd", str(files["initrd"]),
        "--rootfs", str(files["rootfs"]),
    ])  # fmt: skip
    assert result.exit_code == 2
    assert "already in the file" in result.output and "--replace" in result.output
    assert image_file.read_text() == before


def test_add_creates_a_new_image_file(tmp_path: Path) -> None:
    files = built(tmp_path)
    image_file = tmp_path / "images" / "gpu.yaml"
    result = runner.invoke(app, [
        "image", "add", str(image_file), "1.0", "--cmdline", "console=ttyS0",
        "--kernel", str(files["kernel"]), "--initrd", str(files["initrd"]),
        "--rootfs", str(files["rootfs"]), "--url-base", "http://b/gpu/1.0/",
        "--rootfs-url", "http://cdn/gpu-1.0.squashfs",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = image_file.read_text()
    assert text.startswith('name: gpu\nversions:\n  "1.0":\n')
    assert 'kernel: {url: "http://b/gpu/1.0/vmlinuz"' in text
    assert 'rootfs: {url: "http://cdn/gpu-1.0.squashfs"' in text


def test_add_without_url_is_an_error(tmp_path: Path) -> None:
    files = built(tmp_path)
    result = runner.invoke(app, [
        "image", "add", str(tmp_path / "x.yaml"), "1",
        "--kernel", str(files["kernel"]), "--initrd", str(files["initrd"]),
        "--rootfs", str(files["rootfs"]),
    ])  # fmt: skip
    assert result.exit_code == 2 and "--url-base" in result.output
    assert not (tmp_path / "x.yaml").exists()
