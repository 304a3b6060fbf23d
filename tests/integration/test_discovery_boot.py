"""A host without an image, end to end: its boot script chains to a script that exists.

The real ``reconciler serve`` answers over HTTP on loopback and a real tftpd-hpa
serves the files the bootfiles target wrote. The script a discovery host gets
chains to ``ipxe/discovery.ipxe``; that must answer (it used to be a 404), and it
must lead back to the host's own script, which boots an image once one is assigned.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.compile import ipxe_path
from reconciler.sandbox.named import free_port
from reconciler.sandbox.netns import wait_for
from tests.integration.tftp_server import TFTP, TFTPD, tftp_get, tftpd

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory-example"
RECONCILER = str(Path(sys.executable).parent / "reconciler")
SVC1 = "52:54:00:bb:00:01"  # group "service": no image, boots discovery


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def chained(script: str, *, mac: str) -> str:
    """The URL an iPXE script's (last) chain command fetches, ${net0/mac} filled in."""
    urls = re.findall(r"^chain (?:--\S+ )*(\S+)", script, flags=re.M)
    assert urls, f"no chain command in:\n{script}"
    return str(urls[-1]).replace("${net0/mac}", mac)


@pytest.fixture
def discovery_site(as_root: None, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    if not TFTPD.exists() or not TFTP.exists():
        pytest.skip("tftpd-hpa / tftp-hpa are not installed")
    shutil.copytree(EXAMPLE, tmp_path / "inventory")
    port = free_port()
    http_url = f"http://127.0.0.1:{port}"
    config = tmp_path / "reconciler.toml"
    config.write_text(
        f"""state_dir = "state"
[source]
path = "inventory"
[boot]
http_url = "{http_url}"
[targets.boot]
type = "bootfiles"
directory = "tftp"
[serve]
listen = "127.0.0.1"
port = {port}
refresh_seconds = 0.2
"""
    )
    apply(config)
    serve = subprocess.Popen(
        [RECONCILER, "serve", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.log").open("w"),
    )
    try:
        wait_for(lambda: fetch(f"{http_url}/healthz")[0] == 200, timeout=30, what="serve")
        yield config, http_url
    finally:
        serve.terminate()
        serve.wait(timeout=10)


def apply(config: Path) -> None:
    result = subprocess.run(
        [RECONCILER, "apply", "-c", str(config), "--force"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_host_without_an_image_waits_for_one_then_boots_it(
    discovery_site: tuple[Path, str], tmp_path: Path
) -> None:
    config, http_url = discovery_site
    status, own = fetch(f"{http_url}/boot/{SVC1}")
    assert status == 200 and "no image assigned" in own
    discovery_url = chained(own, mac=SVC1)
    assert discovery_url == f"{http_url}/ipxe/discovery.ipxe"
    status, discovery = fetch(discovery_url)
    assert status == 200, f"{discovery_url}: {status} {discovery}"
    assert discovery.startswith("#!ipxe\n") and "sleep 60" in discovery
    assert chained(discovery, mac=SVC1) == f"{http_url}/boot/{SVC1}"

    # Over TFTP, from the files the bootfiles target wrote: the same two scripts.
    with tftpd(tmp_path / "tftp") as port:
        fetched = tmp_path / "fetched"
        assert tftp_get(ipxe_path(SVC1), port=port, workdir=fetched) == own
        assert tftp_get("ipxe/discovery.ipxe", port=port, workdir=fetched) == discovery

    # The host's group gets an image: the next try, the same URL boots it.
    group = tmp_path / "inventory/groups/service.yaml"
    group.write_text(group.read_text().replace("hosts:\n", "image: compute@2024.10\nhosts:\n"))
    apply(config)
    wait_for(
        lambda: "kernel http://" in fetch(f"{http_url}/boot/{SVC1}")[1], timeout=30, what="image"
    )
    _, booted = fetch(chained(discovery, mac=SVC1))
    assert "compute/2024.10/vmlinuz" in booted and "hostname=svc1" in booted
