"""``reconciler media build`` as users see it: reproducible images, a manifest, clear refusals."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pycdlib
import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from tests.unit.site_fixture import Site

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def read_from_iso(image: Path, path: str) -> bytes:
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    try:
        buffer = io.BytesIO()
        iso.get_file_from_iso_fp(buffer, rr_path=path)
        return buffer.getvalue()
    finally:
        iso.close()


def git_site(site: Site) -> str:
    """Turn the site's inventory into a git repository; return the commit."""
    repo = site.inventory
    for argv in (
        ["init", "-q", "-b", "main"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "site"],
    ):
        subprocess.run(["git", "-C", str(repo), *argv], check=True, timeout=30)
    text = site.config.read_text().replace('path = "inventory"', 'repo = "inventory"')
    site.config.write_text(text)
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_net_medium_is_hybrid_reproducible_and_says_where_it_came_from(
    site: Site, tmp_path: Path
) -> None:
    commit = git_site(site)
    first, second = tmp_path / "a.iso", tmp_path / "b.iso"
    code, out, err = run("media", "build", "-c", str(site.config), "--out", str(first))
    assert code == 0, err
    digest = hashlib.sha256(first.read_bytes()).hexdigest()
    assert f"sha256:   {digest}" in out
    assert f"size:     {first.stat().st_size} bytes" in out
    assert f"revision: {commit}" in out
    code, _, err = run(
        "media", "build", "-c", str(site.config), "--out", str(second), "--rev", commit
    )
    assert code == 0, err
    assert first.read_bytes() == second.read_bytes()
    data = first.read_bytes()
    assert data[510:512] == b"\x55\xaa"  # MBR: boots from a USB stick on BIOS
    assert data[512:520] == b"EFI PART"  # GPT: and on UEFI
    assert data[0x8001:0x8006] == b"CD001"  # ISO9660: and as a CD
    manifest = json.loads(read_from_iso(first, "/reconciler-media.json"))
    assert manifest["kind"] == "net" and manifest["revision"] == commit
    assert manifest["server"] == "http://10.23.45.2:8080" and manifest["host"] is None
    script = read_from_iso(first, "/boot/script.ipxe").decode()
    assert "dhcp || goto no_address" in script
    assert "chain http://10.23.45.2:8080/boot/${net0/mac} || goto failed" in script


def test_host_medium_bakes_the_host_identity_in(site: Site, tmp_path: Path) -> None:
    site.config.write_text(site.config.read_text() + '[media]\ndns = ["10.23.45.3"]\n')
    out = tmp_path / "node014.iso"
    code, stdout, err = run(
        "media", "build", "-c", str(site.config), "--out", str(out), "--host", "node014"
    )
    assert code == 0, err
    assert "net (host node014)" in stdout
    script = read_from_iso(out, "/boot/script.ipxe").decode()
    for line in (
        "set net0/ip 10.23.45.14",
        "set net0/netmask 255.255.255.0",
        "set net0/gateway 10.23.45.1",
        "set net0/dns 10.23.45.3",
        "set net0/hostname node014",
    ):
        assert line in script.splitlines()
    assert "dhcp" not in script
    generic = tmp_path / "any.iso"
    assert run("media", "build", "-c", str(site.config), "--out", str(generic))[0] == 0
    assert generic.read_bytes() != out.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "node999"], "no host named 'node999'"),
        (["--kind", "live", "--group", "service"], "group service has no image"),
        (["--kind", "live"], "give --host NAME or --group NAME"),
        (["--group", "compute"], "--group applies to live media"),
        (["--group", "nosuch", "--kind", "live"], "no group named 'nosuch'"),
        (["--kind", "usb"], "--kind 'usb': use net or live"),
    ],
)
def test_bad_requests_exit_2_and_write_nothing(
    site: Site, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "out" / "medium.iso"
    code, _, err = run("media", "build", "-c", str(site.config), "--out", str(out), *args)
    assert code == 2
    assert message in " ".join(err.split())
    assert "Traceback" not in err
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    ["http://10.23.45.2:8080/$(reboot)", "http://boot server/", "http://h/x?a=1&&b", "ftp://h/"],
)
def test_server_urls_iPXE_cannot_take_are_refused(site: Site, tmp_path: Path, url: str) -> None:
    site.config.write_text(site.config.read_text() + f"[media]\nserver_url = {json.dumps(url)}\n")
    out = tmp_path / "medium.iso"
    code, _, err = run("media", "build", "-c", str(site.config), "--out", str(out))
    assert code == 2
    assert "[media] server_url" in err and "cannot be baked into a boot medium" in err
    assert not out.exists()


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def artifact_server(folder: Path) -> Iterator[str]:
    """A web server on loopback serving ``folder``; yields its base URL."""

    def handler(*args: object) -> _Files:
        return _Files(*args, directory=str(folder))  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def point_image_at(site: Site, base: str, files: dict[str, bytes]) -> None:
    versions = {}
    for version in ("2024.10", "2024.11"):
        versions[version] = {
            field: {"url": f"{base}/{name}", "sha256": hashlib.sha256(files[name]).hexdigest()}
            for field, name in (
                ("kernel", "vmlinuz"), ("initrd", "initrd.img"), ("rootfs", "root.squashfs")
            )
        }  # fmt: skip
        versions[version]["cmdline"] = "console=ttyS0"  # type: ignore[assignment]
    (site.inventory / "images" / "compute.yaml").write_text(
        json.dumps({"name": "compute", "versions": versions})
    )


