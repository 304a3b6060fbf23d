"""What a machine on the sandbox's wire would see: HTTP, TFTP and DNS answers, asked for real.

The demo proves a commit was applied by asking the services the way a node
does, not by reading the reconciler's own records. Each probe runs inside a
namespace the sandbox created (the calling thread enters it, so child
processes such as ``tftp`` start there too); nothing else is ever contacted.
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import dns.exception

from reconciler.sandbox.named import NamedServer
from reconciler.sandbox.netns import NetnsPair, entered
from reconciler.sandbox.tftp import tftp_get

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(namespace: str, url: str, *, timeout: float = 3) -> tuple[int, str]:
    """Status and body of a GET from inside ``namespace``; (0, reason) when unreachable."""
    with entered(namespace):
        try:
            with _NO_PROXY.open(url, timeout=timeout) as response:
                return int(response.status), response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as error:
            return 0, str(error)


def dns_answer(named: NamedServer, namespace: str, *, name: str, rdtype: str) -> list[str]:
    """What named answers for ``name``/``rdtype`` (sorted values; [] for none or no answer)."""
    with entered(namespace):
        try:
            return named.query(name, rdtype)
        except (OSError, EOFError, dns.exception.DNSException):
            return []


def tftp_fetch(namespace: str, path: str, *, server: str, port: int, workdir: Path) -> str | None:
    """A file fetched with tftp-hpa from inside ``namespace``, or None when refused."""
    with entered(namespace):
        return tftp_get(path, port=port, workdir=workdir, host=server)


def set_client_address(pair: NetnsPair, cidr: str) -> None:
    """Configure the client's veth with the address its lease gave (what dhclient-script does)."""
    for argv in (
        ["ip", "-n", pair.client, "addr", "flush", "dev", pair.client_if],
        ["ip", "-n", pair.client, "addr", "add", cidr, "dev", pair.client_if],
    ):
        subprocess.run(argv, check=True, capture_output=True, timeout=10)
