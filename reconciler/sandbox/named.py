"""A real BIND 9 (named) on loopback with dynamic zones, for the sandbox, DNS tests and benchmark.

named runs in the foreground (``-g``) from a named.conf written into a temporary
folder, on 127.0.0.1 and a free port, with a TSIG key allowed to transfer and
update the zones, a second key for "hand-made" edits, and one zone that is not
dynamic (updates REFUSED). ``start_named`` waits, bounded, until every zone answers
and stops the server afterwards. Only loopback is ever contacted.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update

from reconciler.sandbox.netns import MissingTool

NAMED = "/usr/sbin/named"
HOST = "127.0.0.1"
KEY_NAME = "reconciler-key"
ADMIN_KEY_NAME = "admin-key"
FORWARD_ZONE = "cluster.example."
REVERSE_ZONE = "45.23.10.in-addr.arpa."
STATIC_ZONE = "static.example."  # not dynamic: updates are REFUSED


@dataclass
class NamedServer:
    """A running named and what a test needs to talk to it."""

    directory: Path
    port: int
    key_file: Path
    admin_key: dns.tsig.Key
    dynamic_zones: tuple[str, ...]
    static_zones: tuple[str, ...]
    process: subprocess.Popen[bytes] | None = None
    host: str = HOST
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.directory / "named.log"

    def start(self, *, ready_timeout: float = 20.0) -> None:
        """Run named on the configuration in ``directory``; return once every zone answers."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [NAMED, "-g", "-4", "-n", "2", "-c", str(self.directory / "named.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the sandbox, which stops named in order
            )
        _wait_ready(self, ready_timeout)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except OSError:
            return ""

    def query(self, name: str, rdtype: str) -> list[str]:
        """Values of ``name``/``rdtype`` as named answers them now (sorted); [] if none."""
        query = dns.message.make_query(name, rdtype)
        response = dns.query.tcp(query, self.host, port=self.port, timeout=5)
        wanted = dns.rdatatype.from_text(rdtype)
        values: list[str] = []
        for rrset in response.answer:
            if rrset.rdtype == wanted and rrset.name == dns.name.from_text(name):
                values.extend(rd.to_text() for rd in rrset)
        return sorted(values)

    def ttl(self, name: str, rdtype: str) -> int | None:
        response = dns.query.tcp(
            dns.message.make_query(name, rdtype), self.host, port=self.port, timeout=5
        )
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.from_text(rdtype):
                return int(rrset.ttl)
        return None

    def hand_update(self, zone: str, edit: Sequence[tuple[str, str, int, str | None]]) -> None:
        """Edit the zone as an admin would with nsupdate: (op, name, ttl, "TYPE value")."""
        message = dns.update.UpdateMessage(zone, keyring=self.admin_key)
        for op, name, ttl, data in edit:
            if op == "add":
                assert data is not None
                rtype, value = data.split(" ", 1)
                message.add(name, ttl, rtype, value)
            elif op == "replace":
                assert data is not None
                rtype, value = data.split(" ", 1)
                message.replace(name, ttl, rtype, value)
            else:
                assert data is not None
                message.delete(name, data)
        response = dns.query.tcp(message, self.host, port=self.port, timeout=5)
        assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _secret(seed: str) -> str:
    return base64.b64encode((seed * 8).encode()[:32]).decode()


def write_key_file(path: Path, *, name: str, secret: str, algorithm: str = "hmac-sha256") -> Path:
    path.write_text(f'key "{name}" {{\n\talgorithm {algorithm};\n\tsecret "{secret}";\n}};\n')
    os.chmod(path, 0o600)
    return path


def _zone_text(zone: str) -> str:
    return (
        f"{zone} 3600 IN SOA ns1.{FORWARD_ZONE} hostmaster.{FORWARD_ZONE} 1 3600 600 86400 60\n"
        f"{zone} 3600 IN NS ns1.{FORWARD_ZONE}\n"
        + (f"ns1.{FORWARD_ZONE} 3600 IN A 127.0.0.1\n" if zone == FORWARD_ZONE else "")
    )


def start_named(
    directory: Path,
    *,
    dynamic_zones: Sequence[str] = (FORWARD_ZONE, REVERSE_ZONE),
    static_zones: Sequence[str] = (STATIC_ZONE,),
    ready_timeout: float = 20.0,
    zone_texts: Mapping[str, str] | None = None,
) -> NamedServer:
    """Write named.conf and zone files into ``directory`` and start named on a free port.

    ``zone_texts`` gives a zone's file as a person wrote it (a legacy site to import);
    other zones start with only their SOA and NS records.
    """
    if not os.path.exists(NAMED) or shutil.which("named-checkconf") is None:
        raise MissingTool("BIND 9 (named, named-checkconf) is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    secret, admin_secret = _secret("reconciler"), _secret("administrator")
    key_file = write_key_file(directory / "reconciler.key", name=KEY_NAME, secret=secret)
    zones_conf = []
    for zone in (*dynamic_zones, *static_zones):
        file_name = f"{zone.rstrip('.')}.zone"
        (directory / file_name).write_text((zone_texts or {}).get(zone) or _zone_text(zone))
        update = f'allow-update {{ key "{KEY_NAME}"; key "{ADMIN_KEY_NAME}"; }};'
        zones_conf.append(
            f'zone "{zone.rstrip(".")}" {{ type primary; file "{file_name}"; '
            f"{update if zone in dynamic_zones else ''} }};"
        )
    conf = f"""
include "{key_file}";
key "{ADMIN_KEY_NAME}" {{ algorithm hmac-sha256; secret "{admin_secret}"; }};
options {{
    directory "{directory}";
    pid-file "{directory}/named.pid";
    session-keyfile "{directory}/session.key";
    managed-keys-directory "{directory}";
    listen-on port {port} {{ {HOST}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-query {{ any; }};
    allow-transfer {{ key "{KEY_NAME}"; key "{ADMIN_KEY_NAME}"; }};
    // IXFR even when the differences outweigh the (tiny) zone: BIND's default
    // ratio (100%) would answer every IXFR of a test zone with the whole zone.
    max-ixfr-ratio unlimited;
}};
controls {{ }};
{chr(10).join(zones_conf)}
"""
    conf_path = directory / "named.conf"
    conf_path.write_text(conf)
    subprocess.run(["named-checkconf", str(conf_path)], check=True, capture_output=True)
    server = NamedServer(
        directory=directory,
        port=port,
        key_file=key_file,
        admin_key=dns.tsig.Key(ADMIN_KEY_NAME, admin_secret, "hmac-sha256"),
        dynamic_zones=tuple(dynamic_zones),
        static_zones=tuple(static_zones),
    )
    server.start(ready_timeout=ready_timeout)
    return server


def _wait_ready(server: NamedServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(server.dynamic_zones + server.static_zones)
    while pending:
        assert server.process is not None
        if server.process.poll() is not None:
            raise RuntimeError(f"named exited ({server.process.returncode}):\n{server.log()}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"named not ready after {timeout} s:\n{server.log()}")
        try:
            response = dns.query.tcp(
                dns.message.make_query(pending[0], "SOA"), HOST, port=server.port, timeout=0.5
            )
            if response.rcode() == dns.rcode.NOERROR and response.answer:
                pending.pop(0)
                continue
        except (OSError, EOFError, dns.exception.DNSException):
            pass
        time.sleep(0.05)
