"""The deploy/ snippets work as the comments in them say, with the real servers.

deploy/dhcp/dhcpd-omapi.conf passes ``dhcpd -t`` with a real secret pasted in, and
names the key the reconciler uses by default. deploy/bind/named-dynamic.conf passes
``named-checkconf``; started in a real named, it takes TSIG-signed updates from the
reconciler's host (127.0.0.1) only: the same key from another address is refused,
as is an update without the key.
"""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.update
import pytest

from reconciler.sandbox.named import NAMED, free_port, write_key_file
from reconciler.targets.dhcp_conf import DhcpConfSettings
from reconciler.targets.dhcp_omapi import DhcpOmapiSettings

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DHCPD = Path("/usr/sbin/dhcpd")
SECRET = base64.b64encode(secrets.token_bytes(32)).decode()


def dhcpd_conf(tmp_path: Path, snippet: str) -> Path:
    conf = tmp_path / "dhcpd.conf"
    conf.write_text(snippet + "\nsubnet 10.23.45.0 netmask 255.255.255.0 {\n}\n")
    return conf


def dhcpd_check(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DHCPD), "-t", "-4", "-cf", str(conf)],
        capture_output=True, text=True, errors="replace", timeout=30, check=False,
    )  # fmt: skip


def test_the_omapi_snippet_passes_dhcpd_t_with_the_default_key_name(
    as_root: None, tmp_path: Path
) -> None:
    if not DHCPD.exists():
        pytest.skip("isc-dhcp-server is not installed")
    snippet = (DEPLOY / "dhcp/dhcpd-omapi.conf").read_text()
    assert "PASTE-THE-BASE64-SECRET-HERE" in snippet
    pasted = snippet.replace("PASTE-THE-BASE64-SECRET-HERE", SECRET)
    result = dhcpd_check(dhcpd_conf(tmp_path, pasted))
    assert result.returncode == 0, result.stderr
    # The key it defines is the one both DHCP targets use unless told otherwise.
    (defined,) = re.findall(r"^key (\S+) \{", snippet, flags=re.M)
    (used,) = re.findall(r"^omapi-key (\S+);", snippet, flags=re.M)
    assert defined == used == DhcpOmapiSettings.model_fields["key_name"].default
    assert defined == DhcpConfSettings.model_fields["omapi_key_name"].default
    # dhcpd -t does catch a broken snippet (so the check above means something).
    broken = pasted.replace(f"omapi-key {used};", "omapi-key someone-else;")
    assert dhcpd_check(dhcpd_conf(tmp_path, broken)).returncode != 0


def bind_snippet(tmp_path: Path) -> Path:
    """The snippet with its paths moved into ``tmp_path``, the key and zone files made."""
    text = (DEPLOY / "bind/named-dynamic.conf").read_text()
    key_file = write_key_file(tmp_path / "reconciler.key", name="reconciler", secret=SECRET)
    text = text.replace("/etc/bind/reconciler.key", str(key_file))
    text = text.replace("/var/lib/bind/", f"{tmp_path}/")
    for zone in re.findall(r'^zone "([^"]+)"', text, flags=re.M):
        (tmp_path / f"{zone}.zone").write_text(
            f"{zone}. 3600 IN SOA ns1.cluster.example. hostmaster.cluster.example. "
            "1 3600 600 86400 60\n"
            f"{zone}. 3600 IN NS ns1.cluster.example.\n"
            + ("ns1.cluster.example. 3600 IN A 127.0.0.1\n" if zone == "cluster.example" else "")
        )
    snippet = tmp_path / "named-dynamic.conf"
    snippet.write_text(text)
    return snippet


def named_conf(tmp_path: Path, port: int) -> Path:
    conf = tmp_path / "named.conf"
    conf.write_text(
        f"""options {{
    directory "{tmp_path}";
    pid-file "{tmp_path}/named.pid";
    session-keyfile "{tmp_path}/session.key";
    managed-keys-directory "{tmp_path}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
include "{bind_snippet(tmp_path)}";
"""
    )
    return conf


@pytest.fixture
def bind_tools(as_root: None) -> None:
    if not Path(NAMED).exists() or shutil.which("named-checkconf") is None:
        pytest.skip("bind9 (named, named-checkconf) is not installed")


def test_the_bind_snippet_passes_named_checkconf(bind_tools: None, tmp_path: Path) -> None:
    conf = named_conf(tmp_path, 53)
    result = subprocess.run(
        ["named-checkconf", "-z", str(conf)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def update(port: int, *, source: str, key: dns.tsig.Key | None) -> int:
    message = dns.update.UpdateMessage("cluster.example.")
    if key is not None:
        message.use_tsig(key)
    message.replace("probe", 300, "A", "10.23.45.9")
    response = dns.query.tcp(message, "127.0.0.1", port=port, source=source, timeout=5)
    return int(response.rcode())


def test_named_takes_updates_only_from_the_reconciler_host_with_the_key(
    bind_tools: None, tmp_path: Path
) -> None:
    port = free_port()
    conf = named_conf(tmp_path, port)
    log = (tmp_path / "named.log").open("wb")
    named = subprocess.Popen(
        [NAMED, "-g", "-4", "-n", "1", "-c", str(conf)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:  # ready when the zone answers; bounded
            assert named.poll() is None, (tmp_path / "named.log").read_text()
            try:
                query = dns.message.make_query("cluster.example.", "SOA")
                if dns.query.tcp(query, "127.0.0.1", port=port, timeout=1).answer:
                    break
            except (OSError, EOFError, dns.exception.DNSException):
                pass
            assert time.monotonic() < deadline, (tmp_path / "named.log").read_text()
            time.sleep(0.05)
        key = dns.tsig.Key("reconciler", SECRET, "hmac-sha256")
        assert update(port, source="127.0.0.1", key=key) == dns.rcode.NOERROR
        # The key from any other address (127.0.0.2 stands for the node network): refused.
        assert update(port, source="127.0.0.2", key=key) == dns.rcode.REFUSED
        assert update(port, source="127.0.0.1", key=None) == dns.rcode.REFUSED
    finally:
        named.terminate()
        named.wait(timeout=10)
        log.close()
