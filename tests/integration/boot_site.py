"""The boot site the qemu tests share: an inventory in git, its reconciler.toml, dhcpd, serve.

The PXE, boot-media and node-lab tests all need the same server side: a git
inventory, a ``reconciler.toml`` whose dhcp-file and dhcp-conf targets drive a
real dhcpd in the server namespace, ``reconciler apply`` to write and start
it, then ``reconciler serve`` and a static web server (the image store)
answering on the namespace's address. Each test adds its own targets and
sections to the config and its own inventory files; the rest lives here.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from reconciler.sandbox.dhcp import Dhcpd
from reconciler.sandbox.netns import NetnsPair
from tests.integration.pxe_machine import background, static_server, wait_http

REPO_ROOT = Path(__file__).resolve().parents[2]
RECONCILER = str(REPO_ROOT / ".venv" / "bin" / "reconciler")
SERVER = "10.23.45.2"  # the server side of the namespace pair: serve, dhcpd, the store
SERVE_PORT, STORE_PORT = 8080, 8081
SERVE_URL = f"http://{SERVER}:{SERVE_PORT}"
IMAGES_URL = f"http://{SERVER}:{STORE_PORT}"


def git(repo: Path, *args: str) -> str:
    """``git -C repo ...`` with a committer identity; its output."""
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip


def commit_inventory(repo: Path, message: str) -> None:
    """Make ``repo`` a git repository on ``main`` if it is not one yet; commit all of it."""
    if not (repo / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, timeout=30)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def site_config(
    *,
    workdir: Path,
    dhcpd: Dhcpd,
    targets: str = "",
    refresh_seconds: float = 0.5,
    extra: str = "",
) -> str:
    """reconciler.toml for the site: the inventory in ``workdir/inventory``, dhcpd's
    host file and config, ``targets`` (more ``[targets.*]`` tables), serve on
    ``SERVER``:8080 with its audit log in ``workdir``, then ``extra`` sections."""
    return f"""state_dir = "state"
max_change_fraction = 1.0
[source]
repo = "inventory"
rev = "main"
[boot]
http_url = "{SERVE_URL}"
tftp_server = "{SERVER}"
[targets.dhcp-hosts]
type = "dhcp-file"
path = "hosts.conf"
[targets.dhcp]
type = "dhcp-conf"
path = "{dhcpd.conf}"
include = "hosts.conf"
omapi_key_file = "omapi.key"
restart_command = "{dhcpd.restart_script}"
{targets}[serve]
listen = "{SERVER}"
port = {SERVE_PORT}
audit_log = "{workdir / "audit.jsonl"}"
refresh_seconds = {refresh_seconds}
{extra}"""


def reconcile(config: Path) -> None:
    """``reconciler apply``: applies the head and records it as the revision serve answers from."""
    result = subprocess.run(
        [RECONCILER, "apply", "--force", "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@contextlib.contextmanager
def serving(pair: NetnsPair, *, config: Path, store: Path, logs: Path) -> Iterator[None]:
    """The image store (``store`` on :8081) and ``reconciler serve`` in the server
    namespace, both answering; logs ``images.log`` and ``serve.log`` in ``logs``."""
    serve = [RECONCILER, "--log-level", "info", "serve", "--config", str(config)]
    with (
        background(
            pair, pair.server, static_server(directory=store, address=SERVER, port=STORE_PORT),
            log=logs / "images.log",
        ),
        background(pair, pair.server, serve, log=logs / "serve.log"),
    ):  # fmt: skip
        wait_http(pair, f"{SERVE_URL}/healthz", timeout=30)
        wait_http(pair, f"{IMAGES_URL}/", timeout=30)
        yield


def watching(
    pair: NetnsPair, *, config: Path, log: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """``reconciler watch`` in the server namespace (it applies registration commits)."""
    watch = [RECONCILER, "--log-level", "info", "watch", "--config", str(config)]
    return background(pair, pair.server, watch, log=log)
