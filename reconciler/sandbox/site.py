"""The sandbox site: a git copy of an inventory, its runtime config, and the running services.

``SandboxSite`` owns everything the demo starts: a temporary folder holding
the inventory repository (a copy, never the project's own repository), the
runtime config (targets, ``[serve]`` and ``[watch]`` tables), the namespaces,
and the daemons in them (dhcpd, named, tftpd, ``reconciler serve`` and
``reconciler watch``). ``close`` stops them all and removes the folder, and is
safe to call at any point of a half-finished start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import reconciler
from reconciler.config import RuntimeConfig, load_config
from reconciler.engine import Engine
from reconciler.resources import DesiredState, DhcpHost
from reconciler.sandbox.dhcp import KEY_NAME, OMAPI_PORT, DhcpClient, Dhcpd, write_key
from reconciler.sandbox.kea_site import KeaSandbox
from reconciler.sandbox.named import NamedServer, start_named
from reconciler.sandbox.netns import NetnsPair, create_pair, entered, wait_for
from reconciler.sandbox.one_pass import sync_target
from reconciler.sandbox.tftp import tftpd
from reconciler.watch.status import StatusStore

SERVER_IP = "10.23.45.2"
SERVER_CIDR = f"{SERVER_IP}/24"
HTTP_PORT = 8080
TFTP_PORT = 69
NAMESPACE_PREFIX = "sbx"  # namespaces are sbxs<pid>x<n> (server) and sbxc<pid>x<n> (client)
PACKAGE_ROOT = Path(reconciler.__file__).resolve().parents[1]


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=sandbox", "-c", "user.email=sandbox@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout.strip()


def config_text(*, site: SandboxSite, named: NamedServer) -> str:
    """The runtime config: live targets, ``[serve]`` and a fast ``[watch]`` for the demo."""
    return f"""\
# Written by `reconciler sandbox`: the site in {site.workdir}.
state_dir = "state"
[source]
repo = "inventory"
rev = "main"
[boot]
http_url = "http://{SERVER_IP}:{HTTP_PORT}"
tftp_server = "{SERVER_IP}"
[serve]
listen = "{SERVER_IP}"
port = {HTTP_PORT}
refresh_seconds = 0.2
[watch]
local_poll_interval = 0.5
debounce = 0.02
drift_interval = 3600
backoff_initial = 0.2
backoff_max = 2
{dhcp_sections(site)}[targets.dns]
type = "dns-rfc2136"
server = "127.0.0.1"
port = {named.port}
key_file = "{named.key_file}"
timeout = 5
[targets.boot]
type = "bootfiles"
directory = "tftp"
"""


def dhcp_sections(site: SandboxSite) -> str:
    """The DHCP targets: dhcp-conf and dhcp-omapi for dhcpd, or kea-conf and kea-hosts."""
    if site.kea is not None:
        return site.kea.config_sections()
    return f"""\
