"""A real Kea DHCPv4 server and its control agent in a namespace: for the sandbox, tests, bench.

``kea-dhcp4`` runs in the foreground (as under systemd) in the server
namespace, on the veth, with its Unix control socket in a short private folder
(socket paths are limited to 108 bytes). ``kea-ctrl-agent`` listens on
127.0.0.1 in the same namespace with basic auth, and forwards commands to that
socket, which is how the ``kea-conf`` target reaches Kea. Kea 2.6.3 and later
only accept control sockets, pid files and data files under directories named
by ``KEA_*_DIR`` variables; they point at the private folder (Kea 2.2 ignores
them). Everything stops when the namespace pair is cleaned up.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from reconciler.sandbox.netns import NetnsPair, popen_in, require, wait_for

AGENT_PORT = 8000
AGENT_USER = "reconciler"
TOOLS = ("/usr/sbin/kea-dhcp4", "/usr/sbin/kea-ctrl-agent", "/usr/sbin/kea-admin")


class KeaServer:
    """kea-dhcp4 plus kea-ctrl-agent on the server side of ``pair``."""

    def __init__(self, pair: NetnsPair, workdir: Path, *, agent_port: int = AGENT_PORT) -> None:
        require(*TOOLS)
        self.pair = pair
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.rundir = Path(tempfile.mkdtemp(prefix="kea-"))
        self.rundir.chmod(0o750)
        self.socket = self.rundir / "kea4-ctrl-socket"
        self.conf = workdir / "kea-dhcp4.conf"
        self.agent_conf = workdir / "kea-ctrl-agent.conf"
        self.agent_port = agent_port
        self.agent_password_file = workdir / "kea-agent.password"
        self.agent_password_file.write_text(secrets.token_hex(12) + "\n")
        self.agent_password_file.chmod(0o600)
        self.dhcp4: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        pair.on_cleanup(self.close)

    @property
    def agent_url(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}/"

    def _env(self) -> dict[str, str]:
        folder = str(self.rundir)
        return {
            **os.environ,
            "KEA_PIDFILE_DIR": folder,
            "KEA_LOCKFILE_DIR": folder,
            "KEA_CONTROL_SOCKET_DIR": folder,
            "KEA_DHCP_DATA_DIR": folder,
            "KEA_LOG_FILE_DIR": str(self.workdir),
        }

    def _popen(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log_name).open("ab") as log:
            return popen_in(
                self.pair.server,
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
            )

    def start(self, config: dict[str, Any]) -> None:
        """Start kea-dhcp4 with ``config`` (a ``{"Dhcp4": ...}`` object), then the agent."""
        self.conf.write_text(json.dumps(config, indent=2) + "\n")
        self.start_dhcp4()
        self.agent_conf.write_text(json.dumps(self.agent_config(), indent=2) + "\n")
        self.agent = self._popen(
            ["/usr/sbin/kea-ctrl-agent", "-c", str(self.agent_conf)], "kea-ctrl-agent.log"
        )
        wait_for(self._agent_listening, timeout=20, what="kea-ctrl-agent to listen")

    def start_dhcp4(self) -> None:
        """kea-dhcp4 from its config file; up once its control socket exists."""
        self.socket.unlink(missing_ok=True)
        self.dhcp4 = self._popen(["/usr/sbin/kea-dhcp4", "-c", str(self.conf)], "kea-dhcp4.log")
        try:
            wait_for(
                lambda: self.socket.exists() or not self.running(),
                timeout=30,
                what="kea-dhcp4's control socket",
            )
        except TimeoutError:
            raise RuntimeError(f"kea-dhcp4 did not start: {self.log_tail()}") from None
        if not self.running():
            raise RuntimeError(f"kea-dhcp4 exited at start: {self.log_tail()}")

    def agent_config(self) -> dict[str, Any]:
        password = self.agent_password_file.read_text().strip()
        return {
            "Control-agent": {
                "http-host": "127.0.0.1",
                "http-port": self.agent_port,
                "authentication": {
                    "type": "basic",
                    "realm": "kea",
                    "clients": [{"user": AGENT_USER, "password": password}],
                },
                "control-sockets": {
                    "dhcp4": {"socket-type": "unix", "socket-name": str(self.socket)}
                },
            }
        }

    def _agent_listening(self) -> bool:
        if self.agent is None or self.agent.poll() is not None:
            raise RuntimeError(f"kea-ctrl-agent exited: {self.log_tail('kea-ctrl-agent.log')}")
        result = subprocess.run(
            ["ip", "netns", "exec", self.pair.server, "ss", "-Hltn", f"sport = :{self.agent_port}"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return bool(result.stdout.strip())

    def pid(self) -> int | None:
        return self.dhcp4.pid if self.running() and self.dhcp4 is not None else None

    def running(self) -> bool:
        return self.dhcp4 is not None and self.dhcp4.poll() is None

    def stop_dhcp4(self) -> None:
        _stop(self.dhcp4)

    def restart_dhcp4(self) -> None:
        """Stop kea-dhcp4 and start it again from its config file (the agent stays)."""
        self.stop_dhcp4()
        self.start_dhcp4()

    def log_tail(self, name: str = "kea-dhcp4.log", chars: int = 1500) -> str:
        try:
            return (self.workdir / name).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def close(self) -> None:
        _stop(self.agent)
        _stop(self.dhcp4)
        shutil.rmtree(self.rundir, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
