"""``/register`` on a real link: the kernel's neighbour table, and a full disk.

``reconciler serve`` runs in a server namespace; a client namespace with a
chosen MAC on the other end of a veth sends the requests, so the server's
kernel learns the client's real MAC by ARP. A claim for another MAC is
refused, the client's own is enrolled, and a request the server sends to its
own address (no neighbour entry, as for routed requests) is refused. With the
state folder on a small tmpfs that is full, registrations are refused while
boot answers keep coming, and they work again once space is freed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.sandbox.site import git
from tests.integration.netns import NetnsPair, run_in, wait_for
from tests.integration.pxe_machine import background, wait_http

SERVER = "10.23.45.2"
CLIENT = "10.23.45.201"
CLIENT_MAC = "52:54:00:12:34:99"
KNOWN_MAC = "52:54:00:12:34:0a"
URL = f"http://{SERVER}:8080"
RECONCILER = Path(sys.executable).with_name("reconciler")
SHA = "0" * 64

GROUP = f"""\
name: compute
subnet: 10.23.45.0/24
gateway: 10.23.45.1
hostname: "node%03d"
unregistered_range: 10.23.45.200-10.23.45.250
image: compute@1
registration:
  open: true
  indexes: 21-40
hosts:
  - index: 10
    mac: "{KNOWN_MAC}"
"""
IMAGE = f"""\
name: compute
versions:
  "1":
    kernel: {{url: "http://{SERVER}:8081/vmlinuz", sha256: "{SHA}"}}
    initrd: {{url: "http://{SERVER}:8081/initrd.img", sha256: "{SHA}"}}
    rootfs: {{url: "http://{SERVER}:8081/root.squashfs", sha256: "{SHA}"}}
    cmdline: "console=ttyS0"
"""


def write_site(root: Path, state: Path) -> Path:
    repo = root / "inventory"
    for relative, text in {
        "site.yaml": "domain: cluster.example\n",
        "groups/compute.yaml": GROUP,
        "images/compute.yaml": IMAGE,
    }.items():
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        (repo / relative).write_text(text)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, timeout=30)
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "site")
    config = root / "reconciler.toml"
    config.write_text(
        f'state_dir = "{state}"\n[source]\nrepo = "inventory"\nrev = "main"\n'
        f'[boot]\nhttp_url = "{URL}"\ntftp_server = "{SERVER}"\n'
        '[targets.boot]\ntype = "bootfiles"\ndirectory = "tftp"\n'
        f'[serve]\nlisten = "{SERVER}"\nport = 8080\nrefresh_seconds = 0.2\n'
    )
    subprocess.run(
        [str(RECONCILER), "apply", "-c", str(config)], check=True, timeout=120, capture_output=True
    )
    return config


def ask(namespace: str, path: str, *, mac: str | None = None) -> tuple[int, str]:
    """GET ``path`` (or POST ``mac`` to it) from inside ``namespace``: status and body."""
    script = (
        "import sys, urllib.request, urllib.error, urllib.parse\n"
        f"data = urllib.parse.urlencode({{'mac': {mac!r}}}).encode() if {mac!r} else None\n"
        "try:\n"
        f"    r = urllib.request.urlopen({URL + path!r}, data=data, timeout=20)\n"
        "    print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n"
    )
    out = run_in(namespace, [sys.executable, "-c", script], timeout=60).stdout
    status, _, body = out.partition("\n")
    return int(status), body


@pytest.fixture
def served(
    make_pair: Callable[..., NetnsPair], tmp_path: Path
) -> Iterator[tuple[NetnsPair, Path, Path]]:
    pair = make_pair(server_cidr=f"{SERVER}/24", client_cidr=f"{CLIENT}/24")
    pair.set_client_mac(CLIENT_MAC)
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(state)], check=True)
    try:
        config = write_site(tmp_path, state)
        argv = [str(RECONCILER), "--log-level", "info", "serve", "--config", str(config)]
        with background(pair, pair.server, argv, log=tmp_path / "serve.log") as process:
            wait_http(pair, f"{URL}/healthz", timeout=30)
            yield pair, tmp_path / "inventory", state
            assert process.poll() is None, "serve died"
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False, timeout=30)


def commits(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "main").strip())


def test_the_kernel_neighbour_table_decides(served: tuple[NetnsPair, Path, Path]) -> None:
    pair, repo, state = served
    status, body = ask(pair.client, "/register", mac="52:54:00:12:34:77")
    assert status == 403 and f"neighbour entry of {CLIENT} ({CLIENT_MAC})" in body, body
    status, body = ask(pair.server, "/register", mac="52:54:00:12:34:78")
    assert status == 403 and f"no neighbour entry for {SERVER}" in body, body
    assert commits(repo) == 1
    status, body = ask(pair.client, "/register", mac=CLIENT_MAC)
    assert status == 200 and json.loads(body)["hostname"] == "node021", body
    assert commits(repo) == 2
    audit = [json.loads(line) for line in (state / "registration-audit.jsonl").open()]
    assert [(e["status"], e["mac"]) for e in audit] == [
        (403, "52:54:00:12:34:77"),
        (403, "52:54:00:12:34:78"),
        (200, CLIENT_MAC),
    ]


def test_a_full_disk_refuses_registrations_and_keeps_serving(
    served: tuple[NetnsPair, Path, Path],
) -> None:
    pair, repo, state = served
    filler = state / "filler"
    with filler.open("wb") as stream, pytest.raises(OSError, match="No space left"):
        while True:
            stream.write(b"\0" * 65536)
            stream.flush()
    status, body = ask(pair.client, "/register", mac=CLIENT_MAC)
    assert status == 503 and "no space left" in body, body
    assert commits(repo) == 1
    status, body = ask(pair.client, f"/boot/{KNOWN_MAC}")
    assert status == 200 and "hostname=node010" in body
    assert ask(pair.client, "/healthz")[0] == 200
    filler.unlink()
    wait_for(lambda: ask(pair.client, "/register", mac=CLIENT_MAC)[0] == 200, timeout=30)
    assert commits(repo) == 2