[targets.dhcpd-conf]
type = "dhcp-conf"
path = "{site.dhcpd.conf}"
omapi_port = {OMAPI_PORT}
omapi_key_name = "{KEY_NAME}"
omapi_key_file = "omapi.key"
restart_command = "{site.dhcpd.restart_script}"
[targets.dhcp]
type = "dhcp-omapi"
server = "127.0.0.1"
port = {OMAPI_PORT}
key_name = "{KEY_NAME}"
key_file = "omapi.key"
leases_file = "{site.dhcpd.leases}"
timeout = 5
"""


@dataclass
class SandboxSite:
    """Everything one sandbox run made; ``close`` undoes it in reverse order."""

    workdir: Path
    pair: NetnsPair
    dhcpd: Dhcpd
    named: NamedServer | None = None
    kea: KeaSandbox | None = None  # set for `--dhcp kea`: Kea + PostgreSQL instead of dhcpd
    services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _tftpd: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def repo(self) -> Path:
        return self.workdir / "inventory"

    @property
    def config_path(self) -> Path:
        return self.workdir / "reconciler.toml"

    @property
    def tftp_root(self) -> Path:
        return self.workdir / "tftp"

    @property
    def store(self) -> StatusStore:
        return StatusStore(self.workdir / "state")

    @property
    def namespaces(self) -> tuple[str, str]:
        return (self.pair.server, self.pair.client)

    @property
    def folders(self) -> tuple[Path, ...]:
        """Every folder the run made (its own, then Kea's and PostgreSQL's): all go at close."""
        return (self.workdir, *(self.kea.folders() if self.kea is not None else ()))

    def client(self) -> DhcpClient:
        return DhcpClient(self.pair, self.workdir / "client")

    # -- setting up, in the order the demo runs it ---------------------------------

    def make_repository(self, example: Path) -> str:
        """Copy ``example`` into a fresh git repository on branch main; its first commit."""
        shutil.copytree(example, self.repo)
        git(self.repo, "init", "-q", "-b", "main")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", f"inventory copied from {example.name}")
        return git(self.repo, "rev-parse", "HEAD")

    def desired(self, rev: str | None = "main") -> DesiredState:
        """What a revision (None: the working tree) compiles to; no config, no live access."""
        source = {"repo": str(self.repo), "rev": rev} if rev else {"path": str(self.repo)}
        config = RuntimeConfig.model_validate({"source": source, "base_dir": self.workdir})
        engine = Engine(config)
        return engine.compile(engine.load())

    def start_named(self, zones: tuple[str, ...]) -> NamedServer:
        """named on the server namespace's loopback with ``zones`` dynamic (TSIG updates)."""
        with entered(self.pair.server):
            self.named = start_named(self.workdir / "named", dynamic_zones=zones, static_zones=())
        return self.named

    def write_config(self) -> None:
        assert self.named is not None
        write_key(self.workdir / "omapi.key")
        self.config_path.write_text(config_text(site=self, named=self.named))

    def start_tftpd(self) -> None:
        self.tftp_root.mkdir(exist_ok=True)
        self._tftpd.enter_context(
            tftpd(self.tftp_root, address=SERVER_IP, port=TFTP_PORT, namespace=self.pair.server)
        )

    @property
    def dhcp_server(self) -> str:
        return "Kea" if self.kea is not None else "dhcpd"

    def start_dhcp(self) -> int:
        """Start the site's DHCP server configured by its conf target; the server's pid."""
        if self.kea is not None:
            return self.kea.start(self.config_path)
        return self.start_dhcpd()

    def dhcp_pid(self) -> int | None:
        return self.kea.server.pid() if self.kea is not None else self.dhcpd.pid()

    def start_dhcpd(self) -> int:
        """Render dhcpd.conf with the dhcp-conf target the watch uses, which starts dhcpd.

        Same target, same ledger: the watch loop's first pass finds it in step.
        """
        engine = Engine(load_config(self.config_path))
        state = engine.compile(engine.load())
        target = next(t for t in engine.targets if t.name == "dhcpd-conf")
        sync_target(target, state, namespace=self.pair.server)
        wait_for(self.dhcpd.running, timeout=10, what="dhcpd to start")
        pid = self.dhcpd.pid()
        assert pid is not None
        return pid

    def start_service(self, command: str, *extra: str) -> subprocess.Popen[bytes]:
        """``reconciler <command> -c reconciler.toml`` inside the server namespace."""
        argv = [
            "ip", "netns", "exec", self.pair.server, sys.executable, "-c",
            "from reconciler.cli import main; main()", "--log-level", "info",
            command, "--config", str(self.config_path), *extra,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
        with (self.workdir / f"{command}.log").open("ab") as log:
            process = subprocess.Popen(
                argv,
                env=env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the sandbox, which stops it in order
            )
        self.services[command] = process
        return process

    def log_tail(self, command: str, chars: int = 2000) -> str:
        try:
            return (self.workdir / f"{command}.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def add_host(self, *, group: str, index: int, mac: str) -> str:
        """Add a host to a group file in the working tree (appended: comments stay).

        Returns the commit message for ``commit``.
        """
        path = self.repo / "groups" / f"{group}.yaml"
        text = path.read_text()
        text += f'  - index: {index}\n    mac: "{mac}"   # added by reconciler sandbox\n'
        path.write_text(text)
        return f"add {group} host {index} ({mac})"

    def commit(self, message: str) -> str:
        """Commit the working tree on main; the new commit."""
        git(self.repo, "commit", "-q", "-am", message)
        return git(self.repo, "rev-parse", "HEAD")

    def host(self, state: DesiredState, mac: str) -> DhcpHost | None:
        return next((h for h in state.dhcp_hosts if h.mac == mac), None)

    # -- tearing down -----------------------------------------------------------------

    def pids(self) -> list[int]:
        """Every process the sandbox started that may still run (services and daemons)."""
        pids = [p.pid for p in self.services.values()]
        if self.named is not None and self.named.process is not None:
            pids.append(self.named.process.pid)
        dhcpd = self.dhcpd.pid()
        if dhcpd is not None:
            pids.append(dhcpd)
        if self.kea is not None:
            pids += self.kea.pids()
        for namespace in self.namespaces:
            result = subprocess.run(
                ["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=10
            )
            pids += [int(pid) for pid in result.stdout.split() if pid.isdigit()]
        return sorted(set(pids))

    def close(self, *, keep: bool = False) -> None:
        """Stop services (SIGTERM, then SIGKILL), daemons, namespaces; remove the folder."""
        for process in reversed(list(self.services.values())):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        for process in self.services.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        with contextlib.suppress(Exception):
            self._tftpd.close()
        if self.named is not None:
            with contextlib.suppress(Exception):
                self.named.stop()
        self.pair.destroy()  # stops dhcpd (its cleanup) and anything left in the namespaces
        if not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def open_site(*, dhcp: str = "dhcpd") -> SandboxSite:
    """A temporary folder and a namespace pair with the DHCP server's files ready; nothing runs.

    ``dhcp`` is "dhcpd" or "kea" (Kea with a private PostgreSQL cluster).
    """
    workdir = Path(tempfile.mkdtemp(prefix="reconciler-sandbox-"))
    try:
        pair = create_pair(server_cidr=SERVER_CIDR, prefix=NAMESPACE_PREFIX)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    (workdir / "dhcp").mkdir()
    site = SandboxSite(workdir=workdir, pair=pair, dhcpd=Dhcpd(pair, workdir / "dhcp"))
    if dhcp == "kea":
        try:
            site.kea = KeaSandbox(pair, workdir)
        except BaseException:
            site.close()
            raise
    return site
