"""A live site for the watch loop: real dhcpd (OMAPI) and named (RFC 2136) in one namespace.

Used by the SIGKILL test and by ``bench/bench_watch.py``. dhcpd serves
10.23.0.0/16 on the server veth with OMAPI on the namespace's loopback; named
runs in the same namespace (started from a thread that entered it) with the
forward zone and the /16's reverse zone. ``reconciler watch`` runs as a
subprocess inside the namespace, against a git repository of the inventory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.config import BootConfig, RuntimeConfig, SourceConfig
from reconciler.resources import DhcpSubnet
from reconciler.targets.dhcp_conf import build as build_conf
from reconciler.watch.status import Status, StatusStore
from tests.integration.dhcp_hosts import sync
from tests.integration.dhcp_server import KEY_NAME, OMAPI_PORT, Dhcpd, write_key
from tests.integration.named import NamedServer, start_named
from tests.integration.netns import NetnsPair, entered, netns_pair

ROOT = Path(__file__).resolve().parents[2]
FORWARD = "cluster.example."
REVERSE = "23.10.in-addr.arpa."
SUBNET16 = DhcpSubnet(
    network="10.23.0.0/16",
    gateway="10.23.0.1",
    lease_time=600,
    domain="cluster.example",
    unregistered_range=("10.23.200.1", "10.23.200.250"),
    groups=("compute",),
)
_SUMS = {"k": "a" * 64, "i": "b" * 64, "r": "c" * 64}
IMAGE = f"""\
name: compute
versions:
  "1.0":
    kernel: {{url: "http://boot.cluster.example/k", sha256: "{_SUMS["k"]}"}}
    initrd: {{url: "http://boot.cluster.example/i", sha256: "{_SUMS["i"]}"}}
    rootfs: {{url: "http://boot.cluster.example/r", sha256: "{_SUMS["r"]}"}}
    cmdline: "console=ttyS0"
"""


def mac_of(index: int, generation: int = 0) -> str:
    return f"52:54:{generation:02x}:00:{index >> 8:02x}:{index & 0xFF:02x}"


def write_inventory(folder: Path, hosts: dict[int, str]) -> None:
    """One group in 10.23.0.0/16: ``hosts`` maps index -> MAC; node0001 is 10.23.1.1."""
    (folder / "groups").mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "site.yaml").write_text("domain: cluster.example\nttl: 300\n")
    (folder / "images" / "compute.yaml").write_text(IMAGE)
    lines = [
        "name: compute", "subnet: 10.23.0.0/16", "gateway: 10.23.0.1",
        'hostname: "node%04d"', "first_address: 10.23.1.1",
        "unregistered_range: 10.23.200.1-10.23.200.250", "image: compute@1.0", "hosts:",
    ]  # fmt: skip
    for index, mac in sorted(hosts.items()):
        lines += [f"  - index: {index}", f'    mac: "{mac}"']
    (folder / "groups" / "compute.yaml").write_text("\n".join(lines) + "\n")


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo, check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result.stdout.strip()


@dataclass
class LiveWatchSite:
    workdir: Path
    pair: NetnsPair
    dhcpd: Dhcpd
    named: NamedServer

    @property
    def repo(self) -> Path:
        return self.workdir / "repo"

    @property
    def config_path(self) -> Path:
        return self.workdir / "reconciler.toml"

    @property
    def store(self) -> StatusStore:
        return StatusStore(self.workdir / "state")

    def commit(self, hosts: dict[int, str], message: str) -> str:
        write_inventory(self.repo, hosts)
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")

    def start_watch(
        self, log_name: str = "watch.log", *, prelude: str = ""
    ) -> subprocess.Popen[bytes]:
        """``reconciler watch`` in the namespace; ``prelude``: Python run before it (benchmarks)."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with (self.workdir / log_name).open("ab") as log:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.pair.server, sys.executable, "-c",
                 prelude + "from reconciler.cli import main; main()", "--log-level", "info",
                 "watch", "-c", str(self.config_path)],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip

    def wait_applied(self, commit: str, *, timeout: float) -> Status:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.store.load()
            ready = status.condition("Ready")
            if status.applied_revision == commit and ready is not None and ready.status:
                return status
            time.sleep(0.01)
        log = (self.workdir / "watch.log").read_text()[-3000:]
        raise TimeoutError(f"{commit[:12]} not applied in {timeout} s: {status.to_dict()}\n{log}")


def config_text(named: NamedServer, dhcpd: Dhcpd, *, watch: str = "") -> str:
    return f"""\
state_dir = "state"
[source]
repo = "repo"
rev = "main"
[boot]
http_url = "http://10.23.0.2:8080"
tftp_server = "10.23.0.2"
[targets.dhcp]
type = "dhcp-omapi"
server = "127.0.0.1"
port = {OMAPI_PORT}
key_name = "{KEY_NAME}"
key_file = "omapi.key"
leases_file = "{dhcpd.leases}"
timeout = 5
[targets.dns]
type = "dns-rfc2136"
server = "127.0.0.1"
port = {named.port}
key_file = "{named.key_file}"
timeout = 5
[watch]
debounce = 0.02
drift_interval = 3600
backoff_initial = 0.2
backoff_max = 2
{watch}"""


@contextlib.contextmanager
def live_watch_site(workdir: Path, *, watch: str = "") -> Iterator[LiveWatchSite]:
    """dhcpd + named in a fresh namespace, a git repo and a config; all gone afterwards."""
    with netns_pair(server_cidr="10.23.0.2/16", client_cidr="10.23.0.3/16") as pair:
        dhcpd = Dhcpd(pair, workdir)
        write_key(workdir / "omapi.key")
        config = RuntimeConfig(
            source=SourceConfig(path=workdir), state_dir=workdir / "conf-state",
            boot=BootConfig(http_url="http://10.23.0.2:8080", tftp_server="10.23.0.2"),
            base_dir=workdir,
        )  # fmt: skip
        conf = build_conf(
            "dhcpd-conf",
            {"path": str(dhcpd.conf), "omapi_port": OMAPI_PORT, "omapi_key_name": KEY_NAME,
             "omapi_key_file": "omapi.key", "restart_command": "true"},  # started below
            config,
        )  # fmt: skip
        sync(conf, subnets=[SUBNET16], namespace=pair.server)
        dhcpd.start()
        with entered(pair.server):
            named = start_named(
                workdir / "named", dynamic_zones=(FORWARD, REVERSE), static_zones=()
            )
        pair.on_cleanup(named.stop)
        (workdir / "repo").mkdir()
        git(workdir / "repo", "init", "-q", "-b", "main")
        (workdir / "reconciler.toml").write_text(config_text(named, dhcpd, watch=watch))
        yield LiveWatchSite(workdir, pair, dhcpd, named)


@pytest.fixture
def live_watch(as_root: None, tmp_path: Path) -> Iterator[LiveWatchSite]:
    """A live site for one test; skips where dhcpd, dhclient, named or git is missing."""
    for binary in ("/usr/sbin/dhcpd", "/usr/sbin/dhclient", "/usr/sbin/named"):
        if not Path(binary).exists():
            pytest.skip(f"{binary} is not installed")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    with live_watch_site(tmp_path) as site:
        yield site