def test_live_medium_carries_the_checked_image(site: Site, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    files = {"vmlinuz": b"kernel" * 100, "initrd.img": b"initrd" * 50, "root.squashfs": b"r" * 999}
    for name, data in files.items():
        (served / name).write_bytes(data)
    out = tmp_path / "live.iso"
    with artifact_server(served) as base:
        point_image_at(site, base, files)
        code, stdout, err = run(
            "media", "build", "-c", str(site.config), "--out", str(out),
            "--kind", "live", "--group", "gpu",
        )  # fmt: skip
    assert code == 0, err
    assert "live (group gpu)" in stdout
    assert read_from_iso(out, "/live/root.squashfs") == files["root.squashfs"]
    assert read_from_iso(out, "/live/vmlinuz") == files["vmlinuz"]
    manifest = json.loads(read_from_iso(out, "/reconciler-media.json"))
    assert manifest["image"] == "compute@2024.11"
    volume = manifest["volume_id"]
    assert f"reconciler.media={volume}" in manifest["cmdline"]
    grub = read_from_iso(out, "/boot/grub/grub.cfg").decode()
    assert f"'reconciler.media={volume}'" in grub
    assert "hostname=" not in manifest["cmdline"]  # a group medium names no host


def test_live_build_refuses_unreachable_or_wrong_artifacts(site: Site, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    files = {"vmlinuz": b"kernel", "initrd.img": b"initrd", "root.squashfs": b"rootfs"}
    for name, data in files.items():
        (served / name).write_bytes(data)
    out = tmp_path / "out" / "live.iso"
    args = ("media", "build", "-c", str(site.config), "--out", str(out), "--kind", "live")
    with artifact_server(served) as base:
        point_image_at(site, base, files)
        (served / "root.squashfs").write_bytes(b"tampered")
        code, _, err = run(*args, "--host", "node010")
        assert code == 2
        assert "image compute@2024.10 rootfs: sha256 mismatch" in " ".join(err.split())
        assert not out.exists() and list(out.parent.iterdir()) == []
        point_image_at(site, base.rsplit(":", 1)[0] + ":9", files)  # nothing listens on port 9
        code, _, err = run(*args, "--host", "node010")
        assert code == 2
        assert "image compute@2024.10 kernel: cannot download" in " ".join(err.split())
        assert not out.exists() and list(out.parent.iterdir()) == []


def test_without_rev_the_accepted_revision_is_built(site: Site, tmp_path: Path) -> None:
    commit = git_site(site)
    out = tmp_path / "site.iso"
    code, stdout, err = run("media", "build", "-c", str(site.config), "--out", str(out))
    assert code == 0, err
    assert f"revision: {commit} (nothing accepted yet: [source] of the config)" in stdout
    assert run("apply", "-c", str(site.config))[0] == 0  # records the accepted revision
    subprocess.run(
        ["git", "-C", str(site.inventory), "-c", "user.name=t", "-c", "user.email=t@e.org",
         "commit", "-q", "--allow-empty", "-m", "not applied yet"],
        check=True, timeout=30,
    )  # fmt: skip
    code, stdout, err = run("media", "build", "-c", str(site.config), "--out", str(out))
    assert code == 0, err
    assert f"revision: {commit} (accepted by apply)" in stdout
    assert json.loads(read_from_iso(out, "/reconciler-media.json"))["revision"] == commit
