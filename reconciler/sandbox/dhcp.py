"""A real ISC dhcpd in a namespace, and a real dhclient that proves what it hands out.

Used by the sandbox, the DHCP integration tests and the DHCP benchmark. dhcpd runs
daemonised from a pid file (as the Debian service does), so a test can restart
it with a script, the way ``restart_command`` does in production. A client
probe sets the client veth's MAC, runs ``dhclient -1`` with a script that
records the lease, and gives back what the server offered, or None.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from reconciler.sandbox.netns import NetnsPair, popen_in, run_in, wait_for

OMAPI_PORT = 7911
KEY_NAME = "omapi_key"


def write_key(path: Path, seed: bytes = b"reconciler-test-key-0123456789ab") -> str:
    """Write a base64 HMAC-MD5 secret to ``path`` (mode 600) and return it."""
    secret = base64.b64encode(seed).decode()
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


class Dhcpd:
    """dhcpd on the server side of a namespace pair, OMAPI on 127.0.0.1 in that namespace."""

    def __init__(self, pair: NetnsPair, workdir: Path, *, nice: int = 0) -> None:
        self.pair = pair
        self.workdir = workdir
        self.nice = nice  # scheduling priority (a benchmark on a busy machine raises it)
        self.conf = workdir / "dhcpd.conf"
        self.leases = workdir / "dhcpd.leases"
        self.pidfile = workdir / "dhcpd.pid"
        self.restart_script = workdir / "restart-dhcpd.sh"
        self.leases.touch()
        self.restart_script.write_text(
            "#!/bin/sh\n"
            f"pid=$(cat {self.pidfile} 2>/dev/null) && kill $pid 2>/dev/null\n"
            'i=0; while [ -n "$pid" ] && kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do\n'
            "  sleep 0.05; i=$((i+1)); done\n"
            f"exec ip netns exec {pair.server} {' '.join(self.argv)}\n"
        )
        self.restart_script.chmod(0o755)
        pair.on_cleanup(self.stop)

    @property
    def argv(self) -> list[str]:
        return (["nice", "-n", str(self.nice)] if self.nice else []) + [
            "/usr/sbin/dhcpd", "-4", "-q", "-cf", str(self.conf), "-lf", str(self.leases),
            "-pf", str(self.pidfile), self.pair.server_if,
        ]  # fmt: skip

    def start(self) -> None:
        result = run_in(self.pair.server, self.argv, check=False, timeout=20)
        if result.returncode != 0:
            raise RuntimeError(f"dhcpd did not start: {result.stdout}{result.stderr}")
        wait_for(self.running, timeout=5, what="dhcpd pid file")

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:  # an exited dhcpd may stay a zombie until PID 1 collects it: that is gone
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not self.running(), timeout=5, what="dhcpd to stop")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass(frozen=True)
class Lease:
    """What dhclient got: the environment its script saw, reduced to what tests check."""

    ip: str
    hostname: str
    filename: str
    raw: dict[str, str]


class DhcpClient:
    """dhclient on the client side of the pair, one lease attempt per call."""

    def __init__(self, pair: NetnsPair, workdir: Path, *, nice: int = 0) -> None:
        self.pair = pair
        self.workdir = workdir
        self.nice = nice  # scheduling priority (a benchmark on a busy machine raises it)
        workdir.mkdir(parents=True, exist_ok=True)
        self.record = workdir / "lease.env"
        self.script = workdir / "record-lease.sh"
        self.script.write_text(
            "#!/bin/sh\n"
            'case "$reason" in BOUND|REBOOT|RENEW)\n'
            f"  env | grep -E '^(reason|new_[a-z_]+)=' > {self.record}.tmp && "
            f"mv {self.record}.tmp {self.record};;\nesac\nexit 0\n"
        )
        self.script.chmod(0o755)

    def lease(
        self,
        mac: str,
        *,
        timeout: float = 12,
        user_class: str | None = None,
        arch: int | None = None,
    ) -> Lease | None:
        """Ask for an address with ``mac``; None when no server answered in ``timeout``.

        ``arch`` sends option 93 (client system architecture: 7 is UEFI x86-64).
        """
        self.pair.set_client_mac(mac)
        conf = self.workdir / "dhclient.conf"
        conf.write_text(
            f"timeout {int(timeout)};\nretry 1;\ninitial-interval 1;\nbackoff-cutoff 1;\n"
            "request subnet-mask, routers, host-name, domain-name;\n"
            + (f'send user-class "{user_class}";\n' if user_class else "")
            + (f"option arch code 93 = unsigned integer 16;\nsend arch {arch};\n" if arch else "")
        )
        leasefile = self.workdir / "dhclient.leases"
        leasefile.unlink(missing_ok=True)  # no remembered address: a fresh DISCOVER
        self.record.unlink(missing_ok=True)
        argv = [
            "/usr/sbin/dhclient", "-4", "-1", "-d", "-cf", str(conf), "-lf", str(leasefile),
            "-pf", str(self.workdir / "dhclient.pid"), "-sf", str(self.script), self.pair.client_if,
        ]  # fmt: skip
        process = popen_in(
            self.pair.client, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + timeout + 3
            while time.monotonic() < deadline:
                if self.record.exists():
                    return self._parse()
                if process.poll() is not None:
                    return self._parse() if self.record.exists() else None
                time.sleep(0.05)
            return None
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=5)

    def _parse(self) -> Lease:
        raw = dict(
            line.split("=", 1) for line in self.record.read_text().splitlines() if "=" in line
        )
        return Lease(
            ip=raw.get("new_ip_address", ""),
            hostname=raw.get("new_host_name", ""),
            filename=raw.get("new_filename", ""),
            raw=raw,
        )
